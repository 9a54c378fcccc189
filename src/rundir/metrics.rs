//! `metrics.json`: one run's summary, versioned.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metric::{MetricSpec, Mode, NamedValue, Objective};

/// Version of the `metrics.json` / run-directory format written by this build.
///
/// - 1: classification only: `best_val_acc`, `final_val_acc`, `test_acc`, `test_loss`.
/// - 2: adds `objective` (the metric that picked the best checkpoint, its direction, best value
///   and epoch), `declared` (every metric the task declares, with direction and unit) and
///   `results` (each declared metric per split at the best checkpoint). Classification runs
///   still fill the version-1 fields, so both read alike.
pub const SCHEMA_VERSION: u32 = 2;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Training (or the process died while training: resumable).
    Running,
    /// Finished; test accuracy measured.
    Completed,
    /// Stopped by an error (see `error`); resumable from the last checkpoint.
    Failed,
    /// Stopped before the end on purpose (epoch budget, wall-time limit); resumable.
    Killed,
    /// Stopped by a study's pruner; final, never resumed.
    Pruned,
}

impl RunStatus {
    /// The status as written in `metrics.json` (`running`, `completed`, `failed`, `killed`,
    /// `pruned`).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Killed => "killed",
            RunStatus::Pruned => "pruned",
        }
    }
}

/// The contents of `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Format version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Experiment name.
    pub experiment: String,
    /// Variant name.
    pub variant: String,
    /// Model kind (`ffnn`, `cnn`, ...).
    pub model: String,
    /// Dataset name.
    pub dataset: String,
    /// Seed.
    pub seed: u64,
    /// Run status.
    pub status: RunStatus,
    /// Best validation accuracy over the epochs done.
    pub best_val_acc: Option<f64>,
    /// Epoch (1-based) of `best_val_acc`.
    pub best_epoch: Option<usize>,
    /// Validation accuracy of the last epoch done.
    pub final_val_acc: Option<f64>,
    /// Test accuracy of the best checkpoint, measured once at the end.
    pub test_acc: Option<f64>,
    /// Test loss of the best checkpoint.
    pub test_loss: Option<f64>,
    /// Epochs completed.
    pub epochs_done: usize,
    /// Epochs configured.
    pub epochs_planned: usize,
    /// Whether early stopping ended the run.
    pub early_stopped: bool,
    /// Number of trainable parameters.
    pub params: usize,
    /// Training wall time over all invocations, in seconds.
    pub wall_time_s: f64,
    /// RFC 3339 time the run first started.
    pub started_at: String,
    /// RFC 3339 time the run finished (completed, failed or killed).
    pub finished_at: Option<String>,
    /// Host that last ran it.
    pub host: String,
    /// `git rev-parse HEAD` of the working directory, when in a git repository.
    pub git_commit: Option<String>,
    /// Number of times training was resumed from a checkpoint.
    pub resumed: usize,
    /// The error that failed the run.
    pub error: Option<String>,
    /// The metric that picks the best checkpoint (schema 2; `None` in version-1 files: see
    /// [`Metrics::objective_or_legacy`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<Objective>,
    /// Every metric the task declares (schema 2), without split prefix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub declared: Vec<MetricSpec>,
    /// Declared metrics at the best checkpoint by split (`val`, `test`, `test_t200`, ...), then
    /// by metric name (schema 2; see [`Metrics::result_columns`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub results: BTreeMap<String, BTreeMap<String, f64>>,
}

impl Metrics {
    /// The objective: the recorded one, or for a version-1 file the one it used (`val_acc`,
    /// higher is better, `best_val_acc` at `best_epoch`).
    pub fn objective_or_legacy(&self) -> Objective {
        self.objective.clone().unwrap_or_else(|| Objective {
            metric: "val_acc".to_string(),
            mode: Mode::Max,
            unit: String::new(),
            best: self.best_val_acc,
            best_epoch: self.best_epoch,
        })
    }

    /// Every result as a `<split>_<metric>` column; a version-1 file gives
    /// `val_acc` (the best), `test_acc` and `test_loss` where recorded.
    pub fn result_columns(&self) -> Vec<NamedValue> {
        if self.objective.is_some() || !self.results.is_empty() {
            return self
                .results
                .iter()
                .flat_map(|(split, values)| {
                    values
                        .iter()
                        .map(move |(metric, v)| NamedValue::new(format!("{split}_{metric}"), *v))
                })
                .collect();
        }
        [
            ("val_acc", self.best_val_acc),
            ("test_acc", self.test_acc),
            ("test_loss", self.test_loss),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.map(|v| NamedValue::new(name, v)))
        .collect()
    }

    /// The declared metrics: the recorded ones, or for a version-1 file accuracy (a fraction,
    /// higher is better) and loss (lower is better).
    pub fn declared_or_legacy(&self) -> Vec<MetricSpec> {
        if !self.declared.is_empty() {
            return self.declared.clone();
        }
        vec![
            MetricSpec::new("acc", Mode::Max, "fraction"),
            MetricSpec::new("loss", Mode::Min, ""),
        ]
    }

    /// Direction and unit of a split-qualified column (`test_position_rmse`), from the
    /// declared metrics; `None` when no declared metric ends the name.
    pub fn column_spec(&self, column: &str) -> Option<MetricSpec> {
        self.declared_or_legacy()
            .into_iter()
            .filter(|spec| {
                column == spec.name
                    || column
                        .strip_suffix(spec.name.as_str())
                        .is_some_and(|head| head.ends_with('_'))
            })
            .max_by_key(|spec| spec.name.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_are_the_serialized_ones() -> Result<(), serde_json::Error> {
        for s in [
            RunStatus::Running,
            RunStatus::Completed,
            RunStatus::Failed,
            RunStatus::Killed,
            RunStatus::Pruned,
        ] {
            assert_eq!(serde_json::to_value(s)?, s.as_str());
        }
        Ok(())
    }
}
