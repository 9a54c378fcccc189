//! Non-spiking sequence classifier: `encoder (rows) -> RNN / LSTM / GRU stack -> Linear(last
//! hidden state) -> logits` (row-wise sequential MNIST).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::layers::linear;
use super::recurrent::{Stack, StackDynamics, StackReadout};
use super::Ops;
use crate::config::{EncoderConfig, RnnConfig};
use crate::dynamics::DynamicsOptions;

/// The stack `rnn.l<i>` over the encoded sequence and `fc` on its final hidden state.
#[derive(Debug, Clone)]
pub struct SeqRnn {
    rnn: Stack,
    fc: Linear,
    encoder: EncoderConfig,
    ops: Ops,
}

impl SeqRnn {
    /// Creates the layers under `vb` for `[C, H, W]` images and `classes` outputs.
    pub fn from_config(
        cfg: &RnnConfig,
        input: [usize; 3],
        classes: usize,
        ops: Ops,
        vb: VarBuilder,
    ) -> Result<Self> {
        let k = cfg.encoder.step_shape(input).iter().product();
        Ok(SeqRnn {
            rnn: Stack::from_config(&cfg.stack, k, "model", &vb.pp("rnn"))?,
            fc: linear(cfg.stack.hidden, classes, vb.pp("fc"))?,
            encoder: cfg.encoder,
            ops,
        })
    }

    /// The encoder turning images into this network's input.
    pub fn encoder(&self) -> &EncoderConfig {
        &self.encoder
    }

    /// Cross-entropy of the logits against class indices.
    ///
    /// # Shapes
    /// `logits`: `[B, classes]`, `labels`: `[B]` -> scalar.
    pub fn loss(&self, logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        self.ops.cross_entropy(logits, labels)
    }

    /// Logits of an encoded batch.
    ///
    /// # Shapes
    /// `input`: `[T, B, ...]` (`[28, B, 28]` for `rows`) -> logits `[B, classes]`.
    pub fn forward(&self, input: &Tensor) -> Result<Tensor> {
        self.forward_t(input, None)
    }

    /// [`SeqRnn::forward`], in training when `seed` (the batch's) is given (dropout between
    /// the recurrent layers).
    ///
    /// # Shapes
    /// `input`: `[T, B, ...]` -> logits `[B, classes]`.
    pub fn forward_t(&self, input: &Tensor, seed: Option<u64>) -> Result<Tensor> {
        let (t, b) = (input.dim(0)?, input.dim(1)?);
        let (_, h) = self
            .rnn
            .forward_t(self.ops, &input.reshape((t, b, ()))?, seed)?;
        self.fc.forward(&h)
    }

    /// The stack as a dynamical system (see [`StackDynamics`]), `fc` read at the last step.
    pub fn dynamics(&self, opts: &DynamicsOptions) -> Result<StackDynamics> {
        StackDynamics::new(&self.rnn, &self.fc, StackReadout::LastStep, opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CellKind, ModelConfig, RecurrentStack};
    use crate::nn::gradcheck::fd_error;
    use crate::nn::srnn::tests::images;
    use crate::nn::{Model, SeededVarMap};
    use candle_core::{DType, Device, Module};

    #[test]
    fn gradients_match_finite_differences_for_every_cell() -> Result<()> {
        for cell in [CellKind::Rnn, CellKind::Lstm, CellKind::Gru] {
            let cfg = ModelConfig::Rnn(RnnConfig {
                stack: RecurrentStack {
                    cell,
                    hidden: 3,
                    layers: 2,
                    dropout: 0.0,
                },
                encoder: EncoderConfig::Rows,
            });
            let vars = SeededVarMap::new(2);
            let vb = vars.var_builder(DType::F64, &Device::Cpu);
            let model = Model::from_config(&cfg, [1, 4, 3], 3, Ops::Plain, vb)?;
            let x = model.encode(&images(2, 4, 3)?, 0)?;
            assert_eq!(x.dims(), &[4, 2, 3]);
            assert_eq!(model.forward(&x)?.dims(), &[2, 3]);
            let labels = Tensor::new(&[1u32, 2], &Device::Cpu)?;
            let err = fd_error(&vars, || model.loss(&model.forward(&x)?, &labels))?;
            assert!(err < 1e-7, "{cell:?}: max error {err}");
        }
        Ok(())
    }

    /// The fused stack (one op per layer) and the plain cells: the same loss and the same
    /// gradient for every parameter, to 1e-5, on a batch of 28-row images.
    #[test]
    fn fused_and_plain_stacks_give_the_same_loss_and_gradients() -> Result<()> {
        for cell in [CellKind::Rnn, CellKind::Lstm, CellKind::Gru] {
            let cfg = ModelConfig::Rnn(RnnConfig {
                stack: RecurrentStack {
                    cell,
                    hidden: 16,
                    layers: 2,
                    dropout: 0.0,
                },
                encoder: EncoderConfig::Rows,
            });
            let vars = SeededVarMap::new(3);
            let build = |ops| {
                let vb = vars.var_builder(DType::F32, &Device::Cpu);
                Model::from_config(&cfg, [1, 28, 28], 10, ops, vb)
            };
            let (fused, plain) = (build(Ops::Fused)?, build(Ops::Plain)?);
            let x = fused.encode(&images(6, 28, 28)?.to_dtype(DType::F32)?, 0)?;
            let labels = Tensor::new(&[1u32, 2, 3, 4, 5, 6], &Device::Cpu)?;
            let lf = fused.loss(&fused.forward(&x)?, &labels)?;
            let lp = plain.loss(&plain.forward(&x)?, &labels)?;
            let (a, b) = (lf.to_scalar::<f32>()?, lp.to_scalar::<f32>()?);
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{cell:?}: loss {a} vs {b}"
            );
            let (gf, gp) = (lf.backward()?, lp.backward()?);
            for (name, var) in vars.named_vars()? {
                let (f, p) = (gf.get(var.as_tensor()), gp.get(var.as_tensor()));
                let (Some(f), Some(p)) = (f, p) else {
                    panic!("{cell:?} {name}: gradient missing on one path");
                };
                let diff = (f - p)?.abs()?.max_all()?.to_scalar::<f32>()?;
                let scale = p.abs()?.max_all()?.to_scalar::<f32>()?.max(1e-3);
                assert!(
                    diff <= 1e-5 * scale.max(1.0),
                    "{cell:?} {name}: {diff} (scale {scale})"
                );
            }
        }
        Ok(())
    }
}
