//! Fully connected classifier.

use candle_core::{Module, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::activation::apply;
use super::fused;
use super::layers::{forward_stack, linear_stack};
use crate::config::{Activation, FfnnConfig, Kernels};

/// `input -> [Linear -> activation]* -> Linear -> logits`; layers named `fc1`, `fc2`, ...
#[derive(Debug, Clone)]
pub struct Ffnn {
    layers: Vec<Linear>,
    activation: Activation,
    fused: bool,
}

impl Ffnn {
    /// Builds from layers (the last one is the classifier); `fused` picks the fused CPU kernels.
    pub fn new(layers: Vec<Linear>, activation: Activation, fused: bool) -> Self {
        Ffnn {
            layers,
            activation,
            fused,
        }
    }

    /// Whether the fused CPU kernels are used (where the input is a CPU `f32` tensor).
    pub fn fused(&self) -> bool {
        self.fused
    }

    /// Creates the layers under `vb` for `inputs` features and `classes` outputs.
    pub fn from_config(
        cfg: &FfnnConfig,
        inputs: usize,
        classes: usize,
        kernels: Kernels,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let mut widths = vec![inputs];
        widths.extend(&cfg.hidden);
        widths.push(classes);
        let layers = linear_stack(&widths, &vb)?;
        Ok(Ffnn::new(layers, cfg.activation, kernels == Kernels::Fused))
    }
}

impl Module for Ffnn {
    /// # Shapes
    /// `x`: `[B, ...]` (flattened from dim 1) -> logits `[B, classes]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = x.flatten_from(1)?;
        if self.fused && fused::available(&x) {
            forward_stack_fused(&self.layers, self.activation, &x)
        } else {
            forward_stack(&self.layers, self.activation, &x)
        }
    }
}

/// [`forward_stack`] on fused linear ops: ReLU fused into the layer, other activations applied
/// after a layer without one. CPU `f32` only (see [`fused::available`]).
///
/// # Shapes
/// `x`: `[B, in]` -> `[B, out]`.
pub(super) fn forward_stack_fused(
    layers: &[Linear],
    activation: Activation,
    x: &Tensor,
) -> candle_core::Result<Tensor> {
    let mut h = x.clone();
    for (i, layer) in layers.iter().enumerate() {
        let hidden = i + 1 < layers.len();
        let relu = hidden && activation == Activation::Relu;
        h = fused::linear(&h, layer.weight(), layer.bias(), relu)?;
        if hidden && !relu {
            h = apply(activation, &h)?;
        }
    }
    Ok(h)
}
