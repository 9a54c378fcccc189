//! The study's journal: `journal.jsonl`, one JSON event per line, appended by the coordinator
//! alone and synced to disk after every event, so a `kill -9` loses at most the line being
//! written. Readers skip a torn last line; a bad line anywhere else is a corrupt journal,
//! reported with its line number. Replaying the events gives every trial's state.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::study::StudyConfig;
use crate::error::{Error, Result};

/// How a trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Trained to the end.
    Completed,
    /// Stopped by the pruner; its value is the best it reported.
    Pruned,
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The study as it started (first line).
    Study {
        /// The study's name.
        name: String,
        /// Its configuration.
        config: Box<StudyConfig>,
        /// Seconds since the Unix epoch.
        time: f64,
    },
    /// A trial was proposed and queued.
    Ask {
        /// Trial number, from 0.
        trial: usize,
        /// Its point in the unit cube (parameters follow from the space).
        unit: Vec<f64>,
        /// The overrides it runs with.
        overrides: Vec<String>,
        /// Its run directory, relative to the study directory.
        run_dir: PathBuf,
        /// Seconds since the Unix epoch.
        time: f64,
    },
    /// A worker claimed the trial.
    Start {
        /// Trial number.
        trial: usize,
        /// The worker's name (`host:pid`).
        worker: String,
        /// Seconds since the Unix epoch.
        time: f64,
    },
    /// The trial's objective after an epoch.
    Report {
        /// Trial number.
        trial: usize,
        /// Epoch, from 1.
        epoch: usize,
        /// The objective metric's value.
        value: f64,
        /// Seconds since the Unix epoch.
        time: f64,
    },
    /// The trial finished; the sampler is told.
    Tell {
        /// Trial number.
        trial: usize,
        /// The objective (its best epoch's value).
        value: f64,
        /// Each constraint's value, feasible when `<= 0`.
        constraints: Vec<f64>,
        /// Completed or pruned.
        ending: Ending,
        /// Epochs trained.
        epochs: usize,
        /// Seconds since the Unix epoch.
        time: f64,
    },
    /// The trial failed with an error; it is not retried.
    Fail {
        /// Trial number.
        trial: usize,
        /// What went wrong.
        error: String,
        /// Seconds since the Unix epoch.
        time: f64,
    },
    /// The trial's worker went silent; it is queued again and resumes from its checkpoint.
    Requeue {
        /// Trial number.
        trial: usize,
        /// Why.
        reason: String,
        /// Seconds since the Unix epoch.
        time: f64,
    },
    /// The study stopped asking for trials.
    Finish {
        /// Which limit ended it.
        reason: String,
        /// Seconds since the Unix epoch.
        time: f64,
    },
}

/// Seconds since the Unix epoch, now.
pub fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The journal's writer: appends and syncs one event at a time.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Opens `path` for appending, first cutting a torn last line left by a crash.
    pub fn open(path: &Path) -> Result<Journal> {
        if path.exists() {
            let text = std::fs::read(path).map_err(Error::io("reading", path))?;
            let keep = match text.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => 0,
            };
            if keep < text.len() {
                let f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(Error::io("opening", path))?;
                f.set_len(keep as u64)
                    .and_then(|_| f.sync_all())
                    .map_err(Error::io("cutting the torn last line of", path))?;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(Error::io("opening", path))?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends `event` as one line and syncs it to disk.
    pub fn append(&mut self, event: &Event) -> Result<()> {
        let mut line = serde_json::to_string(event)
            .map_err(|e| Error::Analysis(format!("encoding a journal event: {e}")))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.sync_data())
            .map_err(Error::io("appending to", &self.path))
    }
}

/// Reads every event of `path`, skipping a torn (unparsable, unterminated) last line.
pub fn read(path: &Path) -> Result<Vec<Event>> {
    let text = std::fs::read_to_string(path).map_err(Error::io("reading", path))?;
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut events = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(line) {
            Ok(e) => events.push(e),
            Err(_) if i + 1 == lines.len() && !complete => break,
            Err(e) => {
                return Err(Error::Analysis(format!(
                    "corrupt study journal {} at line {}: {e}; every line must be one JSON \
                     event (study, ask, start, report, tell, fail, requeue, finish)",
                    path.display(),
                    i + 1
                )))
            }
        }
    }
    Ok(events)
}

