//! Batch normalisation as fused ops: the training mode (batch statistics, one pass for the
//! statistics and one for the output; the backward pass two) and the per-channel affine map
//! of the evaluation mode.

use std::sync::{Arc, Mutex};

use autoresearch_kernels::batch_norm::{
    bn_train_backward, bn_train_forward, channel_affine as affine_kernel, channel_affine_grads,
    BnDims,
};
use candle_core::{bail, CpuStorage, Layout, Result, Shape, Tensor};

use super::linear::{kernel_err, read, slice, tensor};
use super::weighted::{apply, WeightedOp};

fn dims(x: &[usize]) -> Result<BnDims> {
    match x {
        [batch, channels, rest @ ..] => Ok(BnDims {
            batch: *batch,
            channels: *channels,
            plane: rest.iter().product(),
        }),
        _ => bail!("fused batch norm: input {x:?} needs a batch and a channel dimension"),
    }
}

/// The batch's per-channel mean and biased variance, as the forward pass computed them.
type Stats = Arc<Mutex<(Vec<f32>, Vec<f32>)>>;

struct BnTrain {
    eps: f64,
    stats: Stats,
}

impl WeightedOp for BnTrain {
    const NAME: &'static str = "fused batch norm";

    fn fwd(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let op = Self::NAME;
        let d = dims(x.1.dims())?;
        let Some(b) = b else { bail!("{op}: needs β") };
        let mut y = vec![0f32; x.1.shape().elem_count()];
        let (mut mean, mut var) = (vec![0f32; d.channels], vec![0f32; d.channels]);
        let (xs, g, bs) = (
            slice(x.0, x.1, op)?,
            slice(w.0, w.1, op)?,
            slice(b.0, b.1, op)?,
        );
        bn_train_forward(xs, g, bs, d, self.eps, &mut y, &mut mean, &mut var)
            .map_err(kernel_err)?;
        match self.stats.lock() {
            Ok(mut s) => *s = (mean, var),
            Err(_) => bail!("{op}: statistics poisoned"),
        }
        Ok((CpuStorage::F32(y), x.1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: Option<&Tensor>,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = "fused batch norm backward";
        let d = dims(x.dims())?;
        let (mean, var) = match self.stats.lock() {
            Ok(s) => s.clone(),
            Err(_) => bail!("{op}: statistics poisoned"),
        };
        let mut dx = x.track_op().then(|| vec![0f32; x.elem_count()]);
        let (mut dg, mut db) = (vec![0f32; d.channels], vec![0f32; d.channels]);
        read(grad, op, |g| {
            read(x, op, |xs| {
                read(w, op, |gamma| {
                    bn_train_backward(
                        xs,
                        g,
                        gamma,
                        &mean,
                        &var,
                        d,
                        self.eps,
                        dx.as_deref_mut(),
                        &mut dg,
                        &mut db,
                    )
                    .map_err(kernel_err)
                })
            })
        })?;
        Ok((
            dx.map(|v| tensor(v, x.shape())).transpose()?,
            Some(tensor(dg, d.channels)?),
            Some(tensor(db, d.channels)?),
        ))
    }
}

/// Training-mode batch norm: `y = γ·(x - mean)/√(var + eps) + β` with the batch's per-channel
/// mean and biased variance, which are returned (`[C]` each) for the running statistics.
///
/// # Shapes
/// `x`: `[B, C, ...]`, `gamma`, `beta`: `[C]` -> `y` like `x`.
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, Vec<f32>, Vec<f32>)> {
    let stats: Stats = Arc::default();
    let y = apply(
        BnTrain {
            eps,
            stats: stats.clone(),
        },
        x,
        gamma,
        Some(beta),
    )?;
    let (mean, var) = match stats.lock() {
        Ok(s) => s.clone(),
        Err(_) => bail!("fused batch norm: statistics poisoned"),
    };
    Ok((y, mean, var))
}

struct Affine;

impl WeightedOp for Affine {
    const NAME: &'static str = "fused channel affine";

    fn fwd(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let op = Self::NAME;
        let d = dims(x.1.dims())?;
        let Some(b) = b else {
            bail!("{op}: needs a shift")
        };
        let mut y = vec![0f32; x.1.shape().elem_count()];
        affine_kernel(
            slice(x.0, x.1, op)?,
            slice(w.0, w.1, op)?,
            slice(b.0, b.1, op)?,
            d,
            &mut y,
        )
        .map_err(kernel_err)?;
        Ok((CpuStorage::F32(y), x.1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: Option<&Tensor>,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = "fused channel affine backward";
        let d = dims(x.dims())?;
        let sums = read(grad, op, |g| {
            read(x, op, |xs| {
                channel_affine_grads(xs, g, d).map_err(kernel_err)
            })
        })?;
        let dx = if x.track_op() {
            let zeros = vec![0f32; d.channels];
            let mut dx = vec![0f32; x.elem_count()];
            read(grad, op, |g| {
                read(w, op, |s| {
                    affine_kernel(g, s, &zeros, d, &mut dx).map_err(kernel_err)
                })
            })?;
            Some(tensor(dx, x.shape())?)
        } else {
            None
        };
        Ok((
            dx,
            Some(tensor(sums.iter().map(|s| s.1).collect(), d.channels)?),
            Some(tensor(sums.iter().map(|s| s.0).collect(), d.channels)?),
        ))
    }
}

/// `y = x·scale[c] + shift[c]` per channel (evaluation-mode batch norm).
///
/// # Shapes
/// `x`: `[B, C, ...]`, `scale`, `shift`: `[C]` -> `y` like `x`.
pub fn channel_affine(x: &Tensor, scale: &Tensor, shift: &Tensor) -> Result<Tensor> {
    apply(Affine, x, scale, Some(shift))
}
