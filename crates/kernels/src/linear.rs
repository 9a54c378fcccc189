//! Dense layers: `x·wᵀ + b` with ReLU fused into the output pass, and the backward products.
//!
//! Also home of [`matmul_on`], the matrix product with the threading chosen by the caller
//! (serial inside workers that already split the work, the rayon pool otherwise).

use crate::gemm::MatRef;
use crate::sgemm::sgemm;
use crate::sgemm_nt::{nt_product, MAX_A};

/// How a matrix product may use threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// On the calling thread only (the caller already splits work over workers).
    Serial,
    /// On the rayon pool when the product is large enough to gain from it.
    Pool,
}

/// `dst = a·b` (or `dst += a·b` when `accumulate`), `dst` row-major `a.rows x b.cols` with row
/// stride `dst_row_stride`, threaded as `threads` says (see [`crate::sgemm`]; the result does
/// not depend on the number of threads).
pub fn matmul_on(
    dst: &mut [f32],
    dst_row_stride: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    accumulate: bool,
    threads: Threads,
) -> Result<(), String> {
    sgemm(
        dst,
        dst_row_stride,
        a,
        b,
        accumulate,
        threads == Threads::Pool,
    )
}

/// Sizes of a dense layer `[rows, inputs] -> [rows, outputs]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearDims {
    /// Rows of `x` (batch).
    pub rows: usize,
    /// Input features `K`.
    pub inputs: usize,
    /// Output features `N`.
    pub outputs: usize,
}

impl LinearDims {
    fn check(&self, what: &str, name: &str, len: usize, want: usize) -> Result<(), String> {
        if len != want {
            return Err(format!(
                "{what}: `{name}` holds {len} values, {}x{}->{} needs {want}",
                self.rows, self.inputs, self.outputs
            ));
        }
        Ok(())
    }
}

#[inline(always)]
fn fill_rows_impl(out: &mut [f32], bias: &[f32]) {
    for row in out.chunks_exact_mut(bias.len()) {
        row.copy_from_slice(bias);
    }
}

dispatch!(
    /// Copies `bias` into every row of `out` (rows of `bias.len()` values).
    pub fn fill_rows(out: &mut [f32], bias: &[f32]) => fill_rows_impl
);

#[inline(always)]
fn relu_impl(out: &mut [f32]) {
    for v in out.iter_mut() {
        *v = v.max(0.0);
    }
}

dispatch!(
    /// ReLU in place (`max(v, 0)`, NaN mapped to `0.0`; `f32::max`, not a compare-and-select,
    /// which would compile to masked stores that are slow on AMD CPUs).
    pub fn relu_inplace(out: &mut [f32]) => relu_impl
);

#[inline(always)]
fn mask_colsum_impl(g: &[f32], y: &[f32], n: usize, out: &mut [f32], sums: &mut [f32]) {
    for ((gr, yr), orow) in g
        .chunks_exact(n)
        .zip(y.chunks_exact(n))
        .zip(out.chunks_exact_mut(n))
    {
        for (((o, &gv), &yv), s) in orow.iter_mut().zip(gr).zip(yr).zip(sums.iter_mut()) {
            let v = if yv > 0.0 { gv } else { 0.0 };
            *o = v;
            *s += v;
        }
    }
}

dispatch!(
    /// `out = g ⊙ [y > 0]` (ReLU's backward from its output `y`) and `sums += ` its column sums
    /// (rows of `n` values, summed in row order).
    pub fn relu_mask_colsum(g: &[f32], y: &[f32], n: usize, out: &mut [f32], sums: &mut [f32]) => mask_colsum_impl
);

#[inline(always)]
fn colsum_impl(g: &[f32], n: usize, sums: &mut [f32]) {
    for gr in g.chunks_exact(n) {
        for (s, &v) in sums.iter_mut().zip(gr) {
            *s += v;
        }
    }
}

dispatch!(
    /// `sums += ` the column sums of `g` (rows of `n` values, summed in row order).
    pub fn colsum(g: &[f32], n: usize, sums: &mut [f32]) => colsum_impl
);