/// The trial ids of the `ask` events, in journal order (each id once in a sound journal).
pub fn asked(events: &[Event]) -> Vec<usize> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Ask { trial, .. } => Some(*trial),
            _ => None,
        })
        .collect()
}

/// Where a trial stands in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialStatus {
    /// Asked for, waiting for a worker.
    Queued,
    /// Claimed by a worker.
    Running,
    /// Trained to the end.
    Completed,
    /// Stopped by the pruner.
    Pruned,
    /// Stopped by an error.
    Failed,
}

impl TrialStatus {
    /// Whether the trial is over (completed, pruned or failed).
    pub fn finished(self) -> bool {
        matches!(
            self,
            TrialStatus::Completed | TrialStatus::Pruned | TrialStatus::Failed
        )
    }

    /// The status as the trials frame writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            TrialStatus::Queued => "queued",
            TrialStatus::Running => "running",
            TrialStatus::Completed => "completed",
            TrialStatus::Pruned => "pruned",
            TrialStatus::Failed => "failed",
        }
    }
}

/// One trial as the journal tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRecord {
    /// Trial number.
    pub id: usize,
    /// Point in the unit cube.
    pub unit: Vec<f64>,
    /// Overrides it runs with.
    pub overrides: Vec<String>,
    /// Its run directory, relative to the study directory.
    pub run_dir: PathBuf,
    /// Where it stands.
    pub status: TrialStatus,
    /// Its objective, once told.
    pub value: Option<f64>,
    /// Constraint values, once told.
    pub constraints: Vec<f64>,
    /// Objective per epoch reported, `(epoch, value)`.
    pub reports: Vec<(usize, f64)>,
    /// The last worker that claimed it.
    pub worker: Option<String>,
    /// Epochs trained, once told.
    pub epochs: usize,
    /// When it was asked for, started (last claim) and finished (Unix seconds).
    pub asked_s: f64,
    /// When the last worker claimed it.
    pub started_s: Option<f64>,
    /// When it was told or failed.
    pub ended_s: Option<f64>,
    /// Times it was queued again after its worker went silent.
    pub requeues: usize,
    /// The error of a failed trial.
    pub error: Option<String>,
}

impl TrialRecord {
    /// The summed amount by which constraints are broken (0 when feasible or not told).
    pub fn violation(&self) -> f64 {
        self.constraints.iter().map(|&c| c.max(0.0)).sum()
    }

    /// Whether every constraint held (true until told otherwise).
    pub fn feasible(&self) -> bool {
        self.violation() == 0.0
    }
}

/// The journal replayed: the study's config and every trial by id.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyLog {
    /// The study's name.
    pub name: String,
    /// Its configuration as it started.
    pub config: StudyConfig,
    /// When it started (Unix seconds).
    pub started_s: f64,
    /// Trials by id (ids are 0..n without gaps).
    pub trials: Vec<TrialRecord>,
    /// Why it finished, if it did.
    pub finished: Option<String>,
}

impl StudyLog {
    /// Replays `events` (the first must be the study); an event about a trial never asked
    /// for, or a second ask of one id, is a corrupt journal.
    pub fn replay(events: &[Event]) -> Result<StudyLog> {
        let corrupt = |m: String| Error::Analysis(format!("corrupt study journal: {m}"));
        let Some(Event::Study { name, config, time }) = events.first() else {
            return Err(corrupt("it does not start with the study event".into()));
        };
        let mut log = StudyLog {
            name: name.clone(),
            config: (**config).clone(),
            started_s: *time,
            trials: Vec::new(),
            finished: None,
        };
        for e in &events[1..] {
            log.apply(e).map_err(corrupt)?;
        }
        Ok(log)
    }

