//! Dropout whose masks are drawn from the training batch's seed (and the layer's place), so a
//! run resumed from a checkpoint draws exactly the masks it would have drawn; evaluation never
//! drops. Inverted dropout, as torch: kept values are scaled by `1 / (1 - p)`.

use candle_core::{Result, Tensor};
use rand::{Rng, SeedableRng};

use crate::nn::{fused, Ops};

/// Drops each value (or each whole channel) with probability `p` in training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    /// Probability of dropping, in `[0, 1)`.
    p: f64,
    /// Which of the network's dropout layers this is (mixed into the mask's seed).
    index: u64,
}

impl Dropout {
    /// Dropout layer number `index` of a network (each gets its own masks) with probability
    /// `p`; an error outside `[0, 1)`.
    pub fn new(p: f64, index: u64) -> Result<Dropout> {
        if !(0.0..1.0).contains(&p) {
            candle_core::bail!("dropout probability {p} must be in [0, 1)");
        }
        Ok(Dropout { p, index })
    }

    /// No dropout.
    pub fn none() -> Dropout {
        Dropout { p: 0.0, index: 0 }
    }

    /// The same probability as layer number `index` (its own masks).
    pub fn at(self, index: u64) -> Dropout {
        Dropout { index, ..self }
    }

    /// Its layer number.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Whether it drops anything at all.
    pub fn active(&self) -> bool {
        self.p > 0.0
    }

    /// `x` with values dropped and the rest scaled by `1 / (1 - p)`, masks drawn from `seed`
    /// (the training batch's); `x` unchanged when `seed` is `None` (evaluation) or `p` is 0.
    ///
    /// # Shapes
    /// `x`: any shape -> the same.
    pub fn forward(&self, x: &Tensor, seed: Option<u64>) -> Result<Tensor> {
        self.forward_with(Ops::Plain, x, seed)
    }

    /// As [`Dropout::forward`], the product one fused op where `ops` allows it (the same
    /// masks and values; only the mask's unused gradient is skipped).
    ///
    /// # Shapes
    /// `x`: any shape -> the same.
    pub fn forward_with(&self, ops: Ops, x: &Tensor, seed: Option<u64>) -> Result<Tensor> {
        match seed {
            Some(seed) if self.active() => {
                if ops.fuses(x) {
                    fused::mask_mul(x, self.mask_values(x.elem_count(), seed))
                } else {
                    x.broadcast_mul(&self.mask(x, x.dims(), seed)?)
                }
            }
            _ => Ok(x.clone()),
        }
    }

    /// Channel dropout (torch's `Dropout2d`): each `[h, w]` map of each sample is dropped
    /// whole.
    ///
    /// # Shapes
    /// `x`: `[B, C, H, W]` -> the same.
    pub fn forward_channels(&self, x: &Tensor, seed: Option<u64>) -> Result<Tensor> {
        match seed {
            Some(seed) if self.active() => {
                let (b, c, _, _) = x.dims4()?;
                x.broadcast_mul(&self.mask(x, &[b, c, 1, 1], seed)?)
            }
            _ => Ok(x.clone()),
        }
    }

    /// A mask of `shape` with zeros drawn with probability `p` and the rest `1 / (1 - p)`, on
    /// `x`'s device and in its dtype.
    fn mask(&self, x: &Tensor, shape: &[usize], seed: u64) -> Result<Tensor> {
        let values = self.mask_values(shape.iter().product(), seed);
        Tensor::from_vec(values, shape, x.device())?.to_dtype(x.dtype())
    }

    /// `n` mask values: value `i` is 0 where the `i`-th uniform draw of the layer's stream is
    /// at least `1 - p`, else `1 / (1 - p)`. The words come in bulk from the same stream (and
    /// the draw is `rand`'s `f32`, the top 24 bits of a word) as one `random::<f32>()` per value.
    fn mask_values(&self, n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(mix(seed, self.index));
        let keep = (1.0 - self.p) as f32;
        let scale = 1.0 / keep;
        let mut words = vec![0u32; n];
        rng.fill(&mut words[..]);
        let unit = 1.0 / (1u32 << 24) as f32;
        words
            .iter()
            .map(|w| {
                if unit * ((w >> 8) as f32) < keep {
                    scale
                } else {
                    0.0
                }
            })
            .collect()
    }
}

