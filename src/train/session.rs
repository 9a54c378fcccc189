//! One call of training over one run directory: the epoch loop, the objective, checkpoints and
//! the run directory's files, for any network and any task.

use std::time::Instant;

use super::checkpoint::{self, TrainState};
use super::early_stop::EarlyStopState;
use super::evaluate::{evaluate_probed, Evaluation, TEST_STREAM, VAL_STREAM};
use super::optim::AnyOptimizer;
use super::progress::Progress;
use super::{build_run, now, schedule, BuiltRun, RunOutcome, TrainOptions};
use crate::config::ExperimentConfig;
use crate::data::encode::batch_seed;
use crate::data::epoch_permutation;
use crate::data::task::run_objectives;
use crate::data::{Batch, MetricSums};
use crate::dynamics::training::{split_extra, TrainingDynamics};
use crate::error::Result;
use crate::metric::NamedValue;
use crate::metric::{Mode, Objective};
use crate::nn::{Builder, FiringRates};
use crate::rundir::{EpochRecord, Metrics, RunDir, RunStatus, SCHEMA_VERSION};

/// One call of training over one run directory.
pub(super) struct Session<'a> {
    pub cfg: &'a ExperimentConfig,
    pub opts: &'a TrainOptions,
    pub dir: RunDir,
    pub metrics: Metrics,
}

/// Training batches gathered ahead of the step that uses them.
const PREFETCH_BATCHES: usize = 2;

/// The seed of the augmentation of batch `i` of epoch `epoch` (0-based): its own stream,
/// independent of the encoder's.
pub(crate) fn augment_seed(seed: u64, epoch: u64, i: usize) -> u64 {
    batch_seed(seed ^ crate::data::augment::AUGMENT_SALT, epoch, i)
}

/// Calls `send(i, indices)` for each batch of `order` in turn until it returns `false`, on a
/// one-thread rayon pool of its own, so a gather that splits work over rayon never waits on
/// the training pool (whose worker is blocked on the channel).
fn prefetch(order: &[usize], batch: usize, mut send: impl FnMut(usize, &[usize]) -> bool + Send) {
    let mut run = move || {
        for (i, idx) in order.chunks(batch).enumerate() {
            if !send(i, idx) {
                break;
            }
        }
    };
    match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
        Ok(pool) => pool.install(run),
        Err(_) => run(),
    }
}

/// The column early stopping watches and its direction.
struct Watch {
    column: String,
    mode: Mode,
}

