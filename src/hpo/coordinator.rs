//! The coordinator: the only writer of a study's journal. Each step it journals what workers
//! left in the study directory (claims, epoch reports, results), queues again the trials whose
//! heartbeat went stale, checks the budget, and asks the sampler for new points when the
//! dispatch mode says so. Everything it knows is in the journal, so a coordinator started on
//! a killed study carries on where the last one stopped, with the same trial ids and, for a
//! fixed seed, the same next points.

use std::path::Path;

use super::files::{read_json, remove, write_json, EpochReport, Outcome, StudyDir, Ticket};
use super::journal::{now_s, Ending, Event, Journal, StudyLog, TrialStatus};
use super::sampler::{build, Observation, Sampler};
use super::space::Space;
use super::study::{DispatchMode, StudyConfig};
use crate::config::ConfigStore;
use crate::error::{Error, Result};
use crate::experiment::Experiment;
use crate::metric::Mode;
use crate::rundir::RunDir;

/// A study's coordinator.
pub struct Coordinator {
    dir: StudyDir,
    store: ConfigStore,
    config: StudyConfig,
    mode: Mode,
    sampler: Box<dyn Sampler>,
    journal: Journal,
    log: StudyLog,
    /// Whether a trial finished since the last ask (flexible mode asks only then).
    told_since_ask: bool,
    /// Trials seen claimed without a heartbeat, and since when (Unix seconds): a worker
    /// killed between claiming and its first beat leaves such a ticket behind.
    unbeaten: std::collections::BTreeMap<usize, f64>,
}

impl Coordinator {
    /// Starts study `name` in `dir` with `config`, or opens it if it exists (its frozen
    /// config must then equal `config`).
    pub fn open(
        store: &ConfigStore,
        dir: StudyDir,
        name: &str,
        config: &StudyConfig,
    ) -> Result<Coordinator> {
        let (_, mode) = config.check(store)?;
        dir.create()?;
        let path = dir.journal_path();
        let fresh = !path.exists() || std::fs::metadata(&path).is_ok_and(|m| m.len() == 0);
        let mut journal = Journal::open(&path)?;
        if fresh {
            let text = serde_yaml_ng::to_string(config)
                .map_err(|e| Error::Analysis(format!("encoding the study: {e}")))?;
            crate::fsutil::write_atomic(&dir.config_path(), text.as_bytes())?;
            journal.append(&Event::Study {
                name: name.to_string(),
                config: Box::new(config.clone()),
                time: now_s(),
            })?;
        }
        let log = StudyLog::read(&path)?;
        if &log.config != config {
            return Err(Error::invalid(
                format!("hpo.{name}"),
                format!(
                    "the study in {} was started with another configuration; resume it as it \
                     was (`autoresearch hpo resume {name}`) or give the new one another name",
                    dir.path().display()
                ),
            ));
        }
        let sampler = build(
            &config.sampler,
            config.space.dims(),
            config.budget.trials,
            config.seed,
        );
        Ok(Coordinator {
            dir,
            store: store.clone(),
            config: config.clone(),
            mode,
            sampler,
            journal,
            log,
            told_since_ask: true,
            unbeaten: Default::default(),
        })
    }

    /// The journal as replayed so far.
    pub fn log(&self) -> &StudyLog {
        &self.log
    }

    /// Journals `event` (synced) and applies it to the log.
    fn append(&mut self, event: Event) -> Result<()> {
        self.journal.append(&event)?;
        self.log.apply_event(&event)
    }

    /// One round: journal workers' news, re-queue stale trials, stop or refill. Returns
    /// whether the study is over (no trial queued or running and nothing left to ask).
    pub fn step(&mut self) -> Result<bool> {
        self.dir.write_beat(None)?;
        self.ingest()?;
        self.requeue_stale()?;
        if self.log.finished.is_none() {
            if let Some(reason) = self.stop_reason() {
                self.cancel_queued(&reason)?;
                self.append(Event::Finish {
                    reason,
                    time: now_s(),
                })?;
            }
        }
        if self.log.finished.is_none() {
            self.refill()?;
        }
        let active = self.log.count(TrialStatus::Queued) + self.log.count(TrialStatus::Running);
        let over = active == 0
            && (self.log.finished.is_some() || self.log.trials.len() >= self.config.budget.trials);
        if over {
            if self.log.finished.is_none() {
                self.append(Event::Finish {
                    reason: format!("budget of {} trials spent", self.config.budget.trials),
                    time: now_s(),
                })?;
            }
            crate::fsutil::write_atomic(&self.dir.stop(), b"study over\n")?;
        }
        Ok(over)
    }

