//! [`LocalExecutor`]: the [`Executor`] interface on this machine, a pool of N worker processes
//! each running `autoresearch train` for one sweep point, recorded in the same job ledger.
//!
//! It manages the jobs it submitted itself; local jobs left in the ledger by an earlier
//! process (a restarted notebook kernel) are reported as they were, never restarted, since
//! their processes may still be running.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::executor::{
    Change, Executor, Failure, MonitorOptions, MonitorReport, Resubmission, Workspace,
};
use super::ledger::{now, JobState, Ledger, LedgerJob};
use super::sweep::Sweep;
use crate::error::{Error, Result};

/// The cluster name local jobs carry in the ledger.
pub const LOCAL_CLUSTER: &str = "local";

/// Environment variable naming the `autoresearch` binary worker processes run.
pub const BINARY_ENV: &str = "AUTORESEARCH_BIN";

/// One queued or running point.
#[derive(Debug)]
struct Task {
    args: Vec<String>,
    log: PathBuf,
}

/// Runs sweep points as worker processes here.
#[derive(Debug)]
pub struct LocalExecutor {
    workspace: Workspace,
    binary: PathBuf,
    workers: usize,
    ledger: Ledger,
    waiting: VecDeque<String>,
    tasks: BTreeMap<String, Task>,
    running: BTreeMap<String, Child>,
    env: Vec<(String, String)>,
    counter: usize,
}