    /// Reads and replays the journal at `path`.
    pub fn read(path: &Path) -> Result<StudyLog> {
        StudyLog::replay(&read(path)?)
    }

    /// Applies one event after the first (what the coordinator just journaled).
    pub(super) fn apply_event(&mut self, e: &Event) -> Result<()> {
        self.apply(e)
            .map_err(|m| Error::Analysis(format!("study journal: {m}")))
    }

    fn trial(&mut self, id: usize) -> std::result::Result<&mut TrialRecord, String> {
        self.trials
            .get_mut(id)
            .ok_or_else(|| format!("an event about trial {id}, never asked for"))
    }

    /// Applies one event after the first.
    fn apply(&mut self, e: &Event) -> std::result::Result<(), String> {
        match e {
            Event::Study { .. } => return Err("a second study event".into()),
            Event::Ask {
                trial,
                unit,
                overrides,
                run_dir,
                time,
            } => {
                if *trial != self.trials.len() {
                    return Err(format!(
                        "trial {trial} asked for after {} trials (ids must follow each other)",
                        self.trials.len()
                    ));
                }
                self.trials.push(TrialRecord {
                    id: *trial,
                    unit: unit.clone(),
                    overrides: overrides.clone(),
                    run_dir: run_dir.clone(),
                    status: TrialStatus::Queued,
                    value: None,
                    constraints: Vec::new(),
                    reports: Vec::new(),
                    worker: None,
                    epochs: 0,
                    asked_s: *time,
                    started_s: None,
                    ended_s: None,
                    requeues: 0,
                    error: None,
                });
            }
            Event::Start {
                trial,
                worker,
                time,
            } => {
                let t = self.trial(*trial)?;
                if !t.status.finished() {
                    t.status = TrialStatus::Running;
                }
                t.worker = Some(worker.clone());
                t.started_s = Some(*time);
            }
            Event::Report {
                trial,
                epoch,
                value,
                ..
            } => {
                let t = self.trial(*trial)?;
                t.reports.retain(|(e, _)| e != epoch);
                t.reports.push((*epoch, *value));
            }
            Event::Tell {
                trial,
                value,
                constraints,
                ending,
                epochs,
                time,
            } => {
                let t = self.trial(*trial)?;
                if t.status.finished() {
                    return Err(format!("trial {trial} told twice"));
                }
                t.status = match ending {
                    Ending::Completed => TrialStatus::Completed,
                    Ending::Pruned => TrialStatus::Pruned,
                };
                t.value = Some(*value);
                t.constraints = constraints.clone();
                t.epochs = *epochs;
                t.ended_s = Some(*time);
            }
            Event::Fail { trial, error, time } => {
                let t = self.trial(*trial)?;
                t.status = TrialStatus::Failed;
                t.error = Some(error.clone());
                t.ended_s = Some(*time);
            }
            Event::Requeue { trial, .. } => {
                let t = self.trial(*trial)?;
                if !t.status.finished() {
                    t.status = TrialStatus::Queued;
                    t.requeues += 1;
                }
            }
            Event::Finish { reason, .. } => self.finished = Some(reason.clone()),
        }
        Ok(())
    }

    /// Trials in `status`.
    pub fn count(&self, status: TrialStatus) -> usize {
        self.trials.iter().filter(|t| t.status == status).count()
    }

    /// Per trial, the best feasible value told up to and including it (in id order).
    pub fn best_so_far(&self, mode: crate::metric::Mode) -> Vec<Option<f64>> {
        let mut best = None;
        self.trials
            .iter()
            .map(|t| {
                if let Some(v) = t.value.filter(|_| t.feasible()) {
                    if mode.improves(v, best, 0.0) {
                        best = Some(v);
                    }
                }
                best
            })
            .collect()
    }

    /// Per trial, its reported values by epoch (for pruners).
    pub fn reports(&self) -> BTreeMap<usize, Vec<(usize, f64)>> {
        self.trials
            .iter()
            .map(|t| (t.id, t.reports.clone()))
            .collect()
    }
}
