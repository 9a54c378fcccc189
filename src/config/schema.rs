//! Typed experiment configuration: what a composed YAML tree must deserialize into.
//!
//! Every struct denies unknown fields and every choice is a serde enum, so a typo in YAML or in an
//! override is rejected with the key path and the valid names instead of being silently ignored.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::data::DataConfig;
use super::model::ModelConfig;

/// A fully resolved experiment: the single input of training, saved as `config.yaml` in each run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Experiment name: the first level under `runs_dir`.
    pub name: String,
    /// Variant name: the non-seed overrides (e.g. `optimizer.lr=0.0003`), or `default`.
    #[serde(default = "default_variant")]
    pub variant: String,
    /// Free text shown in reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Seed of weight init, shuffling and (unless `data.split_seed` is set) the validation split.
    #[serde(default)]
    pub seed: u64,
    /// Number of training epochs.
    pub epochs: usize,
    /// Training mini-batch size.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Batch size for validation and test evaluation (no gradients, so it can be larger).
    #[serde(default = "default_eval_batch_size")]
    pub eval_batch_size: usize,
    /// Rescale gradients so their global L2 norm is at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_grad_norm: Option<f64>,
    /// Rescale each parameter's gradient so its own L2 norm is at most this (Flux's
    /// `ClipNorm`); applied before `clip_grad_norm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_grad_norm_per_parameter: Option<f64>,
    /// Learning-rate multipliers by parameter name (parameter groups): a key matches the
    /// parameter of that name or ending in `.<key>`; e.g. `{bias: 0.05, log_tau: 4}`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub lr_scale: std::collections::BTreeMap<String, f64>,
    /// What each epoch's validation metrics are computed on.
    #[serde(default, skip_serializing_if = "Validation::is_split")]
    pub validation: Validation,
    /// Stop when a monitored metric stops improving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStoppingConfig>,
    /// The metric that picks the best checkpoint; the task's default (classification and
    /// step labelling: `val_acc`; path integration: `val_loss`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<ObjectiveConfig>,
    /// Where run directories are written: `<runs_dir>/<name>/<variant>/seed_<n>/`.
    #[serde(default = "default_runs_dir")]
    pub runs_dir: PathBuf,
    /// Compute device.
    #[serde(default)]
    pub device: DeviceConfig,
    /// Fused CPU kernels or plain tensor ops (same results up to float rounding).
    #[serde(default)]
    pub kernels: Kernels,
    /// Dataset and split.
    pub data: DataConfig,
    /// Network architecture.
    pub model: ModelConfig,
    /// Optimizer and its hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule.
    #[serde(default)]
    pub scheduler: SchedulerConfig,
    /// Lyapunov spectra logged while training and gradient flossing; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamics: Option<super::dynamics::DynamicsConfig>,
}

/// What each epoch's validation metrics are computed on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Validation {
    /// The validation split carved from the training data (the default, and the honest one).
    #[default]
    Split,
    /// A fresh random `size` of the (first) test split each epoch, drawn from (seed, epoch):
    /// grid-neurons' protocol, kept so its numbers can be compared. The test set then also
    /// picks the best checkpoint, so the final test score is not independent.
    TestSample {
        /// Test samples per epoch (upstream: 2,000).
        size: usize,
    },
}

impl Validation {
    /// Whether this is the default validation split.
    pub fn is_split(&self) -> bool {
        *self == Validation::Split
    }
}

fn default_variant() -> String {
    "default".to_string()
}
fn default_batch_size() -> usize {
    128
}
fn default_eval_batch_size() -> usize {
    1000
}
fn default_runs_dir() -> PathBuf {
    PathBuf::from("runs")
}

/// Where tensors live and compute runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceConfig {
    /// The CPU (deterministic for a given seed).
    #[default]
    Cpu,
    /// The first CUDA GPU (needs the `cuda` cargo feature).
    Cuda,
}

