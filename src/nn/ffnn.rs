//! Fully connected classifier.

use candle_core::{Module, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::dropout::Dropout;
use super::layers::{forward_stack_t, linear_stack};
use super::Ops;
use crate::config::{Activation, FfnnConfig};

/// `input -> [Linear -> activation -> dropout]* -> Linear -> logits`; layers named `fc1`,
/// `fc2`, ...
#[derive(Debug, Clone)]
pub struct Ffnn {
    layers: Vec<Linear>,
    activation: Activation,
    dropout: Dropout,
    ops: Ops,
}

impl Ffnn {
    /// Builds from layers (the last one is the classifier), run under `ops`, without dropout.
    pub fn new(layers: Vec<Linear>, activation: Activation, ops: Ops) -> Self {
        Ffnn {
            layers,
            activation,
            dropout: Dropout::none(),
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
        Ok(Ffnn {
            dropout: Dropout::new(cfg.dropout, 0)?,
            ..Ffnn::new(layers, cfg.activation, ops)
        })
    }

    /// The forward pass, in training when `seed` (the batch's) is given (dropout after every
    /// hidden layer).
    ///
    /// # Shapes
    /// `x`: `[B, ...]` (flattened from dim 1) -> logits `[B, classes]`.
    pub fn forward_t(&self, x: &Tensor, seed: Option<u64>) -> candle_core::Result<Tensor> {
        let dropout = seed.map(|s| (self.dropout, s));
        forward_stack_t(
            self.ops,
            &self.layers,
            self.activation,
            &x.flatten_from(1)?,
            dropout,
        )
    }
}

impl Module for Ffnn {
    /// # Shapes
    /// `x`: `[B, ...]` (flattened from dim 1) -> logits `[B, classes]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_t(x, None)
    }
}