/// A seed for layer `index` from the batch's seed (SplitMix64's finaliser over both, so
/// neighbouring batches and layers get unrelated streams).
fn mix(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .unwrap_or_default()
    }

    #[test]
    fn drops_at_rate_p_scales_the_rest_and_repeats_with_the_seed() -> Result<()> {
        let x = Tensor::ones(
            (200, 500),
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )?;
        let d = Dropout::new(0.3, 0)?;
        let a = values(&d.forward(&x, Some(7))?);
        let dropped = a.iter().filter(|v| **v == 0.0).count() as f64 / a.len() as f64;
        // 100,000 draws: the rate is within 4 binomial stds of 0.3
        assert!(
            (dropped - 0.3).abs() < 4.0 * (0.3f64 * 0.7 / 1e5).sqrt(),
            "{dropped}"
        );
        assert!(a.iter().all(|v| *v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-6));
        // the mean is kept in expectation
        let mean = a.iter().map(|v| *v as f64).sum::<f64>() / a.len() as f64;
        assert!((mean - 1.0).abs() < 0.01, "{mean}");
        assert_eq!(values(&d.forward(&x, Some(7))?), a, "same seed, same mask");
        assert_ne!(
            values(&d.forward(&x, Some(8))?),
            a,
            "another batch, another mask"
        );
        let other_layer = Dropout::new(0.3, 1)?;
        assert_ne!(values(&other_layer.forward(&x, Some(7))?), a);
        // evaluation and p = 0 pass the input through
        assert_eq!(values(&d.forward(&x, None)?), values(&x));
        assert_eq!(
            values(&Dropout::new(0.0, 0)?.forward(&x, Some(7))?),
            values(&x)
        );
        Ok(())
    }

    #[test]
    fn bulk_masks_equal_one_draw_per_value() {
        // the masks every run so far was trained with: one `random::<f32>()` per value
        for (p, index, seed, n) in [(0.3, 0, 7, 1000), (0.5, 2, 11, 4097), (0.1, 1, 0, 33)] {
            let d = Dropout::new(p, index).unwrap_or_else(|_| Dropout::none());
            let mut rng = rand::rngs::StdRng::seed_from_u64(mix(seed, index));
            let keep = (1.0 - p) as f32;
            let drawn: Vec<f32> = (0..n)
                .map(|_| {
                    if rng.random::<f32>() < keep {
                        1.0 / keep
                    } else {
                        0.0
                    }
                })
                .collect();
            assert_eq!(d.mask_values(n, seed), drawn, "p {p}, layer {index}");
        }
    }

    #[test]
    fn fused_and_plain_dropout_agree_forward_and_backward() -> Result<()> {
        let x = candle_core::Var::rand(0f32, 1f32, (5, 7, 64), &candle_core::Device::Cpu)?;
        let d = Dropout::new(0.3, 1)?;
        let fused = d.forward_with(Ops::Fused, &x, Some(5))?;
        let plain = d.forward_with(Ops::Plain, &x, Some(5))?;
        assert_eq!(values(&fused), values(&plain));
        let gf = fused.sqr()?.sum_all()?.backward()?;
        let gp = plain.sqr()?.sum_all()?.backward()?;
        let grad = |g: &candle_core::backprop::GradStore| g.get(&x).map(values);
        assert_eq!(grad(&gf), grad(&gp));
        assert!(grad(&gf).is_some());
        Ok(())
    }

    #[test]
    fn channel_dropout_drops_whole_maps() -> Result<()> {
        let x = Tensor::ones(
            (4, 16, 3, 3),
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )?;
        let y = Dropout::new(0.5, 2)?.forward_channels(&x, Some(3))?;
        let v = values(&y);
        let mut zero_maps = 0;
        for map in v.chunks(9) {
            assert!(map.iter().all(|m| *m == map[0]), "a map is dropped whole");
            zero_maps += usize::from(map[0] == 0.0);
        }
        assert!(zero_maps > 0 && zero_maps < 64);
        Ok(())
    }

    #[test]
    fn models_drop_in_training_only_and_repeat_with_the_batch_seed() -> crate::Result<()> {
        use crate::config::{
            Activation, CellKind, CnnConfig, EncoderConfig, FfnnConfig, ModelConfig,
            RecurrentStack, RnnConfig,
        };
        use crate::nn::{Model, Network, Ops, SeededVarMap};
        let dev = candle_core::Device::Cpu;
        let configs = [
            ModelConfig::Ffnn(FfnnConfig {
                hidden: vec![32, 16],
                activation: Activation::Relu,
                dropout: 0.5,
            }),
            ModelConfig::Cnn(CnnConfig {
                channels: vec![4, 8],
                kernel_size: 3,
                padding: 1,
                pool: 2,
                fc_hidden: vec![16],
                activation: Activation::Relu,
                dropout: 0.5,
            }),
            ModelConfig::Rnn(RnnConfig {
                stack: RecurrentStack {
                    cell: CellKind::Lstm,
                    hidden: 16,
                    layers: 2,
                    dropout: 0.5,
                },
                encoder: EncoderConfig::Rows,
            }),
        ];
        let x = Tensor::rand(0f32, 1f32, (4, 1, 8, 8), &dev)?;
        for cfg in configs {
            for ops in [Ops::Fused, Ops::Plain] {
                let vars = SeededVarMap::new(1);
                let vb = vars.var_builder(candle_core::DType::F32, &dev);
                let model = Model::from_config(&cfg, [1, 8, 8], 3, ops, vb)?;
                let input = model.encode(&x, 0)?;
                let eval = values(&Network::forward(&model, &input)?);
                let a = values(&model.forward_train(&input, 11)?);
                assert_ne!(a, eval, "{} drops in training", cfg.kind());
                assert_eq!(
                    values(&model.forward_train(&input, 11)?),
                    a,
                    "{}",
                    cfg.kind()
                );
                assert_ne!(
                    values(&model.forward_train(&input, 12)?),
                    a,
                    "{}",
                    cfg.kind()
                );
                assert_eq!(values(&Network::forward(&model, &input)?), eval);
            }
        }
        Ok(())
    }

    #[test]
    fn a_probability_outside_zero_to_one_is_refused() {
        for p in [-0.1, 1.0, f64::NAN] {
            assert!(Dropout::new(p, 0).is_err(), "{p}");
        }
    }
}
