//! Dense linear layer with bias and ReLU fused into the matmul's output pass.
//!
//! Also holds the helpers the other fused ANN ops share: slices of CPU tensors, kernel errors as
//! candle errors, and the allocator set-up.

use autoresearch_kernels::linear::{linear_backward, linear_forward, LinearDims};
use candle_core::{bail, CpuStorage, DType, Device, Layout, Result, Shape, Storage, Tensor};

use super::weighted::{apply, WeightedOp};

/// Keeps freed heap memory for reuse (see [`crate::alloc::keep_freed_memory`]); every fused op
/// calls it so a notebook that never went through the CLI gets the same allocator behaviour.
pub(super) fn keep_freed_memory() {
    crate::alloc::keep_freed_memory();
}

/// A kernel's error message as a candle error.
pub(super) fn kernel_err(e: String) -> candle_core::Error {
    candle_core::Error::Msg(e)
}

/// The `f32` values of a contiguous CPU storage.
pub(super) fn slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!(
            "{op}: needs a contiguous tensor, got shape {:?} with strides {:?}",
            l.dims(),
            l.stride()
        ),
    }
}

/// Runs `f` on the `f32` values of `t` (made contiguous first), on the CPU.
pub(super) fn read<R>(t: &Tensor, op: &str, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(s) => f(slice(s, layout, op)?),
        _ => bail!(
            "{op}: runs on CPU tensors only, got {:?}",
            t.device().location()
        ),
    }
}

/// A CPU `f32` tensor of `shape` holding `values`.
pub(super) fn tensor(values: Vec<f32>, shape: impl Into<Shape>) -> Result<Tensor> {
    Tensor::from_vec(values, shape.into(), &Device::Cpu)
}

/// Checks that `t` is a CPU `f32` tensor (the fused ops run nowhere else).
pub(super) fn check_cpu_f32(t: &Tensor, op: &str, name: &str) -> Result<()> {
    if !t.device().is_cpu() || t.dtype() != DType::F32 {
        bail!(
            "{op}: `{name}` must be a CPU f32 tensor, got {:?} on {:?}",
            t.dtype(),
            t.device().location()
        );
    }
    Ok(())
}

/// The fused linear op; `relu` says whether ReLU follows the affine map.
struct Linear {
    relu: bool,
}

impl Linear {
    fn dims(&self, x: &Layout, w: &Layout) -> Result<LinearDims> {
        let (rows, inputs) = x.shape().dims2()?;
        let (outputs, w_inputs) = w.shape().dims2()?;
        if w_inputs != inputs {
            bail!(
                "fused linear: x {:?} and w {:?} disagree on the inputs",
                x.dims(),
                w.dims()
            );
        }
        Ok(LinearDims {
            rows,
            inputs,
            outputs,
        })
    }
}

impl WeightedOp for Linear {
    const NAME: &'static str = "fused linear";

    fn fwd(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let d = self.dims(x.1, w.1)?;
        let bias = b.map(|(s, l)| slice(s, l, "fused linear")).transpose()?;
        let mut out = vec![0.0f32; d.rows * d.outputs];
        linear_forward(
            slice(x.0, x.1, "fused linear")?,
            slice(w.0, w.1, "fused linear")?,
            bias,
            self.relu,
            d,
            &mut out,
        )
        .map_err(kernel_err)?;
        Ok((CpuStorage::F32(out), Shape::from((d.rows, d.outputs))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = self.dims(x.layout(), w.layout())?;
        let mut dx = x.track_op().then(|| vec![0.0f32; d.rows * d.inputs]);
        let mut dw = vec![0.0f32; d.outputs * d.inputs];
        let mut db = b.is_some().then(|| vec![0.0f32; d.outputs]);
        let op = "fused linear backward";
        read(grad, op, |g| {
            read(x, op, |xs| {
                read(w, op, |ws| {
                    read(res, op, |y| {
                        linear_backward(
                            g,
                            self.relu.then_some(y),
                            xs,
                            ws,
                            d,
                            dx.as_deref_mut(),
                            &mut dw,
                            db.as_deref_mut(),
                        )
                        .map_err(kernel_err)
                    })
                })
            })
        })?;
        Ok((
            dx.map(|v| tensor(v, (d.rows, d.inputs))).transpose()?,
            Some(tensor(dw, (d.outputs, d.inputs))?),
            db.map(|v| tensor(v, d.outputs)).transpose()?,
        ))
    }
}

/// `x·wᵀ + b`, followed by ReLU when `relu`; the backward pass masks the gradient by the output
/// (`y > 0`, PyTorch's rule) and computes `dx` only when `x` needs a gradient.
///
/// # Shapes
/// `x`: `[R, K]`, `w`: `[N, K]`, `b`: `[N]` -> `[R, N]`.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, relu: bool) -> Result<Tensor> {
    apply(Linear { relu }, x, w, b)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_same_grads, rand, rel};
    use super::*;
    use candle_core::Var;

    #[test]
    fn forward_and_gradients_match_plain_candle() {
        for (r, k, n) in [(1, 1, 1), (5, 7, 3), (130, 97, 33), (128, 784, 256)] {
            for (relu, bias, x_var) in [
                (true, true, true),
                (false, true, true),
                (true, false, false),
            ] {
                let x = Var::from_tensor(&rand(&[r, k], 1)).unwrap();
                let w = Var::from_tensor(&rand(&[n, k], 2)).unwrap();
                let b = Var::from_tensor(&rand(&[n], 3)).unwrap();
                let xt = if x_var {
                    x.as_tensor().clone()
                } else {
                    x.as_tensor().detach()
                };
                let up = rand(&[r, n], 4);
                let fused = linear(&xt, &w, bias.then_some(b.as_tensor()), relu).unwrap();
                let mut plain = xt.matmul(&w.t().unwrap()).unwrap();
                if bias {
                    plain = plain.broadcast_add(&b).unwrap();
                }
                if relu {
                    plain = plain.relu().unwrap();
                }
                assert!(rel(&fused, &plain) < 1e-5);
                let vars = [
                    ("w", w.as_tensor()),
                    ("b", b.as_tensor()),
                    ("x", x.as_tensor()),
                ];
                assert_same_grads(&fused, &plain, &up, &vars, &format!("{r}x{k}x{n}"));
            }
        }
    }

    #[test]
    fn wrong_shapes_and_devices_are_errors() {
        let x = rand(&[4, 5], 1);
        assert!(linear(&x, &rand(&[3, 6], 2), None, false).is_err());
        assert!(linear(&x, &rand(&[3, 5], 2), Some(&rand(&[4], 3)), false).is_err());
        assert!(linear(
            &x.to_dtype(DType::F64).unwrap(),
            &rand(&[3, 5], 2),
            None,
            false
        )
        .is_err());
        // a broadcast (strided) upstream gradient is accepted
        let w = Var::from_tensor(&rand(&[3, 5], 2)).unwrap();
        let g = linear(&x, &w, None, true)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(g.get(&w).is_some());
    }
}
