//! The training loop: seeded init, batches, optimizer + schedule + clipping, validation, early
//! stopping, checkpoint + resume, and the run directory written atomically as it goes.

pub mod checkpoint;
pub mod early_stop;
mod inspect;
pub mod optim;
mod progress;
pub mod schedule;

use std::time::Instant;

use candle_core::{DType, Device, Module, Tensor, Var};

use crate::config::{DeviceConfig, ExperimentConfig, Kernels, Normalize};
use crate::data::encode::batch_seed;
use crate::data::{epoch_permutation, load_splits, ImageSet};
use crate::error::{Error, Result};
use crate::nn::{FiringRates, Model, SeededVarMap};
use crate::rundir::{EpochRecord, Metrics, RunDir, RunStatus, SCHEMA_VERSION};
use checkpoint::TrainState;
use early_stop::EarlyStopState;
use optim::AnyOptimizer;
use progress::Progress;

pub use autoresearch_kernels::par::on_pool;
pub use inspect::{load_trained, TrainedModel};

/// How to run training (as opposed to what to train, which is the config).
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Retrain from scratch even if the run completed or has a checkpoint.
    pub force: bool,
    /// No progress bar and no per-epoch lines (batch jobs).
    pub quiet: bool,
    /// Stop after this many epochs in this call, leaving the run `killed` and resumable
    /// (for wall-time-limited jobs).
    pub stop_after_epochs: Option<usize>,
}

impl TrainOptions {
    /// Sets [`TrainOptions::force`].
    pub fn with_force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }
    /// Sets [`TrainOptions::quiet`].
    pub fn with_quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }
    /// Sets [`TrainOptions::stop_after_epochs`].
    pub fn with_stop_after_epochs(mut self, epochs: usize) -> Self {
        self.stop_after_epochs = Some(epochs);
        self
    }
}

/// What a call to [`train`] did.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The run directory.
    pub dir: RunDir,
    /// The metrics as written to `metrics.json`.
    pub metrics: Metrics,
    /// True if the run had already completed and nothing was done.
    pub skipped: bool,
    /// True if training continued from a checkpoint.
    pub resumed: bool,
}

/// The candle device a config asks for.
pub fn device_for(cfg: DeviceConfig) -> Result<Device> {
    Ok(match cfg {
        DeviceConfig::Cpu => Device::Cpu,
        DeviceConfig::Cuda => Device::new_cuda(0)?,
    })
}

/// Trains `cfg` into its run directory, resuming from a checkpoint when one exists.
pub fn train(cfg: &ExperimentConfig, opts: &TrainOptions) -> Result<RunOutcome> {
    let dir = RunDir::for_config(cfg);
    let existing = if opts.force {
        None
    } else {
        dir.read_metrics()?
    };
    if existing.is_some() || (!opts.force && dir.last_checkpoint().exists()) {
        ensure_same_config(&dir, cfg)?;
    }
    if let Some(m) = &existing {
        if m.status == RunStatus::Completed {
            return Ok(RunOutcome {
                dir,
                metrics: m.clone(),
                skipped: true,
                resumed: false,
            });
        }
    }
    if opts.force {
        let checkpoints = dir.checkpoint_dir();
        if checkpoints.exists() {
            std::fs::remove_dir_all(&checkpoints)
                .map_err(Error::io("removing old checkpoints", &checkpoints))?;
        }
        for path in [dir.metrics_path(), dir.history_path()] {
            if path.exists() {
                std::fs::remove_file(&path).map_err(Error::io("removing old run file", &path))?;
            }
        }
    }
    dir.write_config(cfg)?;
    let mut session = Session {
        cfg,
        opts,
        dir: dir.clone(),
        metrics: initial_metrics(cfg, existing.as_ref()),
    };
    // on a pool worker, so the fused kernels of each step do not wake the pool from outside
    on_pool(|| session.run()).inspect_err(|err| {
        let chain = error_chain(err);
        let _ = dir.log(&format!("failed: {chain}"));
        let metrics = &mut session.metrics;
        metrics.status = RunStatus::Failed;
        metrics.error = Some(chain);
        metrics.finished_at = Some(now());
        // Best effort: the original error matters more than a failure to record it.
        let _ = dir.write_metrics(metrics);
    })
}

