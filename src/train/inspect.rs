//! Looking inside a trained run: rebuild its network from `config.yaml` and a checkpoint, and
//! record what its spiking layers do on real inputs.

use candle_core::Device;

use super::{build_run, checkpoint, VAL_STREAM};
use crate::config::ExperimentConfig;
use crate::data::encode::batch_seed;
use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::nn::{Network, SeededVarMap, Traces};
use crate::rundir::RunDir;

/// A network with the weights of a run's best checkpoint, and the data it was trained on.
pub struct TrainedModel {
    /// The network.
    pub model: Box<dyn Network>,
    /// Its parameters (by name).
    pub vars: SeededVarMap,
    /// The run's data (task and splits).
    pub data: Dataset,
    /// Where the tensors live.
    pub device: Device,
}

/// Rebuilds `cfg`'s network with the weights of its run directory's best checkpoint.
pub fn load_trained(cfg: &ExperimentConfig) -> Result<TrainedModel> {
    load_trained_in(cfg, &RunDir::for_config(cfg))
}

/// Rebuilds the network of the run directory `dir` (its `config.yaml`) with the weights of its
/// best checkpoint, wherever the directory now lives; returns its config too.
pub fn load_run(dir: &std::path::Path) -> Result<(ExperimentConfig, TrainedModel)> {
    let dir = RunDir::at(dir);
    let cfg = dir.read_config()?;
    let trained = load_trained_in(&cfg, &dir)?;
    Ok((cfg, trained))
}

fn load_trained_in(cfg: &ExperimentConfig, dir: &RunDir) -> Result<TrainedModel> {
    let best = dir.best_checkpoint();
    if !best.exists() {
        return Err(Error::RunDir {
            path: dir.path().to_path_buf(),
            message: "has no checkpoint/best.safetensors yet; train the experiment first".into(),
        });
    }
    let mut run = build_run(cfg, None)?;
    let extra = checkpoint::load_weights(&best, &run.params, &run.device)?;
    run.net
        .load_extra_state(&crate::dynamics::training::split_extra(extra).0)?;
    Ok(TrainedModel {
        model: run.net,
        vars: run.vars,
        data: run.data,
        device: run.device,
    })
}

impl TrainedModel {
    /// Membrane and spike traces of every spiking layer on the first `n` validation samples
    /// (encoded as the first validation batch is during training).
    pub fn record_traces(&self, cfg: &ExperimentConfig, n: usize) -> Result<Traces> {
        let val: &dyn Split = &*self.data.val;
        let indices: Vec<usize> = (0..n.min(val.len())).collect();
        let x = val.batch(&indices, &self.device)?.input;
        let input = self.model.encode(&x, batch_seed(cfg.seed, VAL_STREAM, 0))?;
        let mut traces = Traces::default();
        self.model.forward_probed(&input, &mut traces)?;
        Ok(traces)
    }
}
