//! Typed configs of spiking neurons, surrogate gradients, spike encoders and readouts, with
//! the literature's defaults (snnTorch's where it has one).

use serde::{Deserialize, Serialize};

/// The smooth function whose derivative replaces the Heaviside step's in the backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Surrogate {
    /// `S(x) = atan(π/2·α·x)/π + 1/2`, `S'(x) = α/2 / (1 + (π/2·α·x)²)` (snnTorch's default).
    Atan {
        /// Steepness α.
        #[serde(default = "default_atan_alpha")]
        alpha: f64,
    },
    /// `S(x) = x / (1 + k|x|)`, `S'(x) = 1 / (1 + k|x|)²` (Zenke & Ganguli's SuperSpike).
    FastSigmoid {
        /// Slope k.
        #[serde(default = "default_slope")]
        slope: f64,
    },
    /// `S'(x) = max(0, 1 - |x|/w) / w`: a triangle of half-width w and area 1 (Esser et al.).
    Triangle {
        /// Half-width w.
        #[serde(default = "one")]
        width: f64,
    },
    /// `S'(x) = 1`: the gradient passes through unchanged (Bengio et al.'s straight-through).
    StraightThrough,
}

impl Default for Surrogate {
    fn default() -> Self {
        Surrogate::Atan {
            alpha: default_atan_alpha(),
        }
    }
}

fn default_atan_alpha() -> f64 {
    2.0
}
fn default_slope() -> f64 {
    25.0
}
fn one() -> f64 {
    1.0
}

/// What a neuron's membrane does after it spikes (applied at the next step, from the detached
/// spike, as in snnTorch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reset {
    /// Subtract the threshold: `U[t] = βU[t-1] + I[t] - S[t-1]·θ`.
    #[default]
    Subtract,
    /// Restart from zero: `U[t] = β(1 - S[t-1])U[t-1] + I[t]`.
    Zero,
    /// No reset: `U[t] = βU[t-1] + I[t]`.
    None,
}

/// Leaky integrate-and-fire neuron: `U[t] = βU[t-1] + I[t] - reset`, `S[t] = H(U[t] - θ)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeakyConfig {
    /// Membrane decay per step β (clamped to [0, 1]).
    pub beta: f64,
    /// Firing threshold θ.
    pub threshold: f64,
    /// Reset mechanism.
    pub reset: Reset,
    /// Surrogate gradient of the spike.
    pub surrogate: Surrogate,
    /// Learn one β per neuron.
    pub learn_beta: bool,
    /// Learn one θ per neuron.
    pub learn_threshold: bool,
}

impl Default for LeakyConfig {
    fn default() -> Self {
        LeakyConfig {
            beta: 0.9,
            threshold: 1.0,
            reset: Reset::Subtract,
            surrogate: Surrogate::default(),
            learn_beta: false,
            learn_threshold: false,
        }
    }
}

/// Second-order LIF: `I_syn[t] = αI_syn[t-1] + X[t]`, `U[t] = βU[t-1] + I_syn[t] - reset`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynapticConfig {
    /// Synaptic current decay per step α (clamped to [0, 1]).
    pub alpha: f64,
    /// Membrane decay per step β (clamped to [0, 1]).
    pub beta: f64,
    /// Firing threshold θ.
    pub threshold: f64,
    /// Reset mechanism.
    pub reset: Reset,
    /// Surrogate gradient of the spike.
    pub surrogate: Surrogate,
    /// Learn one α per neuron.
    pub learn_alpha: bool,
    /// Learn one β per neuron.
    pub learn_beta: bool,
    /// Learn one θ per neuron.
    pub learn_threshold: bool,
}

impl Default for SynapticConfig {
    fn default() -> Self {
        SynapticConfig {
            alpha: 0.9,
            beta: 0.8,
            threshold: 1.0,
            reset: Reset::Subtract,
            surrogate: Surrogate::default(),
            learn_alpha: false,
            learn_beta: false,
            learn_threshold: false,
        }
    }
}

/// A feed-forward spiking neuron, chosen by `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NeuronConfig {
    /// First-order LIF.
    Leaky(LeakyConfig),
    /// Second-order LIF with a synaptic current.
    Synaptic(SynapticConfig),
}

impl Default for NeuronConfig {
    fn default() -> Self {
        NeuronConfig::Leaky(LeakyConfig::default())
    }
}

/// How a recurrent spiking layer feeds its own spikes back: `U[t] += V(S[t-1])`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recurrence {
    /// All-to-all: `V` is a learned `N x N` linear map with bias.
    #[default]
    Linear,
    /// One-to-one: each neuron feeds back to itself with a learned weight.
    OneToOne,
}

/// Spiking LSTM cell: LSTM gates, with the hidden state as a membrane thresholded into spikes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlstmNeuronConfig {
    /// Firing threshold θ of the hidden state.
    pub threshold: f64,
    /// Reset of the hidden state after a spike (snnTorch's default for SLSTM: none).
    pub reset: Reset,
    /// Surrogate gradient of the spike.
    pub surrogate: Surrogate,
}

