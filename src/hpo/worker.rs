//! A worker: claims queued trials of a study one at a time and trains each as a normal run
//! (validation only, no test pass), beating its heartbeat, reporting the objective after
//! every epoch and letting the pruner and the activity rule stop it. Local worker processes
//! and cluster job-array tasks run this same loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::coordinator::coordinator_alive;
use super::files::{read_json, write_json, EpochReport, Outcome, StudyDir, Ticket};
use super::journal::StudyLog;
use super::study::StudyConfig;
use crate::config::ConfigStore;
use crate::error::{Error, Result};
use crate::experiment::Experiment;
use crate::metric::Mode;
use crate::rundir::{EpochRecord, RunStatus};
use crate::train::{EpochMonitor, TrainOptions, Verdict};

/// Reads the frozen `study.yaml` of `dir`.
pub fn frozen_config(dir: &StudyDir) -> Result<StudyConfig> {
    let path = dir.config_path();
    let text = std::fs::read_to_string(&path).map_err(Error::io("reading", &path))?;
    StudyConfig::from_yaml(&text, &path)
}

/// Claims and runs trials of the study in `dir` until it is over (its `stop` file) or its
/// coordinator has been silent past the grace period with nothing queued; returns how many
/// trials this worker ran.
pub fn work(store: &ConfigStore, dir: &StudyDir, poll_s: f64) -> Result<usize> {
    let config = frozen_config(dir)?;
    work_with(store, dir, &config, poll_s, None)
}

/// [`work`] for a job-array task of study `name` (`configs/hpo/<name>.yaml`): every task
/// also tries to take the study's coordinator lock, and the one holding it coordinates in a
/// thread beside its trials; when that task dies the lock is free and another takes over.
pub fn work_coordinating(
    store: &ConfigStore,
    dir: &StudyDir,
    name: &str,
    poll_s: f64,
) -> Result<usize> {
    let config = StudyConfig::load(store, name)?;
    dir.create()?;
    work_with(store, dir, &config, poll_s, Some(name))
}

/// A coordinator running in a thread while this process holds `coordinator.lock`.
struct CoordinatorThread {
    handle: std::thread::JoinHandle<Result<()>>,
}

