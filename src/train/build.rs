//! The one build sequence shared by training, evaluation, benchmarks and inspection: data,
//! seeded parameters, the network.

use candle_core::{Device, Var};

use super::device_for;
use crate::config::ExperimentConfig;
use crate::data::{self, Dataset};
use crate::error::Result;
use crate::nn::{build, BuildCtx, Builder, Network, SeededVarMap};

/// A run's data and freshly initialised network.
pub struct BuiltRun {
    /// The data (task and splits).
    pub data: Dataset,
    /// The parameter store (drawn from the run seed).
    pub vars: SeededVarMap,
    /// The network.
    pub net: Box<dyn Network>,
    /// Every parameter by name, sorted: the order of optimizers and checkpoints.
    pub params: Vec<(String, Var)>,
    /// Where the tensors live.
    pub device: Device,
}

/// Loads `cfg`'s data and builds its network with parameters drawn from `cfg.seed`;
/// `custom` builds a `custom` model.
pub fn build_run(cfg: &ExperimentConfig, custom: Option<Builder>) -> Result<BuiltRun> {
    let device = device_for(cfg.device)?;
    if let Some(encoder) = cfg.model.encoder() {
        let raw_pixels = cfg
            .data
            .images()
            .is_some_and(|(_, c)| c.normalize == crate::config::Normalize::None);
        encoder.validate("model.encoder", raw_pixels)?;
    }
    let data = data::load(&cfg.data, cfg.seed)?;
    let vars = SeededVarMap::new(cfg.seed);
    let ctx = BuildCtx {
        input: data.input,
        outputs: data.outputs,
        task: data.task.clone(),
        ops: cfg.kernels.into(),
        device: device.clone(),
        vars: &vars,
    };
    let net = build(&cfg.model, &ctx, custom)?;
    let params = vars.named_vars()?;
    Ok(BuiltRun {
        data,
        vars,
        net,
        params,
        device,
    })
}
