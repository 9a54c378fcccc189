//! The grid-neuron lattice's config (ThomasPluck/grid-neurons): shape, time constants, input
//! scaling, readout, which gradient trains it, and the learning-path perturbations.

use autoresearch_kernels::grid::Perturbation;
use serde::{Deserialize, Serialize};

/// An `N x M` lattice of analog filter cells over the rows of an image (one step per image
/// row, grid row `i` fed by pixel column `i`), read out on its bottom row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridConfig {
    /// Columns `M`: one output per class on the bottom row (no readout weights).
    pub cols: usize,
    /// Rows `N`; absent: one per input channel (identity routing), else the inputs reach the
    /// rows through a fixed sparse random projection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
    /// Range of the log-uniform time-constant init, in ms (upstream's MNIST scripts: 1-20).
    #[serde(default = "default_tau_ms")]
    pub tau_ms: [f64; 2],
    /// The time step in ms (zero-order hold).
    #[serde(default = "default_one")]
    pub dt_ms: f64,
    /// Pixels (in [0, 1]) are multiplied by this before they enter the grid (upstream: 10).
    #[serde(default = "default_one")]
    pub input_gain: f64,
    /// How the bottom row becomes the loss and the prediction.
    #[serde(default)]
    pub readout: GridReadout,
    /// Which gradient trains the grid.
    #[serde(default)]
    pub grad: GridGradient,
    /// The float type the lattice computes in (parameters stay f32).
    #[serde(default)]
    pub precision: Precision,
    /// Share of nonzero entries of the sparse input projection (only when `rows` is set).
    #[serde(default = "default_density")]
    pub routing_density: f64,
    /// Perturbations of SnAP-1's learning path (not of the forward); none by default.
    #[serde(default, skip_serializing_if = "GridPerturbation::is_none")]
    pub perturbation: GridPerturbation,
}

fn default_tau_ms() -> [f64; 2] {
    [1.0, 20.0]
}
fn default_one() -> f64 {
    1.0
}
fn default_density() -> f64 {
    0.1
}

/// How the grid's bottom row is read out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GridReadout {
    /// Logits are the outputs summed over time; softmax cross-entropy (upstream's `sum`).
    #[default]
    Sum,
    /// The scores are the per-step log-softmax averaged over time, the loss their negative at
    /// the label: the mean of each step's cross-entropy (upstream's `per_t`).
    PerStep,
}

/// The gradient a grid is trained with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GridGradient {
    /// The local online SnAP-1 rule (no backpropagation through time).
    #[default]
    Snap1,
    /// Exact backpropagation through time of the same forward.
    Bptt,
}

/// A float type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// 32-bit.
    #[default]
    F32,
    /// 64-bit.
    F64,
}

/// Upstream's measurement-robustness knobs; the defaults perturb nothing, and setting them to
/// those values is bit-identical to leaving them out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridPerturbation {
    /// Cross-trace retention becomes `a·(1 - leak)`.
    #[serde(default)]
    pub leak: f64,
    /// Gain on positive messages.
    #[serde(default = "default_one")]
    pub gain_positive: f64,
    /// Gain on negative messages.
    #[serde(default = "default_one")]
    pub gain_negative: f64,
    /// The cross-trace in the past-only subtraction is scaled by `1 + subtraction`.
    #[serde(default)]
    pub subtraction: f64,
    /// Noise on the cross-traces, std relative to their RMS.
    #[serde(default)]
    pub trace_noise: f64,
    /// Noise on every message read, std relative to the RMS of the readout error.
    #[serde(default)]
    pub message_noise: f64,
}

impl Default for GridPerturbation {
    fn default() -> Self {
        Perturbation::default().into()
    }
}

impl From<Perturbation> for GridPerturbation {
    fn from(p: Perturbation) -> Self {
        GridPerturbation {
            leak: p.leak,
            gain_positive: p.gain_positive,
            gain_negative: p.gain_negative,
            subtraction: p.subtraction,
            trace_noise: p.trace_noise,
            message_noise: p.message_noise,
        }
    }
}

impl From<GridPerturbation> for Perturbation {
    fn from(p: GridPerturbation) -> Self {
        Perturbation {
            leak: p.leak,
            gain_positive: p.gain_positive,
            gain_negative: p.gain_negative,
            subtraction: p.subtraction,
            trace_noise: p.trace_noise,
            message_noise: p.message_noise,
        }
    }
}

impl GridPerturbation {
    /// Whether this perturbs nothing.
    pub fn is_none(&self) -> bool {
        *self == GridPerturbation::default()
    }
}
