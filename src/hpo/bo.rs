//! Gaussian-process Bayesian optimisation: after a Latin-hypercube initial design, each point
//! maximises log expected improvement over the best feasible loss plus the log probability
//! that every constraint holds (one process per constraint; before any feasible point, the
//! probability alone). Points still running are believed at the posterior mean. With
//! `trust_region`, candidates come from a TuRBO box around the incumbent whose size doubles
//! after 3 successes and halves after `max(4, d)` failures (replayed from the trials in id
//! order, so the sampler stays a pure function of what it is shown).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use super::gp::Gp;
use super::math::{log_h, log_norm_cdf};
use super::sampler::{initial_design, rank, trial_seed, Observation, PointByPoint};

/// Uniform candidates scored per proposal.
const CANDIDATES: usize = 1000;
/// Perturbations around each of the best trials.
const LOCAL_CANDIDATES: usize = 40;
/// Hill-climbing steps from each of the best candidates.
const REFINE_STEPS: usize = 40;
/// Trust-region side lengths: initial, smallest before a restart, largest.
const TR_LENGTH: (f64, f64, f64) = (0.8, 0.0078125, 1.6);

/// GP-BO over `dims` unit axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpSampler {
    /// Axes of the cube.
    pub dims: usize,
    /// The study's seed.
    pub seed: u64,
    /// Trials of the initial Latin hypercube.
    pub initial: usize,
    /// Whether candidates come from a TuRBO trust region.
    pub trust_region: bool,
}

/// The surrogate of one proposal: objective and constraint processes, incumbent loss.
struct Surrogate {
    objective: Gp,
    constraints: Vec<Gp>,
    best: Option<f64>,
}

impl Surrogate {
    /// Fits the processes to `observed`, believing `pending` at the posterior mean.
    fn fit(observed: &[Observation], pending: &[Vec<f64>]) -> Surrogate {
        let x: Vec<Vec<f64>> = observed.iter().map(|o| o.unit.clone()).collect();
        let y: Vec<f64> = observed.iter().map(|o| o.loss).collect();
        let n_constraints = observed.first().map_or(0, |o| o.constraints.len());
        let constraints = (0..n_constraints)
            .map(|c| {
                let v: Vec<f64> = observed.iter().map(|o| o.constraints[c]).collect();
                Gp::fit(&x, &v).believe(pending)
            })
            .collect();
        let best = observed
            .iter()
            .filter(|o| o.feasible())
            .map(|o| o.loss)
            .fold(None, |b: Option<f64>, v| Some(b.map_or(v, |b| b.min(v))));
        Surrogate {
            objective: Gp::fit(&x, &y).believe(pending),
            constraints,
            best,
        }
    }

    /// Log expected improvement plus log probability of feasibility at each of `points`.
    fn scores(&self, points: &[Vec<f64>]) -> Vec<f64> {
        let mut scores = vec![0.0; points.len()];
        for gp in &self.constraints {
            for (s, (m, v)) in scores.iter_mut().zip(gp.predict_many(points)) {
                *s += log_norm_cdf(-m / v.sqrt());
            }
        }
        if let Some(best) = self.best {
            for (s, (m, v)) in scores.iter_mut().zip(self.objective.predict_many(points)) {
                let sd = v.sqrt();
                *s += sd.ln() + log_h((best - m) / sd);
            }
        }
        scores
    }

    /// The score of one point.
    fn score(&self, p: &[f64]) -> f64 {
        self.scores(std::slice::from_ref(&p.to_vec()))[0]
    }
}

/// A box `[lo, hi]` of the unit cube.
struct Region {
    lo: Vec<f64>,
    hi: Vec<f64>,
}

impl Region {
    fn cube(dims: usize) -> Region {
        Region {
            lo: vec![0.0; dims],
            hi: vec![1.0; dims],
        }
    }

    fn uniform(&self, rng: &mut StdRng) -> Vec<f64> {
        self.lo
            .iter()
            .zip(&self.hi)
            .map(|(l, h)| l + (h - l) * rng.random::<f64>())
            .collect()
    }

