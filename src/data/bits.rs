//! Generated bit-sequence tasks: copy (`y_t = x_{t-d}`), delayed XOR (`y_t = x_{t-d} ⊕
//! x_{t-2d}`) and its generalisation, the parity of the bits at lags `d, 2d, ..., 2^h·d`.
//!
//! # The scored-step rule
//! The network sees bits `x_0 .. x_{T-1}`. A target is scored from the first step whose every
//! lagged bit is among them: `t0 = d` for copy and `t0 = 2^h·d` for parity of order `h`, so
//! `T - t0` steps are scored per sequence. Upstream (GradientFlossing) drops the first `d + 1`
//! drawn bits from the input but still scores from `t0 - 1`, whose target depends on a bit the
//! network never sees; `upstream_first_target: true` reproduces that (the hidden bit is drawn
//! first, before `x_0`), for comparisons with published numbers only.
//!
//! Sequence `i` of a split is generated from `(data_seed, split, i)` alone, so batches need no
//! stored data and any sample can be regenerated.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};

use super::dataset::{hash_f32, Batch, Dataset, InputShape, Split};
use super::task::StepLabelling;
use crate::config::BitTaskConfig;
use crate::error::{Error, Result};

/// A bit task's generator: which lags a target XORs, and where scoring starts.
#[derive(Debug, Clone, PartialEq)]
pub struct BitTask {
    lags: Vec<usize>,
    steps: usize,
    amplitude: f32,
    scored_from: usize,
    data_seed: u64,
    /// Whether the upstream hidden first bit exists.
    hidden_bit: bool,
}

impl BitTask {
    /// The generator of data kind `kind` (`copy`, `delayed_xor`, `parity`) under `cfg`, or an
    /// error naming the key at fault.
    pub fn new(kind: &str, cfg: &BitTaskConfig) -> Result<Self> {
        if cfg.delay == 0 {
            return Err(Error::invalid(
                "data.delay",
                "0 is not a delay; use an integer >= 1",
            ));
        }
        let order = match (kind, cfg.order) {
            ("copy", None) => None,
            ("copy", Some(h)) => {
                return Err(Error::invalid(
                    "data.order",
                    format!("{h}: copy has one lag and takes no order; use kind delayed_xor or parity for XORs of 2^order lags"),
                ))
            }
            ("parity", None) => Some(2),
            (_, None) => Some(1),
            (_, Some(h)) if (1..=6).contains(&h) => Some(h),
            (_, Some(h)) => {
                return Err(Error::invalid(
                    "data.order",
                    format!("{h} is outside 1..=6 (parity of 2^order lags)"),
                ))
            }
        };
        let lags: Vec<usize> = match order {
            None => vec![cfg.delay],
            Some(h) => (1..=(1usize << h)).map(|k| k * cfg.delay).collect(),
        };
        let first = lags.iter().copied().max().unwrap_or(cfg.delay);
        let scored_from = if cfg.upstream_first_target {
            first - 1
        } else {
            first
        };
        if cfg.steps <= scored_from {
            return Err(Error::invalid(
                "data.steps",
                format!(
                    "{} steps leave no scored step: the first target needs the bit {first} steps back; use steps > {scored_from}",
                    cfg.steps
                ),
            ));
        }
        if !(cfg.amplitude.is_finite() && cfg.amplitude != 0.0) {
            return Err(Error::invalid(
                "data.amplitude",
                format!("{} must be a finite non-zero number", cfg.amplitude),
            ));
        }
        for (key, n) in [
            ("data.train_sequences", cfg.train_sequences),
            ("data.val_sequences", cfg.val_sequences),
            ("data.test_sequences", cfg.test_sequences),
        ] {
            if n == 0 {
                return Err(Error::invalid(key, "0 sequences; use at least 1"));
            }
        }
        Ok(BitTask {
            lags,
            steps: cfg.steps,
            amplitude: cfg.amplitude as f32,
            scored_from,
            data_seed: cfg.data_seed,
            hidden_bit: cfg.upstream_first_target,
        })
    }

    /// The task that scores this generator's targets.
    pub fn task(&self) -> StepLabelling {
        StepLabelling {
            scored_from: self.scored_from,
        }
    }

    /// One input channel over `steps` steps.
    pub fn input_shape(&self) -> InputShape {
        InputShape::Sequence {
            channels: 1,
            steps: self.steps,
        }
    }

    /// First scored step.
    pub fn scored_from(&self) -> usize {
        self.scored_from
    }

    /// Sequence `index` of split `split`: input bits `x_t` (0 or 1) and targets `y_t` (0 or 1,
    /// 0 before any lagged bit exists), each of length `steps`.
    pub fn sequence(&self, split: u64, index: usize) -> (Vec<u8>, Vec<u8>) {
        let seed = mix(self.data_seed, split, index as u64);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let offset = usize::from(self.hidden_bit);
        let drawn: Vec<u8> = (0..self.steps + offset)
            .map(|_| u8::from(rng.random::<bool>()))
            .collect();
        let target = (0..self.steps)
            .map(|t| {
                self.lags.iter().fold(0u8, |acc, &lag| {
                    let at = (t + offset).checked_sub(lag);
                    acc ^ at.map_or(0, |j| drawn[j])
                })
            })
            .collect();
        (drawn[offset..].to_vec(), target)
    }
}

