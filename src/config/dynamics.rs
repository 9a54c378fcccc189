//! Dynamics settings of an experiment: the Lyapunov spectrum logged while training, and
//! gradient flossing (Engelken 2023) as a training option with a declared schedule.

use serde::{Deserialize, Serialize};

use super::schema::OptimizerConfig;

/// The `dynamics` key of an experiment: what is measured every epoch and what is flossed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicsConfig {
    /// The spectrum logged before training (epoch 0) and after every epoch, with the gradient
    /// norm at the initial state and the singular values of `dL/dJ`; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spectrum: Option<SpectrumConfig>,
    /// Gradient flossing during training; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flossing: Option<FlossingConfig>,
    /// Validation sequences in the fixed batch on which `‖dL/dh_0‖` and `dL/dJ` are measured.
    #[serde(default = "default_gradient_batch")]
    pub gradient_batch: usize,
}

fn default_gradient_batch() -> usize {
    16
}

/// How a Lyapunov spectrum is estimated: QR re-orthonormalisation of `exponents` tangent
/// vectors along a trajectory driven by the task's inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpectrumConfig {
    /// The number `k` of exponents (the largest first).
    pub exponents: usize,
    /// Trajectory length in steps (at most the task's sequence length).
    pub steps: usize,
    /// Steps discarded before averaging; absent: `10 + ceil(steps / 10)` (GradientFlossing's
    /// rule, 16 of 55).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transient_steps: Option<usize>,
    /// Re-orthonormalise every this many steps (1: every step).
    #[serde(default = "one")]
    pub reorthonormalise_every: usize,
    /// Seed of the random initial frame `Q_0`.
    #[serde(default = "one_u64")]
    pub frame_seed: u64,
    /// Input sequences the exponents are averaged over (their spread is the estimator error).
    #[serde(default = "one")]
    pub sequences: usize,
    /// Whether spiking Jacobians include the reset's surrogate derivative (the forward pass
    /// detaches it, as snnTorch does; upstream's cLIF spectra leave it out).
    #[serde(default)]
    pub reset_in_jacobian: bool,
}

fn one() -> usize {
    1
}
fn one_u64() -> u64 {
    1
}

impl SpectrumConfig {
    /// The transient actually used.
    pub fn transient(&self) -> usize {
        self.transient_steps.unwrap_or(10 + self.steps.div_ceil(10))
    }
}

/// Gradient flossing: Adam steps on `mean_i (λ_i - target)²` over the first `k` exponents,
/// before and between training steps, on their own optimizer (its moments persist).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlossingConfig {
    /// The exponents flossed and the trajectory they are measured on.
    pub spectrum: SpectrumConfig,
    /// The value every flossed exponent is pushed towards.
    #[serde(default)]
    pub target: f64,
    /// The flossing optimizer (upstream: Adam 1e-3, betas 0.9/0.999, created once).
    #[serde(default = "default_floss_optimizer")]
    pub optimizer: OptimizerConfig,
    /// The parameters flossing updates, by name; absent: every parameter the loss reaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<String>>,
    /// Flossing steps before the first training step.
    #[serde(default)]
    pub steps_before_training: usize,
    /// Episodes at a fixed period of training steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub periodic: Option<PeriodicFlossing>,
    /// Episodes triggered when the largest exponent strays from the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveFlossing>,
}

fn default_floss_optimizer() -> OptimizerConfig {
    OptimizerConfig::Adam {
        lr: 1e-3,
        betas: [0.9, 0.999],
        eps: 1e-8,
        weight_decay: 0.0,
    }
}

/// Flossing episodes every `every_training_steps` training steps, at most `episodes` of them
/// (upstream's `Ef`, `Ei` and `Ni`: 100, 500 and 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodicFlossing {
    /// Training steps between episodes (the first comes after this many).
    pub every_training_steps: usize,
    /// Flossing steps per episode.
    pub steps_per_episode: usize,
    /// The most episodes in a run.
    pub episodes: usize,
}

/// Every `check_every_training_steps` training steps, `λ_1` is measured on the flossing
/// trajectory; when `|λ_1 - target|` exceeds `threshold`, `steps_per_episode` flossing steps run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveFlossing {
    /// Training steps between checks.
    pub check_every_training_steps: usize,
    /// The largest tolerated `|λ_1 - target|` (per step).
    pub threshold: f64,
    /// Flossing steps per triggered episode.
    pub steps_per_episode: usize,
}
