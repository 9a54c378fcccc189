//! Readouts: the output layer's spikes and membrane `[T, B, C]` -> class scores `[B, C]` and a
//! training loss.

use candle_core::{DType, Result, Tensor};

use super::Ops;
use crate::config::Readout;

impl Readout {
    /// Class scores whose arg-max is the prediction.
    ///
    /// # Shapes
    /// `spikes`: `[T, B, C]`, `membrane`: `[T, B, C]` (needed by membrane readouts) -> `[B, C]`.
    pub fn scores(&self, spikes: &Tensor, membrane: Option<&Tensor>) -> Result<Tensor> {
        let membrane = || {
            membrane.ok_or_else(|| {
                candle_core::Error::Msg(format!("readout {self:?} needs the output membrane"))
            })
        };
        match self {
            Readout::SpikeCountCe | Readout::SpikeCountMse { .. } => spikes.sum(0),
            Readout::MaxMembraneCe => membrane()?.max(0),
            Readout::FinalMembraneCe => {
                let m = membrane()?;
                m.get(m.dim(0)? - 1)
            }
        }
    }

    /// The training loss of `scores` against `labels` for a run of `steps` time steps, its
    /// cross-entropy computed under `ops`.
    ///
    /// # Shapes
    /// `scores`: `[B, C]`, `labels`: `[B]` (u32) -> scalar.
    pub fn loss(&self, scores: &Tensor, labels: &Tensor, steps: usize, ops: Ops) -> Result<Tensor> {
        match *self {
            Readout::SpikeCountCe | Readout::MaxMembraneCe | Readout::FinalMembraneCe => {
                ops.cross_entropy(scores, labels)
            }
            Readout::SpikeCountMse {
                correct_rate,
                incorrect_rate,
            } => {
                // snnTorch's mse_count_loss: integer target counts, mean over batch and classes
                let on = (correct_rate * steps as f64).floor();
                let off = (incorrect_rate * steps as f64).floor();
                let classes = scores.dim(1)?;
                let onehot = one_hot(labels, classes, scores.dtype())?;
                let target = onehot.affine(on - off, off)?;
                (scores - target)?.sqr()?.mean_all()
            }
        }
    }
}

/// `[B]` class indices -> `[B, classes]` one-hot rows.
fn one_hot(labels: &Tensor, classes: usize, dtype: DType) -> Result<Tensor> {
    let b = labels.dim(0)?;
    let ids = Tensor::arange(0u32, classes as u32, labels.device())?
        .unsqueeze(0)?
        .broadcast_as((b, classes))?;
    ids.broadcast_eq(&labels.unsqueeze(1)?)?.to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn scores_and_losses_follow_their_definitions() -> Result<()> {
        let dev = Device::Cpu;
        // T = 4, B = 1, C = 2: class 0 fires 3 times, class 1 once
        let spikes = Tensor::new(&[[[1f32, 0.]], [[1., 1.]], [[1., 0.]], [[0., 0.]]], &dev)?;
        let mem = Tensor::new(
            &[[[0.5f32, 0.2]], [[1.5, 1.1]], [[1.2, 0.3]], [[0.1, 0.9]]],
            &dev,
        )?;
        let labels = Tensor::new(&[1u32], &dev)?;
        let count = Readout::SpikeCountCe.scores(&spikes, None)?;
        assert_eq!(count.to_vec2::<f32>()?, vec![vec![3.0, 1.0]]);
        let max = Readout::MaxMembraneCe.scores(&spikes, Some(&mem))?;
        assert_eq!(max.to_vec2::<f32>()?, vec![vec![1.5, 1.1]]);
        let last = Readout::FinalMembraneCe.scores(&spikes, Some(&mem))?;
        assert_eq!(last.to_vec2::<f32>()?, vec![vec![0.1, 0.9]]);
        assert!(Readout::MaxMembraneCe.scores(&spikes, None).is_err());
        // CE of [3, 1] against class 1: log(e^3 + e^1) - 1
        let ce = Readout::SpikeCountCe.loss(&count, &labels, 4, Ops::Plain)?;
        let want = (3f64.exp() + 1f64.exp()).ln() - 1.0;
        assert!((ce.to_scalar::<f32>()? as f64 - want).abs() < 1e-6);
        // MSE: targets floor(0.8·4) = 3 for class 1, floor(0.2·4) = 0 for class 0
        let mse = Readout::SpikeCountMse {
            correct_rate: 0.8,
            incorrect_rate: 0.2,
        }
        .loss(&count, &labels, 4, Ops::Plain)?;
        // ((3 - 0)² + (1 - 3)²) / 2 = 6.5
        assert!((mse.to_scalar::<f32>()? - 6.5).abs() < 1e-6);
        Ok(())
    }
}
