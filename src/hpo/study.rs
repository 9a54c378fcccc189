//! A study: the experiment to tune, its search space, the objective and constraints, the
//! budget, the sampler, the workers and the seed; `configs/hpo/<name>.yaml` or the same struct
//! in Rust. [`StudyConfig::check`] refuses at load what could not run: an unknown or
//! out-of-range parameter (the experiment is composed at the space's corners and centre, so the
//! config's own checks apply and the error names `space.<key>`), an objective or constraint
//! that is not a validation metric of the task, a budget of nothing.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::pruner::{ActivityRule, PrunerConfig};
use super::space::Space;
use crate::config::ConfigStore;
use crate::error::{Error, Result};
use crate::experiment::Experiment;
use crate::metric::{MetricSpec, Mode};

/// What a study optimises: a validation metric of the task and its direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyObjective {
    /// `val_<metric>` of the task (`val_acc`, `val_position_rmse`).
    pub metric: String,
    /// `max` or `min`; the metric's own direction when left out.
    #[serde(default)]
    pub mode: Option<Mode>,
}

/// A trial is feasible when `metric` is at most `max` (or at least `min`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraint {
    /// `val_<metric>` of the task.
    pub metric: String,
    /// Upper bound.
    #[serde(default)]
    pub max: Option<f64>,
    /// Lower bound.
    #[serde(default)]
    pub min: Option<f64>,
}

/// How much a study may spend; it stops at the first limit reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Trials in total, across every worker.
    pub trials: usize,
    /// Wall-clock limit of the whole study, hours.
    #[serde(default)]
    pub wall_time_h: Option<f64>,
    /// Stop after this many finished trials without a better objective.
    #[serde(default)]
    pub patience: Option<usize>,
}

/// How points are proposed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SamplerConfig {
    /// Independent uniform points in the unit cube.
    #[default]
    Random,
    /// A Latin hypercube of the whole budget.
    LatinHypercube,
    /// Multivariate tree-structured Parzen estimator; running trials count as the worst
    /// value seen (constant liar).
    Tpe {
        /// Trials of a Latin hypercube before the model is used.
        #[serde(default = "ten")]
        startup: usize,
        /// Points drawn from the good trials' density per proposal.
        #[serde(default = "twenty_four")]
        candidates: usize,
    },
    /// Gaussian-process Bayesian optimisation: Matern-5/2 ARD kernel, log expected
    /// improvement times the probability of feasibility; running trials are believed at the
    /// posterior mean (kriging believer).
    Gp {
        /// Trials of a Latin hypercube before the model is used.
        #[serde(default = "ten")]
        initial: usize,
        /// Search a TuRBO trust region around the incumbent instead of the whole cube.
        #[serde(default)]
        trust_region: bool,
    },
    /// CMA-ES from the centre of the cube.
    CmaEs {
        /// Initial step size in unit coordinates.
        #[serde(default = "sixth")]
        sigma0: f64,
        /// Points per generation (default `4 + floor(3 ln d)`).
        #[serde(default)]
        population: Option<usize>,
    },
}

/// A project's iteration, as `projects/<project>/iterations/<number>/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyIteration {
    /// The project's slug.
    pub project: String,
    /// The iteration's number.
    pub number: u32,
}

/// When the sampler is asked for points (hpo_snn's MPI modes, on worker processes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DispatchMode {
    /// A batch of `workers` points; the next only when every one has finished.
    Synchronous,
    /// One new point for each finished trial.
    Asynchronous,
    /// A batch of `workers` points whenever at most `threshold` points wait for a worker, so
    /// workers never idle while the sampler refits.
    #[default]
    Flexible,
}