    /// Journals claims, epoch reports and results the workers left.
    fn ingest(&mut self) -> Result<()> {
        let ids: Vec<usize> = (0..self.log.trials.len()).collect();
        for id in ids {
            let status = self.log.trials[id].status;
            if status.finished() {
                continue;
            }
            if status == TrialStatus::Queued && self.dir.claimed(id).exists() {
                if let Ok(beat) = read_json::<super::files::Beat>(&self.dir.beat(id)) {
                    self.append(Event::Start {
                        trial: id,
                        worker: beat.worker,
                        time: beat.time,
                    })?;
                }
            }
            if let Ok(reports) = read_json::<Vec<EpochReport>>(&self.dir.reports(id)) {
                for r in reports {
                    let known = self.log.trials[id]
                        .reports
                        .iter()
                        .any(|(e, _)| *e == r.epoch);
                    if !known {
                        self.append(Event::Report {
                            trial: id,
                            epoch: r.epoch,
                            value: r.value,
                            time: now_s(),
                        })?;
                    }
                }
            }
            let done = self.dir.done(id);
            if done.exists() {
                let outcome: Outcome = read_json(&done)?;
                let event = match (outcome.status.as_str(), outcome.value) {
                    ("completed" | "pruned", Some(value)) => Event::Tell {
                        trial: id,
                        value,
                        constraints: outcome.constraints,
                        ending: if outcome.status == "pruned" {
                            Ending::Pruned
                        } else {
                            Ending::Completed
                        },
                        epochs: outcome.epochs,
                        time: now_s(),
                    },
                    _ => Event::Fail {
                        trial: id,
                        error: outcome
                            .error
                            .unwrap_or_else(|| "finished without a value".to_string()),
                        time: now_s(),
                    },
                };
                self.append(event)?;
                self.told_since_ask = true;
                for p in [done, self.dir.claimed(id), self.dir.beat(id)] {
                    remove(&p)?;
                }
            }
        }
        Ok(())
    }

