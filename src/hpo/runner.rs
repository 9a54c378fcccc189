//! [`Study`]: a study as a notebook or the CLI holds it: run it on local worker processes,
//! resume it after a crash, read where it stands.
//!
//! ```no_run
//! use autoresearch::hpo::Study;
//! let study = Study::load("snn_ffnn_rate")?;
//! let log = study.run()?;
//! println!("{} trials, best {:?}", log.trials.len(), study.best()?.map(|t| t.value));
//! # Ok::<(), autoresearch::Error>(())
//! ```

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::coordinator::Coordinator;
use super::files::StudyDir;
use super::journal::{StudyLog, TrialRecord, TrialStatus};
use super::study::StudyConfig;
use crate::cluster::local::find_binary;
use crate::cluster::Workspace;
use crate::config::ConfigStore;
use crate::error::{Error, Result};
use crate::metric::Mode;

/// Seconds between coordinator steps and between a worker's looks at the queue.
pub const POLL_S: f64 = 0.25;

/// A study: its name, configuration and directory.
#[derive(Debug, Clone)]
pub struct Study {
    /// Its name (`configs/hpo/<name>.yaml`, `runs/hpo/<name>/`).
    pub name: String,
    /// Its configuration.
    pub config: StudyConfig,
    workspace: Workspace,
    dir: StudyDir,
    binary: Option<PathBuf>,
}

impl Study {
    /// `configs/hpo/<name>.yaml` of the workspace found from the current directory.
    pub fn load(name: &str) -> Result<Study> {
        Study::load_in(Workspace::discover()?, name)
    }

    /// `configs/hpo/<name>.yaml` of `workspace`, checked against its experiment.
    pub fn load_in(workspace: Workspace, name: &str) -> Result<Study> {
        let config = StudyConfig::load(&workspace.configs, name)?;
        Ok(Study::new(workspace, name, config))
    }

    /// A study built in Rust (checked when it runs).
    pub fn new(workspace: Workspace, name: &str, config: StudyConfig) -> Study {
        let dir = StudyDir::new(&workspace.runs, name);
        Study {
            name: name.to_string(),
            config,
            workspace,
            dir,
            binary: None,
        }
    }

    /// Uses `binary` for the worker processes instead of the one [`find_binary`] finds.
    pub fn with_binary(mut self, binary: PathBuf) -> Study {
        self.binary = Some(binary);
        self
    }

    /// The study directory.
    pub fn dir(&self) -> &StudyDir {
        &self.dir
    }

    /// The configs the study composes its trials from.
    pub fn store(&self) -> &ConfigStore {
        &self.workspace.configs
    }

    /// Starts the study on `workers` local processes and coordinates it to the end; an
    /// existing study of this name is refused (resume it instead).
    pub fn run(&self) -> Result<StudyLog> {
        if self.dir.journal_path().exists() {
            return Err(Error::invalid(
                format!("hpo.{}", self.name),
                format!(
                    "a study of this name exists in {}; `autoresearch hpo resume {}` carries \
                     it on, or give this one another name",
                    self.dir.path().display(),
                    self.name
                ),
            ));
        }
        self.coordinate()
    }

    /// [`Study::resume`] when the study's journal exists, else [`Study::run`] (a notebook
    /// cell that may run twice).
    pub fn run_or_resume(&self) -> Result<StudyLog> {
        if self.dir.journal_path().exists() {
            self.resume()
        } else {
            self.run()
        }
    }

    /// Carries on a study that was stopped or killed: trials whose heartbeat is stale are
    /// queued again and resume from their checkpoints; finished ones are kept.
    pub fn resume(&self) -> Result<StudyLog> {
        if !self.dir.journal_path().exists() {
            return Err(Error::invalid(
                format!("hpo.{}", self.name),
                format!(
                    "no study journal at {}; start it with `autoresearch hpo run {}`",
                    self.dir.journal_path().display(),
                    self.name
                ),
            ));
        }
        self.coordinate()
    }

