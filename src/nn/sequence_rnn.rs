//! RNN / LSTM / GRU stack over a sequence task's inputs with a linear readout at every step
//! (the GRU baseline of path integration).

use candle_core::{Module, Result, Tensor};
use candle_nn::Linear;

use super::layers::linear;
use super::network::{BuildCtx, Network};
use super::probe::Probe;
use super::recurrent::{Stack, StackDynamics, StackReadout};
use super::Ops;
use crate::config::SequenceRnnConfig;
use crate::dynamics::{Dynamics, DynamicsOptions};

/// `rnn.l<i>` layers and the per-step readout `fc`.
#[derive(Debug, Clone)]
pub struct SequenceRnn {
    rnn: Stack,
    fc: Linear,
    ops: Ops,
}

impl SequenceRnn {
    /// Creates the layers for the data's channels and outputs.
    pub fn new(cfg: &SequenceRnnConfig, ctx: &BuildCtx) -> crate::Result<Self> {
        let (channels, _) = ctx.sequence_shape("sequence_rnn")?;
        let vb = ctx.vb();
        Ok(SequenceRnn {
            rnn: Stack::from_config(&cfg.stack, channels, "model", &vb.pp("rnn"))?,
            fc: linear(cfg.stack.hidden, ctx.outputs, vb.pp("fc"))?,
            ops: ctx.ops,
        })
    }
}

impl Network for SequenceRnn {
    /// The stack as a dynamical system (see [`StackDynamics`]), `fc` read at every step.
    fn dynamics(&self, opts: &DynamicsOptions) -> Option<crate::Result<Box<dyn Dynamics + '_>>> {
        let system = StackDynamics::new(&self.rnn, &self.fc, StackReadout::EveryStep, opts);
        Some(
            system
                .map(|d| Box::new(d) as Box<dyn Dynamics + '_>)
                .map_err(Into::into),
        )
    }

    /// # Shapes
    /// `input`: `[T, B, S]` -> `[T, B, R]`.
    fn forward_probed(&self, input: &Tensor, _probe: &mut dyn Probe) -> Result<Tensor> {
        let (out, _) = self.rnn.forward_with(self.ops, input)?;
        let (t_len, batch, h) = out.dims3()?;
        self.fc
            .forward(&out.reshape((t_len * batch, h))?)?
            .reshape((t_len, batch, ()))
    }
}
