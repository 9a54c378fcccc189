//! The configured element-wise non-linearity.

use candle_core::Tensor;

use crate::config::Activation;

/// Applies `activation` to `x` (any shape).
pub fn apply(activation: Activation, x: &Tensor) -> candle_core::Result<Tensor> {
    match activation {
        Activation::Relu => x.relu(),
        Activation::Tanh => x.tanh(),
        Activation::Sigmoid => candle_nn::ops::sigmoid(x),
        Activation::Gelu => x.gelu(),
    }
}
