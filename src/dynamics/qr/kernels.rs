//! Column-major kernels of [`super`]: a blocked (compact WY, LAPACK `dgeqrf` + `dorgqr`)
//! Householder thin QR, and its adjoint with the triangular solve `X·Rᵀ = B`. Products of
//! blocks go to matrixmultiply (through nalgebra's `gemm`); the level-2 loops are compiled for
//! AVX2+FMA where the CPU has them.

use autoresearch_kernels::dispatch;
use nalgebra::{DMatrix, DMatrixView, DMatrixViewMut, Dyn, U1};

/// Columns per block (16 was the fastest at 80x75).
const NB: usize = 16;

/// `Σ x_i·y_i` with four accumulators (so it vectorises without fast-math).
#[inline(always)]
fn dot(x: &[f64], y: &[f64]) -> f64 {
    let (cx, cy) = (x.chunks_exact(4), y.chunks_exact(4));
    let tail: f64 = cx
        .remainder()
        .iter()
        .zip(cy.remainder())
        .map(|(a, b)| a * b)
        .sum();
    let mut s = [0.0f64; 4];
    for (a, b) in cx.zip(cy) {
        s.iter_mut()
            .zip(a.iter().zip(b))
            .for_each(|(s, (a, b))| *s += a * b);
    }
    (s[0] + s[1]) + (s[2] + s[3]) + tail
}

/// `y += alpha·x`.
#[inline(always)]
fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    y.iter_mut().zip(x).for_each(|(yi, xi)| *yi += alpha * xi);
}

/// Applies `H = I − tau·u·uᵀ` with `u = [1, v]` to the column segment `col`.
#[inline(always)]
fn reflect(tau: f64, v: &[f64], col: &mut [f64]) {
    let (c0, rest) = col.split_at_mut(1);
    let f = -tau * (c0[0] + dot(v, rest));
    c0[0] += f;
    axpy(f, v, rest);
}

/// Unblocked Householder factorisation (`dgeqr2`) in place of the `[m, tau.len()]` panel `a`
/// (column stride `ld`): `R` on and above the diagonal, the reflectors' tails below it.
#[inline(always)]
fn factor_impl(a: &mut [f64], ld: usize, m: usize, tau: &mut [f64]) {
    let b = tau.len();
    for j in 0..b {
        let (left, right) = a.split_at_mut(((j + 1) * ld).min(a.len()));
        let x = &mut left[j * ld + j..j * ld + m];
        let (alpha, sigma) = (x[0], dot(&x[1..], &x[1..]));
        if sigma == 0.0 {
            continue; // already upper triangular here: H = I, R_jj = alpha
        }
        let norm = (alpha * alpha + sigma).sqrt();
        let beta = if alpha >= 0.0 { -norm } else { norm };
        tau[j] = (beta - alpha) / beta;
        let scale = 1.0 / (alpha - beta);
        x[1..].iter_mut().for_each(|e| *e *= scale);
        x[0] = beta;
        for c in 0..b - j - 1 {
            reflect(tau[j], &x[1..], &mut right[c * ld + j..c * ld + m]);
        }
    }
}

/// `H_0···H_{b−1}·[I; 0]` (`dorg2r`) into the zeroed `[m, b]` panel `q` (column stride `ld`),
/// from the panel `a` that [`factor_impl`] factored.
#[inline(always)]
fn form_q_impl(a: &[f64], tau: &[f64], q: &mut [f64], ld: usize, m: usize) {
    for j in (0..tau.len()).rev() {
        let v = &a[j * ld + j + 1..j * ld + m];
        let (left, right) = q.split_at_mut(((j + 1) * ld).min(q.len()));
        for c in 0..tau.len() - j - 1 {
            reflect(tau[j], v, &mut right[c * ld + j..c * ld + m]);
        }
        let col = &mut left[j * ld + j..j * ld + m];
        col[0] = 1.0 - tau[j];
        col[1..]
            .iter_mut()
            .zip(v)
            .for_each(|(e, vi)| *e = -tau[j] * vi);
    }
}

