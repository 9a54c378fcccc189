//! The job ledger: every submission to a cluster (id, script, commands, sweep points) and each
//! state it was seen in, with times, in one YAML file written atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// Version of the ledger format.
pub const LEDGER_VERSION: u32 = 1;

/// Where a job stands, in scheduler-neutral terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted by the scheduler, not yet seen by a status query.
    Submitted,
    /// Waiting (queued or held).
    Queued,
    /// Running.
    Running,
    /// Finished with exit status 0.
    Completed,
    /// Finished with a non-zero exit status of its own.
    Failed,
    /// Cancelled (by the user or an administrator).
    Cancelled,
    /// Killed for exceeding its walltime (resumable: resubmit).
    KilledWalltime,
    /// Ended by a node or scheduler failure (resumable: resubmit).
    NodeFailed,
    /// Not reported by the scheduler, or a state this build does not know.
    Unknown,
}

impl JobState {
    /// Whether the job will not change state again.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            JobState::Submitted | JobState::Queued | JobState::Running | JobState::Unknown
        )
    }

    /// Whether a resubmission can finish the job's runs (they resume from checkpoints).
    pub fn is_resubmittable(self) -> bool {
        matches!(self, JobState::KilledWalltime | JobState::NodeFailed)
    }
}

/// One observed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// RFC 3339 time it was first seen.
    pub at: String,
    /// The state.
    pub state: JobState,
    /// The scheduler's comment or exit status, when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerJob {
    /// Scheduler job id.
    pub id: String,
    /// Cluster profile name.
    pub cluster: String,
    /// Queue or partition.
    pub queue: String,
    /// Remote path of the job script.
    pub script: String,
    /// One command per run.
    pub commands: Vec<String>,
    /// The sweep point of each command (its overrides).
    pub sweep_points: Vec<String>,
    /// Job id this one resubmits, when it is a resubmission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resubmits: Option<String>,
    /// States seen, oldest first (the first is `submitted`).
    pub transitions: Vec<Transition>,
}

impl LedgerJob {
    /// The latest state.
    pub fn state(&self) -> JobState {
        self.transitions
            .last()
            .map_or(JobState::Unknown, |t| t.state)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerFile {
    version: u32,
    jobs: Vec<LedgerJob>,
}

/// The ledger file and its jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    path: PathBuf,
    jobs: Vec<LedgerJob>,
}

impl Ledger {
    /// Opens the ledger at `path` (empty when the file does not exist yet). A file that cannot
    /// be read is an error naming it; it is never overwritten.
    pub fn open(path: impl Into<PathBuf>) -> Result<Ledger> {
        let path = path.into();
        if !path.exists() {
            return Ok(Ledger {
                path,
                jobs: Vec::new(),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(Error::io("reading", &path))?;
        let file: LedgerFile = serde_yaml_ng::from_str(&text).map_err(|e| Error::ConfigParse {
            path: path.clone(),
            message: format!("not a job ledger ({e}); fix or move it, it is left as it is"),
        })?;
        if file.version != LEDGER_VERSION {
            return Err(Error::ConfigParse {
                path,
                message: format!(
                    "ledger version {}, this build reads version {LEDGER_VERSION}",
                    file.version
                ),
            });
        }
        Ok(Ledger {
            path,
            jobs: file.jobs,
        })
    }

    /// The ledger's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All jobs, in submission order.
    pub fn jobs(&self) -> &[LedgerJob] {
        &self.jobs
    }

    /// The job with scheduler id `id`.
    pub fn job(&self, id: &str) -> Option<&LedgerJob> {
        self.jobs.iter().find(|j| j.id == id)
    }

    /// Records a submission (state `submitted` at `at`) and saves.
    pub fn record_submission(&mut self, mut job: LedgerJob, at: &str) -> Result<()> {
        if self.job(&job.id).is_some() {
            return Err(Error::invalid(
                "job id",
                format!(
                    "{} is already in the ledger {}",
                    job.id,
                    self.path.display()
                ),
            ));
        }
        job.transitions = vec![Transition {
            at: at.to_string(),
            state: JobState::Submitted,
            detail: None,
        }];
        self.jobs.push(job);
        self.save()
    }

    /// Records that job `id` was seen in `state` at `at`; saves and returns `true` when that
    /// is a change.
    pub fn record_state(
        &mut self,
        id: &str,
        state: JobState,
        detail: Option<String>,
        at: &str,
    ) -> Result<bool> {
        let path = self.path.display().to_string();
        let job =
            self.jobs.iter_mut().find(|j| j.id == id).ok_or_else(|| {
                Error::invalid("job id", format!("{id} is not in the ledger {path}"))
            })?;
        if job.state() == state {
            return Ok(false);
        }
        job.transitions.push(Transition {
            at: at.to_string(),
            state,
            detail,
        });
        self.save()?;
        Ok(true)
    }

    /// Writes the ledger atomically.
    pub fn save(&self) -> Result<()> {
        let file = LedgerFile {
            version: LEDGER_VERSION,
            jobs: self.jobs.clone(),
        };
        let text = serde_yaml_ng::to_string(&file).map_err(|e| Error::ConfigParse {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&self.path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> LedgerJob {
        LedgerJob {
            id: id.into(),
            cluster: "slurm".into(),
            queue: "debug".into(),
            script: "/work/jobs/a.sh".into(),
            commands: vec!["autoresearch train experiment=x seed=0".into()],
            sweep_points: vec!["seed=0".into()],
            resubmits: None,
            transitions: Vec::new(),
        }
    }

    #[test]
    fn transitions_are_recorded_once_and_survive_reopening() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(Error::io("tempdir", "."))?;
        let path = tmp.path().join("ledger.yaml");
        let mut ledger = Ledger::open(&path)?;
        ledger.record_submission(job("7"), "2026-11-30T10:00:00Z")?;
        assert!(ledger
            .record_submission(job("7"), "2026-11-30T10:00:01Z")
            .is_err());
        assert!(ledger.record_state("7", JobState::Running, None, "2026-11-30T10:01:00Z")?);
        assert!(!ledger.record_state("7", JobState::Running, None, "2026-11-30T10:02:00Z")?);
        assert!(ledger.record_state(
            "7",
            JobState::KilledWalltime,
            Some("exit -29".into()),
            "2026-11-30T11:00:00Z"
        )?);
        let again = Ledger::open(&path)?;
        assert_eq!(again, ledger);
        let states: Vec<JobState> = again.jobs()[0]
            .transitions
            .iter()
            .map(|t| t.state)
            .collect();
        assert_eq!(
            states,
            [
                JobState::Submitted,
                JobState::Running,
                JobState::KilledWalltime
            ]
        );
        assert!(again.jobs()[0].state().is_resubmittable());
        assert!(ledger
            .record_state("8", JobState::Running, None, "x")
            .is_err());
        Ok(())
    }

    #[test]
    fn a_corrupt_ledger_is_an_error_and_stays_untouched() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(Error::io("tempdir", "."))?;
        let path = tmp.path().join("ledger.yaml");
        std::fs::write(&path, "version: 1\njobs: [oops\n").map_err(Error::io("writing", &path))?;
        let err = Ledger::open(&path).unwrap_err().to_string();
        assert!(
            err.contains("ledger.yaml") && err.contains("not a job ledger"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(&path).map_err(Error::io("reading", &path))?,
            "version: 1\njobs: [oops\n"
        );
        Ok(())
    }
}