/// An error and its causes on one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Refuses to mix runs of different configs in one directory (relocation keys aside).
fn ensure_same_config(dir: &RunDir, cfg: &ExperimentConfig) -> Result<()> {
    if !dir.config_path().exists() {
        return Ok(());
    }
    let saved = dir.read_config()?;
    let strip = |c: &ExperimentConfig| {
        let mut c = c.clone();
        c.runs_dir = Default::default();
        c.data.root = None;
        c.device = Default::default();
        c.kernels = Default::default();
        c
    };
    if strip(&saved) != strip(cfg) {
        return Err(Error::RunDir {
            path: dir.path().to_path_buf(),
            message: "holds a run of a different config (see its config.yaml); rerun with --force to replace it, or set variant=<name> to keep both".to_string(),
        });
    }
    Ok(())
}

fn initial_metrics(cfg: &ExperimentConfig, existing: Option<&Metrics>) -> Metrics {
    Metrics {
        schema_version: SCHEMA_VERSION,
        experiment: cfg.name.clone(),
        variant: cfg.variant.clone(),
        model: cfg.model.kind().to_string(),
        dataset: cfg.data.name.dir_name().to_string(),
        seed: cfg.seed,
        status: RunStatus::Running,
        best_val_acc: None,
        best_epoch: None,
        final_val_acc: None,
        test_acc: None,
        test_loss: None,
        epochs_done: 0,
        epochs_planned: cfg.epochs,
        early_stopped: false,
        params: 0,
        wall_time_s: 0.0,
        started_at: existing.map_or_else(now, |m| m.started_at.clone()),
        finished_at: None,
        host: gethostname::gethostname().to_string_lossy().into_owned(),
        git_commit: git_commit(),
        resumed: existing.map_or(0, |m| m.resumed),
        error: None,
    }
}

/// The commit checked out in the current directory, if it is a git checkout (recorded with
/// every run and benchmark so their numbers trace back to code).
pub(crate) fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// One call of training over one run directory.
struct Session<'a> {
    cfg: &'a ExperimentConfig,
    opts: &'a TrainOptions,
    dir: RunDir,
    metrics: Metrics,
}