/// Mixes a seed with a split and a sample index (splitmix64 steps).
fn mix(seed: u64, split: u64, index: u64) -> u64 {
    let mut z = seed
        .wrapping_add(split.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(index.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One split of a bit task: `len` generated sequences.
#[derive(Debug, Clone)]
pub struct BitSplit {
    gen: BitTask,
    split: u64,
    len: usize,
}

impl Split for BitSplit {
    fn len(&self) -> usize {
        self.len
    }

    fn batch(&self, indices: &[usize], device: &Device) -> Result<Batch> {
        let (t_len, b) = (self.gen.steps, indices.len());
        let mut x = vec![0f32; t_len * b];
        let mut y = vec![0f32; t_len * b];
        for (col, &i) in indices.iter().enumerate() {
            let (bits, target) = self.gen.sequence(self.split, i);
            for t in 0..t_len {
                x[t * b + col] = f32::from(bits[t]) * self.gen.amplitude;
                y[t * b + col] = f32::from(target[t]);
            }
        }
        Ok(Batch {
            input: Tensor::from_vec(x, (t_len, b, 1), device)?,
            target: Tensor::from_vec(y, (t_len, b, 1), device)?,
        })
    }

    fn fingerprint(&self, i: usize) -> u64 {
        let (bits, _) = self.gen.sequence(self.split, i);
        let values: Vec<f32> = bits.iter().map(|&b| f32::from(b)).collect();
        hash_f32(&values, &[])
    }
}

/// The dataset of a bit task: train, val and test splits drawn from disjoint seed streams.
pub fn dataset(kind: &'static str, cfg: &BitTaskConfig) -> Result<Dataset> {
    let gen = BitTask::new(kind, cfg)?;
    let split = |id: u64, len: usize| -> Box<dyn Split> {
        Box::new(BitSplit {
            gen: gen.clone(),
            split: id,
            len,
        })
    };
    Ok(Dataset {
        kind,
        task: std::sync::Arc::new(gen.task()),
        input: gen.input_shape(),
        outputs: 1,
        train: split(0, cfg.train_sequences),
        val: split(1, cfg.val_sequences),
        tests: vec![("test".to_string(), split(2, cfg.test_sequences))],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(delay: usize, order: Option<u32>, steps: usize) -> BitTaskConfig {
        BitTaskConfig {
            delay,
            order,
            steps,
            amplitude: 1.0,
            train_sequences: 8,
            val_sequences: 4,
            test_sequences: 4,
            data_seed: 7,
            upstream_first_target: false,
        }
    }

    /// Golden targets computed by hand from the drawn bits, for copy, XOR and parity at d=3.
    #[test]
    fn targets_follow_their_definitions_at_delay_3() -> Result<()> {
        for (kind, order, lags) in [
            ("copy", None, vec![3]),
            ("delayed_xor", None, vec![3, 6]),
            ("parity", None, vec![3, 6, 9, 12]),
        ] {
            let gen = BitTask::new(kind, &cfg(3, order, 40))?;
            assert_eq!(gen.scored_from(), *lags.iter().max().unwrap_or(&0));
            let (x, y) = gen.sequence(0, 5);
            for t in gen.scored_from()..40 {
                let want = lags.iter().fold(0, |a, &l| a ^ x[t - l]);
                assert_eq!(y[t], want, "{kind} t={t}");
            }
        }
        let xor = BitTask::new("delayed_xor", &cfg(3, None, 12))?;
        let (x, y) = xor.sequence(1, 0);
        // x = bits, y_t = x_{t-3} xor x_{t-6} from t = 6 on
        assert_eq!(y[6], x[3] ^ x[0]);
        assert_eq!(y[11], x[8] ^ x[5]);
        Ok(())
    }

    #[test]
    fn upstream_option_scores_one_unobservable_target() -> Result<()> {
        let mut c = cfg(3, None, 20);
        c.upstream_first_target = true;
        let gen = BitTask::new("delayed_xor", &c)?;
        assert_eq!(gen.scored_from(), 5);
        // the first scored target XORs x_2 with the hidden bit before x_0: over many sequences
        // it disagrees with x_2 alone about half the time, so it is not a function of the input
        let differs = (0..400)
            .filter(|&i| {
                let (x, y) = gen.sequence(0, i);
                y[5] != x[2]
            })
            .count();
        assert!((150..250).contains(&differs), "{differs}");
        Ok(())
    }

    #[test]
    fn bad_settings_name_their_key() {
        let err = |kind: &str, c: BitTaskConfig| match BitTask::new(kind, &c) {
            Err(Error::InvalidConfig { key, .. }) => key,
            other => format!("{other:?}"),
        };
        assert_eq!(err("copy", cfg(0, None, 10)), "data.delay");
        assert_eq!(err("copy", cfg(2, Some(1), 10)), "data.order");
        assert_eq!(err("delayed_xor", cfg(5, None, 10)), "data.steps");
        assert_eq!(err("parity", cfg(1, Some(9), 100)), "data.order");
    }

    #[test]
    fn batches_are_time_first_and_reproducible() -> Result<()> {
        let data = dataset("copy", &cfg(2, None, 10))?;
        let Batch {
            input: x,
            target: y,
        } = data.train.batch(&[3, 1], &Device::Cpu)?;
        assert_eq!(x.dims(), [10, 2, 1]);
        assert_eq!(y.dims(), [10, 2, 1]);
        let x2 = data.train.batch(&[3, 1], &Device::Cpu)?.input;
        assert_eq!(x.to_vec3::<f32>()?, x2.to_vec3::<f32>()?);
        let xs = x.to_vec3::<f32>()?;
        let ys = y.to_vec3::<f32>()?;
        for t in 2..10 {
            assert_eq!(ys[t][0][0], xs[t - 2][0][0]);
        }
        Ok(())
    }
}
