//! Spiking fully connected network (the reference's SNN-FFNN 784-512-256-10, T = 25).

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::layers::linear_stack;
use super::neuron::Neuron;
use super::probe::Probe;
use super::spiking::SpikingStack;
use super::Ops;
use crate::config::{EncoderConfig, SnnFfnnConfig};

/// `encoder -> [Linear -> spiking neuron]* -> readout`, run layer by layer over all time steps
/// (exact for a feed-forward net, and one large product per layer); layers named `fc1, lif1, ...`.
#[derive(Debug, Clone)]
pub struct SnnFfnn {
    stack: SpikingStack,
    encoder: EncoderConfig,
    ops: Ops,
}

impl SnnFfnn {
    /// Builds from its layer stack and the encoder that feeds it, run under `ops`.
    pub fn new(stack: SpikingStack, encoder: EncoderConfig, ops: Ops) -> Self {
        SnnFfnn {
            stack,
            encoder,
            ops,
        }
    }

    /// The execution policy the network runs under.
    pub fn ops(&self) -> Ops {
        self.ops
    }

    /// Creates the layers under `vb` for `[C, H, W]` images and `classes` outputs.
    pub fn from_config(
        cfg: &SnnFfnnConfig,
        input: [usize; 3],
        classes: usize,
        ops: Ops,
        vb: VarBuilder,
    ) -> Result<Self> {
        let mut widths = vec![cfg.encoder.step_shape(input).iter().product()];
        widths.extend(&cfg.hidden);
        widths.push(classes);
        let fcs = linear_stack(&widths, &vb)?;
        let neurons = widths[1..]
            .iter()
            .enumerate()
            .map(|(i, &n)| Neuron::from_config(&cfg.neuron, &[n], vb.pp(format!("lif{}", i + 1))))
            .collect::<Result<_>>()?;
        let stack = SpikingStack {
            fcs,
            neurons,
            first: 1,
            readout: cfg.readout,
            steps: cfg.encoder.steps(input),
        };
        Ok(SnnFfnn::new(stack, cfg.encoder, ops))
    }

    /// The encoder turning images into this network's input.
    pub fn encoder(&self) -> &EncoderConfig {
        &self.encoder
    }

    /// The layer stack (its readout gives the loss).
    pub fn stack(&self) -> &SpikingStack {
        &self.stack
    }

    /// Class scores of an encoded batch, reporting each layer's spikes to `probe`.
    ///
    /// # Shapes
    /// `input`: `[T, B, ...]` -> scores `[B, classes]`.
    pub fn forward_probed(&self, input: &Tensor, probe: &mut dyn Probe) -> Result<Tensor> {
        let (t, b) = (input.dim(0)?, input.dim(1)?);
        let x = input.reshape((t, b, ()))?;
        self.stack
            .forward_probed(self.ops, &x, self.encoder.emits_spikes(), probe)
    }
}
