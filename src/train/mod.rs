//! The training loop: seeded init, batches, optimizer + schedule + clipping, validation, early
//! stopping, checkpoint + resume, and the run directory written atomically as it goes.

mod build;
pub mod checkpoint;
pub mod early_stop;
mod evaluate;
pub mod groups;
mod inspect;
pub mod optim;
mod progress;
pub mod schedule;
mod session;
pub mod validation;

use candle_core::{DType, Device, Var};

use crate::config::{DeviceConfig, ExperimentConfig};
use crate::error::{Error, Result};
use crate::nn::Builder;
use crate::rundir::{EpochRecord, Metrics, RunDir, RunStatus, SCHEMA_VERSION};
use session::Session;

pub use autoresearch_kernels::par::on_pool;
pub use build::{build_run, BuiltRun};
pub use evaluate::{evaluate, evaluate_probed, Evaluation, TEST_STREAM, VAL_STREAM};
pub use inspect::{load_run, load_trained, TrainedModel};

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
    /// Asked after every epoch (once its record and checkpoint are saved) whether to go on;
    /// a [`Verdict::Prune`] ends the run as `pruned`, final.
    pub monitor: Option<EpochMonitor>,
    /// No test pass at the end: the run completes on validation alone (a study's trials).
    pub skip_test: bool,
    /// Also record, per spiking layer, the fraction of validation samples with fewer than
    /// `k` spikes (`silent_lt<k>_<layer>` columns of `history.csv`).
    pub silent_below: Option<usize>,
}

/// What an [`EpochMonitor`] decides after an epoch.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Train the next epoch.
    Continue,
    /// Stop now; the reason goes to `log.txt`.
    Prune(String),
}

/// A callback deciding after each epoch whether a run goes on (a study's pruner).
#[derive(Clone)]
pub struct EpochMonitor(pub std::sync::Arc<dyn Fn(&EpochRecord) -> Verdict + Send + Sync>);

impl EpochMonitor {
    /// The monitor calling `f`.
    pub fn new(f: impl Fn(&EpochRecord) -> Verdict + Send + Sync + 'static) -> Self {
        EpochMonitor(std::sync::Arc::new(f))
    }
}

impl std::fmt::Debug for EpochMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EpochMonitor(..)")
    }
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
    /// Sets [`TrainOptions::monitor`].
    pub fn with_monitor(mut self, monitor: EpochMonitor) -> Self {
        self.monitor = Some(monitor);
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
    train_inner(cfg, opts, None)
}

/// [`train`] with a builder for networks defined outside this crate (`model: {kind: custom,
/// name: ...}`): the network gets the same loop, run directory, checkpoints and resume.
pub fn train_with(
    cfg: &ExperimentConfig,
    opts: &TrainOptions,
    builder: Builder,
) -> Result<RunOutcome> {
    train_inner(cfg, opts, Some(builder))
}

fn train_inner(
    cfg: &ExperimentConfig,
    opts: &TrainOptions,
    builder: Option<Builder>,
) -> Result<RunOutcome> {
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
        if matches!(m.status, RunStatus::Completed | RunStatus::Pruned) {
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
    on_pool(|| session.run(builder)).inspect_err(|err| {
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
        c.data.clear_root();
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
        model: match &cfg.model {
            crate::config::ModelConfig::Custom(c) => c.name.clone(),
            other => other.kind().to_string(),
        },
        dataset: cfg.data.kind().to_string(),
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
        objective: None,
        declared: Vec::new(),
        results: Default::default(),
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
