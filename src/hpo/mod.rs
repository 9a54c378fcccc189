//! Hyper-parameter studies (issue 17, in progress): the study config, the typed search space
//! and the initial designs. Samplers, pruners, the journal and the dispatch modes build on
//! these.

pub mod asktell;
pub mod bo;
pub mod cmaes;
pub mod design;
pub mod functions;
pub mod gp;
mod math;
pub mod sampler;
pub mod space;
pub mod study;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_regret;
pub mod tpe;

pub use asktell::{AskTell, Trial, TrialState};
pub use bo::GpSampler;
pub use cmaes::CmaEsSampler;
pub use sampler::{LatinHypercubeSampler, Observation, RandomSampler, Sampler};
pub use space::{Param, ParamValue, Space, When};
pub use study::{Budget, Constraint, SamplerConfig, StudyConfig, StudyObjective};
pub use tpe::TpeSampler;
