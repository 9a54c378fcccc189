//! The mean predictor: one learnable output per time step, whatever the input; trained by the
//! same loop and scored by the same metrics as every network, it is the floor a model must beat.

use candle_core::{Result, Tensor};
use candle_nn::Init;

use super::network::{BuildCtx, Network};
use super::probe::Probe;

/// `mean` `[T_train, R]`; steps past the training length repeat the last row.
#[derive(Debug, Clone)]
pub struct MeanPredictor {
    mean: Tensor,
}

impl MeanPredictor {
    /// A zero-initialised mean per training step and output.
    pub fn new(ctx: &BuildCtx) -> crate::Result<Self> {
        let (_, steps) = ctx.sequence_shape("mean_predictor")?;
        let mean =
            ctx.vb()
                .get_with_hints((steps.max(1), ctx.outputs), "mean", Init::Const(0.0))?;
        Ok(MeanPredictor { mean })
    }
}

impl Network for MeanPredictor {
    /// # Shapes
    /// `input`: `[T, B, S]` -> `[T, B, R]` (the same for every sample).
    fn forward_probed(&self, input: &Tensor, _probe: &mut dyn Probe) -> Result<Tensor> {
        let (t_len, batch, _) = input.dims3()?;
        let (rows, outputs) = self.mean.dims2()?;
        let index: Vec<u32> = (0..t_len).map(|t| t.min(rows - 1) as u32).collect();
        let index = Tensor::from_vec(index, t_len, input.device())?;
        self.mean
            .index_select(&index, 0)?
            .unsqueeze(1)?
            .broadcast_as((t_len, batch, outputs))?
            .contiguous()
    }
}
