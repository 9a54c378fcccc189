//! Thin QR decomposition with a non-negative diagonal, differentiable through candle.
//!
//! `A = Q·R` for `A: [n, k]` with `n >= k`: `Q: [n, k]` with orthonormal columns and
//! `R: [k, k]` upper triangular with `diag(R) >= 0` (unique when `A` has full column rank).
//! Used for QR re-orthonormalisation (Lyapunov spectra, `log R_ii`) and for gradient
//! flossing, where gradients flow through many consecutive QRs.
//!
//! The forward is a blocked Householder QR followed by sign flips of `Q`'s columns and `R`'s
//! rows (column-major kernels in the private `kernels` submodule). The reverse-mode adjoint
//! (Seeger et al. 2018; BackwardsLinalg.jl `qr_back_fullrank`) is
//!
//! ```text
//! M = R·R̄ᵀ − Q̄ᵀ·Q,    Ā = (Q̄ + Q·copyltu(M))·R⁻ᵀ,
//! ```
//!
//! where `copyltu(M)` is symmetric with `M`'s lower triangle (diagonal included). It needs
//! full column rank: a zero `R_ii` gives inf/NaN in `Ā` (the forward itself never panics).

use candle_core::{
    bail, CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Storage, Tensor,
};
use nalgebra::{DMatrix, DMatrixView};

mod kernels;

/// Thin QR `a = q·r` with `diag(r) >= 0`: `a: [n, k]` (`n >= k`) -> `(q: [n, k], r: [k, k])`.
///
/// # Panics
/// If `n < k`.
pub fn qr_plain(a: &DMatrix<f64>) -> (DMatrix<f64>, DMatrix<f64>) {
    let (n, k) = a.shape();
    assert!(
        n >= k,
        "qr_plain: a {n}x{k} matrix has fewer rows than columns"
    );
    crate::alloc::keep_freed_memory();
    kernels::thin_qr(a.clone())
}

/// The adjoint `Ā: [n, k]` of [`qr_plain`] from `q: [n, k]`, `r: [k, k]` and their adjoints
/// `q_bar: [n, k]`, `r_bar: [k, k]` (either may be zero); inf/NaN where `r` has a zero diagonal.
pub fn qr_backward(
    q: &DMatrix<f64>,
    r: &DMatrix<f64>,
    q_bar: &DMatrix<f64>,
    r_bar: &DMatrix<f64>,
) -> DMatrix<f64> {
    kernels::adjoint(q, r, q_bar.clone(), r_bar)
}

/// The candle op: `a: [n, k]` -> `[n + k, k]`, `q` stacked on top of `r`.
struct Qr;

/// `(n, k)` of a valid QR input shape.
fn check_dims(dims: &[usize]) -> Result<(usize, usize)> {
    let &[n, k] = dims else {
        bail!("qr: input of shape {dims:?} must be a 2D matrix [n, k]");
    };
    if n < k {
        bail!("qr: a {n}x{k} input needs n >= k (at least as many rows as columns)");
    }
    Ok((n, k))
}

/// Rows `r0..r0 + rows` of a row-major matrix with `k` columns, as a nalgebra matrix.
fn rows_of(data: &[f64], r0: usize, rows: usize, k: usize) -> DMatrix<f64> {
    // the row-major block is the column-major `[k, rows]` transpose
    DMatrixView::from_slice(&data[r0 * k..(r0 + rows) * k], k, rows).transpose()
}

/// Runs `f` on the row-major values of a CPU F64 tensor.
fn read<T>(t: &Tensor, f: impl FnOnce(&[f64]) -> T) -> Result<T> {
    let t = t.to_dtype(DType::F64)?.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F64(v)), Some((start, end))) => Ok(f(&v[start..end])),
        _ => bail!("qr: expected a contiguous CPU F64 tensor"),
    }
}