impl Session<'_> {
    /// Trains to the end (or to `stop_after_epochs`), then tests the best checkpoint.
    pub fn run(&mut self, custom: Option<Builder>) -> Result<RunOutcome> {
        let cfg = self.cfg;
        let mut run = build_run(cfg, custom)?;
        let task = run.data.task.clone();
        let (objective, watch) =
            run_objectives(&*task, cfg.objective.as_ref(), cfg.early_stopping.as_ref())?;
        let watch = watch.map(|o| Watch {
            column: o.metric,
            mode: o.mode,
        });
        self.metrics.declared = task.metrics();
        self.metrics.params = run.params.iter().map(|(_, v)| v.elem_count()).sum();
        for (name, bytes) in run.net.run_files() {
            crate::fsutil::write_atomic(&self.dir.path().join(name), &bytes)?;
        }
        let mut optimizer = run.optimizer(cfg)?;
        let mut dynamics =
            TrainingDynamics::new(cfg.dynamics.as_ref(), &*run.net, &run.params, cfg.seed)?;
        let resumed = self.dir.last_checkpoint().exists();
        let mut state = self.start_or_resume(&mut run, &mut optimizer, &mut dynamics, resumed)?;
        self.sync_metrics(&state, &objective, RunStatus::Running);
        self.dir.write_metrics(&self.metrics)?;

        let progress = Progress::new(self.opts.quiet);
        let mut epochs_this_call = 0;
        let mut early_stopped = self.stopped_early(&state);
        while state.epoch < cfg.epochs && !early_stopped {
            run.net.start_epoch(state.epoch + 1)?;
            let record = self.epoch(&run, &mut optimizer, &mut dynamics, &mut state, &progress)?;
            let epoch = record.epoch;
            let value = record.value(&objective.metric).unwrap_or(f64::NAN);
            let net_extra = run.net.extra_state();
            if objective.mode.improves(value, state.best, 0.0) {
                state.best = Some(value);
                state.best_epoch = Some(epoch);
                let best = self.dir.best_checkpoint();
                checkpoint::save_weights(&best, &run.params, &net_extra, epoch)?;
            }
            let mut extra = net_extra;
            if let Some(d) = &dynamics {
                let (counters, tensors) = d.checkpoint();
                state.flossing = counters;
                extra.extend(tensors);
            }
            if let (Some(es), Some(w)) = (&cfg.early_stopping, &watch) {
                let v = super::early_stop::watched_value(&w.column, &record);
                early_stopped = state.early_stop.update(es, w.mode, v);
            }
            state.epoch = epoch;
            state.wall_time_s += record.epoch_time_s;
            state.history.push(record.clone());
            checkpoint::save_last(
                &self.dir.last_checkpoint(),
                &self.dir.last_state_json(),
                &run.params,
                &extra,
                &optimizer.state(),
                &state,
            )?;
            self.dir.write_history(&state.history)?;
            let line = epoch_line(&record, cfg.epochs);
            self.dir.log(&line)?;
            progress.line(&line);
            self.sync_metrics(&state, &objective, RunStatus::Running);
            self.dir.write_metrics(&self.metrics)?;
            epochs_this_call += 1;
            if let Some(monitor) = &self.opts.monitor {
                if let super::Verdict::Prune(reason) = (monitor.0)(&record) {
                    self.sync_metrics(&state, &objective, RunStatus::Pruned);
                    self.metrics.finished_at = Some(now());
                    self.dir.write_metrics(&self.metrics)?;
                    self.dir
                        .log(&format!("pruned after epoch {epoch}: {reason}"))?;
                    return Ok(self.outcome(resumed));
                }
            }
            if self.opts.stop_after_epochs == Some(epochs_this_call)
                && state.epoch < cfg.epochs
                && !early_stopped
            {
                self.sync_metrics(&state, &objective, RunStatus::Killed);
                self.metrics.finished_at = Some(now());
                self.dir.write_metrics(&self.metrics)?;
                self.dir.log(&format!(
                    "stopped after {epochs_this_call} epochs as asked; resumable"
                ))?;
                return Ok(self.outcome(resumed));
            }
        }
        self.test(&mut run, &state, &objective, early_stopped)?;
        Ok(self.outcome(resumed))
    }

    fn outcome(&self, resumed: bool) -> RunOutcome {
        RunOutcome {
            dir: self.dir.clone(),
            metrics: self.metrics.clone(),
            skipped: false,
            resumed,
        }
    }

    /// Loads the last checkpoint into the network and optimizer, or starts a fresh state.
    fn start_or_resume(
        &mut self,
        run: &mut BuiltRun,
        optimizer: &mut AnyOptimizer,
        dynamics: &mut Option<TrainingDynamics>,
        resumed: bool,
    ) -> Result<TrainState> {
        let cfg = self.cfg;
        if resumed {
            let (opt_state, state, extra) =
                checkpoint::load_last(&self.dir.last_checkpoint(), &run.params, &run.device)?;
            optimizer.load_state(&opt_state)?;
            let (extra, flossing) = split_extra(extra);
            run.net.load_extra_state(&extra)?;
            if let Some(d) = dynamics.as_mut() {
                d.restore(state.flossing.clone(), &flossing)?;
            }
            self.metrics.resumed += 1;
            self.dir.log(&format!(
                "resumed from checkpoint after epoch {}",
                state.epoch
            ))?;
            self.dir.write_history(&state.history)?;
            return Ok(state);
        }
        let d = &run.data;
        self.dir.log(&format!(
            "started {} / {} seed {} ({} train, {} val, {} test samples of {}, {} parameters)",
            cfg.name,
            cfg.variant,
            cfg.seed,
            d.train.len(),
            d.val.len(),
            d.tests.iter().map(|(_, s)| s.len()).sum::<usize>(),
            d.kind,
            self.metrics.params
        ))?;
        if let Some(d) = dynamics.as_ref() {
            if let Some(s) = d.spectrum(&*run.net, &*run.data.val, &run.device)? {
                crate::dynamics::record_spectrum(self.dir.path(), 0, &s)?;
                self.dir.log(&format!(
                    "spectrum before training: lambda_1 {:.4} per step ({} steps averaged)",
                    s.mean[0], s.steps_averaged
                ))?;
            }
        }
        Ok(TrainState {
            schema_version: SCHEMA_VERSION,
            epoch: 0,
            optimizer_step: 0,
            optimizer_slots: optimizer
                .state()
                .slots
                .iter()
                .map(|(n, _)| n.to_string())
                .collect(),
            history: Vec::new(),
            best: None,
            best_epoch: None,
            early_stop: EarlyStopState::default(),
            wall_time_s: 0.0,
            rng: "derived: permutation(seed, epoch); init(seed, parameter name)".to_string(),
            flossing: None,
        })
    }

    /// One epoch of training and validation; returns its record.
    fn epoch(
        &self,
        run: &BuiltRun,
        optimizer: &mut AnyOptimizer,
        dynamics: &mut Option<TrainingDynamics>,
        state: &mut TrainState,
        progress: &Progress,
    ) -> Result<EpochRecord> {
        let cfg = self.cfg;
        let task = &*run.data.task;
        let started = Instant::now();
        let epoch = state.epoch + 1;
        let batch = cfg.batch_size.max(1);
        let train = &*run.data.train;
        let steps_per_epoch = train.len().div_ceil(batch);
        let total_steps = steps_per_epoch * cfg.epochs;
        let order = epoch_permutation(train.len(), cfg.seed, state.epoch);
        let bar = progress.epoch_bar(epoch, cfg.epochs, steps_per_epoch);
        let (mut loss_sum, mut seen) = (0.0f64, 0usize);
        let mut sums = MetricSums::default();
        let mut lr = cfg.optimizer.lr();
        let device = &run.device;
        let epoch_index = state.epoch as u64;
        let produced = std::thread::scope(|scope| -> Result<()> {
            // batches are gathered (and augmented) one step ahead on a thread of their own
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Batch>>(PREFETCH_BATCHES);
            let order = &order;
            scope.spawn(move || {
                prefetch(order, batch, |i, idx| {
                    let seed = augment_seed(cfg.seed, epoch_index, i);
                    tx.send(train.train_batch(idx, device, seed)).is_ok()
                })
            });
            for (i, idx) in order.chunks(batch).enumerate() {
                let step = (state.epoch * steps_per_epoch) + i;
                lr = schedule::lr_at(
                    &cfg.scheduler,
                    cfg.optimizer.lr(),
                    step,
                    steps_per_epoch,
                    total_steps,
                );
                optimizer.set_learning_rate(lr);
                if let Some(d) = dynamics.as_mut() {
                    d.before_step(step as u64, &*run.net, train, &run.device)?;
                }
                let Batch {
                    input: x,
                    target: y,
                } = rx.recv().map_err(|_| {
                    crate::Error::invalid("data", "the batch loader stopped early")
                })??;
                let seed = batch_seed(cfg.seed, epoch_index, i);
                let out = run.train_step(cfg, optimizer, (&x, &y), seed)?;
                loss_sum += out.loss * idx.len() as f64;
                task.accumulate(&out.output, &y, &mut sums)?;
                seen += idx.len();
                bar.tick(
                    i + 1,
                    out.loss,
                    seen as f64 / started.elapsed().as_secs_f64().max(1e-9),
                );
            }
            Ok(())
        });
        produced?;
        bar.finish();
        state.optimizer_step += steps_per_epoch as u64;
        let network_columns = run.net.epoch_columns();
        let val = self.validate(run, state.epoch)?;
        let mut measured = Vec::new();
        if let Some(d) = dynamics.as_mut() {
            let (columns, spectrum) =
                d.epoch_columns(&*run.net, task, &*run.data.val, &run.device)?;
            if let Some(s) = spectrum {
                crate::dynamics::record_spectrum(self.dir.path(), state.epoch + 1, &s)?;
            }
            measured = columns;
        }
        let prefixed = |split: &str, values: Vec<NamedValue>| -> Vec<NamedValue> {
            values
                .into_iter()
                .map(|m| NamedValue::new(format!("{split}_{}", m.name), m.value))
                .collect()
        };
        Ok(EpochRecord {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            train: prefixed("train", task.finish(&sums)),
            val_loss: val.loss,
            val: prefixed("val", val.metrics),
            lr,
            epoch_time_s: started.elapsed().as_secs_f64(),
            extra: val
                .firing_rates
                .into_iter()
                .map(|r| NamedValue::new(format!("rate_{}", r.layer), r.rate))
                .chain(val.silent_fractions.into_iter().map(|r| {
                    let k = self.opts.silent_below.unwrap_or(0);
                    NamedValue::new(format!("silent_lt{k}_{}", r.layer), r.rate)
                }))
                .chain(measured)
                .chain(network_columns)
                .collect(),
        })
    }

    /// This epoch's validation: the validation split, or a fresh sample of the test split.
    fn validate(&self, run: &BuiltRun, epoch: usize) -> Result<Evaluation> {
        match self.cfg.validation {
            crate::config::Validation::Split => self.eval(run, &*run.data.val, VAL_STREAM),
            crate::config::Validation::TestSample { size } => {
                let Some((_, test)) = run.data.tests.first() else {
                    return Err(crate::Error::invalid(
                        "validation",
                        "test_sample needs a test split, and this dataset has none",
                    ));
                };
                let subset = super::validation::Subset {
                    inner: &**test,
                    indices: super::validation::sample_indices(
                        test.len(),
                        size,
                        self.cfg.seed,
                        epoch,
                    ),
                };
                self.eval(run, &subset, VAL_STREAM)
            }
        }
    }

    fn eval(
        &self,
        run: &BuiltRun,
        split: &dyn crate::data::Split,
        stream: u64,
    ) -> Result<Evaluation> {
        let rates = match self.opts.silent_below {
            Some(k) if stream == VAL_STREAM => FiringRates::counting_silent(k),
            _ => FiringRates::new(),
        };
        evaluate_probed(
            &*run.net,
            &*run.data.task,
            split,
            self.cfg.eval_batch_size,
            (self.cfg.seed, stream),
            &run.device,
            rates,
        )
    }

    /// Tests the best checkpoint on every test split and completes the run.
    fn test(
        &mut self,
        run: &mut BuiltRun,
        state: &TrainState,
        objective: &Objective,
        early_stopped: bool,
    ) -> Result<()> {
        let extra =
            checkpoint::load_weights(&self.dir.best_checkpoint(), &run.params, &run.device)?;
        run.net.load_extra_state(&split_extra(extra).0)?;
        let mut results = std::collections::BTreeMap::new();
        if let Some(best) = state
            .best_epoch
            .and_then(|e| state.history.iter().find(|r| r.epoch == e))
        {
            let mut val = std::collections::BTreeMap::from([("loss".to_string(), best.val_loss)]);
            for m in &best.val {
                val.insert(m.name.trim_start_matches("val_").to_string(), m.value);
            }
            results.insert("val".to_string(), val);
        }
        let tests = if self.opts.skip_test {
            &[][..]
        } else {
            &run.data.tests[..]
        };
        for (name, split) in tests {
            let e = self.eval(run, &**split, TEST_STREAM)?;
            let mut values = std::collections::BTreeMap::from([("loss".to_string(), e.loss)]);
            values.extend(e.metrics.into_iter().map(|m| (m.name, m.value)));
            results.insert(name.clone(), values);
        }
        self.sync_metrics(state, objective, RunStatus::Completed);
        let test = results.get("test");
        self.metrics.test_acc = test.and_then(|t| t.get("acc").copied());
        self.metrics.test_loss = test.and_then(|t| t.get("loss").copied());
        self.metrics.results = results;
        self.metrics.early_stopped = early_stopped;
        self.metrics.finished_at = Some(now());
        self.dir.write_metrics(&self.metrics)?;
        let summary: Vec<String> = self
            .metrics
            .results
            .get("test")
            .map(|t| t.iter().map(|(k, v)| format!("test_{k} {v:.4}")).collect())
            .unwrap_or_default();
        let line = format!(
            "completed: best {} {:.4} at epoch {}, {} (best checkpoint), {:.1}s",
            objective.metric,
            state.best.unwrap_or(f64::NAN),
            state.best_epoch.unwrap_or(0),
            summary.join(" "),
            state.wall_time_s
        );
        self.dir.log(&line)?;
        Progress::new(self.opts.quiet).line(&line);
        Ok(())
    }

    /// Whether a resumed state had already met its early-stopping condition.
    fn stopped_early(&self, state: &TrainState) -> bool {
        self.cfg
            .early_stopping
            .as_ref()
            .is_some_and(|es| state.early_stop.bad_epochs > es.patience)
    }

    fn sync_metrics(&mut self, state: &TrainState, objective: &Objective, status: RunStatus) {
        let best_row = state
            .best_epoch
            .and_then(|e| state.history.iter().find(|r| r.epoch == e));
        let m = &mut self.metrics;
        m.status = status;
        m.epochs_done = state.epoch;
        m.best_val_acc = best_row.and_then(|r| r.value("val_acc"));
        m.best_epoch = state.best_epoch;
        m.final_val_acc = state.history.last().and_then(|r| r.value("val_acc"));
        m.wall_time_s = state.wall_time_s;
        m.objective = Some(Objective {
            best: state.best,
            best_epoch: state.best_epoch,
            ..objective.clone()
        });
        m.error = None;
    }
}

/// The log line of one epoch: the losses and the validation metrics (with the training ones
/// too when the task declares a single metric besides the loss, as classification does), the
/// learning rate and the time.
fn epoch_line(r: &EpochRecord, epochs: usize) -> String {
    let with_train = r.train.len() <= 1;
    let values: Vec<String> = r
        .columns()
        .into_iter()
        .skip(1)
        .filter(|c| !matches!(c.name.as_str(), "lr" | "epoch_time_s"))
        .filter(|c| !c.name.starts_with("rate_"))
        .filter(|c| with_train || c.name == "train_loss" || !c.name.starts_with("train_"))
        .map(|c| format!("{} {:.4}", c.name, c.value))
        .collect();
    format!(
        "epoch {}/{epochs}: {} lr {:.3e} ({:.1}s)",
        r.epoch,
        values.join(" "),
        r.lr,
        r.epoch_time_s
    )
}
