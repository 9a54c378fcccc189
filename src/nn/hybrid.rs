//! Hybrid network: a spiking encoder layer whose windowed spike counts drive a non-spiking
//! recurrent stack: `encoder -> Linear -> Leaky -> counts per window -> RNN -> Linear -> logits`.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::layers::linear;
use super::neuron::Leaky;
use super::probe::Probe;
use super::recurrent::Stack;
use super::Ops;
use crate::config::{EncoderConfig, HybridConfig};

/// `fc1 -> lif1` over all `T` steps, spikes summed over windows of `window` steps (one RNN step
/// per window), the stack `rnn.l<i>`, and `fc2` on its last hidden state.
#[derive(Debug, Clone)]
pub struct Hybrid {
    fc1: Linear,
    lif1: Leaky,
    window: usize,
    rnn: Stack,
    fc2: Linear,
    encoder: EncoderConfig,
    ops: Ops,
}

impl Hybrid {
    /// Creates the layers under `vb` for `[C, H, W]` images and `classes` outputs; errors name
    /// `model.window` unless it divides the encoder's steps.
    pub fn from_config(
        cfg: &HybridConfig,
        input: [usize; 3],
        classes: usize,
        ops: Ops,
        vb: VarBuilder,
    ) -> Result<Self> {
        let steps = cfg.encoder.steps(input);
        if cfg.window == 0 || !steps.is_multiple_of(cfg.window) {
            candle_core::bail!(
                "model.window: {} must be a positive divisor of the encoder's {steps} time steps",
                cfg.window
            );
        }
        if cfg.spiking_hidden == 0 {
            candle_core::bail!("model.spiking_hidden: the spiking layer needs at least one neuron");
        }
        let n = cfg.spiking_hidden;
        let k = cfg.encoder.step_shape(input).iter().product();
        Ok(Hybrid {
            fc1: linear(k, n, vb.pp("fc1"))?,
            lif1: Leaky::from_config(&cfg.neuron, &[n], vb.pp("lif1"))?,
            window: cfg.window,
            rnn: Stack::from_config(&cfg.rnn, n, "model.rnn", &vb.pp("rnn"))?,
            fc2: linear(cfg.rnn.hidden, classes, vb.pp("fc2"))?,
            encoder: cfg.encoder,
            ops,
        })
    }

    /// The encoder turning images into this network's input.
    pub fn encoder(&self) -> &EncoderConfig {
        &self.encoder
    }

    /// Cross-entropy of the logits against class indices.
    ///
    /// # Shapes
    /// `logits`: `[B, classes]`, `labels`: `[B]` -> scalar.
    pub fn loss(&self, logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        self.ops.cross_entropy(logits, labels)
    }

    /// Logits of an encoded batch, reporting the spiking layer to `probe` as `lif1`.
    ///
    /// # Shapes
    /// `input`: `[T, B, ...]` -> spikes `[T, B, N]` -> counts `[T / window, B, N]` -> logits
    /// `[B, classes]`.
    pub fn forward_probed(&self, input: &Tensor, probe: &mut dyn Probe) -> Result<Tensor> {
        let (t, b) = (input.dim(0)?, input.dim(1)?);
        let x = input.reshape((t * b, ()))?;
        let current = self
            .ops
            .project(&self.fc1, &x, self.encoder.emits_spikes())?;
        let n = current.dim(1)?;
        let spikes =
            self.lif1
                .forward_probed(self.ops, "lif1", &current.reshape((t, b, n))?, probe)?;
        if t % self.window != 0 {
            candle_core::bail!(
                "input {:?}: {t} time steps do not split into windows of {}",
                input.dims(),
                self.window
            );
        }
        let counts = spikes
            .reshape((t / self.window, self.window, b, n))?
            .sum(1)?;
        let (_, h) = self.rnn.forward_with(self.ops, &counts)?;
        self.fc2.forward(&h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CellKind, LeakyConfig, ModelConfig, RecurrentStack, Reset, Surrogate};
    use crate::nn::gradcheck::{self, frozen_error, Freeze, Params};
    use crate::nn::srnn::tests::images;
    use crate::nn::{FiringRates, Model, SeededVarMap};
    use candle_core::{DType, Device, Module};

    fn config(slope: f64, window: usize) -> HybridConfig {
        HybridConfig {
            spiking_hidden: 3,
            neuron: LeakyConfig {
                beta: 0.8,
                threshold: 0.3,
                surrogate: Surrogate::FastSigmoid { slope },
                ..LeakyConfig::default()
            },
            window,
            rnn: RecurrentStack {
                cell: CellKind::Lstm,
                hidden: 2,
                layers: 1,
                dropout: 0.0,
            },
            encoder: EncoderConfig::Current { steps: 4 },
        }
    }

    #[test]
    fn surrogate_gradients_match_the_frozen_twin_and_the_layer_reports_rates() -> Result<()> {
        let slope = 5.0;
        let cfg = ModelConfig::Hybrid(config(slope, 2));
        let vars = SeededVarMap::new(8);
        let vb = vars.var_builder(DType::F64, &Device::Cpu);
        let model = Model::from_config(&cfg, [1, 2, 2], 3, Ops::Plain, vb)?;
        let imgs = images(2, 2, 2)?;
        let x = model.encode(&imgs, 0)?;
        let labels = Tensor::new(&[2u32, 0], &Device::Cpu)?;
        let library = || model.loss(&model.forward(&x)?, &labels);
        let pixels: Vec<Vec<f64>> = imgs.flatten_from(1)?.to_vec2()?;
        let reference = |p: &Params, fz: &mut Freeze| {
            let mut ce = |b: usize, label| {
                let cur = gradcheck::linear(&pixels[b], &p["fc1.weight"], &p["fc1.bias"]);
                let none = gradcheck::Feedback::None;
                let (s, _) =
                    gradcheck::lif(&vec![cur; 4], &[0.8], &[0.3], Reset::Subtract, &none, fz);
                let add = |a: &[f64], b: &[f64]| -> Vec<f64> {
                    a.iter().zip(b).map(|(x, y)| x + y).collect()
                };
                let counts = vec![add(&s[0], &s[1]), add(&s[2], &s[3])];
                let w = gradcheck::lstm_weights(p, "rnn.l0");
                let (h, _) = gradcheck::lstm(&counts, w, None, fz);
                let logits = gradcheck::linear(&h[1], &p["fc2.weight"], &p["fc2.bias"]);
                gradcheck::ce(&logits, label)
            };
            (ce(0, 2) + ce(1, 0)) / 2.0
        };
        let (err, fired) = frozen_error(&vars, slope, library, reference)?;
        assert!(err < 1e-7, "max error {err}");
        assert!(fired > 0.1 && fired < 0.9, "fired {fired}");
        let mut rates = FiringRates::new();
        model.forward_probed(&x, &mut rates)?;
        let names: Vec<String> = rates.rates().into_iter().map(|r| r.layer).collect();
        assert_eq!(names, ["lif1"]);
        Ok(())
    }

    #[test]
    fn a_window_that_does_not_divide_the_steps_is_refused() {
        let vb = SeededVarMap::new(0).var_builder(DType::F32, &Device::Cpu);
        let err = Hybrid::from_config(&config(25.0, 3), [1, 2, 2], 3, Ops::Plain, vb).err();
        assert!(format!("{err:?}").contains("model.window"), "{err:?}");
    }
}
