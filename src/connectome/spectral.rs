//! The spectral radius ρ(W) of a connectome matrix, with a real convergence test, and scaling a
//! matrix to a target radius.
//!
//! ρ(W) is the largest ρ over the strongly connected components of the support (W is permutation
//! similar to a block triangular matrix with those blocks on the diagonal); an acyclic support has
//! ρ = 0 exactly. Each cyclic block is measured by one of three methods:
//! - up to [`DENSE_MAX`] nodes, the dense real Schur form (`dense_eigenvalues`);
//! - a larger nonnegative block, power iteration on `W + sI` (`power_shifted`): the shift makes
//!   periodic blocks converge, and the Collatz–Wielandt bounds `min (Bx)ᵢ/xᵢ ≤ ρ(B) ≤ max
//!   (Bx)ᵢ/xᵢ` give a rigorous stopping test;
//! - a larger signed block, Arnoldi with growing Krylov dimension (`arnoldi`).
//!
//! A method that does not converge returns an error, never an unconverged value.

use nalgebra::{DMatrix, DVector, Schur};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::Serialize;

use super::csr::Csr;
use crate::error::{Error, Result};

/// Largest strongly connected block measured with dense eigenvalues.
pub const DENSE_MAX: usize = 1024;
/// Iteration cap of the shifted power iteration.
const POWER_CAP: usize = 20_000;
/// Relative width of the Collatz–Wielandt bracket at which the power iteration stops.
const POWER_TOL: f64 = 1e-12;
/// Krylov dimensions tried by Arnoldi (each capped at the block size).
const ARNOLDI_DIMS: [usize; 6] = [20, 40, 80, 160, 320, 640];
/// Relative agreement of two successive Krylov dimensions at which Arnoldi stops.
const ARNOLDI_TOL: f64 = 1e-9;
/// Largest tolerated deviation of the re-measured radius from the target after scaling.
const SCALE_TOL: f64 = 1e-4;
/// The config key that errors name.
const KEY: &str = "model.connectome";

/// A measured spectral radius and how it was obtained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Radius {
    /// ρ(W), the largest |eigenvalue|.
    pub value: f64,
    /// `dense_eigenvalues`, `power_shifted`, `arnoldi` (of the block that sets ρ) or `acyclic`.
    pub method: String,
    /// Matrix-vector products of the iterative methods, summed over the blocks (dense: 0).
    pub iterations: usize,
    /// Whether the method met its convergence test (always true for a returned radius).
    pub converged: bool,
}

/// A matrix scaled to a target radius, with the radius before and after.
#[derive(Debug, Clone)]
pub struct Scaled {
    /// The scaled matrix (`f32` values).
    pub matrix: Csr,
    /// ρ before scaling.
    pub raw: Radius,
    /// The factor applied: `target / raw.value`.
    pub scale: f64,
    /// ρ re-measured on the scaled matrix.
    pub measured: Radius,
}

/// The spectral radius of `w` (see the module doc for the methods and their tests).
pub fn spectral_radius(w: &Csr) -> Result<Radius> {
    if let Some(v) = w.val.iter().find(|v| !v.is_finite()) {
        return Err(Error::invalid(
            KEY,
            format!("matrix value {v} is not finite: no spectral radius"),
        ));
    }
    let mut best = Radius {
        value: 0.0,
        method: "acyclic".into(),
        iterations: 0,
        converged: true,
    };
    for nodes in cyclic_blocks(w) {
        let block = submatrix(w, &nodes);
        let (value, method, iters) = if block.n <= DENSE_MAX {
            (max_modulus(dense(&block))?, "dense_eigenvalues", 0)
        } else if block.nonnegative() {
            let (v, it) = power_shifted(&block)?;
            (v, "power_shifted", it)
        } else {
            let (v, it) = arnoldi(&block)?;
            (v, "arnoldi", it)
        };
        best.iterations += iters;
        if value >= best.value {
            (best.value, best.method) = (value, method.into());
        }
    }
    Ok(best)
}