impl Session<'_> {
    fn run(&mut self) -> Result<RunOutcome> {
        let cfg = self.cfg;
        let device = device_for(cfg.device)?;
        if let Some(encoder) = cfg.model.encoder() {
            encoder.validate("model.encoder", cfg.data.normalize == Normalize::None)?;
        }
        let splits = load_splits(&cfg.data, cfg.seed)?;
        let vars = SeededVarMap::new(cfg.seed);
        let model = Model::from_config(
            &cfg.model,
            splits.train.shape,
            splits.train.classes,
            cfg.kernels,
            vars.var_builder(DType::F32, &device),
        )?;
        let params = vars.named_vars()?;
        self.metrics.params = params.iter().map(|(_, v)| v.elem_count()).sum();
        let mut optimizer = AnyOptimizer::from_config(
            &cfg.optimizer,
            params.iter().map(|(_, v)| v.clone()).collect(),
        )?;
        optimizer.set_fused(cfg.kernels == Kernels::Fused);

        let resumed = self.dir.last_checkpoint().exists();
        let mut state = if resumed {
            let (opt_state, state) =
                checkpoint::load_last(&self.dir.last_checkpoint(), &params, &device)?;
            optimizer.load_state(&opt_state)?;
            self.metrics.resumed += 1;
            self.dir.log(&format!(
                "resumed from checkpoint after epoch {}",
                state.epoch
            ))?;
            self.dir.write_history(&state.history)?;
            state
        } else {
            self.dir.log(&format!(
                "started {} / {} seed {} ({} train, {} val, {} test images, {} parameters)",
                cfg.name,
                cfg.variant,
                cfg.seed,
                splits.train.len(),
                splits.val.len(),
                splits.test.len(),
                self.metrics.params
            ))?;
            TrainState {
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
                best_val_acc: None,
                best_epoch: None,
                early_stop: EarlyStopState::default(),
                wall_time_s: 0.0,
                rng: "derived: permutation(seed, epoch); init(seed, parameter name)".to_string(),
            }
        };
        self.sync_metrics(&state, RunStatus::Running);
        self.dir.write_metrics(&self.metrics)?;

        let batch = cfg.batch_size.max(1);
        let steps_per_epoch = splits.train.len().div_ceil(batch);
        let total_steps = steps_per_epoch * cfg.epochs;
        let progress = Progress::new(self.opts.quiet);
        let mut epochs_this_call = 0;
        let mut early_stopped = self.stopped_early(&state);
        while state.epoch < cfg.epochs && !early_stopped {
            let started = Instant::now();
            let epoch = state.epoch + 1;
            let order = epoch_permutation(splits.train.len(), cfg.seed, state.epoch);
            let bar = progress.epoch_bar(epoch, cfg.epochs, steps_per_epoch);
            let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0.0f64, 0usize);
            let mut lr = cfg.optimizer.lr();
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
                let (x, y) = splits.train.batch(idx, &device)?;
                let input = model.encode(&x, batch_seed(cfg.seed, state.epoch as u64, i))?;
                let logits = model.forward(&input)?;
                let loss = model.loss(&logits, &y)?;
                let mut grads = loss.backward()?;
                if let Some(max_norm) = cfg.clip_grad_norm {
                    clip_grad_norm(&mut grads, &params, max_norm)?;
                }
                optimizer.step(&grads)?;
                let batch_loss = loss.to_scalar::<f32>()? as f64;
                loss_sum += batch_loss * idx.len() as f64;
                correct += count_correct(&logits, &y)?;
                seen += idx.len();
                bar.tick(
                    i + 1,
                    batch_loss,
                    seen as f64 / started.elapsed().as_secs_f64().max(1e-9),
                );
            }
            bar.finish();
            state.optimizer_step += steps_per_epoch as u64;
            let val = evaluate(&model, &splits.val, cfg, VAL_STREAM, &device)?;
            let val_acc = val.accuracy;
            let record = EpochRecord {
                epoch,
                train_loss: loss_sum / seen.max(1) as f64,
                train_acc: correct / seen.max(1) as f64,
                val_loss: val.loss,
                val_acc,
                lr,
                epoch_time_s: started.elapsed().as_secs_f64(),
                extra: val
                    .firing_rates
                    .into_iter()
                    .map(|(layer, rate)| (format!("rate_{layer}"), rate))
                    .collect(),
            };
            if state.best_val_acc.is_none_or(|b| val_acc > b) {
                state.best_val_acc = Some(val_acc);
                state.best_epoch = Some(epoch);
                checkpoint::save_weights(&self.dir.best_checkpoint(), &params, epoch)?;
            }
            if let Some(es) = &cfg.early_stopping {
                early_stopped = state.early_stop.update(es, &record);
            }
            state.epoch = epoch;
            state.wall_time_s += record.epoch_time_s;
            state.history.push(record.clone());
            checkpoint::save_last(
                &self.dir.last_checkpoint(),
                &self.dir.last_state_json(),
                &params,
                &optimizer.state(),
                &state,
            )?;
            self.dir.write_history(&state.history)?;
            let line = format!(
                "epoch {epoch}/{}: train_loss {:.4} train_acc {:.4} val_loss {:.4} val_acc {:.4} lr {:.3e} ({:.1}s)",
                cfg.epochs, record.train_loss, record.train_acc, record.val_loss, record.val_acc, record.lr, record.epoch_time_s
            );
            self.dir.log(&line)?;
            progress.line(&line);
            self.sync_metrics(&state, RunStatus::Running);
            self.dir.write_metrics(&self.metrics)?;
            epochs_this_call += 1;
            if self.opts.stop_after_epochs == Some(epochs_this_call)
                && state.epoch < cfg.epochs
                && !early_stopped
            {
                self.sync_metrics(&state, RunStatus::Killed);
                self.metrics.finished_at = Some(now());
                self.dir.write_metrics(&self.metrics)?;
                self.dir.log(&format!(
                    "stopped after {epochs_this_call} epochs as asked; resumable"
                ))?;
                return Ok(RunOutcome {
                    dir: self.dir.clone(),
                    metrics: self.metrics.clone(),
                    skipped: false,
                    resumed,
                });
            }
        }

        checkpoint::load_weights(&self.dir.best_checkpoint(), &params, &device)?;
        let test = evaluate(&model, &splits.test, cfg, TEST_STREAM, &device)?;
        let (test_loss, test_acc) = (test.loss, test.accuracy);
        self.sync_metrics(&state, RunStatus::Completed);
        self.metrics.early_stopped = early_stopped;
        self.metrics.test_acc = Some(test_acc);
        self.metrics.test_loss = Some(test_loss);
        self.metrics.finished_at = Some(now());
        self.dir.write_metrics(&self.metrics)?;
        let line = format!(
            "completed: best val_acc {:.4} at epoch {}, test_acc {test_acc:.4} (best checkpoint), {:.1}s",
            state.best_val_acc.unwrap_or(f64::NAN),
            state.best_epoch.unwrap_or(0),
            state.wall_time_s
        );
        self.dir.log(&line)?;
        progress.line(&line);
        Ok(RunOutcome {
            dir: self.dir.clone(),
            metrics: self.metrics.clone(),
            skipped: false,
            resumed,
        })
    }

    /// Whether a resumed state had already met its early-stopping condition.
    fn stopped_early(&self, state: &TrainState) -> bool {
        self.cfg
            .early_stopping
            .as_ref()
            .is_some_and(|es| state.early_stop.bad_epochs > es.patience)
    }

    fn sync_metrics(&mut self, state: &TrainState, status: RunStatus) {
        let m = &mut self.metrics;
        m.status = status;
        m.epochs_done = state.epoch;
        m.best_val_acc = state.best_val_acc;
        m.best_epoch = state.best_epoch;
        m.final_val_acc = state.history.last().map(|r| r.val_acc);
        m.wall_time_s = state.wall_time_s;
        m.error = None;
    }
}

