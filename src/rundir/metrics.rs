//! `metrics.json`: one run's summary, versioned.

use serde::{Deserialize, Serialize};

/// Version of the `metrics.json` / run-directory format written by this build.
pub const SCHEMA_VERSION: u32 = 1;

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
}

impl RunStatus {
    /// The status as written in `metrics.json` (`running`, `completed`, `failed`, `killed`).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Killed => "killed",
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
        ] {
            assert_eq!(serde_json::to_value(s)?, s.as_str());
        }
        Ok(())
    }
}
