//! Hyper-parameter studies: a study config (experiment, typed space, objective, constraints,
//! budget, sampler, pruner, dispatch), samplers behind one ask/tell interface (random, Latin
//! hypercube, TPE, GP-BO, CMA-ES), pruners, and the runner: one coordinator journaling every
//! event, workers (local processes or job-array tasks) pulling trials through files in the
//! study directory. Every trial is a normal run directory.

pub mod asktell;
pub mod bo;
pub mod cmaes;
pub mod coordinator;
pub mod design;
pub mod export;
pub mod figures;
pub mod files;
pub mod functions;
pub mod gp;
pub mod journal;
mod math;
pub mod pruner;
pub mod report;
pub mod runner;
pub mod sampler;
pub mod space;
pub mod study;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_regret;
#[cfg(test)]
mod tests_runner;
pub mod tpe;
pub mod worker;

pub use asktell::{AskTell, Trial, TrialState};
pub use bo::GpSampler;
pub use cmaes::CmaEsSampler;
pub use journal::{StudyLog, TrialRecord, TrialStatus};
pub use pruner::{ActivityRule, PrunerConfig};
pub use runner::{best_trial, Study};
pub use sampler::{LatinHypercubeSampler, Observation, RandomSampler, Sampler};
pub use space::{Param, ParamValue, Space, When};
pub use study::{
    Budget, Constraint, Dispatch, DispatchMode, SamplerConfig, StudyConfig, StudyIteration,
    StudyObjective,
};
pub use tpe::TpeSampler;