/// `w` scaled by `target / ρ(w)`, with ρ re-measured on the scaled (`f32`) matrix.
pub fn scale_to_radius(w: &Csr, target: f64) -> Result<Scaled> {
    if !(target.is_finite() && target > 0.0) {
        return Err(Error::invalid(
            "model.spectral_radius",
            format!("target radius {target}: use a finite number > 0"),
        ));
    }
    let raw = spectral_radius(w)?;
    let scale = target / raw.value;
    if raw.value == 0.0 || !scale.is_finite() {
        return Err(Error::invalid(
            KEY,
            format!(
                "spectral radius {} ({}): the graph has no cycle (or only vanishing ones), so it \
                 cannot be scaled to radius {target}",
                raw.value, raw.method
            ),
        ));
    }
    let matrix = w.scaled(scale);
    let measured = spectral_radius(&matrix)?;
    if (measured.value - target).abs() > SCALE_TOL {
        return Err(Error::invalid(
            KEY,
            format!(
                "after scaling by {scale:e} the radius is {} ({}), not the target {target} \
                 (tolerance {SCALE_TOL:e})",
                measured.value, measured.method
            ),
        ));
    }
    Ok(Scaled {
        matrix,
        raw,
        scale,
        measured,
    })
}

/// Node lists (ascending) of the strongly connected components of the nonzero support that
/// contain a cycle: two or more nodes, or one node with a nonzero self-loop.
fn cyclic_blocks(w: &Csr) -> Vec<Vec<usize>> {
    let self_loop = |r: usize| {
        (w.row_ptr[r]..w.row_ptr[r + 1]).any(|e| w.col[e] as usize == r && w.val[e] != 0.0)
    };
    strong_components(w)
        .into_iter()
        .filter(|c| c.len() > 1 || self_loop(c[0]))
        .map(|mut c| {
            c.sort_unstable();
            c
        })
        .collect()
}

/// Tarjan's strongly connected components (iterative) of the graph `row -> col` over nonzero
/// entries; the components of the reversed graph are the same.
fn strong_components(w: &Csr) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    let n = w.n;
    let (mut index, mut low, mut on_stack) = (vec![UNSEEN; n], vec![0; n], vec![false; n]);
    let (mut stack, mut call, mut comps, mut next) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for root in 0..n {
        if index[root] == UNSEEN {
            call.push((root, w.row_ptr[root]));
        }
        while let Some(&(v, e)) = call.last() {
            if index[v] == UNSEEN {
                (index[v], low[v], next) = (next, next, next + 1);
                stack.push(v);
                on_stack[v] = true;
            }
            if e < w.row_ptr[v + 1] {
                if let Some(top) = call.last_mut() {
                    top.1 += 1;
                }
                let u = w.col[e] as usize;
                if w.val[e] != 0.0 && index[u] == UNSEEN {
                    call.push((u, w.row_ptr[u]));
                } else if w.val[e] != 0.0 && on_stack[u] {
                    low[v] = low[v].min(index[u]);
                }
                continue;
            }
            call.pop();
            if let Some(&(parent, _)) = call.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut comp = Vec::new();
                while let Some(u) = stack.pop() {
                    on_stack[u] = false;
                    comp.push(u);
                    if u == v {
                        break;
                    }
                }
                comps.push(comp);
            }
        }
    }
    comps
}

/// The block of `w` on `nodes` (ascending), renumbered `0..nodes.len()`, zeros dropped.
fn submatrix(w: &Csr, nodes: &[usize]) -> Csr {
    let mut local = vec![usize::MAX; w.n];
    for (i, &v) in nodes.iter().enumerate() {
        local[v] = i;
    }
    let mut triplets = Vec::new();
    for (i, &r) in nodes.iter().enumerate() {
        for e in w.row_ptr[r]..w.row_ptr[r + 1] {
            let c = local[w.col[e] as usize];
            if c != usize::MAX && w.val[e] != 0.0 {
                triplets.push((i, c, w.val[e]));
            }
        }
    }
    Csr::from_triplets(nodes.len(), triplets)
}

/// `w` as a dense f64 matrix.
fn dense(w: &Csr) -> DMatrix<f64> {
    DMatrix::from_row_slice(w.n, w.n, &w.to_dense()).map(f64::from)
}