/// Forward pass of a dense layer: `out = x·wᵀ + bias`, then ReLU when `relu`.
///
/// `x` is `[rows, inputs]`, `w` is `[outputs, inputs]`, `bias` `[outputs]`, `out`
/// `[rows, outputs]`, all row-major. The product is threaded; bias and ReLU are cheap passes over
/// the (cache-resident) output.
pub fn linear_forward(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    d: LinearDims,
    out: &mut [f32],
) -> Result<(), String> {
    let LinearDims {
        rows,
        inputs,
        outputs,
    } = d;
    d.check("linear", "x", x.len(), rows * inputs)?;
    d.check("linear", "w", w.len(), outputs * inputs)?;
    d.check("linear", "out", out.len(), rows * outputs)?;
    if let Some(b) = bias {
        d.check("linear", "bias", b.len(), outputs)?;
    }
    if rows == 0 || outputs == 0 {
        return Ok(());
    }
    let wt = MatRef::row_major(w, outputs, inputs).t();
    if let Some(b) = bias {
        fill_rows(out, b);
    }
    if rows * inputs <= MAX_A {
        // small batches: dot products straight from `x` and `w`, no packing of `wᵀ`
        nt_product(
            x,
            w,
            rows,
            inputs,
            outputs,
            out,
            outputs,
            bias.is_some(),
            true,
        )?;
    } else {
        let xs = MatRef::row_major(x, rows, inputs);
        matmul_on(out, outputs, xs, wt, bias.is_some(), Threads::Pool)?;
    }
    if relu {
        relu_inplace(out);
    }
    Ok(())
}

