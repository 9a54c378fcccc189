//! A whole RLeaky layer (all-to-all feedback, constant β and θ) over all steps as one op, with
//! its backward through time (`autoresearch_kernels::rnn::rleaky_*`).

use std::sync::Mutex;

use autoresearch_kernels::rnn::{rleaky_backward, rleaky_forward, RLeakySpec, RLeakyTrace};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::lif::{LifOutput, LifSpec};
use super::linear::{check_cpu_f32, keep_freed_memory, kernel_err, read, slice, tensor};
use crate::config::{Reset, Surrogate};

/// The op over `current` `[T, B, N]`, feedback `weight` `[N, N]` and `bias` `[N]`; returns
/// spikes and membranes stacked `[2, T, B, N]`.
struct RLeakyOp {
    spec: RLeakySpec,
    trace: Mutex<RLeakyTrace>,
}

impl RLeakyOp {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, RLeakyTrace>> {
        self.trace
            .lock()
            .map_err(|_| candle_core::Error::Msg("fused rleaky: poisoned trace".into()))
    }
}

impl CustomOp3 for RLeakyOp {
    fn name(&self) -> &'static str {
        "fused-rleaky"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = "fused rleaky";
        let dims = l1.shape().dims3()?;
        let mut trace = self.lock()?;
        let w = (slice(s2, l2, op)?, slice(s3, l3, op)?);
        rleaky_forward(self.spec, dims, slice(s1, l1, op)?, w, &mut trace).map_err(kernel_err)?;
        let mut out = trace.spikes.clone();
        out.extend_from_slice(&trace.mem);
        let (t, b, n) = dims;
        Ok((CpuStorage::F32(out), (2, t, b, n).into()))
    }

    fn bwd(
        &self,
        current: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = "fused rleaky backward";
        let dims = current.dims3()?;
        let (t, b, n) = dims;
        let (mut dc, mut dw, mut db) = (vec![0f32; t * b * n], vec![0f32; n * n], vec![0f32; n]);
        let trace = self.lock()?;
        read(weight, op, |w| {
            read(grad, op, |g| {
                let (d_spk, d_mem) = g.split_at(t * b * n);
                let grads = (&mut dc[..], &mut dw[..], &mut db[..]);
                rleaky_backward(self.spec, dims, w, &trace, (d_spk, Some(d_mem)), grads)
                    .map_err(kernel_err)
            })
        })?;
        Ok((
            Some(tensor(dc, current.shape())?),
            Some(tensor(dw, weight.shape())?),
            Some(tensor(db, bias.shape())?),
        ))
    }
}

/// The constants of a fused RLeaky layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RLeakyConsts {
    /// Membrane decay β (clamped to [0, 1] here, as the layer does).
    pub beta: f64,
    /// Firing threshold θ.
    pub threshold: f64,
    /// Reset of the membrane.
    pub reset: Reset,
    /// Surrogate gradient of the spikes.
    pub surrogate: Surrogate,
}

/// Spikes and membranes of an RLeaky layer with feedback `S·weightᵀ + bias` over all steps
/// from zero state, differentiable in the current and the feedback (CPU `f32` only).
///
/// # Shapes
/// `current`: `[T, B, N]`, `weight`: `[N, N]`, `bias`: `[N]` -> (spikes, membranes), each
/// `[T, B, N]`.
pub fn rleaky(
    consts: RLeakyConsts,
    current: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
) -> Result<(Tensor, Tensor)> {
    keep_freed_memory();
    let op = "fused rleaky";
    for (t, name) in [(current, "current"), (weight, "weight"), (bias, "bias")] {
        check_cpu_f32(t, op, name)?;
    }
    let (_, _, n) = current.dims3()?;
    if weight.dims() != [n, n] || bias.dims() != [n] {
        candle_core::bail!(
            "{op}: current {:?} needs feedback weight [{n}, {n}] and bias [{n}], got {:?} and {:?}",
            current.dims(),
            weight.dims(),
            bias.dims()
        );
    }
    let lif = LifSpec {
        reset: consts.reset,
        surrogate: consts.surrogate,
        output: LifOutput::Spikes,
    };
    let spec = RLeakySpec {
        beta: consts.beta.clamp(0.0, 1.0) as f32,
        threshold: consts.threshold as f32,
        reset: lif.reset(),
        surrogate: lif.surrogate(),
    };
    let out = current.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        RLeakyOp {
            spec,
            trace: Mutex::new(RLeakyTrace::default()),
        },
    )?;
    Ok((out.get(0)?, out.get(1)?))
}
