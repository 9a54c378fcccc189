//! The reset rules of spiking neurons, written once: which neurons fired at the previous step,
//! and how that resets the membrane.

use candle_core::{Result, Tensor};

use crate::config::Reset;

/// `R = H(U[t-1] - θ)` as 0/1 values, detached (snnTorch's delayed reset: no gradient flows
/// through the reset).
///
/// # Shapes
/// `prev`: `[B, ...]`, `threshold`: broadcastable -> `[B, ...]`.
pub fn fired(prev: &Tensor, threshold: &Tensor) -> Result<Tensor> {
    prev.broadcast_sub(threshold)?
        .gt(0.0)?
        .to_dtype(prev.dtype())
}

/// The integrate-and-fire membrane update with its reset: `β·U + drive - R·θ` (subtract),
/// `β·((1 - R)·U) + drive` (zero) or `β·U + drive` (none), with `R = fired(U, θ)`. Leaky,
/// Synaptic and RLeaky neurons all step through it.
///
/// # Shapes
/// `prev`, `drive`: `[B, ...]`; `beta`, `threshold`: broadcastable -> `[B, ...]`.
pub fn integrate(
    prev: &Tensor,
    beta: &Tensor,
    drive: &Tensor,
    threshold: &Tensor,
    reset: Reset,
) -> Result<Tensor> {
    match reset {
        Reset::Subtract => {
            (prev.broadcast_mul(beta)? + drive)?
                - fired(prev, threshold)?.broadcast_mul(threshold)?
        }
        Reset::Zero => {
            (fired(prev, threshold)?.affine(-1.0, 1.0)? * prev)?.broadcast_mul(beta)? + drive
        }
        Reset::None => prev.broadcast_mul(beta)? + drive,
    }
}

/// The reset of a neuron whose new membrane is computed afresh each step (SLSTM: the LSTM's
/// `h`) rather than integrated: `h - R·θ` (subtract), `(1 - R)·h` (zero) or `h` (none), with
/// `R = fired(U[t-1], θ)`, as snnTorch's SLSTM.
///
/// # Shapes
/// `candidate`, `prev`: `[B, ...]`; `threshold`: broadcastable -> `[B, ...]`.
pub fn reset_candidate(
    candidate: &Tensor,
    prev: &Tensor,
    threshold: &Tensor,
    reset: Reset,
) -> Result<Tensor> {
    match reset {
        Reset::Subtract => candidate - fired(prev, threshold)?.broadcast_mul(threshold)?,
        Reset::Zero => fired(prev, threshold)?.affine(-1.0, 1.0)? * candidate,
        Reset::None => Ok(candidate.clone()),
    }
}