/// How trials are handed to workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dispatch {
    /// Synchronous, asynchronous or flexible.
    #[serde(default)]
    pub mode: DispatchMode,
    /// Flexible mode's bound on points waiting for a worker.
    #[serde(default = "one")]
    pub threshold: usize,
    /// Seconds between a running trial's heartbeats.
    #[serde(default = "ten_f")]
    pub heartbeat_s: f64,
    /// Seconds without a heartbeat after which a trial is queued again.
    #[serde(default = "sixty")]
    pub grace_s: f64,
}

impl Default for Dispatch {
    fn default() -> Self {
        Dispatch {
            mode: DispatchMode::default(),
            threshold: 1,
            heartbeat_s: 10.0,
            grace_s: 60.0,
        }
    }
}

fn ten_f() -> f64 {
    10.0
}

fn sixty() -> f64 {
    60.0
}

fn ten() -> usize {
    10
}

fn twenty_four() -> usize {
    24
}

fn sixth() -> f64 {
    1.0 / 6.0
}

/// A study, as `configs/hpo/<name>.yaml` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    /// The experiment to tune (`configs/experiment/<name>.yaml`).
    pub experiment: String,
    /// Overrides every trial gets before its sampled ones (`data.limit=5000`).
    #[serde(default)]
    pub overrides: Vec<String>,
    /// The parameters, by config key.
    pub space: Space,
    /// What to optimise (default: the experiment's objective).
    #[serde(default)]
    pub objective: Option<StudyObjective>,
    /// Bounds a trial must satisfy to count.
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    /// How much to spend.
    pub budget: Budget,
    /// How points are proposed.
    #[serde(default)]
    pub sampler: SamplerConfig,
    /// How trials are compared epoch by epoch and stopped early.
    #[serde(default)]
    pub pruner: PrunerConfig,
    /// hpo_snn's spike-activity rule: stop a silent net, record the excess as a constraint.
    #[serde(default)]
    pub activity: Option<ActivityRule>,
    /// When new points are proposed and how stale workers are detected.
    #[serde(default)]
    pub dispatch: Dispatch,
    /// The research-state iteration the study belongs to (recorded in its `experiments.yaml`
    /// under `studies:` when the study starts).
    #[serde(default)]
    pub iteration: Option<StudyIteration>,
    /// Trials run at once.
    #[serde(default = "one")]
    pub workers: usize,
    /// Seed of the sampler (trials' own seeds come from the experiment).
    #[serde(default)]
    pub seed: u64,
}

fn one() -> usize {
    1
}

impl StudyConfig {
    /// Reads `configs/hpo/<name>.yaml` of `store` and checks it against its experiment.
    pub fn load(store: &ConfigStore, name: &str) -> Result<StudyConfig> {
        let path = store.root().join("hpo").join(format!("{name}.yaml"));
        let text = std::fs::read_to_string(&path).map_err(Error::io("reading", &path))?;
        let study = StudyConfig::from_yaml(&text, &path)?;
        study.check(store)?;
        Ok(study)
    }