/// Number of rows whose arg-max logit equals the label.
fn count_correct(logits: &Tensor, labels: &Tensor) -> Result<f64> {
    let predicted = logits.argmax(1)?;
    Ok(predicted
        .eq(labels)?
        .to_dtype(DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()? as f64)
}

/// Encoder stream of validation batches (training batches use the epoch index).
const VAL_STREAM: u64 = u64::MAX;
/// Encoder stream of test batches.
const TEST_STREAM: u64 = u64::MAX - 1;

/// What one pass over an evaluation split measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean loss (the model's training loss: cross-entropy, or the readout's).
    pub loss: f64,
    /// Fraction of samples whose arg-max score is the label.
    pub accuracy: f64,
    /// Mean firing rate of each spiking layer (spikes per neuron per step), in layer order.
    pub firing_rates: Vec<(String, f64)>,
}

/// Evaluates `model` on `set` in order, in batches of `cfg.eval_batch_size`, encoding batch `i`
/// with the seed of (`cfg.seed`, `stream`, `i`) so every evaluation sees the same spikes.
pub fn evaluate(
    model: &Model,
    set: &ImageSet,
    cfg: &ExperimentConfig,
    stream: u64,
    device: &Device,
) -> Result<Evaluation> {
    on_pool(|| evaluate_here(model, set, cfg, stream, device))
}

/// [`evaluate`] on the calling thread.
fn evaluate_here(
    model: &Model,
    set: &ImageSet,
    cfg: &ExperimentConfig,
    stream: u64,
    device: &Device,
) -> Result<Evaluation> {
    let indices: Vec<usize> = (0..set.len()).collect();
    let (mut loss_sum, mut correct) = (0.0, 0.0);
    let mut rates = FiringRates::new();
    for (i, idx) in indices.chunks(cfg.eval_batch_size.max(1)).enumerate() {
        let (x, y) = set.batch(idx, device)?;
        let input = model.encode(&x, batch_seed(cfg.seed, stream, i))?;
        let scores = model.forward_probed(&input, &mut rates)?.detach();
        loss_sum += model.loss(&scores, &y)?.to_scalar::<f32>()? as f64 * idx.len() as f64;
        correct += count_correct(&scores, &y)?;
    }
    let n = set.len().max(1) as f64;
    Ok(Evaluation {
        loss: loss_sum / n,
        accuracy: correct / n,
        firing_rates: rates.rates(),
    })
}

/// Rescales all gradients so their joint L2 norm is at most `max_norm`; returns the norm before.
pub fn clip_grad_norm(
    grads: &mut candle_core::backprop::GradStore,
    params: &[(String, Var)],
    max_norm: f64,
) -> Result<f64> {
    let mut total = 0.0f64;
    for (_, var) in params {
        if let Some(g) = grads.get(var.as_tensor()) {
            total += g
                .sqr()?
                .sum_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
        }
    }
    let norm = total.sqrt();
    if norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for (_, var) in params {
            if let Some(g) = grads.get(var.as_tensor()) {
                let scaled = (g * scale)?;
                grads.insert(var.as_tensor(), scaled);
            }
        }
    }
    Ok(norm)
}