/// Solves `X·R_JJᵀ = B` in place for the columns `J = j0..j0 + b.len() / n` (`b`: `[n, |J|]`,
/// `r`: the whole upper `[k, k]`).
#[inline(always)]
fn solve_rt_impl(b: &mut [f64], r: &[f64], k: usize, j0: usize, n: usize) {
    for j in (0..b.len() / n).rev() {
        let (left, right) = b.split_at_mut((j + 1) * n);
        let col = &mut left[j * n..];
        for (l, other) in right.chunks_exact(n).enumerate() {
            axpy(-r[(j0 + j + 1 + l) * k + j0 + j], other, col);
        }
        let d = 1.0 / r[(j0 + j) * k + j0 + j];
        col.iter_mut().for_each(|e| *e *= d);
    }
}

dispatch!(
    fn factor(a: &mut [f64], ld: usize, m: usize, tau: &mut [f64]) => factor_impl
);
dispatch!(
    fn form_q(a: &[f64], tau: &[f64], q: &mut [f64], ld: usize, m: usize) => form_q_impl
);
dispatch!(
    fn solve_rt_block(b: &mut [f64], r: &[f64], k: usize, j0: usize, n: usize) => solve_rt_impl
);

/// The `[rows, cols]` column-major block at the start of `d`, column stride `ld`.
fn view(d: &[f64], rows: usize, cols: usize, ld: usize) -> DMatrixView<'_, f64> {
    DMatrixView::from_slice_with_strides_generic(d, Dyn(rows), Dyn(cols), U1, Dyn(ld))
}

/// One panel's reflectors `H_j0···H_{j0+b−1} = I − V·T·Vᵀ` (`V: [m, b]`, `T: [b, b]`).
struct Block {
    v: DMatrix<f64>,
    vt: DMatrix<f64>,
    t: DMatrix<f64>,
    tt: DMatrix<f64>,
}

impl Block {
    /// `V`, `Vᵀ`, `T` (`dlarft`) and `Tᵀ` of the `[m, tau.len()]` panel `a` (stride `ld`).
    fn new(a: &[f64], tau: &[f64], ld: usize, m: usize) -> Self {
        let b = tau.len();
        let mut v = DMatrix::zeros(m, b);
        for (c, col) in v.as_mut_slice().chunks_exact_mut(m).enumerate() {
            col[c] = 1.0;
            col[c + 1..].copy_from_slice(&a[c * ld + c + 1..c * ld + m]);
        }
        let vt = v.transpose();
        let g = &vt * &v;
        // T[0..i, i] = −tau_i·T[0..i, 0..i]·(Vᵀ·V)[0..i, i], column-major in `t`
        let mut t = vec![0.0; b * b];
        for i in 0..b {
            for r in 0..i {
                t[i * b + r] = -tau[i] * (r..i).map(|l| t[l * b + r] * g[(l, i)]).sum::<f64>();
            }
            t[i * b + i] = tau[i];
        }
        let t = DMatrix::from_vec(b, b, t);
        Block {
            tt: t.transpose(),
            v,
            vt,
            t,
        }
    }

    /// `c ← (I − V·op(T)·Vᵀ)·c` for the `[m, cols]` block `c` (stride `ld`); `op(T) = Tᵀ`
    /// (applying `Hᵀ`) if `transpose`.
    fn apply(&self, c: &mut [f64], ld: usize, cols: usize, transpose: bool) {
        let m = self.v.nrows();
        let w = &self.vt * view(c, m, cols, ld);
        let w = if transpose { &self.tt * w } else { &self.t * w };
        DMatrixViewMut::from_slice_with_strides_generic(c, Dyn(m), Dyn(cols), U1, Dyn(ld))
            .gemm(-1.0, &self.v, &w, 1.0);
    }
}