    /// Parses a study (`path` names the source in errors); see [`StudyConfig::check`].
    pub fn from_yaml(text: &str, path: &Path) -> Result<StudyConfig> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let study: StudyConfig =
            serde_path_to_error::deserialize(de).map_err(|e| Error::ConfigParse {
                path: path.to_path_buf(),
                message: format!("at `{}`: {}", e.path(), e.inner()),
            })?;
        study.space.check()?;
        Ok(study)
    }

    /// Checks the study against its experiment (see the module doc); returns the objective
    /// it optimises, with its direction.
    pub fn check(&self, store: &ConfigStore) -> Result<(String, Mode)> {
        if self.budget.trials == 0 {
            return Err(Error::invalid("budget.trials", "0; use an integer >= 1"));
        }
        if let Some(h) = self.budget.wall_time_h {
            if !(h.is_finite() && h > 0.0) {
                return Err(Error::invalid(
                    "budget.wall_time_h",
                    format!("{h}; use hours > 0"),
                ));
            }
        }
        if self.budget.patience == Some(0) {
            return Err(Error::invalid(
                "budget.patience",
                "0; use an integer >= 1 or remove it",
            ));
        }
        if self.workers == 0 || self.workers > self.budget.trials {
            return Err(Error::invalid(
                "workers",
                format!(
                    "{}; use 1 to budget.trials ({})",
                    self.workers, self.budget.trials
                ),
            ));
        }
        let base = Experiment::compose_in(store, &self.experiment, &self.overrides)?;
        for corner in [0.0, 0.5, 1.0 - 1e-12] {
            let point = self.space.point(&vec![corner; self.space.dims()]);
            let mut all = self.overrides.clone();
            all.extend(Space::overrides(&point));
            Experiment::compose_in(store, &self.experiment, &all).map_err(|e| match e {
                Error::InvalidConfig { key, message } => match self.space_key(&key, &message) {
                    Some(param) => Error::invalid(format!("space.{param}"), message),
                    None => Error::InvalidConfig { key, message },
                },
                other => other,
            })?;
        }
        let (task, _, _) = crate::data::task_for(&base.config().data)?;
        let metrics = task.metrics();
        let objective = match &self.objective {
            Some(o) => {
                let spec = val_metric(&metrics, &o.metric, "objective.metric")?;
                (o.metric.clone(), o.mode.unwrap_or(spec.mode))
            }
            None => {
                let name = format!("val_{}", task.default_objective());
                let spec = val_metric(&metrics, &name, "objective.metric")?;
                (name, spec.mode)
            }
        };
        let d = &self.dispatch;
        if !(d.heartbeat_s.is_finite() && d.heartbeat_s > 0.0 && d.grace_s > d.heartbeat_s) {
            return Err(Error::invalid(
                "dispatch",
                format!(
                    "heartbeat_s {} and grace_s {}; use heartbeat_s > 0 and grace_s > heartbeat_s",
                    d.heartbeat_s, d.grace_s
                ),
            ));
        }
        if let Some(a) = &self.activity {
            if !(0.0..=1.0).contains(&a.max_fraction) {
                return Err(Error::invalid(
                    "activity.max_fraction",
                    format!("{}; use a fraction in [0, 1]", a.max_fraction),
                ));
            }
        }
        for (i, c) in self.constraints.iter().enumerate() {
            val_metric(&metrics, &c.metric, &format!("constraints[{i}].metric"))?;
            if c.max.is_some() == c.min.is_some() {
                return Err(Error::invalid(
                    format!("constraints[{i}]"),
                    "give exactly one bound, max or min",
                ));
            }
        }
        Ok(objective)
    }
}

impl StudyConfig {
    /// The space parameter a config error on `key` is about: `key` itself, or the parameter
    /// under `key` whose next segment the message names (an unknown field `hiden` of `model`).
    fn space_key(&self, key: &str, message: &str) -> Option<&String> {
        if let Some((k, _)) = self.space.params.get_key_value(key) {
            return Some(k);
        }
        let prefix = format!("{key}.");
        let under: Vec<&String> = self
            .space
            .params
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .collect();
        let named = under.iter().copied().find(|k| {
            let next = k[prefix.len()..].split('.').next().unwrap_or_default();
            message.contains(&format!("`{next}`"))
        });
        named.or(match under.as_slice() {
            [only] => Some(*only),
            _ => None,
        })
    }
}

/// The declared metric `name` = `val_<m>` names, or an error on `key` listing the valid ones.
fn val_metric<'a>(metrics: &'a [MetricSpec], name: &str, key: &str) -> Result<&'a MetricSpec> {
    name.strip_prefix("val_")
        .and_then(|m| metrics.iter().find(|s| s.name == m))
        .ok_or_else(|| {
            let valid: Vec<String> = metrics.iter().map(|s| format!("val_{}", s.name)).collect();
            Error::invalid(
                key,
                format!(
                    "`{name}` is not a validation metric of the task (valid: {}); a study never looks at the test split",
                    valid.join(", ")
                ),
            )
        })
}
