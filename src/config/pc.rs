//! The predictive-coding family's config (CHPC-Autoresearch's PC-FFNN, PC-CNN, PC-EncDec):
//! the architecture, inference, the energy convention, how energy and cross-entropy mix into
//! the loss, and the one readout used by training and evaluation alike.

use serde::{Deserialize, Serialize};

/// A predictive-coding network: representations `r_l` relaxed by gradient descent on the
/// energy `F = Σ ½‖r_l − f_l(W_l r_{l−1} + b_l)‖²` (inference), then the weights updated on
/// `F` at the relaxed `r` mixed with a cross-entropy term (`loss`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcConfig {
    /// The layer graph.
    pub arch: PcArch,
    /// Widths of the hidden representations (`ffnn`, `enc_dec`: e.g. `[256, 128]`; `cnn`: the
    /// fully connected layer after the conv blocks, e.g. `[256]`).
    pub hidden: Vec<usize>,
    /// Conv channels per block (`cnn` only; 5x5 valid conv, ReLU, 2x2 max-pool per block).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<usize>,
    /// Square conv kernel size (`cnn` only).
    #[serde(default = "default_kernel")]
    pub kernel_size: usize,
    /// Weight of the decoder energies (`enc_dec` only; upstream's `dec_weight`).
    #[serde(default = "default_dec_weight")]
    pub dec_weight: f64,
    /// The relaxation of the representations.
    #[serde(default)]
    pub inference: InferenceConfig,
    /// Whether `F` enters the loss summed over the batch (`sum`, upstream's legacy mode) or
    /// averaged per sample (`per_sample`, its scheduled mode).
    pub energy_scale: EnergyScale,
    /// How the energy and the cross-entropy of the readout mix into the training loss.
    pub loss: PcLoss,
    /// The scores that training accuracy, the cross-entropy term and evaluation all read.
    pub readout: PcReadout,
}

fn default_kernel() -> usize {
    5
}
fn default_dec_weight() -> f64 {
    0.5
}

/// The layer graph of a PC network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PcArch {
    /// Dense layers `input -> hidden... -> classes` (ReLU hidden, identity output).
    Ffnn,
    /// Conv blocks, one ReLU fully connected layer, identity output.
    Cnn,
    /// `ffnn` plus decoders predicting each representation below from the one above (ReLU,
    /// identity onto the input); the top representation is not decoded.
    EncDec,
}

/// Gradient-descent inference on the representations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceConfig {
    /// Steps `T_pc` per training batch.
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// Step size `η_r` of `r ← r − η_r ∂F/∂r` (`F` summed over units, per sample).
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// When a step raises `F`, undo it and halve the rate for the rest of the batch (off:
    /// the rise is only counted, in `energy_rises`).
    #[serde(default)]
    pub backtrack: bool,
}

fn default_steps() -> usize {
    20
}
fn default_rate() -> f64 {
    0.05
}

impl Default for InferenceConfig {
    fn default() -> Self {
        InferenceConfig {
            steps: default_steps(),
            rate: default_rate(),
            backtrack: false,
        }
    }
}

/// The energy convention of the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnergyScale {
    /// `F` summed over the batch.
    Sum,
    /// `F / B`.
    PerSample,
}

/// How energy and cross-entropy mix into the loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PcLoss {
    /// `energy_weight · F + ce_weight · CE` in every epoch (PC-FFNN v1-v4, PC-CNN v1).
    Sum {
        /// Weight of the energy.
        #[serde(default = "one")]
        energy_weight: f64,
        /// Weight of the readout's cross-entropy (0: energy only, as PC-FFNN v1).
        #[serde(default = "one")]
        ce_weight: f64,
    },
    /// `w(e) · F + (1 − w(e)) · CE` with `w(e) = max · min((e − 1)/max(warmup_epochs, 1), 1)`
    /// for epochs `e` counted from 1 (PC-CNN v2, PC-EncDec).
    Ramp {
        /// The weight reached after warm-up.
        max: f64,
        /// Epochs over which `w` ramps from 0.
        warmup_epochs: usize,
    },
}

fn one() -> f64 {
    1.0
}

impl PcLoss {
    /// `(energy weight, cross-entropy weight)` in epoch `epoch` (counted from 1).
    pub fn weights(&self, epoch: usize) -> (f64, f64) {
        match *self {
            PcLoss::Sum {
                energy_weight,
                ce_weight,
            } => (energy_weight, ce_weight),
            PcLoss::Ramp { max, warmup_epochs } => {
                let ramp = (epoch.saturating_sub(1) as f64 / warmup_epochs.max(1) as f64).min(1.0);
                let w = max * ramp;
                (w, 1.0 - w)
            }
        }
    }
}

/// The scores of a PC network: one readout for the loss, training accuracy and evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PcReadout {
    /// A linear head on the feed-forward top hidden representation (PC-FFNN v2+, PC-CNN,
    /// PC-EncDec; 10 more weights per hidden unit).
    Head,
    /// The output layer's feed-forward prediction `W_L h_{L−1} + b_L` (PC-FFNN v1).
    Output,
}
