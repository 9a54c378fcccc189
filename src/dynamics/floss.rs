//! Gradient flossing (Engelken, NeurIPS 2023): optimizer steps on `mean_i (λ_i - target)²` over
//! the first `k` Lyapunov exponents, differentiated through the trajectory, the Jacobians and
//! every QR, on the network's own parameters with a separate optimizer whose moments persist
//! across episodes. The schedule (before training, periodic, adaptive) is declared in
//! [`FlossingConfig`].

use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use super::lyapunov::{exponents, flossing_loss};
use super::system::DynamicsOptions;
use crate::config::FlossingConfig;
use crate::error::{Error, Result};
use crate::nn::Network;
use crate::train::optim::{AnyOptimizer, OptimizerState};

/// What flossing has done so far in a run (saved in checkpoints).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlossCounters {
    /// Flossing steps taken.
    pub steps: u64,
    /// Periodic episodes run.
    pub periodic_episodes: usize,
    /// Adaptive episodes triggered.
    pub adaptive_episodes: usize,
    /// Whether the steps before training ran.
    pub pre_training_done: bool,
}

/// One flossing step's loss and exponents.
#[derive(Debug, Clone, PartialEq)]
pub struct FlossStep {
    /// `mean_i (λ_i - target)²` before the update.
    pub loss: f64,
    /// `λ_1 .. λ_k` before the update, per step.
    pub exponents: Vec<f64>,
}

/// The flossing optimizer, its parameters and the schedule's progress.
#[derive(Debug)]
pub struct Flosser {
    cfg: FlossingConfig,
    optimizer: AnyOptimizer,
    params: Vec<(String, Var)>,
    /// Progress of the schedule.
    pub counters: FlossCounters,
}

