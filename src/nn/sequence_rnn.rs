//! RNN / LSTM / GRU stack over a sequence task's inputs with a linear readout at every step
//! (the GRU baseline of path integration).

use candle_core::{Module, Result, Tensor};
use candle_nn::Linear;

use super::layers::linear;
use super::network::{BuildCtx, Network};
use super::probe::Probe;
use super::recurrent::Stack;
use crate::config::SequenceRnnConfig;

/// `rnn.l<i>` layers and the per-step readout `fc`.
#[derive(Debug, Clone)]
pub struct SequenceRnn {
    rnn: Stack,
    fc: Linear,
}

impl SequenceRnn {
    /// Creates the layers for the data's channels and outputs.
    pub fn new(cfg: &SequenceRnnConfig, ctx: &BuildCtx) -> crate::Result<Self> {
        let (channels, _) = ctx.sequence_shape("sequence_rnn")?;
        let vb = ctx.vb();
        Ok(SequenceRnn {
            rnn: Stack::from_config(&cfg.stack, channels, "model", &vb.pp("rnn"))?,
            fc: linear(cfg.stack.hidden, ctx.outputs, vb.pp("fc"))?,
        })
    }
}

impl Network for SequenceRnn {
    /// # Shapes
    /// `input`: `[T, B, S]` -> `[T, B, R]`.
    fn forward_probed(&self, input: &Tensor, _probe: &mut dyn Probe) -> Result<Tensor> {
        let (out, _) = self.rnn.forward(input)?;
        let (t_len, batch, h) = out.dims3()?;
        self.fc
            .forward(&out.reshape((t_len * batch, h))?)?
            .reshape((t_len, batch, ()))
    }
}