impl CustomOp1 for Qr {
    fn name(&self) -> &'static str {
        "qr"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, k) = check_dims(l.dims())?;
        let (CpuStorage::F64(data), Some((start, end))) = (s, l.contiguous_offsets()) else {
            bail!("qr: input must be a contiguous F64 tensor");
        };
        let (q, r) = kernels::thin_qr(rows_of(&data[start..end], 0, n, k));
        let mut out = Vec::with_capacity((n + k) * k);
        out.extend_from_slice(q.transpose().as_slice());
        out.extend_from_slice(r.transpose().as_slice());
        Ok((CpuStorage::F64(out), Shape::from((n + k, k))))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let (n, k) = check_dims(arg.dims())?;
        let (q, r) = read(res, |s| (rows_of(s, 0, n, k), rows_of(s, n, k, k)))?;
        let (q_bar, r_bar) = read(grad_res, |g| (rows_of(g, 0, n, k), rows_of(g, n, k, k)))?;
        let a_bar = kernels::adjoint(&q, &r, q_bar, &r_bar).transpose();
        Ok(Some(Tensor::from_slice(
            a_bar.as_slice(),
            (n, k),
            arg.device(),
        )?))
    }
}

/// Differentiable thin QR of a CPU F64 tensor: `a: [n, k]` (`n >= k`) -> `(q: [n, k], r: [k, k])`.
///
/// One candle op whose output `[n + k, k]` stacks `q` on `r`, narrowed into the two; an error
/// for an input that is not F64, not on the CPU, not 2D or has `n < k`.
pub fn qr(a: &Tensor) -> Result<(Tensor, Tensor)> {
    if a.dtype() != DType::F64 {
        bail!("qr: input must have dtype F64, got {:?}", a.dtype());
    }
    if !matches!(a.device(), Device::Cpu) {
        bail!("qr: input must be on the CPU");
    }
    let (n, k) = check_dims(a.dims())?;
    crate::alloc::keep_freed_memory();
    let s = a.contiguous()?.apply_op1(Qr)?;
    Ok((s.narrow(0, 0, n)?, s.narrow(0, n, k)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use rand_distr::StandardNormal;

    fn randn(rng: &mut StdRng, n: usize, k: usize) -> DMatrix<f64> {
        DMatrix::from_fn(n, k, |_, _| rng.sample(StandardNormal))
    }

    fn tensor(m: &DMatrix<f64>) -> Tensor {
        Tensor::from_slice(m.transpose().as_slice(), m.shape(), &Device::Cpu).unwrap()
    }

    /// Central finite differences of `f` at `a` with step `h`.
    fn fd(a: &DMatrix<f64>, h: f64, f: impl Fn(&DMatrix<f64>) -> f64) -> DMatrix<f64> {
        DMatrix::from_fn(a.nrows(), a.ncols(), |i, j| {
            let (mut p, mut m) = (a.clone(), a.clone());
            p[(i, j)] += h;
            m[(i, j)] -= h;
            (f(&p) - f(&m)) / (2.0 * h)
        })
    }

    /// Norm-relative error `‖analytic − fd‖ / ‖fd‖` (Frobenius).
    fn rel_err(analytic: &DMatrix<f64>, fd: &DMatrix<f64>) -> f64 {
        (analytic - fd).norm() / fd.norm()
    }

    fn log_diag(r: &DMatrix<f64>, c: &[f64]) -> f64 {
        (0..c.len()).map(|i| c[i] * r[(i, i)].ln()).sum()
    }

    fn check_forward(a: &DMatrix<f64>) {
        let (q, r) = qr_plain(a);
        let k = a.ncols();
        assert_eq!((q.shape(), r.shape()), ((a.nrows(), k), (k, k)));
        assert!((&q * &r - a).abs().max() < 1e-12);
        assert!((q.transpose() * &q - DMatrix::identity(k, k)).abs().max() < 1e-12);
        for j in 0..k {
            assert!(r[(j, j)] > 0.0);
            (j + 1..k).for_each(|i| assert_eq!(r[(i, j)], 0.0));
        }
        // the candle op gives the same factors
        let (qt, rt) = qr(&tensor(a)).unwrap();
        let rows = |t: &Tensor| t.to_vec2::<f64>().unwrap();
        assert_eq!(rows(&tensor(&q)), rows(&qt));
        assert_eq!(rows(&tensor(&r)), rows(&rt));
    }

    #[test]
    fn forward_reconstructs_with_orthonormal_q_and_positive_diagonal() {
        let mut rng = StdRng::seed_from_u64(0);
        check_forward(&randn(&mut rng, 7, 4));
        check_forward(&randn(&mut rng, 80, 75));
    }

    #[test]
    fn square_input_works() {
        check_forward(&randn(&mut StdRng::seed_from_u64(1), 5, 5));
    }

    #[test]
    fn adjoint_matches_finite_differences() {
        let mut rng = StdRng::seed_from_u64(2);
        // 20x18 spans two blocks of the blocked QR and solve; its larger loss needs a larger
        // step against roundoff
        for (n, k, h) in [(6, 4, 1e-6), (20, 18, 1e-5)] {
            let a = randn(&mut rng, n, k);
            let (wq, wr) = (randn(&mut rng, n, k), randn(&mut rng, k, k));
            let (q, r) = qr_plain(&a);
            let loss = |a: &DMatrix<f64>| {
                let (q, r) = qr_plain(a);
                q.component_mul(&wq).sum() + r.component_mul(&wr).sum()
            };
            assert!(rel_err(&qr_backward(&q, &r, &wq, &wr), &fd(&a, h, loss)) < 1e-8);
            // only R̄ non-zero: L = Σ c_i log R_ii (the flossing loss)
            let c: Vec<f64> = (0..k).map(|i| (i as f64 * 0.7).sin() + 0.5).collect();
            let r_bar = DMatrix::from_fn(k, k, |i, j| if i == j { c[i] / r[(i, i)] } else { 0.0 });
            let analytic = qr_backward(&q, &r, &DMatrix::zeros(n, k), &r_bar);
            let expect = fd(&a, h, |a| log_diag(&qr_plain(a).1, &c));
            assert!(rel_err(&analytic, &expect) < 1e-8);
        }
    }

    /// `∂loss/∂a` through candle's autograd, as a matrix.
    fn grad(loss: &Tensor, a: &Var) -> DMatrix<f64> {
        let grads = loss.backward().unwrap();
        let g = grads.get(a).unwrap().to_vec2::<f64>().unwrap();
        DMatrix::from_fn(g.len(), g[0].len(), |i, j| g[i][j])
    }

    /// `Σ c_i·log r_ii` with tensor ops.
    fn log_diag_t(r: &Tensor, c: &Tensor) -> Tensor {
        let eye = Tensor::eye(r.dim(0).unwrap(), DType::F64, &Device::Cpu).unwrap();
        let d = (r * eye).unwrap().sum(1).unwrap().log().unwrap();
        (d * c).unwrap().sum_all().unwrap()
    }

    #[test]
    fn candle_autograd_matches_finite_differences() {
        let mut rng = StdRng::seed_from_u64(3);
        let a0 = randn(&mut rng, 6, 4);
        let wq = randn(&mut rng, 6, 4);
        let c = [0.5, -0.4, 1.1, 0.9];
        let a = Var::from_tensor(&tensor(&a0)).unwrap();
        let (q, r) = qr(&a).unwrap();
        let ct = Tensor::new(&c, &Device::Cpu).unwrap();
        let fit = (&q * tensor(&wq)).unwrap().sum_all().unwrap();
        let g = grad(&(fit + log_diag_t(&r, &ct)).unwrap(), &a);
        let expect = fd(&a0, 1e-6, |a| {
            let (q, r) = qr_plain(a);
            q.component_mul(&wq).sum() + log_diag(&r, &c)
        });
        assert!(rel_err(&g, &expect) < 1e-8);
    }

    #[test]
    fn chained_qrs_match_finite_differences() {
        let mut rng = StdRng::seed_from_u64(4);
        let (a0, b) = (randn(&mut rng, 6, 4), randn(&mut rng, 4, 4));
        let (c1, c2) = ([0.2, 0.4, -0.6, 1.0], [1.0, -0.3, 0.8, 0.5]);
        let a = Var::from_tensor(&tensor(&a0)).unwrap();
        let (q1, r1) = qr(&a).unwrap();
        let (_, r2) = qr(&q1.matmul(&tensor(&b)).unwrap()).unwrap();
        let t = |c: &[f64; 4]| Tensor::new(c, &Device::Cpu).unwrap();
        let loss = (log_diag_t(&r1, &t(&c1)) + log_diag_t(&r2, &t(&c2))).unwrap();
        let g = grad(&loss, &a);
        let expect = fd(&a0, 1e-6, |a| {
            let (q1, r1) = qr_plain(a);
            log_diag(&r1, &c1) + log_diag(&qr_plain(&(q1 * &b)).1, &c2)
        });
        assert!(rel_err(&g, &expect) < 1e-8);
    }

    #[test]
    fn rank_deficient_input_does_not_panic() {
        let mut a = randn(&mut StdRng::seed_from_u64(5), 6, 4);
        a.column_mut(1).fill(0.0);
        let (q, r) = qr_plain(&a);
        assert!((&q * &r - &a).abs().max() < 1e-12);
        assert_eq!(r[(1, 1)], 0.0);
        let _ = qr_backward(&q, &r, &q, &r);
    }

    #[test]
    fn invalid_inputs_are_errors() {
        let a = Tensor::zeros((5, 3), DType::F32, &Device::Cpu).unwrap();
        assert!(qr(&a).unwrap_err().to_string().contains("F64"));
        let a = Tensor::zeros((3, 5), DType::F64, &Device::Cpu).unwrap();
        assert!(qr(&a).unwrap_err().to_string().contains("n >= k"));
        let a = Tensor::zeros(5, DType::F64, &Device::Cpu).unwrap();
        assert!(qr(&a).unwrap_err().to_string().contains("2D"));
    }

    /// Timing of forward + backward at the flossing size (run it in release): min and median
    /// microseconds of one call, plain and through the candle op with a flossing-like loss.
    #[test]
    #[ignore]
    fn time_forward_backward_80x75() {
        let mut rng = StdRng::seed_from_u64(6);
        let (a, wq) = (randn(&mut rng, 80, 75), randn(&mut rng, 80, 75));
        let r_bar = DMatrix::from_diagonal(&qr_plain(&a).1.diagonal().map(|d| 1.0 / d));
        let time = |f: &mut dyn FnMut()| {
            let mut us: Vec<f64> = (0..2000)
                .map(|_| {
                    let start = std::time::Instant::now();
                    f();
                    start.elapsed().as_secs_f64() * 1e6
                })
                .collect();
            us.sort_by(f64::total_cmp);
            format!("min {:.0} us, median {:.0} us", us[0], us[1000])
        };
        let plain = time(&mut || {
            let (q, r) = qr_plain(&a);
            std::hint::black_box(qr_backward(&q, &r, &wq, &r_bar));
        });
        let (av, wq) = (Var::from_tensor(&tensor(&a)).unwrap(), tensor(&wq));
        let ones = Tensor::ones(75, DType::F64, &Device::Cpu).unwrap();
        let candle = time(&mut || {
            let (q, r) = qr(&av).unwrap();
            let fit = (&q * &wq).unwrap().sum_all().unwrap();
            std::hint::black_box(grad(&(fit + log_diag_t(&r, &ones)).unwrap(), &av));
        });
        println!("qr 80x75 forward + backward: plain {plain}; candle op + autograd {candle}");
    }
}
