//! The study directory and the files its coordinator and workers exchange (no MPI, no
//! database: a shared file system is the only channel, so the same study runs on worker
//! processes here and on job-array tasks of a cluster):
//!
//! ```text
//! <runs>/hpo/<study>/
//!   study.yaml          the configuration, frozen when the study starts
//!   journal.jsonl       every event, appended and synced by the coordinator alone
//!   queue/<id>.json     tickets waiting for a worker (a worker claims one by renaming it)
//!   claimed/<id>.json   tickets a worker holds
//!   beats/<id>.json     the holder's heartbeat: worker name and time
//!   reports/<id>.json   the trial's objective per epoch, rewritten after each epoch
//!   done/<id>.json      the trial's result, until the coordinator journals it
//!   trials/t<id>/...    each trial's run directory (`<experiment>/<variant>/seed_<n>`)
//!   coordinator.json    the coordinator's heartbeat (pid, host, time)
//!   stop                written when the study is over: workers exit
//! ```

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::journal::now_s;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// A trial handed to a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// Trial number.
    pub trial: usize,
    /// Every override of its run: the study's, the sampled ones, `runs_dir=`.
    pub overrides: Vec<String>,
}

/// A heartbeat: who and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Beat {
    /// `host:pid`.
    pub worker: String,
    /// Unix seconds.
    pub time: f64,
}

/// One epoch's report of a trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// Epoch, from 1.
    pub epoch: usize,
    /// The objective's value.
    pub value: f64,
    /// The constraint values at that epoch (study constraints, then the activity rule).
    pub constraints: Vec<f64>,
}

/// How a worker's trial ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Trial number.
    pub trial: usize,
    /// `completed`, `pruned` or `failed`.
    pub status: String,
    /// The objective at its best epoch.
    pub value: Option<f64>,
    /// Constraint values at its best epoch (the activity rule's at its last).
    pub constraints: Vec<f64>,
    /// Epochs trained.
    pub epochs: usize,
    /// The error of a failed trial.
    pub error: Option<String>,
}

/// The directory of one study.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyDir {
    root: PathBuf,
}

/// The file name of trial `id` in the ticket folders.
fn ticket_name(id: usize) -> String {
    format!("{id:05}.json")
}

impl StudyDir {
    /// The study `name` under the runs root `runs`.
    pub fn new(runs: &Path, name: &str) -> StudyDir {
        StudyDir {
            root: runs.join("hpo").join(name),
        }
    }

    /// The study directory at `root`.
    pub fn at(root: impl Into<PathBuf>) -> StudyDir {
        StudyDir { root: root.into() }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Creates the folders.
    pub fn create(&self) -> Result<()> {
        for sub in ["queue", "claimed", "beats", "reports", "done", "trials"] {
            let p = self.root.join(sub);
            std::fs::create_dir_all(&p).map_err(Error::io("creating", &p))?;
        }
        Ok(())
    }

    /// `study.yaml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("study.yaml")
    }

    /// `journal.jsonl`.
    pub fn journal_path(&self) -> PathBuf {
        self.root.join("journal.jsonl")
    }

    /// The runs root of trial `id`'s run directory.
    pub fn trial_runs(&self, id: usize) -> PathBuf {
        self.root.join("trials").join(format!("t{id:04}"))
    }

    /// All trials' run directories lie under this folder.
    pub fn trials_root(&self) -> PathBuf {
        self.root.join("trials")
    }

    fn file(&self, folder: &str, id: usize) -> PathBuf {
        self.root.join(folder).join(ticket_name(id))
    }

    /// `queue/<id>.json`.
    pub fn queued(&self, id: usize) -> PathBuf {
        self.file("queue", id)
    }

    /// `claimed/<id>.json`.
    pub fn claimed(&self, id: usize) -> PathBuf {
        self.file("claimed", id)
    }

    /// `beats/<id>.json`.
    pub fn beat(&self, id: usize) -> PathBuf {
        self.file("beats", id)
    }

    /// `reports/<id>.json`.
    pub fn reports(&self, id: usize) -> PathBuf {
        self.file("reports", id)
    }

    /// `done/<id>.json`.
    pub fn done(&self, id: usize) -> PathBuf {
        self.file("done", id)
    }

    /// `coordinator.json`.
    pub fn coordinator(&self) -> PathBuf {
        self.root.join("coordinator.json")
    }

    /// `stop`.
    pub fn stop(&self) -> PathBuf {
        self.root.join("stop")
    }

    /// Trial ids with a file in `folder`, ascending.
    pub fn ids(&self, folder: &str) -> Result<Vec<usize>> {
        let dir = self.root.join(folder);
        let mut ids: Vec<usize> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".json")?.parse().ok()
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io("listing", &dir)(e)),
        };
        ids.sort_unstable();
        Ok(ids)
    }

    /// Claims the lowest queued ticket by renaming it into `claimed/` (one worker wins).
    pub fn claim(&self) -> Result<Option<Ticket>> {
        for id in self.ids("queue")? {
            if std::fs::rename(self.queued(id), self.claimed(id)).is_ok() {
                return read_json(&self.claimed(id)).map(Some);
            }
        }
        Ok(None)
    }

    /// Writes this process's heartbeat for trial `id` (or the coordinator's with `None`).
    pub fn write_beat(&self, id: Option<usize>) -> Result<()> {
        let beat = Beat {
            worker: worker_name(),
            time: now_s(),
        };
        let path = id.map_or_else(|| self.coordinator(), |i| self.beat(i));
        write_json(&path, &beat)
    }
}

/// Whether the run directory `path` lies inside a study directory (an ancestor holds
/// `study.yaml` and `journal.jsonl`).
pub fn in_study(path: &Path) -> bool {
    path.ancestors()
        .skip(1)
        .any(|a| a.join("journal.jsonl").is_file() && a.join("study.yaml").is_file())
}

/// This process as a worker name, `host:pid`.
pub fn worker_name() -> String {
    format!(
        "{}:{}",
        gethostname::gethostname().to_string_lossy(),
        std::process::id()
    )
}

/// Writes `value` as JSON at `path`, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::Analysis(format!("encoding {}: {e}", path.display())))?;
    write_atomic(path, &text)
}

/// Reads JSON at `path`.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read(path).map_err(Error::io("reading", path))?;
    serde_json::from_slice(&text).map_err(|e| Error::Analysis(format!("{}: {e}", path.display())))
}

/// Removes `path` if it exists.
pub fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("removing", path)(e)),
        _ => Ok(()),
    }
}