/// Finds the `autoresearch` binary: `$AUTORESEARCH_BIN`, this program when it is
/// `autoresearch`, `target/{release,debug}/autoresearch` above the configs directory, or the
/// `PATH`.
pub fn find_binary(workspace: &Workspace) -> Result<PathBuf> {
    let mut looked = Vec::new();
    if let Some(p) = std::env::var_os(BINARY_ENV).map(PathBuf::from) {
        if p.is_file() {
            return Ok(p);
        }
        looked.push(format!("${BINARY_ENV}={}", p.display()));
    }
    if let Ok(exe) = std::env::current_exe() {
        if exe.file_stem().is_some_and(|s| s == "autoresearch") {
            return Ok(exe);
        }
    }
    let root = std::fs::canonicalize(workspace.configs.root())
        .unwrap_or_else(|_| workspace.configs.root().to_path_buf());
    for dir in root.ancestors().skip(1) {
        for profile in ["release", "debug"] {
            let candidate = dir.join("target").join(profile).join("autoresearch");
            if candidate.is_file() {
                return Ok(candidate);
            }
            looked.push(candidate.display().to_string());
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("autoresearch");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        looked.push("$PATH".into());
    }
    Err(Error::invalid(
        "autoresearch binary",
        format!(
            "not found (looked in: {}); build it with `cargo build --release` or set {BINARY_ENV}",
            looked.join(", ")
        ),
    ))
}

impl LocalExecutor {
    /// A pool of `workers` processes (at least 1) running the binary [`find_binary`] finds.
    pub fn new(workspace: Workspace, workers: usize) -> Result<LocalExecutor> {
        let binary = find_binary(&workspace)?;
        LocalExecutor::with_binary(workspace, workers, binary)
    }

    /// A pool running `binary`.
    pub fn with_binary(
        workspace: Workspace,
        workers: usize,
        binary: PathBuf,
    ) -> Result<LocalExecutor> {
        let ledger = workspace.open_ledger()?;
        Ok(LocalExecutor {
            workspace,
            binary,
            workers: workers.max(1),
            ledger,
            waiting: VecDeque::new(),
            tasks: BTreeMap::new(),
            running: BTreeMap::new(),
            env: Vec::new(),
            counter: 0,
        })
    }

    /// Sets an environment variable for every worker (e.g. `AUTORESEARCH_DATA`).
    pub fn with_env(mut self, key: &str, value: &str) -> LocalExecutor {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The job ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Threads each worker's tensor code may use: the cores shared among the workers.
    fn threads_per_worker(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / self.workers).max(1)
    }

    fn start(&mut self, id: &str) -> Result<()> {
        let Some(task) = self.tasks.get(id) else {
            return Ok(());
        };
        if let Some(parent) = task.log.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io("creating", parent))?;
        }
        let log = std::fs::File::create(&task.log).map_err(Error::io("creating", &task.log))?;
        let log2 = log.try_clone().map_err(Error::io("opening", &task.log))?;
        let mut command = Command::new(&self.binary);
        command
            .arg("--configs")
            .arg(self.workspace.configs.root())
            .args(&task.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            command.env("RAYON_NUM_THREADS", self.threads_per_worker().to_string());
        }
        let child = command
            .spawn()
            .map_err(Error::io("starting", self.binary.clone()))?;
        self.running.insert(id.to_string(), child);
        self.ledger
            .record_state(id, JobState::Running, None, &now())?;
        Ok(())
    }

    /// Checks finished workers, starts waiting points on free workers, and records changes.
    pub fn refresh(&mut self) -> Result<Vec<Change>> {
        let mut changes = Vec::new();
        let ids: Vec<String> = self.running.keys().cloned().collect();
        for id in ids {
            let finished = match self.running.get_mut(&id) {
                Some(child) => child.try_wait().map_err(Error::io("waiting for", &id))?,
                None => None,
            };
            let Some(status) = finished else {
                continue;
            };
            self.running.remove(&id);
            let cancelled = self.ledger.job(&id).is_some_and(|j| j.cancelled_by_user);
            let (to, detail) = match status.code() {
                Some(0) => (JobState::Completed, None),
                Some(c) => (JobState::Failed, Some(format!("exit status {c}"))),
                None if cancelled => (JobState::Cancelled, Some("killed".into())),
                None => (JobState::NodeFailed, Some("killed by a signal".into())),
            };
            let from = self
                .ledger
                .job(&id)
                .map_or(JobState::Unknown, |j| j.state());
            if self.ledger.record_state(&id, to, detail.clone(), &now())? {
                changes.push(Change {
                    id,
                    from,
                    to,
                    detail,
                });
            }
        }
        while self.running.len() < self.workers {
            let Some(id) = self.waiting.pop_front() else {
                break;
            };
            self.start(&id)?;
            changes.push(Change {
                id,
                from: JobState::Queued,
                to: JobState::Running,
                detail: None,
            });
        }
        Ok(changes)
    }

    fn enqueue(&mut self, jobs: Vec<(LedgerJob, Task)>) -> Result<Vec<String>> {
        let at = now();
        let ids: Vec<String> = jobs.iter().map(|(j, _)| j.id.clone()).collect();
        let (ledger_jobs, tasks): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        self.ledger.record_submissions(ledger_jobs, &at)?;
        for (id, task) in ids.iter().zip(tasks) {
            self.ledger.record_state(id, JobState::Queued, None, &at)?;
            self.tasks.insert(id.clone(), task);
            self.waiting.push_back(id.clone());
        }
        self.refresh()?;
        Ok(ids)
    }

    fn next_id(&mut self) -> String {
        self.counter += 1;
        format!(
            "local-{}-{}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S"),
            std::process::id(),
            self.counter
        )
    }

    fn log_dir(&self) -> PathBuf {
        self.workspace
            .ledger
            .parent()
            .unwrap_or(Path::new("."))
            .join("logs")
    }
}