impl CoordinatorThread {
    /// Takes the lock if it is free and starts coordinating study `name`.
    fn try_start(
        store: &ConfigStore,
        dir: &StudyDir,
        name: &str,
        config: &StudyConfig,
        poll_s: f64,
    ) -> Result<Option<CoordinatorThread>> {
        let path = dir.path().join("coordinator.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::io("opening", &path))?;
        if lock.try_lock().is_err() {
            return Ok(None);
        }
        let (store, dir, name, config) =
            (store.clone(), dir.clone(), name.to_string(), config.clone());
        let handle = std::thread::spawn(move || {
            let _held = lock;
            let mut c = super::coordinator::Coordinator::open(&store, dir.clone(), &name, &config)?;
            c.run(poll_s).map(|_| ())
        });
        Ok(Some(CoordinatorThread { handle }))
    }
}

fn work_with(
    store: &ConfigStore,
    dir: &StudyDir,
    config: &StudyConfig,
    poll_s: f64,
    coordinate: Option<&str>,
) -> Result<usize> {
    let (metric, mode) = config.check(store)?;
    let started = Instant::now();
    let grace = config.dispatch.grace_s;
    let mut ran = 0;
    let mut coordinator: Option<CoordinatorThread> = None;
    loop {
        if let Some(name) = coordinate {
            match &coordinator {
                Some(c) if c.handle.is_finished() => {
                    if let Some(c) = coordinator.take() {
                        c.handle.join().map_err(|_| {
                            Error::Analysis("the coordinator thread panicked".into())
                        })??;
                    }
                }
                Some(_) => {}
                None if !dir.stop().exists() => {
                    coordinator = CoordinatorThread::try_start(store, dir, name, config, poll_s)?;
                }
                None => {}
            }
        }
        if dir.stop().exists() && coordinator.is_none() {
            return Ok(ran);
        }
        match dir.claim()? {
            Some(ticket) => {
                run_trial(store, dir, config, (&metric, mode), &ticket)?;
                ran += 1;
            }
            None => {
                let silent = !coordinator_alive(dir.path(), grace);
                if coordinate.is_none() && silent && started.elapsed().as_secs_f64() > grace {
                    return Ok(ran);
                }
                std::thread::sleep(Duration::from_secs_f64(poll_s));
            }
        }
    }
}

/// Beats trial `id`'s heartbeat every `every_s` seconds until dropped.
struct Heartbeat {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    fn start(dir: &StudyDir, id: usize, every_s: f64) -> Result<Heartbeat> {
        dir.write_beat(Some(id))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, dir) = (stop.clone(), dir.clone());
        let thread = std::thread::spawn(move || {
            let tick = Duration::from_millis(50);
            let mut last = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                if last.elapsed().as_secs_f64() >= every_s {
                    let _ = dir.write_beat(Some(id));
                    last = Instant::now();
                }
            }
        });
        Ok(Heartbeat {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The constraint values of `record`: each study constraint (`value - max` or `min - value`),
/// then the activity rule's `fraction - max_fraction`; and the rule's reason to stop.
fn constraints_of(config: &StudyConfig, record: &EpochRecord) -> (Vec<f64>, Option<String>) {
    let mut values: Vec<f64> = config
        .constraints
        .iter()
        .map(|c| {
            let v = record.value(&c.metric).unwrap_or(f64::NAN);
            match (c.max, c.min) {
                (Some(max), _) => v - max,
                (None, Some(min)) => min - v,
                (None, None) => 0.0,
            }
        })
        .collect();
    let mut stop = None;
    if let Some(rule) = &config.activity {
        let fraction = record.value(&rule.column()).unwrap_or(1.0);
        let (c, reason) = rule.check(fraction);
        values.push(c);
        stop = reason;
    }
    (values, stop)
}

/// Trains one claimed trial and leaves its outcome in `done/`.
fn run_trial(
    store: &ConfigStore,
    dir: &StudyDir,
    config: &StudyConfig,
    (metric, mode): (&str, Mode),
    ticket: &Ticket,
) -> Result<()> {
    let id = ticket.trial;
    let _beat = Heartbeat::start(dir, id, config.dispatch.heartbeat_s)?;
    let earlier: Vec<EpochReport> = read_json(&dir.reports(id)).unwrap_or_default();
    let reports = Arc::new(Mutex::new(earlier));
    let result =
        Experiment::compose_in(store, &config.experiment, &ticket.overrides).and_then(|exp| {
            let epochs = exp.config().epochs;
            let monitor = monitor(dir, config, (metric, mode), id, epochs, reports.clone());
            let opts = TrainOptions {
                quiet: true,
                skip_test: true,
                silent_below: config.activity.as_ref().map(|a| a.below),
                ..TrainOptions::default()
            }
            .with_monitor(monitor);
            exp.train_with(&opts)
        });
    let reports = reports.lock().map(|r| r.clone()).unwrap_or_default();
    let outcome = match result {
        Ok(run) => {
            let best = reports
                .iter()
                .fold(None, |b: Option<&EpochReport>, r| match b {
                    Some(b) if !mode.improves(r.value, Some(b.value), 0.0) => Some(b),
                    _ => Some(r),
                });
            let pruned = run.metrics.status == RunStatus::Pruned;
            let mut constraints = best.map(|b| b.constraints.clone()).unwrap_or_default();
            if let (Some(last), Some(_)) = (reports.last(), &config.activity) {
                if let (Some(c), Some(l)) = (constraints.last_mut(), last.constraints.last()) {
                    *c = *l;
                }
            }
            Outcome {
                trial: id,
                status: if pruned { "pruned" } else { "completed" }.to_string(),
                value: best.map(|b| b.value).filter(|v| v.is_finite()),
                constraints,
                epochs: run.metrics.epochs_done,
                error: best
                    .is_none()
                    .then(|| format!("no epoch reported `{metric}`")),
            }
        }
        Err(e) => Outcome {
            trial: id,
            status: "failed".to_string(),
            value: None,
            constraints: Vec::new(),
            epochs: reports.len(),
            error: Some(e.to_string()),
        },
    };
    write_json(&dir.done(id), &outcome)
}

/// The per-epoch callback of trial `id`: records its report, then asks the activity rule
/// and the pruner (never at the last epoch, when stopping saves nothing).
fn monitor(
    dir: &StudyDir,
    config: &StudyConfig,
    (metric, mode): (&str, Mode),
    id: usize,
    epochs: usize,
    reports: Arc<Mutex<Vec<EpochReport>>>,
) -> EpochMonitor {
    let (dir, config, metric) = (dir.clone(), config.clone(), metric.to_string());
    EpochMonitor::new(move |record: &EpochRecord| {
        let value = record.value(&metric).unwrap_or(f64::NAN);
        let (constraints, activity_stop) = constraints_of(&config, record);
        let own: Vec<(usize, f64)> = {
            let Ok(mut all) = reports.lock() else {
                return Verdict::Continue;
            };
            all.retain(|r| r.epoch != record.epoch);
            all.push(EpochReport {
                epoch: record.epoch,
                value,
                constraints,
            });
            let _ = write_json(&dir.reports(id), &*all);
            all.iter().map(|r| (r.epoch, r.value)).collect()
        };
        if let Some(reason) = activity_stop {
            return Verdict::Prune(reason);
        }
        if record.epoch >= epochs {
            return Verdict::Continue;
        }
        let others = StudyLog::read(&dir.journal_path())
            .map(|l| l.reports())
            .unwrap_or_default();
        match config.pruner.decide(mode, id, record.epoch, &own, &others) {
            Some(reason) => Verdict::Prune(reason),
            None => Verdict::Continue,
        }
    })
}