    /// Queues again every running trial whose heartbeat is older than the grace period
    /// (and every queued trial whose ticket was lost in a crash).
    fn requeue_stale(&mut self) -> Result<()> {
        let grace = self.config.dispatch.grace_s;
        let now = now_s();
        for id in 0..self.log.trials.len() {
            let t = &self.log.trials[id];
            let ticket_exists = self.dir.queued(id).exists() || self.dir.claimed(id).exists();
            match t.status {
                TrialStatus::Queued if !ticket_exists && !self.dir.done(id).exists() => {
                    self.write_ticket(id)?;
                }
                TrialStatus::Queued
                    if self.dir.claimed(id).exists()
                        && !self.dir.beat(id).exists()
                        && !self.dir.done(id).exists() =>
                {
                    let since = *self.unbeaten.entry(id).or_insert(now);
                    if now - since > grace {
                        self.append(Event::Requeue {
                            trial: id,
                            reason: format!(
                                "claimed without a heartbeat for {:.0} s (grace {grace} s)",
                                now - since
                            ),
                            time: now,
                        })?;
                        self.unbeaten.remove(&id);
                        std::fs::rename(self.dir.claimed(id), self.dir.queued(id))
                            .map_err(Error::io("re-queueing", &self.dir.claimed(id)))?;
                    }
                }
                TrialStatus::Running => {
                    let beat = read_json::<super::files::Beat>(&self.dir.beat(id)).ok();
                    let age = beat.map_or(f64::INFINITY, |b| now - b.time);
                    if age > grace && !self.dir.done(id).exists() {
                        self.append(Event::Requeue {
                            trial: id,
                            reason: format!("no heartbeat for {age:.0} s (grace {grace} s)"),
                            time: now,
                        })?;
                        remove(&self.dir.beat(id))?;
                        if self.dir.claimed(id).exists() {
                            std::fs::rename(self.dir.claimed(id), self.dir.queued(id))
                                .map_err(Error::io("re-queueing", &self.dir.claimed(id)))?;
                        } else {
                            self.write_ticket(id)?;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Why the study should stop asking, if it should: wall time or patience.
    fn stop_reason(&self) -> Option<String> {
        let b = &self.config.budget;
        if let Some(h) = b.wall_time_h {
            if now_s() - self.log.started_s > h * 3600.0 {
                return Some(format!("wall time of {h} h spent"));
            }
        }
        let patience = b.patience?;
        let mut told: Vec<(f64, f64)> = self
            .log
            .trials
            .iter()
            .filter_map(|t| Some((t.ended_s?, t.value?)))
            .collect();
        told.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mut best, mut since) = (None, 0);
        for (_, v) in told {
            if self.mode.improves(v, best, 0.0) {
                (best, since) = (Some(v), 0);
            } else {
                since += 1;
            }
        }
        (since >= patience).then(|| format!("{patience} trials without improvement"))
    }

    /// Cancels trials no worker has started (when the study stops early).
    fn cancel_queued(&mut self, reason: &str) -> Result<()> {
        for id in self.dir.ids("queue")? {
            if std::fs::rename(
                self.dir.queued(id),
                self.dir.done(id).with_extension("cancel"),
            )
            .is_ok()
            {
                self.append(Event::Fail {
                    trial: id,
                    error: format!("cancelled before it started: {reason}"),
                    time: now_s(),
                })?;
                remove(&self.dir.done(id).with_extension("cancel"))?;
            }
        }
        Ok(())
    }

    /// Asks for new points when the dispatch mode calls for them.
    fn refill(&mut self) -> Result<()> {
        let queued = self.log.count(TrialStatus::Queued);
        let running = self.log.count(TrialStatus::Running);
        let workers = self.config.workers;
        let room = self.config.budget.trials - self.log.trials.len();
        let want = match self.config.dispatch.mode {
            DispatchMode::Synchronous if queued + running == 0 => workers,
            DispatchMode::Synchronous => 0,
            DispatchMode::Asynchronous => workers.saturating_sub(queued + running),
            DispatchMode::Flexible
                if queued <= self.config.dispatch.threshold
                    && (self.told_since_ask || queued + running == 0) =>
            {
                workers.saturating_sub(running).max(1)
            }
            DispatchMode::Flexible => 0,
        };
        let q = want.min(room);
        if q > 0 {
            self.ask(q)?;
            self.told_since_ask = false;
        }
        Ok(())
    }

    /// The finished trials as the sampler sees them, and the points in flight.
    fn observations(&self) -> (Vec<Observation>, Vec<Vec<f64>>) {
        let observed = self
            .log
            .trials
            .iter()
            .filter_map(|t| {
                Some(Observation {
                    id: t.id,
                    unit: t.unit.clone(),
                    loss: match self.mode {
                        Mode::Max => -t.value?,
                        Mode::Min => t.value?,
                    },
                    constraints: t.constraints.clone(),
                })
            })
            .collect();
        let pending = self
            .log
            .trials
            .iter()
            .filter(|t| matches!(t.status, TrialStatus::Queued | TrialStatus::Running))
            .map(|t| t.unit.clone())
            .collect();
        (observed, pending)
    }

    /// Asks the sampler for `q` points, journals them and writes their tickets.
    fn ask(&mut self, q: usize) -> Result<()> {
        let first = self.log.trials.len();
        let (observed, pending) = self.observations();
        let points = self.sampler.ask(first, q, &observed, &pending);
        for (i, unit) in points.into_iter().enumerate() {
            let id = first + i;
            let overrides = Space::overrides(&self.config.space.point(&unit));
            let all = self.all_overrides(id, &overrides);
            let exp = Experiment::compose_in(&self.store, &self.config.experiment, &all)?;
            self.append(Event::Ask {
                trial: id,
                unit,
                overrides,
                run_dir: relative_to(RunDir::for_config(exp.config()).path(), self.dir.path()),
                time: now_s(),
            })?;
            self.write_ticket(id)?;
        }
        Ok(())
    }

    /// The study's overrides, trial `id`'s sampled ones, and its runs root.
    fn all_overrides(&self, id: usize, sampled: &[String]) -> Vec<String> {
        let mut all = self.config.overrides.clone();
        all.extend(sampled.iter().cloned());
        all.push(format!("runs_dir={}", self.dir.trial_runs(id).display()));
        all
    }

    fn write_ticket(&self, id: usize) -> Result<()> {
        let t = &self.log.trials[id];
        let ticket = Ticket {
            trial: id,
            overrides: self.all_overrides(id, &t.overrides),
        };
        write_json(&self.dir.queued(id), &ticket)
    }

    /// Runs steps every `poll_s` seconds until the study is over.
    pub fn run(&mut self, poll_s: f64) -> Result<&StudyLog> {
        while !self.step()? {
            std::thread::sleep(std::time::Duration::from_secs_f64(poll_s));
        }
        Ok(&self.log)
    }
}

/// `path` relative to `base` when it lies under it (run directories are journaled relative
/// to the study directory, so a fetched study reads the same as on the cluster).
fn relative_to(path: &Path, base: &Path) -> std::path::PathBuf {
    path.strip_prefix(base).unwrap_or(path).to_path_buf()
}

/// Whether the study at `dir` has a live coordinator (a heartbeat within `grace_s`).
pub fn coordinator_alive(dir: &Path, grace_s: f64) -> bool {
    read_json::<super::files::Beat>(&StudyDir::at(dir).coordinator())
        .is_ok_and(|b| now_s() - b.time <= grace_s)
}
