//! The execution policy: fused CPU kernels where a tensor allows them, or plain candle ops.
//!
//! It is chosen once per run (from the config's `kernels:`), held by the network, and handed to
//! its layers' forward calls; layers themselves hold only tensors. Both policies compute the
//! same function (the fused-vs-plain tests in each model check it); `Plain` is the reference.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, Linear};

use super::{fused, pool};
use crate::config::Kernels;

/// How the layers of a network execute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ops {
    /// The fused CPU kernels of [`fused`] wherever the tensors are CPU `f32`; plain elsewhere.
    #[default]
    Fused,
    /// Plain candle tensor ops everywhere (the reference path).
    Plain,
}

impl From<Kernels> for Ops {
    fn from(kernels: Kernels) -> Self {
        match kernels {
            Kernels::Fused => Ops::Fused,
            Kernels::Plain => Ops::Plain,
        }
    }
}

impl Ops {
    /// Whether a fused kernel runs on `x` under this policy (`Fused` and a CPU `f32` tensor).
    pub fn fuses(self, x: &Tensor) -> bool {
        self == Ops::Fused && fused::available(x)
    }

    /// `x·wᵀ + b`, followed by ReLU when `relu`.
    ///
    /// # Shapes
    /// `x`: `[B, in]` -> `[B, out]`.
    pub fn linear(self, layer: &Linear, x: &Tensor, relu: bool) -> Result<Tensor> {
        if self.fuses(x) {
            return fused::linear(x, layer.weight(), layer.bias(), relu);
        }
        let y = layer.forward(x)?;
        if relu {
            y.relu()
        } else {
            Ok(y)
        }
    }

    /// `x·wᵀ + b` for all time steps at once: rows of active inputs gathered when `x` holds
    /// spikes and the kernels are fused, a plain matmul otherwise.
    ///
    /// # Shapes
    /// `x`: `[T, B, K]` -> `[T, B, N]`.
    pub fn project(self, layer: &Linear, x: &Tensor, x_is_spikes: bool) -> Result<Tensor> {
        if x_is_spikes && self.fuses(x) {
            fused::sparse_linear(x, layer.weight(), layer.bias())
        } else {
            layer.forward(x)
        }
    }

    /// A 2-D convolution with bias (fused for stride 1, no dilation, one group).
    ///
    /// # Shapes
    /// `x`: `[B, C, H, W]` -> `[B, O, H', W']`.
    pub fn conv2d(self, conv: &Conv2d, x: &Tensor) -> Result<Tensor> {
        let c = conv.config();
        if self.fuses(x) && c.stride == 1 && c.dilation == 1 && c.groups == 1 {
            fused::conv2d(x, conv.weight(), conv.bias(), c.padding, false)
        } else {
            conv.forward(x)
        }
    }

    /// Max pooling with `k x k` windows, stride `k`.
    ///
    /// # Shapes
    /// `x`: `[B, C, H, W]` -> `[B, C, H / k, W / k]`.
    pub fn max_pool2d(self, x: &Tensor, k: usize) -> Result<Tensor> {
        if self.fuses(x) {
            fused::max_pool2d(x, k)
        } else {
            pool::max_pool2d(x, k)
        }
    }

    /// Mean cross-entropy of `logits` against class indices `labels`.
    ///
    /// # Shapes
    /// `logits`: `[B, C]`, `labels`: `[B]` (u32) -> scalar.
    pub fn cross_entropy(self, logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        if self.fuses(logits) {
            fused::cross_entropy(logits, labels)
        } else {
            candle_nn::loss::cross_entropy(logits, labels)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::{VarBuilder, VarMap};

    /// Every op gives the same values under both policies.
    #[test]
    fn both_policies_compute_the_same_ops() -> Result<()> {
        let dev = Device::Cpu;
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &dev);
        let layer = candle_nn::linear(6, 4, vb.pp("fc"))?;
        let x = Tensor::randn(0f32, 1., (3, 6), &dev)?;
        let spikes = Tensor::randn(0f32, 1., (2, 3, 6), &dev)?
            .ge(0.5)?
            .to_dtype(DType::F32)?;
        let maps = Tensor::randn(0f32, 1., (2, 3, 4, 6), &dev)?;
        let labels = Tensor::new(&[0u32, 3, 1], &dev)?;
        let close = |a: Tensor, b: Tensor| -> Result<()> {
            let d = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
            assert!(d < 1e-5, "fused and plain differ by {d}");
            Ok(())
        };
        for relu in [false, true] {
            close(
                Ops::Fused.linear(&layer, &x, relu)?,
                Ops::Plain.linear(&layer, &x, relu)?,
            )?;
        }
        close(
            Ops::Fused.project(&layer, &spikes, true)?,
            Ops::Plain.project(&layer, &spikes, true)?,
        )?;
        close(
            Ops::Fused.max_pool2d(&maps, 2)?,
            Ops::Plain.max_pool2d(&maps, 2)?,
        )?;
        let conv = candle_nn::conv2d(3, 2, 3, Default::default(), vb.pp("conv"))?;
        close(
            Ops::Fused.conv2d(&conv, &maps)?,
            Ops::Plain.conv2d(&conv, &maps)?,
        )?;
        let logits = Ops::Plain.linear(&layer, &x, false)?;
        close(
            Ops::Fused.cross_entropy(&logits, &labels)?,
            Ops::Plain.cross_entropy(&logits, &labels)?,
        )?;
        assert!(!Ops::Plain.fuses(&x) && Ops::Fused.fuses(&x));
        assert_eq!(Ops::from(Kernels::Plain), Ops::Plain);
        Ok(())
    }
}
