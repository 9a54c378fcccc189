//! One interface for wherever runs execute: [`super::Cluster`] (PBS or Slurm, over SSH) and
//! [`super::LocalExecutor`] (worker processes here). A notebook cell submits a [`Sweep`],
//! then waits or polls, and finds the run directories under the same runs root either way.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ledger::{JobState, Ledger};
use super::sweep::Sweep;
use super::sync::FetchReport;
use crate::config::ConfigStore;
use crate::error::Result;

/// Default ledger path, relative to the project directory.
pub const DEFAULT_LEDGER: &str = "jobs/ledger.yaml";

/// Where a project keeps its configs, run directories and job ledger.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The configs directory sweeps are composed from.
    pub configs: ConfigStore,
    /// Local root of the run directories (`runs/`).
    pub runs: PathBuf,
    /// The job ledger file.
    pub ledger: PathBuf,
}

impl Workspace {
    /// `configs` found as the CLI finds it, `runs/` and `jobs/ledger.yaml` in the current
    /// directory.
    pub fn discover() -> Result<Workspace> {
        Ok(Workspace {
            configs: ConfigStore::discover()?,
            runs: PathBuf::from("runs"),
            ledger: PathBuf::from(DEFAULT_LEDGER),
        })
    }

    /// A workspace with explicit paths.
    pub fn new(configs: &Path, runs: &Path, ledger: &Path) -> Result<Workspace> {
        Ok(Workspace {
            configs: ConfigStore::new(configs)?,
            runs: runs.to_path_buf(),
            ledger: ledger.to_path_buf(),
        })
    }

    /// Opens the ledger.
    pub fn open_ledger(&self) -> Result<Ledger> {
        Ledger::open(&self.ledger)
    }
}

/// A state change seen by a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Job id.
    pub id: String,
    /// State before.
    pub from: JobState,
    /// State now.
    pub to: JobState,
    /// What the scheduler said.
    pub detail: Option<String>,
}

/// A job that failed by itself, with the end of its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Job id.
    pub id: String,
    /// Its sweep point.
    pub sweep_point: String,
    /// Exit code or scheduler comment.
    pub detail: Option<String>,
    /// Last lines of the job's log (empty when it could not be read).
    pub log_tail: String,
}

/// What the monitor may do on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorOptions {
    /// Resubmissions allowed per run (counted along the chain of resubmissions).
    pub max_retries: usize,
    /// Also resubmit jobs cancelled outside autoresearch (an administrator, preemption, a
    /// hand-typed `scancel`/`qdel`); jobs cancelled with [`Executor::cancel`] never are.
    pub resubmit_external_cancel: bool,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        MonitorOptions {
            max_retries: 3,
            resubmit_external_cancel: true,
        }
    }
}

/// What one monitoring round saw and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitorReport {
    /// State changes since the last round.
    pub changes: Vec<Change>,
    /// Files fetched from finished jobs' run directories.
    pub fetched: FetchReport,
    /// Each resubmitted job.
    pub resubmitted: Vec<Resubmission>,
    /// Jobs that failed by themselves (not resubmitted: the same input would fail again).
    pub failures: Vec<Failure>,
    /// Interrupted jobs not resubmitted because their runs used up the retries.
    pub gave_up: Vec<String>,
    /// Jobs still queued or running after this round.
    pub active: usize,
}

/// A job sent again after an interruption, to resume from its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resubmission {
    /// The interrupted job's id.
    pub old: String,
    /// The new job's id.
    pub new: String,
}

impl MonitorReport {
    /// Whether nothing is left to wait for.
    pub fn done(&self) -> bool {
        self.active == 0
    }
}

impl std::fmt::Display for MonitorReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.changes {
            write!(f, "{}: {} -> {}", c.id, c.from.as_str(), c.to.as_str())?;
            if let Some(d) = &c.detail {
                write!(f, " ({d})")?;
            }
            writeln!(f)?;
        }
        if !self.fetched.copied.is_empty() || !self.fetched.kept_newer_local.is_empty() {
            writeln!(f, "fetched: {}", self.fetched)?;
        }
        for Resubmission { old, new } in &self.resubmitted {
            writeln!(
                f,
                "resubmitted {old} as {new} (resumes from its checkpoint)"
            )?;
        }
        for failure in &self.failures {
            writeln!(
                f,
                "FAILED {} [{}]: {}",
                failure.id,
                failure.sweep_point,
                failure.detail.as_deref().unwrap_or("non-zero exit")
            )?;
            for line in failure.log_tail.lines() {
                writeln!(f, "    | {line}")?;
            }
        }
        for id in &self.gave_up {
            writeln!(f, "gave up on {id}: retries used up")?;
        }
        write!(f, "{} job(s) queued or running", self.active)
    }
}

/// Runs sweeps somewhere and reports on them.
pub trait Executor {
    /// Where results land locally.
    fn workspace(&self) -> &Workspace;

    /// Starts every point of `sweep`; returns the job ids (one per run, or per array task).
    fn submit(&mut self, sweep: &Sweep) -> Result<Vec<String>>;

    /// Cancels jobs (an array id cancels its tasks); they are never resubmitted.
    fn cancel(&mut self, ids: &[String]) -> Result<()>;

    /// One round: poll states, bring finished runs' directories under the runs root,
    /// resubmit interrupted jobs.
    fn monitor_once(&mut self, options: &MonitorOptions) -> Result<MonitorReport>;

    /// Monitors every `every` until no job is queued or running; `on_round` sees each round.
    fn wait(
        &mut self,
        every: Duration,
        options: &MonitorOptions,
        on_round: &mut dyn FnMut(&MonitorReport),
    ) -> Result<MonitorReport> {
        loop {
            let report = self.monitor_once(options)?;
            on_round(&report);
            if report.done() {
                return Ok(report);
            }
            std::thread::sleep(every);
        }
    }
}

/// Parses a duration such as `10m`, `30s`, `1h` or `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let bad = || {
        crate::Error::invalid(
            "duration",
            format!("`{text}`: write e.g. 30s, 10m, 1h or 1h30m"),
        )
    };
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(bad()),
        };
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() -> Result<()> {
        assert_eq!(parse_duration("10m")?, Duration::from_secs(600));
        assert_eq!(parse_duration("1h30m")?, Duration::from_secs(5400));
        assert_eq!(parse_duration("5s")?, Duration::from_secs(5));
        for bad in ["10", "m", "1x", "", "0s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        Ok(())
    }
}
