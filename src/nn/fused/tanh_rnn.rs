//! The tanh rate recurrence over a whole sequence as one op with its backward through time
//! (`autoresearch_kernels::tanh_rnn`): a 300-step sequence is two passes instead of a few
//! thousand small candle ops.

use autoresearch_kernels::tanh_rnn::{tanh_rnn_backward, tanh_rnn_forward};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::linear::{check_cpu_f32, keep_freed_memory, kernel_err, read, slice, tensor};

/// The fused recurrence (drive `[T, B, N]`, `J` `[N, N]`, `x_0` `[N]`); keeps `tanh` of the
/// states of its forward pass for its backward (one op instance per call).
#[derive(Default)]
struct TanhRnn {
    tanh_states: std::sync::Mutex<Vec<f32>>,
}

impl CustomOp3 for TanhRnn {
    fn name(&self) -> &'static str {
        "fused-tanh-rnn"
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
        let dims = l1.shape().dims3()?;
        let (t, b, n) = dims;
        let mut out = vec![0f32; t * b * n];
        let mut h = vec![0f32; t * b * n];
        tanh_rnn_forward(
            slice(s1, l1, "fused tanh_rnn")?,
            slice(s2, l2, "fused tanh_rnn")?,
            slice(s3, l3, "fused tanh_rnn")?,
            dims,
            &mut out,
            Some(&mut h),
        )
        .map_err(kernel_err)?;
        *self
            .tanh_states
            .lock()
            .map_err(|_| candle_core::Error::Msg("fused tanh_rnn: poisoned cache".into()))? = h;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        drive: &Tensor,
        j: &Tensor,
        x0: &Tensor,
        _states: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dims = drive.dims3()?;
        let (t, b, n) = dims;
        let (mut dd, mut dj, mut dx) = (vec![0f32; t * b * n], vec![0f32; n * n], vec![0f32; n]);
        let op = "fused tanh_rnn backward";
        let h = self
            .tanh_states
            .lock()
            .map_err(|_| candle_core::Error::Msg("fused tanh_rnn: poisoned cache".into()))?;
        read(j, op, |j| {
            read(x0, op, |x0| {
                read(grad, op, |g| {
                    tanh_rnn_backward(j, x0, &h, g, dims, (&mut dd, &mut dj, &mut dx))
                        .map_err(kernel_err)
                })
            })
        })?;
        Ok((
            Some(tensor(dd, drive.shape())?),
            Some(tensor(dj, j.shape())?),
            Some(tensor(dx, x0.shape())?),
        ))
    }
}

/// States `x_1 .. x_T` of `x_t = tanh(x_{t-1})·Jᵀ + drive_t` from `x_0`, differentiable in
/// all three inputs (CPU `f32` only; see [`super::available`]).
///
/// # Shapes
/// `drive`: `[T, B, N]`, `j`: `[N, N]`, `x0`: `[N]` -> `[T, B, N]`.
pub fn tanh_rnn(drive: &Tensor, j: &Tensor, x0: &Tensor) -> Result<Tensor> {
    keep_freed_memory();
    for (t, name) in [(drive, "drive"), (j, "j"), (x0, "x0")] {
        check_cpu_f32(t, "fused tanh_rnn", name)?;
    }
    let (_, _, n) = drive.dims3()?;
    if j.dims() != [n, n] || x0.dims() != [n] {
        candle_core::bail!(
            "fused tanh_rnn: drive {:?} needs J [{n}, {n}] and x0 [{n}], got {:?} and {:?}",
            drive.dims(),
            j.dims(),
            x0.dims()
        );
    }
    drive
        .contiguous()?
        .apply_op3(&j.contiguous()?, &x0.contiguous()?, TanhRnn::default())
}
