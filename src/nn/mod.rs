//! Models on candle: one struct per network, built from its typed config.

mod activation;
mod cnn;
mod ffnn;
pub mod init;
pub mod layers;
pub mod pool;

pub use cnn::Cnn;
pub use ffnn::Ffnn;
pub use init::SeededVarMap;

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use crate::config::ModelConfig;

/// Any model the config can name.
#[derive(Debug, Clone)]
pub enum Model {
    /// Fully connected network.
    Ffnn(Ffnn),
    /// Convolutional network.
    Cnn(Cnn),
}

impl Model {
    /// Builds the configured model for `[C, H, W]` inputs and `classes` outputs under `vb`.
    pub fn from_config(
        cfg: &ModelConfig,
        input: [usize; 3],
        classes: usize,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        Ok(match cfg {
            ModelConfig::Ffnn(c) => {
                Model::Ffnn(Ffnn::from_config(c, input.iter().product(), classes, vb)?)
            }
            ModelConfig::Cnn(c) => Model::Cnn(Cnn::from_config(c, input, classes, vb)?),
        })
    }
}

impl Module for Model {
    /// # Shapes
    /// `x`: `[B, C, H, W]` -> logits `[B, classes]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Model::Ffnn(m) => m.forward(x),
            Model::Cnn(m) => m.forward(x),
        }
    }
}
