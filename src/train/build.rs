//! The one build sequence shared by training, evaluation, benchmarks and inspection: data,
//! seeded parameters, the network.

use candle_core::{Device, Tensor, Var};

use super::optim::AnyOptimizer;
use super::{clip_grad_norm, device_for, groups};
use crate::config::{ExperimentConfig, Kernels};
use crate::data::{self, Dataset};
use crate::error::Result;
use crate::nn::{build, BuildCtx, Builder, Network, SeededVarMap, Step};

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

impl BuiltRun {
    /// `cfg`'s optimizer over every parameter (fused updates under fused kernels, the
    /// config's per-group learning-rate scales).
    pub fn optimizer(&self, cfg: &ExperimentConfig) -> Result<AnyOptimizer> {
        let mut optimizer = AnyOptimizer::from_config(
            &cfg.optimizer,
            self.params.iter().map(|(_, v)| v.clone()).collect(),
        )?;
        optimizer.set_fused(cfg.kernels == Kernels::Fused);
        optimizer.set_lr_scales(groups::lr_scales(&cfg.lr_scale, &self.params)?)?;
        Ok(optimizer)
    }

    /// One training step on a batch as `train` takes it (also what `bench --experiment`
    /// times): encode, forward and backward, `cfg`'s gradient clipping, the optimizer's update
    /// and the network's after-update hook. `seed` is the batch's; returns the step (its
    /// loss and detached outputs).
    ///
    /// # Shapes
    /// `x`: a batch of the dataset's inputs, `y`: its targets.
    pub fn train_step(
        &self,
        cfg: &ExperimentConfig,
        optimizer: &mut AnyOptimizer,
        (x, y): (&Tensor, &Tensor),
        seed: u64,
    ) -> Result<Step> {
        let input = self.net.encode(x, seed)?;
        let mut out = self.net.train_step(&input, y, &*self.data.task, seed)?;
        if let Some(max_norm) = cfg.clip_grad_norm_per_parameter {
            for param in &self.params {
                clip_grad_norm(&mut out.grads, std::slice::from_ref(param), max_norm)?;
            }
        }
        if let Some(max_norm) = cfg.clip_grad_norm {
            clip_grad_norm(&mut out.grads, &self.params, max_norm)?;
        }
        optimizer.step(&out.grads)?;
        self.net.after_update(&self.params)?;
        Ok(out)
    }
}