impl Executor for LocalExecutor {
    fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    fn submit(&mut self, sweep: &Sweep) -> Result<Vec<String>> {
        let points = sweep.points(&self.workspace.configs)?;
        let runs = std::path::absolute(&self.workspace.runs)
            .map_err(Error::io("resolving", &self.workspace.runs))?;
        let mut jobs = Vec::new();
        for point in points {
            let id = self.next_id();
            let mut args = point.train_args();
            args.push(format!("runs_dir={}", runs.display()));
            let log = self.log_dir().join(format!("{id}.out"));
            let job = LedgerJob {
                id,
                cluster: LOCAL_CLUSTER.into(),
                queue: format!("{} worker(s)", self.workers),
                script: String::new(),
                commands: vec![point.command(&self.binary.display().to_string())],
                sweep_points: vec![point.label()],
                resubmits: None,
                transitions: Vec::new(),
                array: None,
                run_dirs: vec![point.run_dir],
                log: Some(log.display().to_string()),
                resources: None,
                resubmitted_as: None,
                fetched: false,
                cancelled_by_user: false,
            };
            jobs.push((job, Task { args, log }));
        }
        self.enqueue(jobs)
    }

    fn cancel(&mut self, ids: &[String]) -> Result<()> {
        for id in ids {
            if !self.tasks.contains_key(id) {
                return Err(Error::invalid(
                    "job id",
                    format!("{id} was not submitted by this local executor"),
                ));
            }
            self.ledger.update(id, |j| j.cancelled_by_user = true)?;
            if let Some(pos) = self.waiting.iter().position(|w| w == id) {
                self.waiting.remove(pos);
                self.ledger
                    .record_state(id, JobState::Cancelled, None, &now())?;
            } else if let Some(child) = self.running.get_mut(id) {
                child.kill().map_err(Error::io("stopping", id.clone()))?;
            }
        }
        Ok(())
    }

    fn monitor_once(&mut self, options: &MonitorOptions) -> Result<MonitorReport> {
        let changes = self.refresh()?;
        let mut report = MonitorReport {
            changes,
            ..MonitorReport::default()
        };
        for change in report.changes.clone() {
            let Some(job) = self.ledger.job(&change.id).cloned() else {
                continue;
            };
            if change.to == JobState::Failed {
                let log_tail = job
                    .log
                    .as_deref()
                    .and_then(|l| std::fs::read_to_string(l).ok())
                    .map(|t| {
                        let lines: Vec<&str> = t.lines().collect();
                        lines[lines.len().saturating_sub(20)..].join("\n")
                    })
                    .unwrap_or_default();
                report.failures.push(Failure {
                    id: change.id.clone(),
                    sweep_point: job.sweep_points.join("; "),
                    detail: change.detail.clone(),
                    log_tail,
                });
            }
            if change.to.is_resubmittable() && !job.cancelled_by_user {
                if self.ledger.retries_of(&job.id) >= options.max_retries {
                    report.gave_up.push(job.id.clone());
                    continue;
                }
                let Some(args) = self.tasks.get(&job.id).map(|t| t.args.clone()) else {
                    continue;
                };
                let new_id = self.next_id();
                let new_task = Task {
                    args,
                    log: self.log_dir().join(format!("{new_id}.out")),
                };
                let new_job = LedgerJob {
                    id: new_id.clone(),
                    resubmits: Some(job.id.clone()),
                    log: Some(new_task.log.display().to_string()),
                    transitions: Vec::new(),
                    ..job.clone()
                };
                self.enqueue(vec![(new_job, new_task)])?;
                self.ledger
                    .update(&job.id, |j| j.resubmitted_as = Some(new_id.clone()))?;
                report.resubmitted.push(Resubmission {
                    old: job.id.clone(),
                    new: new_id,
                });
            }
        }
        report.active = self.waiting.len() + self.running.len();
        Ok(report)
    }
}

impl Drop for LocalExecutor {
    /// Workers outlive nothing: dropping the executor (a notebook cell re-run) stops them; their
    /// runs stay resumable from the last checkpoint.
    fn drop(&mut self) {
        let at = now();
        for (id, child) in &mut self.running {
            let _ = child.kill();
            let _ = child.wait();
            let detail = Some("stopped: its executor was dropped".to_string());
            let _ = self.ledger.record_state(id, JobState::Lost, detail, &at);
        }
    }
}
