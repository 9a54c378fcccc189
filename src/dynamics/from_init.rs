//! Flossing from initialisation alone (no task training): the network of an experiment is
//! built fresh, flossed for a number of steps as its `dynamics.flossing` says, and its spectrum
//! measured before and after (GradientFlossing's Fig. 1: a flat block of `k` exponents near the
//! target, then a cliff).

use super::monitor::{spectrum, SpectrumEstimate};
use super::training::TrainingDynamics;
use crate::config::{ExperimentConfig, SpectrumConfig};
use crate::data::encode::batch_seed;
use crate::error::{Error, Result};
use crate::train::{build_run, VAL_STREAM};

/// The spectrum of a freshly built network before and after flossing.
#[derive(Debug, Clone, PartialEq)]
pub struct FlossedFromInit {
    /// Before flossing.
    pub before: SpectrumEstimate,
    /// After flossing.
    pub after: SpectrumEstimate,
    /// Flossing steps taken.
    pub steps: usize,
    /// The flossing loss of each step (before its update).
    pub losses: Vec<f64>,
}

/// Flosses `cfg`'s freshly built network for `steps` steps with its `dynamics.flossing`
/// settings, measuring `measure` before and after on the first validation sequences.
pub fn floss_from_init(
    cfg: &ExperimentConfig,
    steps: usize,
    measure: &SpectrumConfig,
) -> Result<FlossedFromInit> {
    let mut floss_cfg = cfg
        .dynamics
        .clone()
        .filter(|d| d.flossing.is_some())
        .ok_or_else(|| {
            Error::invalid(
                "dynamics.flossing",
                "absent: the experiment declares no flossing",
            )
        })?;
    if let Some(f) = floss_cfg.flossing.as_mut() {
        f.steps_before_training = steps;
        f.periodic = None;
        f.adaptive = None;
    }
    floss_cfg.spectrum = None;
    let run = build_run(cfg, None)?;
    let seed = batch_seed(cfg.seed, VAL_STREAM, 0);
    let val = &*run.data.val;
    let measure_now = || spectrum(&*run.net, val, measure, seed, &run.device, "measure");
    let before = measure_now()?;
    let mut dynamics = TrainingDynamics::new(Some(&floss_cfg), &*run.net, &run.params, cfg.seed)?
        .ok_or_else(|| Error::invalid("dynamics", "absent"))?;
    let losses = dynamics.before_step_losses(0, &*run.net, &*run.data.train, &run.device)?;
    let after = measure_now()?;
    Ok(FlossedFromInit {
        before,
        after,
        steps,
        losses,
    })
}
