//! Batch normalisation over the channels of `[B, C, H, W]` maps, with PyTorch's train and eval
//! behaviour: training normalises by the batch's statistics and folds them into running ones,
//! evaluation normalises by the running statistics.
//!
//! γ and β are trained parameters (in the run's variable map); the running mean and variance
//! are buffers kept outside it (no optimizer, no weight decay ever touches them) and travel in
//! checkpoints as the network's extra state.

use candle_core::{DType, Tensor, Var};
use candle_nn::{Init, VarBuilder};

use super::{fused, Ops};
use crate::config::BatchNormConfig;

/// Dimensions a channel's statistics are taken over: batch, rows, columns.
const STAT_DIMS: [usize; 3] = [0, 2, 3];

/// A 2-D batch norm layer: `y = γ·(x - μ)/√(σ² + eps) + β` per channel.
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    cfg: BatchNormConfig,
}

impl BatchNorm2d {
    /// A layer over `channels` channels with `weight` (γ, starting at `gamma`) and `bias` (β,
    /// starting at 0) under `vb`, running mean 0 and running variance 1.
    pub fn new(
        channels: usize,
        gamma: f64,
        cfg: BatchNormConfig,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let weight = vb.get_with_hints(channels, "weight", Init::Const(gamma))?;
        let bias = vb.get_with_hints(channels, "bias", Init::Const(0.0))?;
        let (dtype, device) = (vb.dtype(), vb.device());
        Ok(BatchNorm2d {
            weight,
            bias,
            running_mean: Var::zeros(channels, dtype, device)?,
            running_var: Var::ones(channels, dtype, device)?,
            cfg,
        })
    }

    /// Training mode: normalises by the batch's mean and (biased) variance, differentiably,
    /// and moves the running statistics towards them (the running variance takes the unbiased
    /// batch variance, as PyTorch's does).
    ///
    /// # Shapes
    /// `x`: `[B, C, H, W]` -> `[B, C, H, W]`.
    pub fn forward_train(&self, x: &Tensor, ops: Ops) -> candle_core::Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let n = b * h * w;
        if n < 2 {
            candle_core::bail!(
                "batch norm in training needs more than one value per channel, got input [{b}, {c}, {h}, {w}]"
            );
        }
        let m = self.cfg.momentum;
        let update = |running: &Var, batch: &Tensor, scale: f64| -> candle_core::Result<()> {
            let batch = batch.detach().flatten_all()?.to_dtype(running.dtype())?;
            running.set(&((running.as_tensor() * (1.0 - m))? + (batch * (m * scale))?)?)
        };
        let unbiased = n as f64 / (n - 1) as f64;
        if ops.fuses(x) && self.weight.dtype() == DType::F32 {
            let (y, mean, var) =
                fused::batch_norm_train(x, &self.weight, &self.bias, self.cfg.eps)?;
            let device = x.device();
            update(&self.running_mean, &Tensor::from_vec(mean, c, device)?, 1.0)?;
            update(
                &self.running_var,
                &Tensor::from_vec(var, c, device)?,
                unbiased,
            )?;
            return Ok(y);
        }
        let mean = x.mean_keepdim(&STAT_DIMS[..])?;
        let centered = x.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim(&STAT_DIMS[..])?;
        let inv_std = (var.clone() + self.cfg.eps)?.sqrt()?.recip()?;
        let y = centered.broadcast_mul(&inv_std)?;
        update(&self.running_mean, &mean, 1.0)?;
        update(&self.running_var, &var, unbiased)?;
        self.affine(&y)
    }

    /// Evaluation mode: normalises by the running statistics.
    ///
    /// # Shapes
    /// `x`: `[B, C, H, W]` -> `[B, C, H, W]`.
    pub fn forward_eval(&self, x: &Tensor, ops: Ops) -> candle_core::Result<Tensor> {
        let c = x.dim(1)?;
        if ops.fuses(x) && self.weight.dtype() == DType::F32 {
            let inv_std = (self.running_var.as_tensor() + self.cfg.eps)?
                .sqrt()?
                .recip()?;
            let scale = (&self.weight * inv_std)?;
            let shift = (&self.bias - (self.running_mean.as_tensor() * &scale)?)?;
            return fused::channel_affine(x, &scale, &shift);
        }
        let mean = self.running_mean.as_tensor().reshape((1, c, 1, 1))?;
        let inv_std = (self.running_var.as_tensor() + self.cfg.eps)?
            .sqrt()?
            .recip()?
            .reshape((1, c, 1, 1))?;
        self.affine(&x.broadcast_sub(&mean)?.broadcast_mul(&inv_std)?)
    }

    /// [`BatchNorm2d::forward_train`] or [`BatchNorm2d::forward_eval`].
    ///
    /// # Shapes
    /// `x`: `[B, C, H, W]` -> `[B, C, H, W]`.
    pub fn forward_t(&self, x: &Tensor, train: bool, ops: Ops) -> candle_core::Result<Tensor> {
        if train {
            self.forward_train(x, ops)
        } else {
            self.forward_eval(x, ops)
        }
    }

    fn affine(&self, normalized: &Tensor) -> candle_core::Result<Tensor> {
        let c = normalized.dim(1)?;
        normalized
            .broadcast_mul(&self.weight.reshape((1, c, 1, 1))?)?
            .broadcast_add(&self.bias.reshape((1, c, 1, 1))?)
    }

    /// The running statistics as `(name, tensor)` under `prefix` (`<prefix>.running_mean`,
    /// `<prefix>.running_var`, as PyTorch's state dict names them).
    pub fn buffers(&self, prefix: &str) -> Vec<(String, Tensor)> {
        vec![
            (
                format!("{prefix}.running_mean"),
                self.running_mean.as_tensor().clone(),
            ),
            (
                format!("{prefix}.running_var"),
                self.running_var.as_tensor().clone(),
            ),
        ]
    }

    /// Sets the running statistics (`[C]` each), checking their shapes.
    pub fn set_buffers(&self, mean: &Tensor, var: &Tensor) -> candle_core::Result<()> {
        for (running, value) in [(&self.running_mean, mean), (&self.running_var, var)] {
            if value.dims() != running.dims() {
                candle_core::bail!(
                    "running statistics of shape {:?} for a batch norm over {:?} channels",
                    value.dims(),
                    running.dims()
                );
            }
            running.set(&value.to_dtype(running.dtype())?)?;
        }
        Ok(())
    }

    /// The running mean and variance (copies).
    pub fn running_stats(&self) -> candle_core::Result<(Tensor, Tensor)> {
        Ok((
            self.running_mean.as_tensor().copy()?,
            self.running_var.as_tensor().copy()?,
        ))
    }

    /// The dtype of the layer's tensors.
    pub fn dtype(&self) -> DType {
        self.weight.dtype()
    }
}
