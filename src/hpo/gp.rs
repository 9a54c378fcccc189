//! Gaussian-process regression in the unit cube: a Matern-5/2 kernel with one length scale
//! per axis (ARD), a signal variance and a noise variance, fitted by maximising the log
//! marginal likelihood (with a dimension-scaled log-normal prior on the length scales,
//! Hvarfner et al. 2024) by Adam in log space; predictions from the Cholesky factor.

use nalgebra::{Cholesky, DMatrix, DVector, Dyn};

/// `sqrt(5)`.
const SQRT5: f64 = 2.236_067_977_499_79;
/// Adam steps of a fit.
const FIT_STEPS: usize = 60;
/// Bounds of the log hyper-parameters: length scale, signal variance, noise variance.
const LOG_LENGTH: (f64, f64) = (-4.6, 3.0);
const LOG_SIGNAL: (f64, f64) = (-3.0, 3.0);
const LOG_NOISE: (f64, f64) = (-13.8, 0.0);

/// The kernel's hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Kernel {
    /// Length scale per axis, unit coordinates.
    pub lengthscales: Vec<f64>,
    /// Signal variance (of the standardised targets).
    pub signal: f64,
    /// Noise variance (of the standardised targets).
    pub noise: f64,
}

impl Kernel {
    /// `k(a, b)` without noise, and the per-axis factor of its derivative in `log l_d`:
    /// `dk/dlog l_d = g * (a_d - b_d)^2 / l_d^2`.
    fn eval(&self, a: &[f64], b: &[f64]) -> (f64, f64) {
        let r2: f64 = a
            .iter()
            .zip(b)
            .zip(&self.lengthscales)
            .map(|((x, y), l)| ((x - y) / l).powi(2))
            .sum();
        let r = r2.sqrt();
        let e = (-SQRT5 * r).exp();
        let k = self.signal * (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * e;
        let g = self.signal * 5.0 / 3.0 * (1.0 + SQRT5 * r) * e;
        (k, g)
    }
}

/// A fitted process: training points, factor and weights.
#[derive(Debug, Clone)]
pub struct Gp {
    /// The hyper-parameters.
    pub kernel: Kernel,
    x: Vec<Vec<f64>>,
    y: Vec<f64>,
    chol: Cholesky<f64, Dyn>,
    alpha: DVector<f64>,
    y_mean: f64,
    y_std: f64,
}

/// The kernel matrix of `x` with `noise` on the diagonal.
fn gram(kernel: &Kernel, x: &[Vec<f64>]) -> DMatrix<f64> {
    let n = x.len();
    DMatrix::from_fn(n, n, |i, j| {
        kernel.eval(&x[i], &x[j]).0 + if i == j { kernel.noise } else { 0.0 }
    })
}

/// A Cholesky factor of `k`, adding jitter to the diagonal until it is positive definite.
fn factor(mut k: DMatrix<f64>) -> Cholesky<f64, Dyn> {
    let mut jitter = 1e-10;
    loop {
        if let Some(c) = Cholesky::new(k.clone()) {
            return c;
        }
        for i in 0..k.nrows() {
            k[(i, i)] += jitter;
        }
        jitter *= 10.0;
    }
}

/// The negative log marginal likelihood (plus prior) of standardised `y` and its gradient in
/// the log hyper-parameters `[log l_1 .. log l_d, log signal, log noise]`.
fn objective(theta: &[f64], x: &[Vec<f64>], y: &DVector<f64>) -> (f64, Vec<f64>) {
    let d = theta.len() - 2;
    let kernel = Kernel {
        lengthscales: theta[..d].iter().map(|t| t.exp()).collect(),
        signal: theta[d].exp(),
        noise: theta[d + 1].exp(),
    };
    let n = x.len();
    // one pass over the pairs: the kernel and its length-scale derivative factor
    let (mut k, mut g) = (DMatrix::zeros(n, n), DMatrix::zeros(n, n));
    for i in 0..n {
        for j in 0..=i {
            let (kv, gv) = kernel.eval(&x[i], &x[j]);
            (k[(i, j)], k[(j, i)], g[(i, j)]) = (kv, kv, gv);
        }
    }
    let signal_part = k.clone();
    for i in 0..n {
        k[(i, i)] += kernel.noise;
    }
    let chol = factor(k);
    let alpha = chol.solve(y);
    let log_det: f64 = chol
        .l_dirty()
        .diagonal()
        .iter()
        .map(|v| v.ln())
        .sum::<f64>()
        * 2.0;
    let mut value = 0.5 * y.dot(&alpha) + 0.5 * log_det;
    // d(-log p)/d theta = -tr(W dK) / 2 with W = alpha alpha^T - K^-1 (symmetric)
    let w = &alpha * alpha.transpose() - chol.inverse();
    let mut grad = vec![0.0; d + 2];
    for i in 0..n {
        for j in 0..i {
            let wg = w[(i, j)] * g[(i, j)];
            for (a, grad_a) in grad[..d].iter_mut().enumerate() {
                *grad_a -= wg * ((x[i][a] - x[j][a]) / kernel.lengthscales[a]).powi(2);
            }
        }
    }
    grad[d] = -0.5 * w.component_mul(&signal_part).sum();
    grad[d + 1] = -0.5 * w.diagonal().sum() * kernel.noise;
    // log-normal prior on each length scale: mean sqrt(2) + ln(d) / 2, sd sqrt(3)
    let (mu, var) = (std::f64::consts::SQRT_2 + 0.5 * (d as f64).ln(), 3.0);
    for a in 0..d {
        value += (theta[a] - mu).powi(2) / (2.0 * var);
        grad[a] += (theta[a] - mu) / var;
    }
    (value, grad)
}

impl Gp {
    /// Fits a process to points `x` (unit coordinates) and targets `y` (at least one).
    pub fn fit(x: &[Vec<f64>], y: &[f64]) -> Gp {
        let d = x.first().map_or(0, Vec::len);
        let n = y.len() as f64;
        let y_mean = y.iter().sum::<f64>() / n;
        let y_std = (y.iter().map(|v| (v - y_mean).powi(2)).sum::<f64>() / n)
            .sqrt()
            .max(1e-12);
        let ys = DVector::from_iterator(y.len(), y.iter().map(|v| (v - y_mean) / y_std));
        let mut theta = vec![(0.5f64).ln(); d];
        theta.extend([0.0, (1e-3f64).ln()]);
        let bounds = |i: usize| match i {
            i if i < d => LOG_LENGTH,
            i if i == d => LOG_SIGNAL,
            _ => LOG_NOISE,
        };
        let (mut m, mut v) = (vec![0.0; d + 2], vec![0.0; d + 2]);
        let (b1, b2, lr) = (0.9f64, 0.999f64, 0.1);
        for step in 1..=FIT_STEPS {
            let (_, grad) = objective(&theta, x, &ys);
            for i in 0..theta.len() {
                m[i] = b1 * m[i] + (1.0 - b1) * grad[i];
                v[i] = b2 * v[i] + (1.0 - b2) * grad[i] * grad[i];
                let mh = m[i] / (1.0 - b1.powi(step as i32));
                let vh = v[i] / (1.0 - b2.powi(step as i32));
                let (lo, hi) = bounds(i);
                theta[i] = (theta[i] - lr * mh / (vh.sqrt() + 1e-8)).clamp(lo, hi);
            }
        }
        let kernel = Kernel {
            lengthscales: theta[..d].iter().map(|t| t.exp()).collect(),
            signal: theta[d].exp(),
            noise: theta[d + 1].exp(),
        };
        Gp::with_kernel(kernel, x.to_vec(), y, y_mean, y_std)
    }