/// The largest |eigenvalue| of a dense matrix (see [`moduli_dense`]).
fn max_modulus(m: DMatrix<f64>) -> Result<f64> {
    let best = moduli_dense(m)?.into_iter().fold(0.0f64, f64::max);
    (best.is_finite())
        .then_some(best)
        .ok_or_else(|| Error::invalid(KEY, "dense eigenvalues are not finite"))
}

/// Every |eigenvalue| of `w`, largest first (dense: `n <= DENSE_MAX`), e.g. to compare how
/// fast a connectome's and a control's spectra fall off.
pub fn eigen_moduli(w: &Csr) -> Result<Vec<f64>> {
    if w.n > DENSE_MAX {
        return Err(Error::invalid(
            KEY,
            format!(
                "all eigenvalues of a {0} x {0} matrix: only up to {DENSE_MAX} nodes (dense)",
                w.n
            ),
        ));
    }
    let mut m = moduli_dense(dense(w))?;
    m.sort_by(|a, b| b.total_cmp(a));
    Ok(m)
}

/// |eigenvalue| of a dense matrix from its real Schur form. nalgebra's QR iteration has no
/// exceptional shifts and stalls on some matrices (even cycle permutations), so it runs with a
/// sweep cap and, if that is hit, once more after a seeded random orthogonal similarity.
fn moduli_dense(m: DMatrix<f64>) -> Result<Vec<f64>> {
    let n = m.nrows();
    if n == 0 {
        return Ok(Vec::new());
    }
    let cap = 30 * n + 100;
    let schur = match Schur::try_new(m.clone(), f64::EPSILON, cap) {
        Some(s) => s,
        None => Schur::try_new(random_similarity(m), f64::EPSILON, cap).ok_or_else(|| {
            Error::invalid(
                KEY,
                format!(
                    "dense eigenvalues of a {n} x {n} block did not converge in {cap} QR \
                     sweeps, also after a random orthogonal similarity"
                ),
            )
        })?,
    };
    let (_, t) = schur.unpack();
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        if i + 1 < n && t[(i + 1, i)] != 0.0 {
            let (a, b, c, d) = (t[(i, i)], t[(i, i + 1)], t[(i + 1, i)], t[(i + 1, i + 1)]);
            let (half_trace, half_diff) = ((a + d) / 2.0, (a - d) / 2.0);
            let discr = b * c + half_diff * half_diff;
            if discr >= 0.0 {
                out.push((half_trace + discr.sqrt()).abs());
                out.push((half_trace - discr.sqrt()).abs());
            } else {
                let m = (half_trace * half_trace - discr).sqrt();
                out.extend([m, m]);
            }
            i += 2;
        } else {
            out.push(t[(i, i)].abs());
            i += 1;
        }
    }
    Ok(out)
}

/// `H₂H₁ M H₁H₂` for two Householder reflections from a seeded generator: same eigenvalues.
fn random_similarity(mut m: DMatrix<f64>) -> DMatrix<f64> {
    let n = m.nrows();
    let mut rng = StdRng::seed_from_u64(0);
    for _ in 0..2 {
        let v = DVector::from_fn(n, |_, _| rng.random_range(-1.0..1.0));
        let v = v.normalize();
        let vt_m = v.transpose() * &m;
        m -= (&v * vt_m) * 2.0;
        let m_v = &m * &v;
        m -= (m_v * v.transpose()) * 2.0;
    }
    m
}