/// Thin QR of `a: [n, k]` (`n >= k`): `(q: [n, k], r: [k, k])` with `diag(r) >= 0`.
pub(super) fn thin_qr(mut f: DMatrix<f64>) -> (DMatrix<f64>, DMatrix<f64>) {
    let (n, k) = f.shape();
    let mut tau = vec![0.0; k];
    let a = f.as_mut_slice();
    let mut blocks = Vec::new();
    for j0 in (0..k).step_by(NB) {
        let (b, m) = (NB.min(k - j0), n - j0);
        factor(&mut a[j0 * n + j0..], n, m, &mut tau[j0..j0 + b]);
        let block = Block::new(&a[j0 * n + j0..], &tau[j0..j0 + b], n, m);
        if j0 + b < k {
            block.apply(&mut a[(j0 + b) * n + j0..], n, k - j0 - b, true);
        }
        blocks.push(block);
    }
    let mut q = DMatrix::zeros(n, k);
    let qs = q.as_mut_slice();
    for (j0, block) in (0..k).step_by(NB).zip(&blocks).rev() {
        let (b, m) = (NB.min(k - j0), n - j0);
        if j0 + b < k {
            block.apply(&mut qs[(j0 + b) * n + j0..], n, k - j0 - b, false);
        }
        form_q(
            &a[j0 * n + j0..],
            &tau[j0..j0 + b],
            &mut qs[j0 * n + j0..],
            n,
            m,
        );
    }
    let mut r = f.rows(0, k).upper_triangle();
    for i in 0..k {
        if r[(i, i)] < 0.0 {
            r.row_mut(i).neg_mut();
            q.column_mut(i).neg_mut();
        }
    }
    (q, r)
}

/// Solves `X·Rᵀ = B` in place (`b: [n, k]`, `r: [k, k]` upper), blockwise from the last
/// columns: each block's coupling to the solved columns is one product.
pub(super) fn solve_rt(b: &mut DMatrix<f64>, r: &DMatrix<f64>) {
    let (n, k) = b.shape();
    let rt = r.transpose();
    for start in (0..k).step_by(NB).rev() {
        let end = (start + NB).min(k);
        if end < k {
            let (mut bj, solved) = b.columns_range_pair_mut(start..end, end..);
            bj.gemm(
                -1.0,
                &solved,
                &rt.view((end, start), (k - end, end - start)),
                1.0,
            );
        }
        solve_rt_block(
            &mut b.as_mut_slice()[start * n..end * n],
            r.as_slice(),
            k,
            start,
            n,
        );
    }
}

/// [`super::qr_backward`] that reuses `q_bar`'s buffer for `Ā`.
pub(super) fn adjoint(
    q: &DMatrix<f64>,
    r: &DMatrix<f64>,
    q_bar: DMatrix<f64>,
    r_bar: &DMatrix<f64>,
) -> DMatrix<f64> {
    let k = r.nrows();
    // M = R·R̄ᵀ − Q̄ᵀ·Q, with only R̄'s upper triangle (R's strict lower one is constant zero);
    // a diagonal R̄ (the flossing case) only scales R's columns. Explicit transposes:
    // nalgebra's small-matrix gemv path mishandles row-strided views.
    let mut m = if (1..k).all(|j| (0..j).all(|i| r_bar[(i, j)] == 0.0)) {
        DMatrix::from_fn(k, k, |i, j| r[(i, j)] * r_bar[(j, j)])
    } else {
        r * r_bar.upper_triangle().transpose()
    };
    m.gemm(-1.0, &q_bar.transpose(), q, 1.0);
    for j in 1..k {
        for i in 0..j {
            m[(i, j)] = m[(j, i)];
        }
    }
    // B = Q̄ + Q·copyltu(M), then Ā·Rᵀ = B
    let mut b = q_bar;
    b.gemm(1.0, q, &m, 1.0);
    solve_rt(&mut b, r);
    b
}
