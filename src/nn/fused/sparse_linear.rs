//! Linear layer for mostly-zero inputs (spikes): gather the weight rows of the active inputs.

use std::sync::OnceLock;

use autoresearch_kernels::spike::{column_sums, SparseRows, SpikeLinear};
use candle_core::{bail, CpuStorage, Layout, Result, Shape, Tensor};

use super::linear::{kernel_err, read, slice, tensor};
use super::weighted::{apply, WeightedOp};

const OP: &str = "fused sparse_linear";

/// The op; keeps the compressed input from the forward pass for the weight gradient.
#[derive(Default)]
struct SparseLinear {
    sparse: OnceLock<Option<SparseRows>>,
}

/// `(rows R, inputs K, outputs N)` of `x: [..., K]` (R the product of the leading dims),
/// `w: [N, K]`.
fn dims(x: &Layout, w: &Layout) -> Result<(usize, usize, usize)> {
    let (n, k) = w.shape().dims2()?;
    match x.dims().split_last() {
        Some((&xk, lead)) if xk == k && !lead.is_empty() => Ok((lead.iter().product(), k, n)),
        _ => bail!(
            "{OP}: x {:?} must be [..., K] with w {:?} = [N, K]",
            x.dims(),
            w.dims()
        ),
    }
}

/// The output shape `[..., N]` for `x: [..., K]`.
fn out_shape(x: &Layout, n: usize) -> Shape {
    let mut d = x.dims().to_vec();
    if let Some(last) = d.last_mut() {
        *last = n;
    }
    Shape::from(d)
}

impl WeightedOp for SparseLinear {
    const NAME: &'static str = OP;

    fn fwd(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let (rows, inputs, outputs) = dims(x.1, w.1)?;
        let lin = SpikeLinear {
            x: slice(x.0, x.1, OP)?,
            rows,
            inputs,
            w: slice(w.0, w.1, OP)?,
            outputs,
        };
        let bias = b.map(|(s, l)| slice(s, l, OP)).transpose()?;
        let mut out = vec![0.0f32; rows * outputs];
        let sparse = lin.forward(bias, &mut out).map_err(kernel_err)?;
        // set once per op: a second forward of the same op object cannot happen
        let _ = self.sparse.set(sparse);
        Ok((CpuStorage::F32(out), out_shape(x.1, outputs)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (rows, inputs, outputs) = dims(x.layout(), w.layout())?;
        let op = "fused sparse_linear backward";
        let mut dx = x.track_op().then(|| vec![0.0f32; rows * inputs]);
        let mut dw = w.track_op().then(|| vec![0.0f32; outputs * inputs]);
        let mut db = b
            .is_some_and(Tensor::track_op)
            .then(|| vec![0.0f32; outputs]);
        read(grad, op, |g| {
            read(x, op, |xs| {
                read(w, op, |ws| {
                    let lin = SpikeLinear {
                        x: xs,
                        rows,
                        inputs,
                        w: ws,
                        outputs,
                    };
                    match (dw.as_deref_mut(), db.as_deref_mut()) {
                        (Some(dw), db) => {
                            // the bias gradient comes out of the same pass over `g`
                            let sparse = self.sparse.get().and_then(Option::as_ref);
                            lin.weight_grad(sparse, g, dw, db).map_err(kernel_err)?;
                        }
                        (None, Some(db)) => column_sums(g, outputs, db).map_err(kernel_err)?,
                        (None, None) => {}
                    }
                    if let Some(dx) = dx.as_deref_mut() {
                        lin.input_grad(g, dx).map_err(kernel_err)?;
                    }
                    Ok(())
                })
            })
        })?;
        Ok((
            dx.map(|v| tensor(v, x.shape())).transpose()?,
            dw.map(|v| tensor(v, (outputs, inputs))).transpose()?,
            db.map(|v| tensor(v, outputs)).transpose()?,
        ))
    }
}

/// `x·wᵀ + b` computed by adding, for each row of `x`, the columns of `w` (rows of `wᵀ`) of its
/// non-zero entries (times their values, so it is exact for any `x`); the backward pass
/// scatters the output gradient the same way for `w`, sums it over rows for `b`, and computes
/// `dx = g·w` (dense) only when `x` needs a gradient. Inputs with more than
/// [`autoresearch_kernels::spike::MAX_DENSITY`] non-zeros take dense gemm instead.
///
/// # Shapes
/// `x`: `[R, K]`, `w`: `[N, K]`, `b`: `[N]` -> `[R, N]`; more generally `x`: `[..., K]` ->
/// `[..., N]` (e.g. `[T, B, K]` straight from a LIF layer, with no reshape in the graph).
pub fn sparse_linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    dims(x.layout(), w.layout())?;
    apply(SparseLinear::default(), x, w, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// `n` values: a fraction `density` non-zero, multiples of 1/8 or exactly 1.
    fn spikes(n: usize, seed: u64, density: f64) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let r = autoresearch_kernels::encode::random_bits(seed, i as u64);
                if ((r & 0xFFFF) as f64) < density * 65536.0 {
                    if r >> 63 == 1 {
                        1.0
                    } else {
                        ((r >> 40) % 17) as f32 / 8.0 - 1.0
                    }
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// `n` values in [-1, 1], multiples of 1/1024 (so every sum below is exact).
    fn fine(n: usize, seed: u64) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let r = autoresearch_kernels::encode::random_bits(seed, i as u64) >> 40;
                (r % 2049) as f32 / 1024.0 - 1.0
            })
            .collect()
    }