    /// Records the study in its research-state iteration (`projects/` beside `configs/`).
    pub fn link_iteration(&self) -> Result<()> {
        let Some(it) = &self.config.iteration else {
            return Ok(());
        };
        let root = self.workspace.configs.root();
        let projects = root.parent().unwrap_or(root).join("projects");
        crate::state::ProjectStore::new(projects).link_study(
            &it.project,
            it.number,
            &self.name,
            &self.dir.path().display().to_string(),
        )
    }

    /// Opens the coordinator, starts the worker processes, runs to the end, waits for them.
    fn coordinate(&self) -> Result<StudyLog> {
        self.link_iteration()?;
        let mut coordinator = Coordinator::open(
            &self.workspace.configs,
            self.dir.clone(),
            &self.name,
            &self.config,
        )?;
        if coordinator.log().finished.is_none() {
            super::files::remove(&self.dir.stop())?;
        }
        if coordinator.step()? {
            return Ok(coordinator.log().clone());
        }
        let mut workers = self.spawn_workers(self.config.workers)?;
        let result = coordinator.run(POLL_S).cloned();
        for w in &mut workers {
            if result.is_err() {
                let _ = w.kill();
            }
            let _ = w.wait();
        }
        result
    }

    /// Starts `n` `autoresearch hpo worker` processes, logging to `workers/<i>.log`.
    fn spawn_workers(&self, n: usize) -> Result<Vec<Child>> {
        let binary = match &self.binary {
            Some(b) => b.clone(),
            None => find_binary(&self.workspace)?,
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = (cores / n.max(1)).max(1);
        let logs = self.dir.path().join("workers");
        std::fs::create_dir_all(&logs).map_err(Error::io("creating", &logs))?;
        (0..n)
            .map(|i| {
                let path = logs.join(format!("{i}.log"));
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(Error::io("opening", &path))?;
                let err = log.try_clone().map_err(Error::io("opening", &path))?;
                let mut command = Command::new(&binary);
                command
                    .arg("--configs")
                    .arg(self.workspace.configs.root())
                    .arg("hpo")
                    .arg("worker")
                    .arg(self.dir.path());
                if std::env::var_os("RAYON_NUM_THREADS").is_none() {
                    command.env("RAYON_NUM_THREADS", threads.to_string());
                }
                command
                    .stdin(Stdio::null())
                    .stdout(log)
                    .stderr(err)
                    .spawn()
                    .map_err(Error::io("starting a worker", &binary))
            })
            .collect()
    }

    /// The journal replayed: every trial and where it stands.
    pub fn status(&self) -> Result<StudyLog> {
        StudyLog::read(&self.dir.journal_path())
    }

    /// The objective's direction.
    pub fn mode(&self) -> Result<Mode> {
        Ok(self.config.check(&self.workspace.configs)?.1)
    }

    /// The best feasible finished trial (completed or pruned), by the objective's direction;
    /// when none is feasible, the one breaking its constraints least.
    pub fn best(&self) -> Result<Option<TrialRecord>> {
        let mode = self.mode()?;
        Ok(best_trial(&self.status()?, mode).cloned())
    }
}

/// The incumbent of `log`: the best feasible told trial; failing that the least violating
/// (never, as zellij's `_save_best` does, a worse feasible point over a better one).
pub fn best_trial(log: &StudyLog, mode: Mode) -> Option<&TrialRecord> {
    log.trials
        .iter()
        .filter(|t| matches!(t.status, TrialStatus::Completed | TrialStatus::Pruned))
        .filter(|t| t.value.is_some())
        .fold(None, |best: Option<&TrialRecord>, t| {
            let Some(b) = best else { return Some(t) };
            let (vb, vt) = (b.violation(), t.violation());
            let better = match (vt == 0.0, vb == 0.0) {
                (true, false) => true,
                (false, true) => false,
                (false, false) => vt < vb,
                (true, true) => mode.improves(t.value.unwrap_or(f64::NAN), b.value, 0.0),
            };
            Some(if better { t } else { b })
        })
}
