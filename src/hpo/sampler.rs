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
    /// Its unit coordinates.
    pub unit: Vec<f64>,
    /// The objective, oriented so that lower is better (a maximised metric is negated).
    pub loss: f64,
    /// Whether it satisfied every constraint.
    pub feasible: bool,
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

impl Sampler for RandomSampler {
    fn ask(&self, first: usize, q: usize, _: &[Observation], _: &[Vec<f64>]) -> Vec<Vec<f64>> {
        (first..first + q)
            .map(|i| {
                let seed = crate::data::encode::batch_seed(self.seed, SAMPLER_STREAM, i);
                design::random(1, self.dims, seed).remove(0)
            })
            .collect()
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

impl Sampler for LatinHypercubeSampler {
    fn ask(&self, first: usize, q: usize, o: &[Observation], p: &[Vec<f64>]) -> Vec<Vec<f64>> {
        (first..first + q)
            .map(|i| match self.rows.get(i) {
                Some(row) => row.clone(),
                None => self.beyond.ask(i, 1, o, p).remove(0),
            })
            .collect()
    }
}

/// The sampler `cfg` names, for a cube of `dims` axes and a budget of `budget` trials.
pub fn build(cfg: SamplerConfig, dims: usize, budget: usize, seed: u64) -> Box<dyn Sampler> {
    match cfg {
        SamplerConfig::Random => Box::new(RandomSampler { dims, seed }),
        SamplerConfig::LatinHypercube => Box::new(LatinHypercubeSampler::new(budget, dims, seed)),
    }
}