    /// `p` moved by normal steps of `scale` per axis, clamped into the box.
    fn perturb(&self, p: &[f64], scale: &[f64], rng: &mut StdRng) -> Vec<f64> {
        p.iter()
            .zip(scale)
            .zip(self.lo.iter().zip(&self.hi))
            .map(|((x, s), (l, h))| {
                let z: f64 = StandardNormal.sample(rng);
                (x + s * z).clamp(*l, *h)
            })
            .collect()
    }
}

impl GpSampler {
    /// The trust region's side after replaying `observed` past the initial design (TuRBO-1).
    fn trust_length(&self, observed: &[Observation]) -> f64 {
        let (init, min, max) = TR_LENGTH;
        let fail_tol = self.dims.max(4);
        let mut sorted: Vec<&Observation> = observed.iter().collect();
        sorted.sort_by_key(|o| o.id);
        let (mut length, mut wins, mut losses) = (init, 0, 0);
        let mut best: Option<&Observation> = None;
        for o in sorted {
            let better = best.is_none_or(|b| match (o.feasible(), b.feasible()) {
                (true, false) => true,
                (true, true) => o.loss < b.loss - 1e-3 * b.loss.abs(),
                (false, false) => o.violation() < b.violation(),
                (false, true) => false,
            });
            if better {
                best = Some(o);
            }
            if o.id < self.initial {
                continue;
            }
            if better {
                (wins, losses) = (wins + 1, 0);
            } else {
                (wins, losses) = (0, losses + 1);
            }
            if wins == 3 {
                (length, wins) = ((2.0 * length).min(max), 0);
            } else if losses == fail_tol {
                (length, losses) = (length / 2.0, 0);
            }
            if length < min {
                length = init;
            }
        }
        length
    }

    /// The candidate box: the cube, or the trust region around the incumbent, stretched
    /// along each axis by its relative length scale.
    fn region(&self, observed: &[Observation], gp: &Gp) -> Region {
        if !self.trust_region {
            return Region::cube(self.dims);
        }
        let centre = &rank(observed)[0].unit;
        let ls = &gp.kernel.lengthscales;
        let mean_log = ls.iter().map(|l| l.ln()).sum::<f64>() / ls.len() as f64;
        let length = self.trust_length(observed);
        let half: Vec<f64> = ls
            .iter()
            .map(|l| 0.5 * length * (l.ln() - mean_log).exp())
            .collect();
        Region {
            lo: centre
                .iter()
                .zip(&half)
                .map(|(c, h)| (c - h).max(0.0))
                .collect(),
            hi: centre
                .iter()
                .zip(&half)
                .map(|(c, h)| (c + h).min(1.0))
                .collect(),
        }
    }
}

impl PointByPoint for GpSampler {
    fn propose(&self, trial: usize, observed: &[Observation], pending: &[Vec<f64>]) -> Vec<f64> {
        if trial < self.initial {
            return initial_design(trial, self.initial, self.dims, self.seed);
        }
        let mut rng = StdRng::seed_from_u64(trial_seed(self.seed, trial));
        if observed.len() < 2 {
            return Region::cube(self.dims).uniform(&mut rng);
        }
        let model = Surrogate::fit(observed, pending);
        let region = self.region(observed, &model.objective);
        let scale: Vec<f64> = model
            .objective
            .kernel
            .lengthscales
            .iter()
            .map(|l| (0.1 * l).clamp(1e-3, 0.2))
            .collect();
        let mut candidates: Vec<Vec<f64>> =
            (0..CANDIDATES).map(|_| region.uniform(&mut rng)).collect();
        for o in rank(observed).iter().take(5) {
            for _ in 0..LOCAL_CANDIDATES {
                candidates.push(region.perturb(&o.unit, &scale, &mut rng));
            }
        }
        let mut scored: Vec<(f64, Vec<f64>)> = model
            .scores(&candidates)
            .into_iter()
            .zip(candidates)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.truncate(3);
        for (score, point) in &mut scored {
            let mut step: Vec<f64> = scale.clone();
            for _ in 0..REFINE_STEPS {
                let next = region.perturb(point, &step, &mut rng);
                let s = model.score(&next);
                if s > *score {
                    (*score, *point) = (s, next);
                } else {
                    step.iter_mut().for_each(|v| *v *= 0.85);
                }
            }
        }
        scored
            .into_iter()
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, p)| p)
            .unwrap_or_else(|| vec![0.5; self.dims])
    }
}
