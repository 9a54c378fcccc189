//! The multivariate tree-structured Parzen estimator (Bergstra et al. 2011; Falkner et al.
//! 2018 for the joint kernel), in the unit cube.
//!
//! Finished trials are ranked (feasible by loss, then infeasible by violation) and split into
//! the best `gamma(n) = min(ceil(n / 10), 25)` and the rest. Each group becomes a mixture of
//! a broad prior kernel and one product of truncated normals per trial; a proposal is the
//! best of `candidates` draws from the good density by the ratio `l(x) / g(x)`. Running trials
//! join the bad group at the worst loss seen (constant liar), so workers asking at the same
//! time are sent elsewhere.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use super::math::{log_norm_cdf, log_sum_exp};
use super::sampler::{initial_design, rank, trial_seed, Observation, PointByPoint};

/// TPE over `dims` unit axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TpeSampler {
    /// Axes of the cube.
    pub dims: usize,
    /// The study's seed.
    pub seed: u64,
    /// Trials of the initial Latin hypercube.
    pub startup: usize,
    /// Draws from the good density per proposal.
    pub candidates: usize,
}

/// A mixture of products of normals truncated to `[0, 1]` on every axis.
struct Parzen {
    /// Kernel centres; the first is the prior's (the cube's centre).
    centres: Vec<Vec<f64>>,
    /// Per-axis bandwidth of each kernel.
    sigmas: Vec<Vec<f64>>,
    /// Normalised mixture weights.
    weights: Vec<f64>,
}

impl Parzen {
    /// The estimator of `points` in `dims` axes, with a prior kernel of width 1 at the centre.
    fn new(points: &[&[f64]], dims: usize) -> Parzen {
        let n = points.len().max(1) as f64;
        let bandwidth =
            (0.2 * n.powf(-1.0 / (dims as f64 + 4.0))).clamp(1.0 / (n + 1.0).min(100.0), 1.0);
        let mut centres = vec![vec![0.5; dims]];
        let mut sigmas = vec![vec![1.0; dims]];
        for p in points {
            centres.push(p.to_vec());
            sigmas.push(vec![bandwidth; dims]);
        }
        let weights = vec![1.0 / (points.len() + 1) as f64; points.len() + 1];
        Parzen {
            centres,
            sigmas,
            weights,
        }
    }

    /// A draw: pick a kernel by weight, then each axis from its truncated normal.
    fn sample(&self, rng: &mut StdRng) -> Vec<f64> {
        let mut pick = rng.random::<f64>();
        let mut k = self.weights.len() - 1;
        for (i, w) in self.weights.iter().enumerate() {
            if pick < *w {
                k = i;
                break;
            }
            pick -= w;
        }
        self.centres[k]
            .iter()
            .zip(&self.sigmas[k])
            .map(|(&mu, &sigma)| loop {
                let z: f64 = StandardNormal.sample(rng);
                let x = mu + sigma * z;
                if (0.0..=1.0).contains(&x) {
                    break x;
                }
            })
            .collect()
    }

    /// The log density at `x`.
    fn log_pdf(&self, x: &[f64]) -> f64 {
        let terms: Vec<f64> = (0..self.weights.len())
            .map(|k| {
                let mut log = self.weights[k].ln();
                for ((&xi, &mu), &sigma) in x.iter().zip(&self.centres[k]).zip(&self.sigmas[k]) {
                    let z = (xi - mu) / sigma;
                    let mass = log_diff_cdf((1.0 - mu) / sigma, -mu / sigma);
                    log += -0.5 * z * z - (sigma * (2.0 * std::f64::consts::PI).sqrt()).ln() - mass;
                }
                log
            })
            .collect();
        log_sum_exp(&terms)
    }
}

/// `log(Phi(a) - Phi(b))` for `a > b`.
fn log_diff_cdf(a: f64, b: f64) -> f64 {
    let (la, lb) = (log_norm_cdf(a), log_norm_cdf(b));
    la + (-(lb - la).exp()).ln_1p().max(f64::MIN)
}

impl PointByPoint for TpeSampler {
    fn propose(&self, trial: usize, observed: &[Observation], pending: &[Vec<f64>]) -> Vec<f64> {
        if trial < self.startup {
            return initial_design(trial, self.startup, self.dims, self.seed);
        }
        if observed.is_empty() {
            return super::design::random(1, self.dims, trial_seed(self.seed, trial)).remove(0);
        }
        let ranked = rank(observed);
        let n_good = observed.len().div_ceil(10).min(25);
        let good: Vec<&[f64]> = ranked[..n_good].iter().map(|o| &o.unit[..]).collect();
        let bad: Vec<&[f64]> = ranked[n_good..]
            .iter()
            .map(|o| &o.unit[..])
            .chain(pending.iter().map(|p| &p[..]))
            .collect();
        let (l, g) = (Parzen::new(&good, self.dims), Parzen::new(&bad, self.dims));
        let mut rng = StdRng::seed_from_u64(trial_seed(self.seed, trial));
        (0..self.candidates.max(1))
            .map(|_| {
                let x = l.sample(&mut rng);
                (l.log_pdf(&x) - g.log_pdf(&x), x)
            })
            .fold(
                None,
                |best: Option<(f64, Vec<f64>)>, (score, x)| match best {
                    Some((b, _)) if b >= score => best,
                    _ => Some((score, x)),
                },
            )
            .map(|(_, x)| x)
            .unwrap_or_else(|| vec![0.5; self.dims])
    }
}