    /// The process with fixed `kernel` on `x` and `y`, standardised by `y_mean` and `y_std`.
    fn with_kernel(kernel: Kernel, x: Vec<Vec<f64>>, y: &[f64], y_mean: f64, y_std: f64) -> Gp {
        let ys = DVector::from_iterator(y.len(), y.iter().map(|v| (v - y_mean) / y_std));
        let chol = factor(gram(&kernel, &x));
        let alpha = chol.solve(&ys);
        Gp {
            kernel,
            x,
            y: y.to_vec(),
            chol,
            alpha,
            y_mean,
            y_std,
        }
    }

    /// The same process also conditioned on `extra` points at their posterior means (the
    /// kriging believer for points still running); hyper-parameters are kept.
    pub fn believe(&self, extra: &[Vec<f64>]) -> Gp {
        if extra.is_empty() {
            return self.clone();
        }
        let mut x = self.x.clone();
        let mut y = self.y.clone();
        for p in extra {
            y.push(self.predict(p).0);
            x.push(p.clone());
        }
        Gp::with_kernel(self.kernel.clone(), x, &y, self.y_mean, self.y_std)
    }

    /// Posterior mean and variance (of the latent function, original units) at `p`.
    pub fn predict(&self, p: &[f64]) -> (f64, f64) {
        self.predict_many(std::slice::from_ref(&p.to_vec()))[0]
    }

