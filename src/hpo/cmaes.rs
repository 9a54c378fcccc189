//! CMA-ES (Hansen 2016, "The CMA evolution strategy: a tutorial") in the unit cube, from the
//! centre with step size `sigma0`. Generation `g` holds trials `g * lambda .. (g + 1) *
//! lambda`; the state of a generation is replayed from the earlier ones' observations, so the
//! sampler is a pure function of what it is shown. Points leaving the cube are clamped into it
//! and the update uses the clamped points. A trial not finished when the next generation is
//! asked for counts as the worst of its generation.

use nalgebra::{DMatrix, DVector, SymmetricEigen};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use super::sampler::{rank, trial_seed, Observation, PointByPoint};

/// CMA-ES over `dims` unit axes.
#[derive(Debug, Clone, PartialEq)]
pub struct CmaEsSampler {
    dims: usize,
    seed: u64,
    sigma0: f64,
    lambda: usize,
}

/// The distribution of one generation.
struct State {
    mean: DVector<f64>,
    sigma: f64,
    cov: DMatrix<f64>,
    /// `B D`: maps a standard normal draw to a step of covariance `C`.
    transform: DMatrix<f64>,
    /// `C^(-1/2)`.
    inv_sqrt: DMatrix<f64>,
    path_c: DVector<f64>,
    path_s: DVector<f64>,
}

impl State {
    fn new(dims: usize, sigma0: f64) -> State {
        State {
            mean: DVector::from_element(dims, 0.5),
            sigma: sigma0,
            cov: DMatrix::identity(dims, dims),
            transform: DMatrix::identity(dims, dims),
            inv_sqrt: DMatrix::identity(dims, dims),
            path_c: DVector::zeros(dims),
            path_s: DVector::zeros(dims),
        }
    }

    /// Recomputes `B D` and `C^(-1/2)` from the covariance.
    fn decompose(&mut self) {
        let sym = (&self.cov + self.cov.transpose()) * 0.5;
        let eigen = SymmetricEigen::new(sym);
        let d = eigen.eigenvalues.map(|v| v.max(1e-20).sqrt());
        let b = eigen.eigenvectors;
        self.transform = &b * DMatrix::from_diagonal(&d);
        self.inv_sqrt = &b * DMatrix::from_diagonal(&d.map(|v| 1.0 / v)) * b.transpose();
    }
}

impl CmaEsSampler {
    /// A sampler over `dims` axes; `population` defaults to `4 + floor(3 ln dims)`.
    pub fn new(dims: usize, seed: u64, sigma0: f64, population: Option<usize>) -> Self {
        let lambda = population
            .unwrap_or(4 + (3.0 * (dims.max(1) as f64).ln()).floor() as usize)
            .max(2);
        CmaEsSampler {
            dims,
            seed,
            sigma0,
            lambda,
        }
    }

    /// Trial `trial`'s point under `state`.
    fn point(&self, state: &State, trial: usize) -> DVector<f64> {
        let mut rng = StdRng::seed_from_u64(trial_seed(self.seed, trial));
        let z = DVector::from_fn(self.dims, |_, _| StandardNormal.sample(&mut rng));
        (&state.mean + state.sigma * (&state.transform * z)).map(|v: f64| v.clamp(0.0, 1.0))
    }

    /// The state of generation `generation`, replayed from the observations.
    fn state(&self, generation: usize, observed: &[Observation]) -> State {
        let n = self.dims as f64;
        let mu = self.lambda / 2;
        let raw: Vec<f64> = (1..=mu)
            .map(|i| (mu as f64 + 0.5).ln() - (i as f64).ln())
            .collect();
        let total: f64 = raw.iter().sum();
        let w: Vec<f64> = raw.iter().map(|v| v / total).collect();
        let mueff = 1.0 / w.iter().map(|v| v * v).sum::<f64>();
        let cc = (4.0 + mueff / n) / (n + 4.0 + 2.0 * mueff / n);
        let cs = (mueff + 2.0) / (n + mueff + 5.0);
        let c1 = 2.0 / ((n + 1.3).powi(2) + mueff);
        let cmu = (1.0 - c1).min(2.0 * (mueff - 2.0 + 1.0 / mueff) / ((n + 2.0).powi(2) + mueff));
        let damps = 1.0 + 2.0 * (((mueff - 1.0) / (n + 1.0)).sqrt() - 1.0).max(0.0) + cs;
        let chi_n = n.sqrt() * (1.0 - 1.0 / (4.0 * n) + 1.0 / (21.0 * n * n));
        let mut s = State::new(self.dims, self.sigma0);
        for g in 0..generation {
            let ids = g * self.lambda..(g + 1) * self.lambda;
            let points: Vec<DVector<f64>> = ids.clone().map(|t| self.point(&s, t)).collect();
            let done: Vec<Observation> = observed
                .iter()
                .filter(|o| ids.contains(&o.id))
                .cloned()
                .collect();
            let mut order: Vec<usize> = rank(&done).iter().map(|o| o.id - ids.start).collect();
            let missing: Vec<usize> = (0..self.lambda).filter(|k| !order.contains(k)).collect();
            order.extend(missing);
            let old = s.mean.clone();
            let steps: Vec<DVector<f64>> = order[..mu]
                .iter()
                .map(|&k| (&points[k] - &old) / s.sigma)
                .collect();
            let y_w = steps
                .iter()
                .zip(&w)
                .fold(DVector::zeros(self.dims), |acc, (y, wi)| acc + y * *wi);
            s.mean = &old + &y_w * s.sigma;
            s.path_s =
                &s.path_s * (1.0 - cs) + (&s.inv_sqrt * &y_w) * (cs * (2.0 - cs) * mueff).sqrt();
            let norm_s = s.path_s.norm();
            let hsig = norm_s / (1.0 - (1.0 - cs).powi(2 * (g as i32 + 1))).sqrt() / chi_n
                < 1.4 + 2.0 / (n + 1.0);
            let h = if hsig { 1.0 } else { 0.0 };
            s.path_c = &s.path_c * (1.0 - cc) + &y_w * (h * (cc * (2.0 - cc) * mueff).sqrt());
            let rank_mu = steps
                .iter()
                .zip(&w)
                .fold(DMatrix::zeros(self.dims, self.dims), |acc, (y, wi)| {
                    acc + y * y.transpose() * *wi
                });
            s.cov = &s.cov * (1.0 - c1 - cmu)
                + (&s.path_c * s.path_c.transpose() + &s.cov * ((1.0 - h) * cc * (2.0 - cc))) * c1
                + rank_mu * cmu;
            s.sigma *= ((cs / damps) * (norm_s / chi_n - 1.0)).exp();
            s.decompose();
        }
        s
    }
}

impl PointByPoint for CmaEsSampler {
    fn propose(&self, trial: usize, observed: &[Observation], _: &[Vec<f64>]) -> Vec<f64> {
        let state = self.state(trial / self.lambda, observed);
        self.point(&state, trial).iter().copied().collect()
    }
}