/// Errors naming the key of a schedule or parameter list that cannot mean what it says.
fn check_schedule(cfg: &FlossingConfig) -> Result<()> {
    let bad = |key: &str, msg: &str| Err(Error::invalid(format!("dynamics.flossing.{key}"), msg));
    if cfg
        .periodic
        .as_ref()
        .is_some_and(|p| p.every_training_steps == 0)
    {
        return bad("periodic.every_training_steps", "0; use at least 1");
    }
    if cfg
        .adaptive
        .as_ref()
        .is_some_and(|a| a.check_every_training_steps == 0)
    {
        return bad("adaptive.check_every_training_steps", "0; use at least 1");
    }
    if cfg.spectrum.sequences != 1 {
        return bad(
            "spectrum.sequences",
            "each flossing step uses one training sequence; leave it at 1",
        );
    }
    if let Some(names) = &cfg.parameters {
        if names.is_empty() {
            return bad(
                "parameters",
                "an empty list flosses nothing; list parameter names or leave the key out for all",
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
            return bad("parameters", &format!("`{dup}` is listed twice"));
        }
    }
    Ok(())
}

/// The prefix of the flossing optimizer's tensors in a checkpoint.
pub const CHECKPOINT_PREFIX: &str = "flossing.";

impl Flosser {
    /// The flosser of `cfg` over `params` (those named in `cfg.parameters`, or all).
    pub fn new(cfg: &FlossingConfig, params: &[(String, Var)]) -> Result<Self> {
        check_schedule(cfg)?;
        let chosen: Vec<(String, Var)> = match &cfg.parameters {
            None => params.to_vec(),
            Some(names) => names
                .iter()
                .map(|name| {
                    params
                        .iter()
                        .find(|(n, _)| n == name)
                        .cloned()
                        .ok_or_else(|| {
                            let valid: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
                            Error::invalid(
                                "dynamics.flossing.parameters",
                                format!("`{name}` is not a parameter; valid: {}", valid.join(", ")),
                            )
                        })
                })
                .collect::<Result<_>>()?,
        };
        let optimizer = AnyOptimizer::from_config(
            &cfg.optimizer,
            chosen.iter().map(|(_, v)| v.clone()).collect(),
        )?;
        Ok(Flosser {
            cfg: cfg.clone(),
            optimizer,
            params: chosen,
            counters: FlossCounters::default(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &FlossingConfig {
        &self.cfg
    }

    /// The exponents on the trajectory driven by `input` (the network's encoded input
    /// `[T, 1, ...]`), tracked for a gradient or not.
    fn exponents_of(
        &self,
        net: &dyn Network,
        input: &Tensor,
        track: bool,
    ) -> Result<super::lyapunov::Exponents> {
        let opts = DynamicsOptions {
            reset_in_jacobian: self.cfg.spectrum.reset_in_jacobian,
            ..DynamicsOptions::f64()
        };
        let system = super::system_of(net, &opts)?;
        let drive = system.drive(input)?;
        super::lyapunov::check(
            &self.cfg.spectrum,
            system.state_size(),
            drive.dim(0)?,
            "dynamics.flossing.spectrum",
        )?;
        Ok(exponents(
            &*system,
            &system.initial_state()?,
            &drive,
            &self.cfg.spectrum,
            track,
        )?)
    }

    /// `λ_1` on the trajectory of `input`, without a gradient.
    pub fn largest(&self, net: &dyn Network, input: &Tensor) -> Result<f64> {
        let e = self.exponents_of(net, input, false)?;
        Ok(e.values.get(0)?.to_scalar::<f64>()?)
    }

    /// One flossing step on the trajectory of `input` (encoded `[T, 1, ...]`): the loss, its
    /// gradient through every step and QR, and one optimizer update.
    pub fn step(&mut self, net: &dyn Network, input: &Tensor) -> Result<FlossStep> {
        let e = self.exponents_of(net, input, true)?;
        let loss = flossing_loss(&e, self.cfg.target)?;
        let value = loss.to_scalar::<f64>()?;
        if !value.is_finite() {
            return Err(Error::Analysis(format!(
                "flossing step {}: the loss is {value} (a tangent direction collapsed, R_ii = 0: a surrogate that is zero away from the threshold, a zero reset or a saturated tanh); the parameters were not updated",
                self.counters.steps + 1
            )));
        }
        let grads = loss.backward()?;
        self.optimizer.step(&grads)?;
        net.after_update(&self.params)?;
        self.counters.steps += 1;
        Ok(FlossStep {
            loss: value,
            exponents: e.values.to_vec1::<f64>()?,
        })
    }

    /// Flossing steps the schedule asks for before the training step that follows
    /// `steps_done` training steps; the adaptive rule measures `λ_1` of `net` on the input
    /// `probe` gives.
    pub fn due(
        &mut self,
        steps_done: u64,
        net: &dyn Network,
        probe: impl FnOnce() -> Result<Tensor>,
    ) -> Result<usize> {
        let mut due = 0;
        if !self.counters.pre_training_done {
            self.counters.pre_training_done = true;
            due += self.cfg.steps_before_training;
        }
        if let Some(p) = &self.cfg.periodic {
            let every = p.every_training_steps as u64;
            if steps_done > 0
                && steps_done.is_multiple_of(every)
                && self.counters.periodic_episodes < p.episodes
            {
                self.counters.periodic_episodes += 1;
                due += p.steps_per_episode;
            }
        }
        if let Some(a) = &self.cfg.adaptive {
            let every = a.check_every_training_steps as u64;
            let (threshold, steps) = (a.threshold, a.steps_per_episode);
            if steps_done > 0
                && steps_done.is_multiple_of(every)
                && (self.largest(net, &probe()?)? - self.cfg.target).abs() > threshold
            {
                self.counters.adaptive_episodes += 1;
                due += steps;
            }
        }
        Ok(due)
    }

    /// The optimizer's tensors for a checkpoint, named under [`CHECKPOINT_PREFIX`].
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let state = self.optimizer.state();
        let mut out = Vec::new();
        for (slot, values) in &state.slots {
            for ((name, _), value) in self.params.iter().zip(values) {
                if let Some(t) = value {
                    out.push((format!("{CHECKPOINT_PREFIX}{slot}.{name}"), t.clone()));
                }
            }
        }
        out
    }

    /// Restores the optimizer from a checkpoint's tensors and the counters (whose `steps` is
    /// also the optimizer's step count).
    pub fn restore(&mut self, counters: FlossCounters, tensors: &[(String, Tensor)]) -> Result<()> {
        let mut state = self.optimizer.state();
        state.step = counters.steps;
        for (slot, values) in &mut state.slots {
            for ((name, _), value) in self.params.iter().zip(values.iter_mut()) {
                let key = format!("{CHECKPOINT_PREFIX}{slot}.{name}");
                *value = tensors
                    .iter()
                    .find(|(n, _)| *n == key)
                    .map(|(_, t)| t.clone());
            }
        }
        self.optimizer.load_state(&OptimizerState { ..state })?;
        self.counters = counters;
        Ok(())
    }
}