    /// Posterior means and variances at each of `points`, with one triangular solve.
    pub fn predict_many(&self, points: &[Vec<f64>]) -> Vec<(f64, f64)> {
        let ks = DMatrix::from_fn(self.x.len(), points.len(), |i, j| {
            self.kernel.eval(&self.x[i], &points[j]).0
        });
        let means = ks.tr_mul(&self.alpha);
        let v = self
            .chol
            .l_dirty()
            .solve_lower_triangular(&ks)
            .unwrap_or_else(|| DMatrix::zeros(ks.nrows(), ks.ncols()));
        (0..points.len())
            .map(|j| {
                let var = (self.kernel.signal - v.column(j).norm_squared()).max(1e-12);
                (
                    means[j] * self.y_std + self.y_mean,
                    var * self.y_std * self.y_std,
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_likelihood_gradient_matches_finite_differences() {
        let x: Vec<Vec<f64>> = (0..9)
            .map(|i| vec![(i as f64 * 0.37) % 1.0, (i as f64 * 0.61) % 1.0])
            .collect();
        let y = DVector::from_iterator(9, x.iter().map(|p| (3.0 * p[0]).sin() + p[1]));
        let theta = [-0.7, 0.2, 0.3, -4.0];
        let (_, grad) = objective(&theta, &x, &y);
        for i in 0..theta.len() {
            let h = 1e-5;
            let (mut up, mut down) = (theta, theta);
            up[i] += h;
            down[i] -= h;
            let fd = (objective(&up, &x, &y).0 - objective(&down, &x, &y).0) / (2.0 * h);
            assert!(
                (fd - grad[i]).abs() < 1e-4 * (1.0 + fd.abs()),
                "{i}: {fd} vs {}",
                grad[i]
            );
        }
    }

    #[test]
    fn a_fitted_process_interpolates_and_is_unsure_away_from_data() {
        let x: Vec<Vec<f64>> = (0..12).map(|i| vec![i as f64 / 11.0]).collect();
        let y: Vec<f64> = x.iter().map(|p| (6.0 * p[0]).sin()).collect();
        let gp = Gp::fit(&x, &y);
        for (p, t) in x.iter().zip(&y) {
            let (m, v) = gp.predict(p);
            assert!((m - t).abs() < 0.05 && v < 0.01, "{m} vs {t}, var {v}");
        }
        let (m, _) = gp.predict(&[0.5 / 11.0]);
        assert!((m - (6.0f64 * 0.5 / 11.0).sin()).abs() < 0.05, "{m}");
        let believed = gp.believe(&[vec![0.3]]);
        assert!(believed.predict(&[0.3]).1 < gp.predict(&[0.3]).1 + 1e-12);
        assert!((believed.predict(&x[3]).0 - y[3]).abs() < 0.05);
    }
}
