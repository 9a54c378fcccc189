//! Models on candle: one struct per network, built from its typed config by [`build`], each
//! implementing [`Network`] (forward with a probe, loss, a training step, hooks).
//!
//! The image models are gathered in the [`Model`] enum, which maps a batch of images to class
//! scores in three steps: [`Model::encode`] (images -> the network's input, e.g. spike trains,
//! seeded), [`Model::forward`] (input -> scores whose arg-max is the prediction) and
//! [`Model::loss`] (its readout's loss).

mod activation;
pub mod batch_norm;
mod bpu;
#[cfg(test)]
mod bpu_tests;
mod cnn;
pub mod dropout;
mod ffnn;
pub mod fused;
#[cfg(test)]
mod gradcheck;
mod grid;
pub mod grid_check;
mod hybrid;
pub mod init;
pub mod layers;
mod mean_predictor;
mod network;
pub mod neuron;
mod ops;
pub mod pc;
pub mod pool;
mod probe;
mod rate_rnn;
mod readout;
pub mod recurrent;
mod resnet;
mod seq_rnn;
mod sequence_rnn;
mod slstm_net;
mod snn_cnn;
mod snn_ffnn;
pub mod spiking;
mod srnn;
mod srnn_dynamics;
#[cfg(test)]
mod srnn_dynamics_tests;

pub use bpu::{Bpu, Parts as BpuParts};
pub use cnn::Cnn;
pub use ffnn::Ffnn;
pub use grid::Grid;
pub use hybrid::Hybrid;
pub use init::SeededVarMap;
pub use mean_predictor::MeanPredictor;
pub use network::{build, BuildCtx, Builder, Network, Step};
pub use ops::Ops;
pub use pc::{Pc, Relaxation};
pub use probe::{FiringRates, LayerRate, LayerTrace, NoProbe, Probe, Traces};
pub use rate_rnn::RateRnn;
pub use resnet::Resnet;
pub use seq_rnn::SeqRnn;
pub use sequence_rnn::SequenceRnn;
pub use slstm_net::SlstmNet;
pub use snn_cnn::SnnCnn;
pub use snn_ffnn::SnnFfnn;
pub use srnn::Srnn;
pub use srnn_dynamics::SrnnDynamics;

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::config::{EncoderConfig, ModelConfig};

/// Any model the config can name.
#[derive(Debug, Clone)]
pub enum Model {
    /// Fully connected network.
    Ffnn(Ffnn),
    /// Convolutional network.
    Cnn(Cnn),
    /// Spiking fully connected network.
    SnnFfnn(SnnFfnn),
    /// Spiking convolutional network.
    SnnCnn(SnnCnn),
    /// Recurrent spiking network (RLeaky layers).
    Srnn(Srnn),
    /// Spiking LSTM network.
    Slstm(SlstmNet),
    /// Spiking encoder layer feeding a non-spiking RNN.
    Hybrid(Hybrid),
    /// Non-spiking RNN / LSTM / GRU sequence classifier.
    Rnn(SeqRnn),
}

impl Model {
    /// Builds the configured image model for `[C, H, W]` inputs and `classes` outputs under
    /// `vb`, run under `ops` (fused CPU kernels or plain tensor ops). Other kinds are built by
    /// [`build`].
    pub fn from_config(
        cfg: &ModelConfig,
        input: [usize; 3],
        classes: usize,
        ops: Ops,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(match cfg {
            ModelConfig::Ffnn(c) => Model::Ffnn(Ffnn::from_config(
                c,
                input.iter().product(),
                classes,
                ops,
                vb,
            )?),
            ModelConfig::Cnn(c) => Model::Cnn(Cnn::from_config(c, input, classes, ops, vb)?),
            ModelConfig::SnnFfnn(c) => {
                Model::SnnFfnn(SnnFfnn::from_config(c, input, classes, ops, vb)?)
            }
            ModelConfig::SnnCnn(c) => {
                Model::SnnCnn(SnnCnn::from_config(c, input, classes, ops, vb)?)
            }
            ModelConfig::Srnn(c) => Model::Srnn(Srnn::from_config(c, input, classes, ops, vb)?),
            ModelConfig::Slstm(c) => {
                Model::Slstm(SlstmNet::from_config(c, input, classes, ops, vb)?)
            }
            ModelConfig::Hybrid(c) => {
                Model::Hybrid(Hybrid::from_config(c, input, classes, ops, vb)?)
            }
            ModelConfig::Rnn(c) => Model::Rnn(SeqRnn::from_config(c, input, classes, ops, vb)?),
            other => candle_core::bail!(
                "model kind {} is not an image model; build it with nn::build",
                other.kind()
            ),
        })
    }