impl Default for SlstmNeuronConfig {
    fn default() -> Self {
        SlstmNeuronConfig {
            threshold: 1.0,
            reset: Reset::None,
            surrogate: Surrogate::default(),
        }
    }
}

/// Shape of the latency code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyForm {
    /// `t = floor((1 - p)·T)`, capped at `T - 1`: brighter pixels fire earlier, linearly.
    #[default]
    Linear,
    /// `t = floor(τ·ln(p / (p - threshold)))`: an RC neuron charged by the pixel; spikes later
    /// than `T - 1` are dropped.
    Log,
}

/// How a batch of images `[B, C, H, W]` (pixels in [0, 1]) becomes a time-first input `[T, B, ...]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EncoderConfig {
    /// Rate code: each pixel fires with probability `min(1, gain·p)` at each of `steps` steps.
    Rate {
        /// Number of time steps T.
        steps: usize,
        /// Multiplies the firing probability.
        #[serde(default = "one")]
        gain: f64,
    },
    /// Latency (time-to-first-spike) code: each pixel with `p >= threshold` fires exactly once.
    Latency {
        /// Number of time steps T.
        steps: usize,
        /// Pixels below this intensity never fire; must be below 1 (at 1 every pixel is silent).
        #[serde(default = "default_latency_threshold")]
        threshold: f64,
        /// Linear or logarithmic spike times.
        #[serde(default)]
        form: LatencyForm,
        /// Time constant τ of the logarithmic form, in steps.
        #[serde(default = "default_tau")]
        tau: f64,
    },
    /// Direct (current) code: the pixel intensities are the input current at every step.
    Current {
        /// Number of time steps T.
        steps: usize,
    },
    /// Rows as time steps (sequential MNIST): step t's input is row t's pixels (T = H).
    Rows,
    /// Rows as time steps, each pixel firing with probability `min(1, gain·p)` (T = H).
    RateRows {
        /// Multiplies the firing probability.
        #[serde(default = "one")]
        gain: f64,
    },
    /// Rows as time steps, each step's input the spike counts of a weightless Leaky neuron per
    /// pixel of that row, driven by the pixel's own spike train over `steps` inner steps (T = H;
    /// CHPC-Autoresearch's hybrid encoder): counts, not spikes, reach the network.
    LifRowCounts {
        /// How each pixel's inner spike train is drawn.
        code: InnerCode,
        /// Inner steps per row.
        steps: usize,
        /// Membrane decay per inner step.
        #[serde(default = "default_beta")]
        beta: f64,
        /// Firing threshold (a spike when the membrane exceeds it; reset by subtraction, from
        /// the previous step's membrane, as snnTorch's Leaky).
        #[serde(default = "one")]
        threshold: f64,
        /// Latency code only: pixels below this intensity never fire (the reference's 1/steps).
        #[serde(default = "default_lif_latency_threshold")]
        latency_threshold: f64,
    },
    /// Rows as time steps; a pixel spikes when it rose by at least `threshold` from the previous
    /// row (and, with `off_spikes`, emits -1 when it fell by at least `threshold`).
    Delta {
        /// Smallest change that fires.
        #[serde(default = "default_delta_threshold")]
        threshold: f64,
        /// Also emit -1 spikes for decreases.
        #[serde(default)]
        off_spikes: bool,
    },
}

fn default_latency_threshold() -> f64 {
    0.01
}
fn default_lif_latency_threshold() -> f64 {
    0.04
}
fn default_beta() -> f64 {
    0.9
}

/// The inner spike train of [`EncoderConfig::LifRowCounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InnerCode {
    /// A spike with probability `p` at every inner step.
    Rate,
    /// One spike at `floor((1 - p)·steps)` (the last step at most) when `p` reaches the
    /// latency threshold.
    Latency,
}
fn default_tau() -> f64 {
    5.0
}
fn default_delta_threshold() -> f64 {
    0.1
}

/// How a spiking output layer's activity `[T, B, classes]` becomes class scores and a loss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Readout {
    /// Scores are spike counts over time; cross-entropy on them (snnTorch's rate-coded CE).
    #[default]
    SpikeCountCe,
    /// Scores are each output neuron's maximum membrane over time; cross-entropy on them.
    MaxMembraneCe,
    /// Scores are the output membranes at the last step; cross-entropy on them.
    FinalMembraneCe,
    /// Scores are spike counts; mean squared error against `correct_rate·T` spikes for the label
    /// and `incorrect_rate·T` for the others (snnTorch's `mse_count_loss`).
    SpikeCountMse {
        /// Target firing rate of the correct class.
        #[serde(default = "default_correct_rate")]
        correct_rate: f64,
        /// Target firing rate of the other classes.
        #[serde(default = "default_incorrect_rate")]
        incorrect_rate: f64,
    },
}

fn default_correct_rate() -> f64 {
    0.8
}
fn default_incorrect_rate() -> f64 {
    0.2
}

impl Readout {
    /// Whether the scores need the output membrane (as opposed to the spikes only).
    pub fn needs_membrane(&self) -> bool {
        matches!(self, Readout::MaxMembraneCe | Readout::FinalMembraneCe)
    }
}