/// Gradients of a dense layer from the gradient `g` of its output.
///
/// When `y` (the forward output) is given, the layer had a ReLU and `g` is first masked by
/// `y > 0`. Writes `dw = gᵀ·x` (`[outputs, inputs]`), `db` = column sums of `g` (`[outputs]`)
/// when given, and `dx = g·w` (`[rows, inputs]`) when given (skip it for inputs that need no
/// gradient).
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(
    g: &[f32],
    y: Option<&[f32]>,
    x: &[f32],
    w: &[f32],
    d: LinearDims,
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) -> Result<(), String> {
    let LinearDims {
        rows,
        inputs,
        outputs,
    } = d;
    d.check("linear backward", "g", g.len(), rows * outputs)?;
    d.check("linear backward", "x", x.len(), rows * inputs)?;
    d.check("linear backward", "w", w.len(), outputs * inputs)?;
    d.check("linear backward", "dw", dw.len(), outputs * inputs)?;
    let mut masked = Vec::new();
    let mut sums = vec![0.0f32; outputs];
    let g: &[f32] = match y {
        Some(y) => {
            d.check("linear backward", "y", y.len(), rows * outputs)?;
            masked.resize(g.len(), 0.0);
            relu_mask_colsum(g, y, outputs.max(1), &mut masked, &mut sums);
            &masked
        }
        None => {
            colsum(g, outputs.max(1), &mut sums);
            g
        }
    };
    if let Some(db) = db {
        d.check("linear backward", "db", db.len(), outputs)?;
        db.copy_from_slice(&sums);
    }
    let gm = MatRef::row_major(g, rows, outputs);
    matmul_on(
        dw,
        inputs,
        gm.t(),
        MatRef::row_major(x, rows, inputs),
        false,
        Threads::Pool,
    )?;
    if let Some(dx) = dx {
        d.check("linear backward", "dx", dx.len(), rows * inputs)?;
        matmul_on(
            dx,
            inputs,
            gm,
            MatRef::row_major(w, outputs, inputs),
            false,
            Threads::Pool,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 1009) as f32 / 504.5) - 1.0)
            .collect()
    }

    struct Naive {
        y: Vec<f32>,
        dx: Vec<f32>,
        dw: Vec<f32>,
        db: Vec<f32>,
    }

    fn naive(x: &[f32], w: &[f32], b: &[f32], g: &[f32], relu: bool, d: LinearDims) -> Naive {
        let (r, k, n) = (d.rows, d.inputs, d.outputs);
        let mut y = vec![0.0; r * n];
        for i in 0..r {
            for j in 0..n {
                let mut s = b[j] as f64;
                for p in 0..k {
                    s += x[i * k + p] as f64 * w[j * k + p] as f64;
                }
                y[i * n + j] = if relu { s.max(0.0) as f32 } else { s as f32 };
            }
        }
        let gm: Vec<f64> = (0..r * n)
            .map(|i| {
                if !relu || y[i] > 0.0 {
                    g[i] as f64
                } else {
                    0.0
                }
            })
            .collect();
        let mut dx = vec![0.0; r * k];
        let mut dw = vec![0.0; n * k];
        let mut db = vec![0.0; n];
        for i in 0..r {
            for p in 0..k {
                dx[i * k + p] = (0..n)
                    .map(|j| gm[i * n + j] * w[j * k + p] as f64)
                    .sum::<f64>() as f32;
            }
        }
        for j in 0..n {
            for p in 0..k {
                dw[j * k + p] = (0..r)
                    .map(|i| gm[i * n + j] * x[i * k + p] as f64)
                    .sum::<f64>() as f32;
            }
            db[j] = (0..r).map(|i| gm[i * n + j]).sum::<f64>() as f32;
        }
        Naive { y, dx, dw, db }
    }

    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{what}[{i}]: {g} vs {w}"
            );
        }
    }

    fn run(x: &[f32], w: &[f32], b: &[f32], g: &[f32], relu: bool, d: LinearDims) -> [Vec<f32>; 4] {
        let mut y = vec![f32::NAN; d.rows * d.outputs];
        linear_forward(x, w, Some(b), relu, d, &mut y).unwrap();
        let (mut dx, mut dw, mut db) = (
            vec![f32::NAN; d.rows * d.inputs],
            vec![f32::NAN; d.outputs * d.inputs],
            vec![f32::NAN; d.outputs],
        );
        let yref = relu.then_some(y.as_slice());
        linear_backward(g, yref, x, w, d, Some(&mut dx), &mut dw, Some(&mut db)).unwrap();
        [y, dx, dw, db]
    }

    #[test]
    fn forward_and_backward_match_naive_loops() {
        // small (one worker, pooled product) and tall (rows split over workers) shapes
        for (rows, inputs, outputs) in [(1, 1, 1), (7, 13, 5), (37, 53, 29), (301, 67, 45)] {
            let d = LinearDims {
                rows,
                inputs,
                outputs,
            };
            let x = data(rows * inputs, 1);
            let w = data(outputs * inputs, 2);
            let b = data(outputs, 3);
            let g = data(rows * outputs, 4);
            for relu in [false, true] {
                let want = naive(&x, &w, &b, &g, relu, d);
                let [y, dx, dw, db] = run(&x, &w, &b, &g, relu, d);
                assert_close(&y, &want.y, "y");
                assert_close(&dx, &want.dx, "dx");
                assert_close(&dw, &want.dw, "dw");
                assert_close(&db, &want.db, "db");
            }
        }
    }

    #[test]
    fn no_bias_and_no_dx() {
        let d = LinearDims {
            rows: 9,
            inputs: 4,
            outputs: 3,
        };
        let (x, w, g) = (data(36, 5), data(12, 6), data(27, 7));
        let mut y = vec![f32::NAN; 27];
        linear_forward(&x, &w, None, false, d, &mut y).unwrap();
        let want = naive(&x, &w, &[0.0; 3], &g, false, d);
        assert_close(&y, &want.y, "y");
        let mut dw = vec![f32::NAN; 12];
        linear_backward(&g, None, &x, &w, d, None, &mut dw, None).unwrap();
        assert_close(&dw, &want.dw, "dw");
        assert!(linear_forward(&x, &w, None, false, LinearDims { rows: 8, ..d }, &mut y).is_err());
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let d = LinearDims {
            rows: 256,
            inputs: 300,
            outputs: 200,
        };
        let (x, w, b, g) = (
            data(256 * 300, 1),
            data(200 * 300, 2),
            data(200, 3),
            data(256 * 200, 4),
        );
        let pool = |n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        };
        let one = pool(1).install(|| run(&x, &w, &b, &g, true, d));
        let three = pool(3).install(|| run(&x, &w, &b, &g, true, d));
        assert_eq!(one, three);
    }
}