    fn grad(grads: &candle_core::backprop::GradStore, v: &Var, what: &str) -> Result<Vec<f32>> {
        match grads.get(v) {
            Some(g) => g.flatten_all()?.to_vec1(),
            None => bail!("no gradient for {what}"),
        }
    }

    fn assert_close(what: &str, a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    #[test]
    fn forward_and_gradients_match_plain_matmul_sparse_and_dense() -> Result<()> {
        let dev = Device::Cpu;
        for (r, k, n, density) in [(33, 70, 45, 0.15), (20, 9, 130, 0.6), (8, 5, 3, 0.0)] {
            let what = format!("{r}x{k}x{n} at {density}");
            let x = Var::from_vec(spikes(r * k, 1, density), (r, k), &dev)?;
            let w = Var::from_vec(fine(n * k, 2), (n, k), &dev)?;
            let b = Var::from_vec(fine(n, 3), n, &dev)?;
            let g = Tensor::from_vec(fine(r * n, 4), (r, n), &dev)?;
            for bias in [Some(&b), None] {
                let got = sparse_linear(x.as_tensor(), w.as_tensor(), bias.map(|b| b.as_tensor()))?;
                let mut want = x.matmul(&w.t()?)?;
                if let Some(b) = bias {
                    want = want.broadcast_add(b.as_tensor())?;
                }
                let (gv, wv) = (
                    got.flatten_all()?.to_vec1::<f32>()?,
                    want.flatten_all()?.to_vec1::<f32>()?,
                );
                assert_eq!(gv, wv, "forward {what}");
                let gg = (got * &g)?.sum_all()?.backward()?;
                let gw = (want * &g)?.sum_all()?.backward()?;
                assert_close(
                    &format!("dx {what}"),
                    &grad(&gg, &x, "x")?,
                    &grad(&gw, &x, "x")?,
                );
                assert_close(
                    &format!("dw {what}"),
                    &grad(&gg, &w, "w")?,
                    &grad(&gw, &w, "w")?,
                );
                if bias.is_some() {
                    assert_close(
                        &format!("db {what}"),
                        &grad(&gg, &b, "b")?,
                        &grad(&gw, &b, "b")?,
                    );
                }
            }
            // an untracked input gets no gradient, the weight still does
            let xt = x.as_tensor().detach();
            let gg = (sparse_linear(&xt, w.as_tensor(), Some(b.as_tensor()))? * &g)?
                .sum_all()?
                .backward()?;
            assert!(gg.get(&xt).is_none());
            let gw = (xt.matmul(&w.t()?)?.broadcast_add(b.as_tensor())? * &g)?
                .sum_all()?
                .backward()?;
            assert_close(
                &format!("dw {what}"),
                &grad(&gg, &w, "w")?,
                &grad(&gw, &w, "w")?,
            );
        }
        Ok(())
    }

    #[test]
    fn time_first_inputs_need_no_reshape() -> Result<()> {
        let dev = Device::Cpu;
        let (t, b, k, n) = (5, 3, 40, 9);
        let x = Var::from_vec(spikes(t * b * k, 5, 0.2), (t, b, k), &dev)?;
        let w = Var::from_vec(fine(n * k, 6), (n, k), &dev)?;
        let g = Tensor::from_vec(fine(t * b * n, 7), (t, b, n), &dev)?;
        let got = sparse_linear(x.as_tensor(), w.as_tensor(), None)?;
        assert_eq!(got.dims(), &[t, b, n]);
        let want = x.reshape((t * b, k))?.matmul(&w.t()?)?.reshape((t, b, n))?;
        let (gv, wv) = (
            got.flatten_all()?.to_vec1::<f32>()?,
            want.flatten_all()?.to_vec1::<f32>()?,
        );
        assert_eq!(gv, wv);
        let gg = (got * &g)?.sum_all()?.backward()?;
        let gw = (want * &g)?.sum_all()?.backward()?;
        assert_eq!(grads_shape(&gg, &x)?, vec![t, b, k]);
        assert_close("dx", &grad(&gg, &x, "x")?, &grad(&gw, &x, "x")?);
        assert_close("dw", &grad(&gg, &w, "w")?, &grad(&gw, &w, "w")?);
        Ok(())
    }

    fn grads_shape(grads: &candle_core::backprop::GradStore, v: &Var) -> Result<Vec<usize>> {
        match grads.get(v) {
            Some(g) => Ok(g.dims().to_vec()),
            None => bail!("no gradient"),
        }
    }

    #[test]
    fn wrong_shapes_are_errors() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::zeros((4, 3), candle_core::DType::F32, &dev)?;
        let w = Tensor::zeros((5, 3), candle_core::DType::F32, &dev)?;
        assert!(sparse_linear(&x, &w.t()?, None).is_err());
        assert!(sparse_linear(
            &x,
            &w,
            Some(&Tensor::zeros(4, candle_core::DType::F32, &dev)?)
        )
        .is_err());
        assert!(sparse_linear(&x.to_dtype(candle_core::DType::F64)?, &w, None).is_err());
        assert_eq!(sparse_linear(&x, &w, None)?.dims(), &[4, 5]);
        Ok(())
    }
}
