//! Looking inside a trained run: rebuild its model from `config.yaml` and a checkpoint, and
//! record what its spiking layers do on real inputs.

use candle_core::{DType, Device};

use super::{checkpoint, device_for, VAL_STREAM};
use crate::config::ExperimentConfig;
use crate::data::encode::batch_seed;
use crate::data::{load_splits, ImageSet};
use crate::error::{Error, Result};
use crate::nn::{Model, SeededVarMap, Traces};
use crate::rundir::RunDir;

/// A model with the weights of a run's best checkpoint, and the data it was trained on.
pub struct TrainedModel {
    /// The network.
    pub model: Model,
    /// Its parameters (by name).
    pub vars: SeededVarMap,
    /// The validation split of the run.
    pub val: ImageSet,
    /// Where the tensors live.
    pub device: Device,
}

/// Rebuilds `cfg`'s model with the weights of its run directory's best checkpoint.
pub fn load_trained(cfg: &ExperimentConfig) -> Result<TrainedModel> {
    let dir = RunDir::for_config(cfg);
    let best = dir.best_checkpoint();
    if !best.exists() {
        return Err(Error::RunDir {
            path: dir.path().to_path_buf(),
            message: "has no checkpoint/best.safetensors yet; train the experiment first".into(),
        });
    }
    let device = device_for(cfg.device)?;
    let splits = load_splits(&cfg.data, cfg.seed)?;
    let vars = SeededVarMap::new(cfg.seed);
    let model = Model::from_config(
        &cfg.model,
        splits.val.shape,
        splits.val.classes,
        cfg.kernels,
        vars.var_builder(DType::F32, &device),
    )?;
    checkpoint::load_weights(&best, &vars.named_vars()?, &device)?;
    Ok(TrainedModel {
        model,
        vars,
        val: splits.val,
        device,
    })
}

impl TrainedModel {
    /// Membrane and spike traces of every spiking layer on the first `n` validation images
    /// (encoded as the first validation batch is during training).
    pub fn record_traces(&self, cfg: &ExperimentConfig, n: usize) -> Result<Traces> {
        let indices: Vec<usize> = (0..n.min(self.val.len())).collect();
        let (x, _) = self.val.batch(&indices, &self.device)?;
        let input = self.model.encode(&x, batch_seed(cfg.seed, VAL_STREAM, 0))?;
        Ok(self.model.record_traces(&input)?)
    }
}