/// How the hot layers compute on the CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kernels {
    /// Fused custom ops (binary-input matmuls, LIF scans, im2col convolutions, in-place Adam)
    /// where the device is the CPU; plain tensor ops elsewhere.
    #[default]
    Fused,
    /// Plain tensor ops everywhere: the reference the fused kernels are tested against.
    Plain,
}

/// Optimizer, chosen by `kind`, with PyTorch's semantics and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Adam with L2 weight decay added to the gradient.
    Adam {
        lr: f64,
        #[serde(default = "default_betas")]
        betas: [f64; 2],
        #[serde(default = "default_eps")]
        eps: f64,
        #[serde(default)]
        weight_decay: f64,
    },
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    Adamw {
        lr: f64,
        #[serde(default = "default_betas")]
        betas: [f64; 2],
        #[serde(default = "default_eps")]
        eps: f64,
        #[serde(default = "default_adamw_decay")]
        weight_decay: f64,
    },
    /// Stochastic gradient descent with optional (Nesterov) momentum.
    Sgd {
        lr: f64,
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        dampening: f64,
        #[serde(default)]
        nesterov: bool,
        #[serde(default)]
        weight_decay: f64,
    },
}

fn default_betas() -> [f64; 2] {
    [0.9, 0.999]
}
fn default_eps() -> f64 {
    1e-8
}
fn default_adamw_decay() -> f64 {
    0.01
}

impl OptimizerConfig {
    /// The base learning rate, before any schedule.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Adam { lr, .. }
            | OptimizerConfig::Adamw { lr, .. }
            | OptimizerConfig::Sgd { lr, .. } => *lr,
        }
    }
}

/// How often a schedule changes the learning rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleInterval {
    /// Every optimizer step.
    #[default]
    Step,
    /// Once per epoch, at its start.
    Epoch,
}

impl ScheduleInterval {
    /// Whether this is the default, per-step interval.
    pub fn is_step(&self) -> bool {
        *self == ScheduleInterval::Step
    }
}

/// Learning-rate schedule, evaluated per optimizer step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SchedulerConfig {
    /// The optimizer's learning rate throughout.
    #[default]
    Constant,
    /// Linear warm-up, then cosine decay to `min_lr` at the end of training.
    Cosine {
        #[serde(default)]
        min_lr: f64,
        #[serde(default)]
        warmup_epochs: f64,
        /// `step` (default): a new rate every optimizer step; `epoch`: one rate per epoch,
        /// `min_lr + (lr - min_lr)·(1 + cos(π·e / epochs))/2` for 0-based epoch `e`
        /// (PyTorch's `CosineAnnealingLR(T_max = epochs)` stepped per epoch).
        #[serde(default, skip_serializing_if = "ScheduleInterval::is_step")]
        interval: ScheduleInterval,
    },
    /// Multiply by `gamma` every `step_size` epochs.
    Step { step_size: usize, gamma: f64 },
}

/// Stop training when `metric` has not improved by `min_delta` for `patience` epochs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStoppingConfig {
    /// The per-epoch `history.csv` column watched (`val_loss`, `val_acc`, `train_<metric>`,
    /// ...); the objective's by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Whether larger or smaller is better: the metric's declared direction, which is also the
    /// only value accepted (a direction against the metric's would keep the worst epochs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Epochs without improvement tolerated before stopping.
    pub patience: usize,
    /// Smallest change that counts as an improvement.
    #[serde(default)]
    pub min_delta: f64,
}

/// The metric that picks the best checkpoint, drives early stopping by default and ranks
/// results: a `history.csv` column (`val_acc`, `val_loss`, `val_position_rmse`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveConfig {
    /// The column (`val_<metric>` or `train_<metric>` of a metric the task declares).
    pub metric: String,
    /// Whether larger or smaller is better: the metric's declared direction, which is also the
    /// only value accepted (a direction against the metric's would keep the worst epochs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
}

pub use crate::metric::Mode;

/// Values a sweep block maps keys to: a YAML list or a text such as `range(0,5)`.
pub type SweepBlock = BTreeMap<String, serde_yaml_ng::Value>;
