//! Samplers behind one ask/tell interface, in the unit cube of a [`super::Space`].
//!
//! A sampler is a pure function of its seed, the trial numbers asked for, the finished
//! observations and the points in flight: a study resumed after a crash asks the same
//! questions and gets the same next points as one that never stopped.

use super::design;
use super::study::SamplerConfig;

/// A finished trial as samplers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Its trial number in the study, from 0.
    pub id: usize,
    /// Its unit coordinates.
    pub unit: Vec<f64>,
    /// The objective, oriented so that lower is better (a maximised metric is negated).
    pub loss: f64,
    /// Each constraint's value, feasible when `<= 0` (a bound `max: b` on `m` gives `m - b`).
    pub constraints: Vec<f64>,
}

impl Observation {
    /// Whether every constraint holds.
    pub fn feasible(&self) -> bool {
        self.constraints.iter().all(|&c| c <= 0.0)
    }

    /// The summed amount by which constraints are broken (0 when feasible).
    pub fn violation(&self) -> f64 {
        self.constraints.iter().map(|&c| c.max(0.0)).sum()
    }
}

/// Orders observations best first: feasible ones by loss, then infeasible ones by violation
/// (then loss); ties by trial number, so the order is a pure function of the observations.
pub fn rank(observed: &[Observation]) -> Vec<&Observation> {
    let mut ranked: Vec<&Observation> = observed.iter().collect();
    ranked.sort_by(|a, b| {
        let key = |o: &Observation| (!o.feasible(), o.violation(), o.loss);
        let (ka, kb) = (key(a), key(b));
        ka.0.cmp(&kb.0)
            .then(ka.1.total_cmp(&kb.1))
            .then(ka.2.total_cmp(&kb.2))
            .then(a.id.cmp(&b.id))
    });
    ranked
}

/// Points for trials `first .. first + q`, each from `propose(trial, pending)` with the points
/// proposed before it in this batch added to `pending`: how a model-based sampler fills a
/// batch of q points.
fn sequential(
    first: usize,
    q: usize,
    pending: &[Vec<f64>],
    mut propose: impl FnMut(usize, &[Vec<f64>]) -> Vec<f64>,
) -> Vec<Vec<f64>> {
    let mut pending = pending.to_vec();
    (first..first + q)
        .map(|trial| {
            let x = propose(trial, &pending);
            pending.push(x.clone());
            x
        })
        .collect()
}

/// The seed of the random numbers behind trial `trial`'s point.
pub(super) fn trial_seed(seed: u64, trial: usize) -> u64 {
    crate::data::encode::batch_seed(seed, SAMPLER_STREAM, trial)
}

/// Proposes points of the unit cube.
pub trait Sampler {
    /// Points for trials `first .. first + q` (numbered from 0 within the study), given the
    /// finished `observed` trials and the `pending` points still running.
    fn ask(
        &self,
        first: usize,
        q: usize,
        observed: &[Observation],
        pending: &[Vec<f64>],
    ) -> Vec<Vec<f64>>;
}

/// A sampler that proposes one trial's point at a time (given the points already proposed
/// in the same batch as pending); every such sampler asks batches the same way.
pub trait PointByPoint {
    /// The point of trial `trial` given the finished trials and the points in flight.
    fn propose(&self, trial: usize, observed: &[Observation], pending: &[Vec<f64>]) -> Vec<f64>;
}

impl<T: PointByPoint> Sampler for T {
    fn ask(
        &self,
        first: usize,
        q: usize,
        observed: &[Observation],
        pending: &[Vec<f64>],
    ) -> Vec<Vec<f64>> {
        sequential(first, q, pending, |trial, pending| {
            self.propose(trial, observed, pending)
        })
    }
}

/// The seed stream of sampled points (apart from the encoders' batch streams).
const SAMPLER_STREAM: u64 = 0x5a4d_504c_4552;

/// Independent uniform points: trial `i`'s point depends on the seed and `i` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomSampler {
    /// Axes of the cube.
    pub dims: usize,
    /// The study's seed.
    pub seed: u64,
}

impl PointByPoint for RandomSampler {
    fn propose(&self, trial: usize, _: &[Observation], _: &[Vec<f64>]) -> Vec<f64> {
        design::random(1, self.dims, trial_seed(self.seed, trial)).remove(0)
    }
}

/// A Latin hypercube over the whole budget; trial `i` gets row `i` (past the budget, uniform
/// points as [`RandomSampler`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LatinHypercubeSampler {
    rows: Vec<Vec<f64>>,
    beyond: RandomSampler,
}

impl LatinHypercubeSampler {
    /// The design of `budget` rows in `dims` axes drawn from `seed`.
    pub fn new(budget: usize, dims: usize, seed: u64) -> Self {
        LatinHypercubeSampler {
            rows: design::latin_hypercube(budget, dims, seed),
            beyond: RandomSampler { dims, seed },
        }
    }
}

impl PointByPoint for LatinHypercubeSampler {
    fn propose(&self, trial: usize, o: &[Observation], p: &[Vec<f64>]) -> Vec<f64> {
        match self.rows.get(trial) {
            Some(row) => row.clone(),
            None => self.beyond.propose(trial, o, p),
        }
    }
}

/// The sampler `cfg` names, for a cube of `dims` axes and a budget of `budget` trials.
pub fn build(cfg: &SamplerConfig, dims: usize, budget: usize, seed: u64) -> Box<dyn Sampler> {
    match *cfg {
        SamplerConfig::Random => Box::new(RandomSampler { dims, seed }),
        SamplerConfig::LatinHypercube => Box::new(LatinHypercubeSampler::new(budget, dims, seed)),
        SamplerConfig::Tpe {
            startup,
            candidates,
        } => Box::new(super::tpe::TpeSampler {
            dims,
            seed,
            startup,
            candidates,
        }),
        SamplerConfig::Gp {
            initial,
            trust_region,
        } => Box::new(super::bo::GpSampler {
            dims,
            seed,
            initial,
            trust_region,
        }),
        SamplerConfig::CmaEs { sigma0, population } => Box::new(super::cmaes::CmaEsSampler::new(
            dims, seed, sigma0, population,
        )),
    }
}

/// The first `n` rows of a seeded Latin hypercube of `n` rows, row `i` for trial `i`: the
/// initial design of the model-based samplers.
pub(super) fn initial_design(trial: usize, n: usize, dims: usize, seed: u64) -> Vec<f64> {
    design::latin_hypercube(n, dims, seed ^ SAMPLER_STREAM).swap_remove(trial)
}