    /// Turns images `[B, C, H, W]` (pixels as the dataset scales them) into this model's input,
    /// drawing any encoder randomness from `seed`; images pass unchanged for ANNs.
    pub fn encode(&self, images: &Tensor, seed: u64) -> Result<Tensor> {
        match self.encoder() {
            Some(encoder) => encoder.encode(images, seed),
            None => Ok(images.clone()),
        }
    }

    /// The encoder turning images into this model's input (`None`: images as they are).
    pub fn encoder(&self) -> Option<&EncoderConfig> {
        match self {
            Model::Ffnn(_) | Model::Cnn(_) => None,
            Model::SnnFfnn(m) => Some(m.encoder()),
            Model::SnnCnn(m) => Some(m.encoder()),
            Model::Srnn(m) => Some(m.encoder()),
            Model::Slstm(m) => Some(m.encoder()),
            Model::Hybrid(m) => Some(m.encoder()),
            Model::Rnn(m) => Some(m.encoder()),
        }
    }

    /// Class scores `[B, classes]` of an encoded batch, reporting spiking activity to `probe`.
    pub fn forward_probed(&self, input: &Tensor, probe: &mut dyn Probe) -> Result<Tensor> {
        match self {
            Model::Ffnn(m) => m.forward(input),
            Model::Cnn(m) => m.forward(input),
            Model::SnnFfnn(m) => m.forward_probed(input, probe),
            Model::SnnCnn(m) => m.forward_probed(input, probe),
            Model::Srnn(m) => m.forward_probed(input, probe),
            Model::Slstm(m) => m.forward_probed(input, probe),
            Model::Hybrid(m) => m.forward_probed(input, probe),
            Model::Rnn(m) => m.forward(input),
        }
    }

    /// The training loss of `scores` (from [`Model::forward`]) against class indices `labels`.
    pub fn loss(&self, scores: &Tensor, labels: &Tensor) -> Result<Tensor> {
        match self {
            Model::Ffnn(m) => m.ops().cross_entropy(scores, labels),
            Model::Cnn(m) => m.ops().cross_entropy(scores, labels),
            Model::SnnFfnn(m) => m.stack().loss(m.ops(), scores, labels),
            Model::SnnCnn(m) => m.head().loss(m.ops(), scores, labels),
            Model::Srnn(m) => m.head().loss(m.ops(), scores, labels),
            Model::Slstm(m) => m.head().loss(m.ops(), scores, labels),
            Model::Hybrid(m) => m.loss(scores, labels),
            Model::Rnn(m) => m.loss(scores, labels),
        }
    }

    /// Membrane and spike traces of every spiking layer for one encoded batch (no gradients).
    pub fn record_traces(&self, input: &Tensor) -> Result<Traces> {
        let mut traces = Traces::default();
        self.forward_probed(input, &mut traces)?;
        Ok(traces)
    }
}

impl Module for Model {
    /// # Shapes
    /// `input`: what [`Model::encode`] returns -> scores `[B, classes]`.
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        self.forward_probed(input, &mut NoProbe)
    }
}

impl Network for Model {
    fn forward_probed(&self, input: &Tensor, probe: &mut dyn Probe) -> Result<Tensor> {
        Model::forward_probed(self, input, probe)
    }
    fn encode(&self, input: &Tensor, seed: u64) -> Result<Tensor> {
        Model::encode(self, input, seed)
    }
    /// Dropout, where the model has some, with masks from the batch's `seed`.
    fn forward_train(&self, input: &Tensor, seed: u64) -> Result<Tensor> {
        match self {
            Model::Ffnn(m) => m.forward_t(input, Some(seed)),
            Model::Cnn(m) => m.forward_t(input, Some(seed)),
            Model::Rnn(m) => m.forward_t(input, Some(seed)),
            _ => Model::forward_probed(self, input, &mut NoProbe),
        }
    }
    fn loss(
        &self,
        output: &Tensor,
        target: &Tensor,
        _task: &dyn crate::data::Task,
    ) -> Result<Tensor> {
        Model::loss(self, output, target)
    }
    /// The recurrent models' dynamics: [`SeqRnn`] and [`Srnn`]; none for the others.
    fn dynamics(
        &self,
        opts: &crate::dynamics::DynamicsOptions,
    ) -> Option<crate::Result<Box<dyn crate::dynamics::Dynamics + '_>>> {
        fn boxed<'a, D: crate::dynamics::Dynamics + 'a>(
            system: Result<D>,
        ) -> Option<crate::Result<Box<dyn crate::dynamics::Dynamics + 'a>>> {
            Some(
                system
                    .map(|d| Box::new(d) as Box<dyn crate::dynamics::Dynamics + 'a>)
                    .map_err(Into::into),
            )
        }
        match self {
            Model::Rnn(m) => boxed(m.dynamics(opts)),
            Model::Srnn(m) => boxed(m.dynamics(opts)),
            _ => None,
        }
    }
}
