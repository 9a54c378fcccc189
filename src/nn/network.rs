//! The [`Network`] trait every trainable model implements, and [`build`]: the one function that
//! turns a model config into a network for training, evaluation, benchmarks and inspection.
//!
//! A model family is one module with a config struct (a `ModelConfig` variant) and a type
//! implementing [`Network`], plus one line in [`build`]. The trainer never matches on models.

use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;

use super::probe::{NoProbe, Probe};
use super::Ops;
use super::SeededVarMap;
use crate::config::{InputKind, ModelConfig};
use crate::data::{InputShape, Task};
use crate::error::{Error, Result};

/// What a network is built for: the data's input and outputs, the task, where and how it
/// computes, and the seeded parameter store.
pub struct BuildCtx<'a> {
    /// One sample's input.
    pub input: InputShape,
    /// Outputs per sample (classes) or per step (target channels).
    pub outputs: usize,
    /// The task the network is trained on.
    pub task: Arc<dyn Task>,
    /// Fused CPU kernels or plain tensor ops (the execution policy, chosen once per run).
    pub ops: Ops,
    /// Where the tensors live.
    pub device: Device,
    /// The parameters, drawn from the run seed and each parameter's name.
    pub vars: &'a SeededVarMap,
}

impl BuildCtx<'_> {
    /// A `VarBuilder` (f32) creating parameters in [`BuildCtx::vars`].
    pub fn vb(&self) -> VarBuilder<'static> {
        self.vars.var_builder(DType::F32, &self.device)
    }

    /// The image shape `[C, H, W]`, or an error naming the model that needs images.
    pub fn image_shape(&self, model: &str) -> Result<[usize; 3]> {
        match self.input {
            InputShape::Image(shape) => Ok(shape),
            other => Err(Error::invalid(
                "model.kind",
                format!(
                    "{model} reads images, but the data gives {} input",
                    other.kind()
                ),
            )),
        }
    }

    /// `(channels, steps)` of a sequence input, or an error naming the model.
    pub fn sequence_shape(&self, model: &str) -> Result<(usize, usize)> {
        match self.input {
            InputShape::Sequence { channels, steps } => Ok((channels, steps)),
            other => Err(Error::invalid(
                "model.kind",
                format!(
                    "{model} reads time-first sequences, but the data gives {} input",
                    other.kind()
                ),
            )),
        }
    }
}

/// The result of one training step: the loss, the outputs (for training metrics) and the
/// gradient of every parameter that has one.
pub struct Step {
    /// The batch's training loss.
    pub loss: f64,
    /// The network's outputs for the batch (detached).
    pub output: Tensor,
    /// Gradients by parameter tensor.
    pub grads: GradStore,
}

/// A trainable network.
///
/// Required: [`Network::forward_probed`]. Everything else has a default: `encode` passes the
/// input through, `loss` is the task's, `train_step` is autograd of `loss`, `after_update`
/// does nothing and there is no extra state. A network that computes its own gradients (a local
/// learning rule) overrides `train_step` and fills [`Step::grads`] for its parameters.
pub trait Network: Send + Sync {
    /// The network's outputs for an encoded batch, reporting spiking activity to `probe`.
    ///
    /// # Shapes
    /// Classification: `[B, classes]` scores. Sequence tasks: `[T, B, R]`.
    fn forward_probed(&self, input: &Tensor, probe: &mut dyn Probe) -> candle_core::Result<Tensor>;

    /// [`Network::forward_probed`] without a probe.
    fn forward(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_probed(input, &mut NoProbe)
    }

    /// Turns a data batch's input into this network's input (e.g. spike trains), drawing any
    /// randomness from `seed`; unchanged by default.
    fn encode(&self, input: &Tensor, _seed: u64) -> candle_core::Result<Tensor> {
        Ok(input.clone())
    }

    /// The training loss of `output` against `target`: the task's by default.
    fn loss(
        &self,
        output: &Tensor,
        target: &Tensor,
        task: &dyn Task,
    ) -> candle_core::Result<Tensor> {
        task.loss(output, target)
    }

    /// The forward pass of a training step: [`Network::forward`] by default; a network with
    /// a training mode (batch norm on batch statistics, dropout) overrides it, drawing any
    /// randomness (dropout masks) from `seed`, the batch's (so a resumed run draws the same).
    fn forward_train(&self, input: &Tensor, _seed: u64) -> candle_core::Result<Tensor> {
        self.forward(input)
    }

