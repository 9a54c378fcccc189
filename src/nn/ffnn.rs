//! Fully connected classifier.

use candle_core::{Module, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::layers::{forward_stack, linear_stack};
use super::Ops;
use crate::config::{Activation, FfnnConfig};

/// `input -> [Linear -> activation]* -> Linear -> logits`; layers named `fc1`, `fc2`, ...
#[derive(Debug, Clone)]
pub struct Ffnn {
    layers: Vec<Linear>,
    activation: Activation,
    ops: Ops,
}

impl Ffnn {
    /// Builds from layers (the last one is the classifier), run under `ops`.
    pub fn new(layers: Vec<Linear>, activation: Activation, ops: Ops) -> Self {
        Ffnn {
            layers,
            activation,
            ops,
        }
    }

    /// The execution policy the network runs under.
    pub fn ops(&self) -> Ops {
        self.ops
    }

    /// Creates the layers under `vb` for `inputs` features and `classes` outputs.
    pub fn from_config(
        cfg: &FfnnConfig,
        inputs: usize,
        classes: usize,
        ops: Ops,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let mut widths = vec![inputs];
        widths.extend(&cfg.hidden);
        widths.push(classes);
        let layers = linear_stack(&widths, &vb)?;
        Ok(Ffnn::new(layers, cfg.activation, ops))
    }
}

impl Module for Ffnn {
    /// # Shapes
    /// `x`: `[B, ...]` (flattened from dim 1) -> logits `[B, classes]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        forward_stack(self.ops, &self.layers, self.activation, &x.flatten_from(1)?)
    }
}
