//! The job ledger: every submission to a cluster (id, script, commands, sweep points) and each
//! state it was seen in, with times, in one YAML file written atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// The current time as the ledger writes it (RFC 3339, seconds, UTC).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

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
    /// No longer reported by the scheduler while its runs were unfinished (resumable:
    /// resubmit).
    Lost,
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
        matches!(
            self,
            JobState::KilledWalltime | JobState::NodeFailed | JobState::Lost
        )
    }

    /// The state's name as the ledger writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Submitted => "submitted",
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::KilledWalltime => "killed_walltime",
            JobState::NodeFailed => "node_failed",
            JobState::Lost => "lost",
            JobState::Unknown => "unknown",
        }
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
    /// The array job this task belongs to (its own id is the task's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array: Option<String>,
    /// Run directory of each command, relative to the runs root (what `fetch` copies back).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run_dirs: Vec<String>,
    /// Remote path of the job's output log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// What was asked for, so a resubmission asks for the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// The job that resubmitted this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resubmitted_as: Option<String>,
    /// Its run directories were fetched after it finished.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fetched: bool,
    /// Cancelled through `autoresearch cluster cancel` (never resubmitted).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancelled_by_user: bool,
}

/// The resources a submission requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Job name.
    pub name: String,
    /// CPU cores.
    pub cpus: u32,
    /// Memory in GB.
    pub mem_gb: u32,
    /// GPUs.
    pub gpus: u32,
    /// Estimated time of one run, `HH:MM:SS`.
    pub per_run: String,
    /// Where `per_run` came from when measured (`200 epochs x 20 s (median epoch of ...)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_run_source: Option<String>,
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
        let jobs = Self::read(&path)?;
        Ok(Ledger { path, jobs })
    }

    /// The jobs in the file at `path` (none when it does not exist).
    fn read(path: &Path) -> Result<Vec<LedgerJob>> {
        if !path.exists() {
            return Ok(Vec::new());
        }
        let text = std::fs::read_to_string(path).map_err(Error::io("reading", path))?;
        let file: LedgerFile = serde_yaml_ng::from_str(&text).map_err(|e| Error::ConfigParse {
            path: path.to_path_buf(),
            message: format!("not a job ledger ({e}); fix or move it, it is left as it is"),
        })?;
        if file.version != LEDGER_VERSION {
            return Err(Error::ConfigParse {
                path: path.to_path_buf(),
                message: format!(
                    "ledger version {}, this build reads version {LEDGER_VERSION}",
                    file.version
                ),
            });
        }
        Ok(file.jobs)
    }

    /// Re-reads the file (another process, e.g. a monitor in a terminal, may have written it).
    pub fn reload(&mut self) -> Result<()> {
        self.jobs = Self::read(&self.path)?;
        Ok(())
    }

    /// Applies `change` to the jobs as they are in the file now, under an exclusive lock on
    /// `<ledger>.lock`, then writes them atomically: writers in several processes (a notebook
    /// and a monitor) never lose each other's records. Nothing is written when `change` fails.
    fn transact<T>(&mut self, change: impl FnOnce(&mut Vec<LedgerJob>) -> Result<T>) -> Result<T> {
        let lock_path = self.path.with_extension("yaml.lock");
        if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
        }
        let lock = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(Error::io("opening", &lock_path))?;
        lock.lock().map_err(Error::io("locking", &lock_path))?;
        let mut jobs = Self::read(&self.path)?;
        let out = change(&mut jobs)?;
        self.jobs = jobs;
        self.save()?;
        drop(lock);
        Ok(out)
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
    pub fn record_submission(&mut self, job: LedgerJob, at: &str) -> Result<()> {
        self.record_submissions(vec![job], at)
    }

    /// Records several submissions (e.g. the tasks of one array) with one save.
    pub fn record_submissions(&mut self, jobs: Vec<LedgerJob>, at: &str) -> Result<()> {
        let path = self.path.display().to_string();
        self.transact(|all| {
            if let Some(dup) = jobs.iter().find(|j| all.iter().any(|a| a.id == j.id)) {
                return Err(Error::invalid(
                    "job id",
                    format!("{} is already in the ledger {path}", dup.id),
                ));
            }
            for mut job in jobs {
                job.transitions = vec![Transition {
                    at: at.to_string(),
                    state: JobState::Submitted,
                    detail: None,
                }];
                all.push(job);
            }
            Ok(())
        })
    }

    /// Changes job `id` with `change` and saves.
    pub fn update(&mut self, id: &str, change: impl FnOnce(&mut LedgerJob)) -> Result<()> {
        let path = self.path.display().to_string();
        self.transact(|all| {
            let job = all.iter_mut().find(|j| j.id == id).ok_or_else(|| {
                Error::invalid("job id", format!("{id} is not in the ledger {path}"))
            })?;
            change(job);
            Ok(())
        })
    }

    /// How many resubmissions led to job `id` (0 for an original submission).
    pub fn retries_of(&self, id: &str) -> usize {
        let mut count = 0;
        let mut current = self.job(id).and_then(|j| j.resubmits.clone());
        while let Some(previous) = current {
            count += 1;
            current = self.job(&previous).and_then(|j| j.resubmits.clone());
        }
        count
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
        if self.job(id).is_some_and(|j| j.state() == state) {
            return Ok(false);
        }
        let path = self.path.display().to_string();
        self.transact(|all| {
            let job = all.iter_mut().find(|j| j.id == id).ok_or_else(|| {
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
            Ok(true)
        })
    }

    /// The jobs as a frame, one row per job: id, cluster, queue, state, since (time of the
    /// latest state), sweep_point, run_dirs, resubmits, resubmitted_as.
    pub fn frame(&self) -> Result<polars::prelude::DataFrame> {
        let text = |f: &dyn Fn(&LedgerJob) -> String| self.jobs.iter().map(f).collect::<Vec<_>>();
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        crate::frame::Frame::new()
            .strs("id", text(&|j| j.id.clone()))
            .strs("cluster", text(&|j| j.cluster.clone()))
            .strs("queue", text(&|j| j.queue.clone()))
            .strs("state", text(&|j| j.state().as_str().to_string()))
            .strs(
                "since",
                text(&|j| {
                    j.transitions
                        .last()
                        .map(|t| t.at.clone())
                        .unwrap_or_default()
                }),
            )
            .strs("sweep_point", text(&|j| j.sweep_points.join("; ")))
            .strs("run_dirs", text(&|j| j.run_dirs.join("; ")))
            .strs("resubmits", text(&|j| opt(&j.resubmits)))
            .strs("resubmitted_as", text(&|j| opt(&j.resubmitted_as)))
            .finish()
    }

    /// Writes the ledger atomically (callers hold the lock).
    fn save(&self) -> Result<()> {
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
            array: None,
            run_dirs: vec!["x/default/seed_0".into()],
            log: None,
            resources: None,
            resubmitted_as: None,
            fetched: false,
            cancelled_by_user: false,
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
    fn two_writers_on_one_file_keep_each_others_records() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(Error::io("tempdir", "."))?;
        let path = tmp.path().join("jobs/ledger.yaml");
        let mut notebook = Ledger::open(&path)?;
        let mut monitor = Ledger::open(&path)?;
        notebook.record_submission(job("1"), "2026-11-30T10:00:00Z")?;
        monitor.record_submission(job("2"), "2026-11-30T10:00:01Z")?;
        notebook.record_state("1", JobState::Running, None, "2026-11-30T10:00:02Z")?;
        let ids: Vec<String> = Ledger::open(&path)?
            .jobs()
            .iter()
            .map(|j| j.id.clone())
            .collect();
        assert_eq!(ids, ["1", "2"]);
        assert_eq!(notebook.jobs().len(), 2, "a write refreshes the snapshot");
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