/// ρ of an irreducible nonnegative block by power iteration on `B = W + sI` from the all-ones
/// vector, `s` the mean row sum (between the smallest and largest row sums, which bracket ρ).
/// `B` is primitive, so the Collatz–Wielandt bracket of the positive iterate closes on ρ(B).
/// Returns the value and the iterations.
fn power_shifted(w: &Csr) -> Result<(f64, usize)> {
    let n = w.n;
    let shift = w.total_weight() / n as f64;
    if shift.is_nan() || shift <= 0.0 {
        return Ok((0.0, 0));
    }
    let mut x = vec![1.0 / (n as f64).sqrt(); n];
    let mut y = vec![0.0; n];
    let mut estimates = (f64::NAN, f64::NAN);
    let (mut lo, mut hi) = (0.0, f64::INFINITY);
    for it in 1..=POWER_CAP {
        w.matvec(&x, &mut y);
        (lo, hi) = (f64::INFINITY, 0.0f64);
        let mut norm2 = 0.0;
        for (yi, &xi) in y.iter_mut().zip(&x) {
            *yi += shift * xi;
            let ratio = *yi / xi;
            lo = lo.min(ratio);
            hi = hi.max(ratio);
            norm2 += *yi * *yi;
        }
        let norm = norm2.sqrt();
        estimates = (estimates.1, norm - shift);
        if hi - lo <= POWER_TOL * hi {
            return Ok(((lo + hi) / 2.0 - shift, it));
        }
        for (xi, &yi) in x.iter_mut().zip(&y) {
            *xi = yi / norm;
        }
    }
    Err(Error::invalid(
        KEY,
        format!(
            "power_shifted did not converge in {POWER_CAP} iterations on a {n}-node block: last \
             two estimates {} and {}, Collatz–Wielandt bracket [{}, {}]",
            estimates.0,
            estimates.1,
            lo - shift,
            hi - shift
        ),
    ))
}

/// ρ of a signed block by Arnoldi (modified Gram–Schmidt, applied twice) from a seeded random
/// start: the largest Ritz modulus at Krylov dimensions 20, 40, … until two successive ones agree
/// to [`ARNOLDI_TOL`], or exactly once the Krylov space is invariant. Returns the value and the
/// matrix-vector products.
fn arnoldi(w: &Csr) -> Result<(f64, usize)> {
    let n = w.n;
    // Krylov bases above 320 vectors only while they stay under 2²⁵ values (256 MB).
    let dims: Vec<usize> = ARNOLDI_DIMS
        .iter()
        .filter(|&&m| m <= 320 || m * n <= 1 << 25)
        .map(|&m| m.min(n))
        .collect();
    let max_dim = dims.iter().copied().max().unwrap_or(0);
    let mut rng = StdRng::seed_from_u64(0);
    let start: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut basis = vec![normalized(start)];
    let mut h = DMatrix::<f64>::zeros(max_dim + 1, max_dim);
    let (mut steps, mut last) = (0, Vec::<(usize, f64)>::new());
    for &dim in &dims {
        let mut invariant = false;
        while steps < dim && !invariant {
            let mut v = vec![0.0; n];
            w.matvec(&basis[steps], &mut v);
            let before = norm(&v);
            for _ in 0..2 {
                for (j, q) in basis.iter().enumerate() {
                    let c = dot(q, &v);
                    h[(j, steps)] += c;
                    v.iter_mut().zip(q).for_each(|(vi, qi)| *vi -= c * qi);
                }
            }
            let beta = norm(&v);
            h[(steps + 1, steps)] = beta;
            steps += 1;
            invariant = beta <= 1e-12 * before || beta == 0.0;
            if !invariant && steps < max_dim {
                basis.push(v.iter().map(|x| x / beta).collect());
            }
        }
        let estimate = max_modulus(h.view((0, 0), (steps, steps)).into_owned())?;
        if invariant || steps == n {
            return Ok((estimate, steps));
        }
        if let Some(&(_, p)) = last.last() {
            if (estimate - p).abs() <= ARNOLDI_TOL * estimate {
                return Ok((estimate, steps));
            }
        }
        last.push((steps, estimate));
    }
    Err(Error::invalid(
        KEY,
        format!(
            "arnoldi did not converge on a {n}-node signed block: the largest Ritz modulus at the \
             last Krylov dimensions was {:?} (relative tolerance {ARNOLDI_TOL:e})",
            &last[last.len().saturating_sub(2)..]
        ),
    ))
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

fn normalized(mut a: Vec<f64>) -> Vec<f64> {
    let s = norm(&a);
    a.iter_mut().for_each(|x| *x /= s);
    a
}

#[cfg(test)]
#[path = "spectral_tests.rs"]
mod tests;