    /// One step's loss, outputs and gradients: autograd of [`Network::loss`] at
    /// [`Network::forward_train`] by default; `seed` is the batch's.
    fn train_step(
        &self,
        input: &Tensor,
        target: &Tensor,
        task: &dyn Task,
        seed: u64,
    ) -> Result<Step> {
        let output = self.forward_train(input, seed)?;
        let loss = self.loss(&output, target, task)?;
        let grads = loss.backward()?;
        Ok(Step {
            loss: f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?),
            output: output.detach(),
            grads,
        })
    }

    /// Called after every optimizer update with the parameters (masks, sign constraints,
    /// clamps); nothing by default.
    fn after_update(&self, _params: &[(String, Var)]) -> Result<()> {
        Ok(())
    }

    /// Called before every epoch (counted from 1), also the first after a resume: for
    /// networks whose step depends on the epoch (an energy weight schedule); nothing by default.
    fn start_epoch(&mut self, _epoch: usize) -> Result<()> {
        Ok(())
    }

    /// Columns this network adds to the epoch's row of `history.csv` about its training steps
    /// since [`Network::start_epoch`] (energies, rule statistics); none by default.
    fn epoch_columns(&self) -> Vec<crate::metric::NamedValue> {
        Vec::new()
    }

    /// For energy-based networks: the relaxation of one batch from its bottom-up state
    /// (clamped to `target` when given), with the energy per term and step; `None` (the
    /// default) for networks without one.
    fn relaxation(
        &self,
        _input: &Tensor,
        _target: Option<&Tensor>,
    ) -> Option<Result<super::pc::Relaxation>> {
        None
    }

    /// This network as a dynamical system (Lyapunov spectra, flossing, `‖dL/dh_0‖`); `None`
    /// (the default) for networks without recurrent state.
    fn dynamics(
        &self,
        _opts: &crate::dynamics::DynamicsOptions,
    ) -> Option<Result<Box<dyn crate::dynamics::Dynamics + '_>>> {
        None
    }

    /// Files describing the built network (graph metadata, assignments), written into the
    /// run directory when training starts, by name; none by default.
    fn run_files(&self) -> Vec<(String, Vec<u8>)> {
        Vec::new()
    }

    /// State that is not a trained parameter but must survive a checkpoint (buffers, running
    /// statistics, fixed masks drawn at build time), by name; none by default.
    fn extra_state(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// Restores what [`Network::extra_state`] returned; an error by default if anything is
    /// given, since a network without extra state cannot take any.
    fn load_extra_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        match state.first() {
            None => Ok(()),
            Some((name, _)) => Err(Error::invalid(
                "checkpoint",
                format!("holds extra state `{name}` but the network keeps none"),
            )),
        }
    }
}

/// Builds a network outside this crate's registry (a [`ModelConfig::Custom`] model).
pub type Builder<'b> = &'b (dyn Fn(&ModelConfig, &BuildCtx) -> Result<Box<dyn Network>> + Sync);

/// Builds the network `cfg` names for `ctx`: the registry of model families. `custom`
/// models go to `custom`, which is an error when absent.
pub fn build(
    cfg: &ModelConfig,
    ctx: &BuildCtx,
    custom: Option<Builder>,
) -> Result<Box<dyn Network>> {
    check_input(cfg, ctx)?;
    Ok(match cfg {
        ModelConfig::RateRnn(c) => Box::new(super::RateRnn::new(c, ctx)?),
        ModelConfig::SequenceRnn(c) => Box::new(super::SequenceRnn::new(c, ctx)?),
        ModelConfig::MeanPredictor(_) => Box::new(super::MeanPredictor::new(ctx)?),
        ModelConfig::Bpu(c) => Box::new(super::Bpu::new(c, ctx)?),
        ModelConfig::Grid(c) => Box::new(super::Grid::new(c, ctx)?),
        ModelConfig::Pc(c) => Box::new(super::Pc::new(c, ctx)?),
        ModelConfig::Resnet(c) => Box::new(super::Resnet::new(c, ctx)?),
        ModelConfig::Custom(c) => match custom {
            Some(builder) => builder(cfg, ctx)?,
            None => {
                return Err(Error::invalid(
                    "model.kind",
                    format!(
                        "custom model `{}` needs its builder: train it with train::train_with (or Experiment::train_custom)",
                        c.name
                    ),
                ))
            }
        },
        _ => {
            let shape = ctx.image_shape(cfg.kind())?;
            Box::new(super::Model::from_config(
                cfg,
                shape,
                ctx.outputs,
                ctx.ops,
                ctx.vb(),
            )?)
        }
    })
}

/// Errors when the model reads another kind of input than the data gives.
fn check_input(cfg: &ModelConfig, ctx: &BuildCtx) -> Result<()> {
    match cfg.input_kind() {
        InputKind::Image => ctx.image_shape(cfg.kind()).map(|_| ()),
        InputKind::Sequence => ctx.sequence_shape(cfg.kind()).map(|_| ()),
        InputKind::Any => Ok(()),
    }
}
