//! The ask/tell loop a notebook cell can drive by hand: ask for trials (points of the space,
//! numbered from 0), run them however you like, tell their values; the loop keeps the budget,
//! the direction of the objective and which trials are still in flight.

use std::collections::BTreeMap;

use super::sampler::{Observation, Sampler};
use super::space::{ParamValue, Space};
use crate::error::{Error, Result};
use crate::metric::Mode;

/// Where a trial is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialState {
    /// Asked for and not told yet.
    Running,
    /// Told its value.
    Complete,
}

/// One point of the study.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// Its number in the study, from 0.
    pub id: usize,
    /// Unit coordinates (one per parameter, in key order).
    pub unit: Vec<f64>,
    /// The active parameters' values by config key.
    pub params: BTreeMap<String, ParamValue>,
    /// Running or complete.
    pub state: TrialState,
    /// The objective's value, once told.
    pub value: Option<f64>,
    /// Each constraint's value once told, feasible when `<= 0`.
    pub constraints: Vec<f64>,
}

impl Trial {
    /// Whether every constraint held (true until told otherwise).
    pub fn feasible(&self) -> bool {
        self.constraints.iter().all(|&c| c <= 0.0)
    }

    /// The overrides (`key=value`) that make this trial's run.
    pub fn overrides(&self) -> Vec<String> {
        Space::overrides(&self.params)
    }
}

/// An ask/tell loop over `space` with `sampler`, at most `budget` trials, optimising in `mode`.
pub struct AskTell {
    space: Space,
    sampler: Box<dyn Sampler>,
    budget: usize,
    mode: Mode,
    trials: Vec<Trial>,
}

impl AskTell {
    /// A loop with no trials yet.
    pub fn new(space: Space, sampler: Box<dyn Sampler>, budget: usize, mode: Mode) -> Self {
        AskTell {
            space,
            sampler,
            budget,
            mode,
            trials: Vec::new(),
        }
    }

    /// Up to `q` new trials (fewer when the budget runs out), now running.
    pub fn ask(&mut self, q: usize) -> Vec<Trial> {
        let first = self.trials.len();
        let q = q.min(self.budget - first);
        let observed: Vec<Observation> = self
            .trials
            .iter()
            .filter_map(|t| {
                t.value.map(|v| Observation {
                    id: t.id,
                    unit: t.unit.clone(),
                    loss: if self.mode == Mode::Max { -v } else { v },
                    constraints: t.constraints.clone(),
                })
            })
            .collect();
        let pending: Vec<Vec<f64>> = self
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Running)
            .map(|t| t.unit.clone())
            .collect();
        let points = self.sampler.ask(first, q, &observed, &pending);
        let new: Vec<Trial> = points
            .into_iter()
            .enumerate()
            .map(|(i, unit)| Trial {
                id: first + i,
                params: self.space.point(&unit),
                unit,
                state: TrialState::Running,
                value: None,
                constraints: Vec::new(),
            })
            .collect();
        self.trials.extend(new.iter().cloned());
        new
    }

    /// Records trial `id`'s objective `value`.
    pub fn tell(&mut self, id: usize, value: f64) -> Result<()> {
        self.tell_constrained(id, value, &[])
    }

    /// Records trial `id`'s objective `value` and its constraint values (feasible when each
    /// is `<= 0`; every trial of a study reports the same number of them).
    pub fn tell_constrained(&mut self, id: usize, value: f64, constraints: &[f64]) -> Result<()> {
        let trial = self
            .trials
            .get_mut(id)
            .ok_or_else(|| Error::Analysis(format!("trial {id} was never asked for")))?;
        if trial.state == TrialState::Complete {
            return Err(Error::Analysis(format!("trial {id} was already told")));
        }
        if !value.is_finite() {
            return Err(Error::Analysis(format!(
                "trial {id}: the value {value} is not finite"
            )));
        }
        if constraints.iter().any(|c| !c.is_finite()) {
            return Err(Error::Analysis(format!(
                "trial {id}: a constraint value in {constraints:?} is not finite"
            )));
        }
        trial.state = TrialState::Complete;
        trial.value = Some(value);
        trial.constraints = constraints.to_vec();
        Ok(())
    }

    /// Every trial so far, by id.
    pub fn trials(&self) -> &[Trial] {
        &self.trials
    }

    /// Whether every trial of the budget has been asked for and told.
    pub fn done(&self) -> bool {
        self.trials.len() == self.budget
            && self.trials.iter().all(|t| t.state == TrialState::Complete)
    }

    /// The best feasible complete trial in the objective's direction (the lowest id on ties).
    pub fn best(&self) -> Option<&Trial> {
        self.trials
            .iter()
            .filter(|t| t.feasible())
            .filter_map(|t| t.value.map(|v| (t, v)))
            .fold(None, |best: Option<(&Trial, f64)>, (t, v)| match best {
                Some((_, b)) if !self.mode.improves(v, Some(b), 0.0) => best,
                _ => Some((t, v)),
            })
            .map(|(t, _)| t)
    }
}
