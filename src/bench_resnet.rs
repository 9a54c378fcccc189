//! Row `r` of the benchmark: ResNet-18 with the CIFAR stem (`benches/resnet_twin.py` is its
//! PyTorch twin): four fixed random batches of `[B, 3, 32, 32]` inputs and labels in rotation,
//! training with SGD 0.1 / 0.9 / 5e-4, inference in evaluation mode with no graph.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::{time_rates, BenchOptions, Rates};
use crate::config::{Kernels, OptimizerConfig, ResnetConfig};
use crate::data::{Classification, InputShape};
use crate::error::Result;
use crate::nn::{BuildCtx, Network, Resnet, SeededVarMap};
use crate::train::optim::AnyOptimizer;
use autoresearch_kernels::par::on_pool;

/// Distinct batches cycled through (as the twin does).
const BATCHES: usize = 4;

fn config(width: usize) -> ResnetConfig {
    ResnetConfig {
        blocks: vec![2, 2, 2, 2],
        width,
        batch_norm: Default::default(),
        zero_init_residual: false,
    }
}

fn batches(opts: &BenchOptions, device: &Device) -> Result<Vec<(Tensor, Tensor)>> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    (0..BATCHES)
        .map(|_| {
            let x = Tensor::randn(0f32, 1.0, (opts.batch, 3, 32, 32), device)?;
            let y: Vec<u32> = (0..opts.batch).map(|_| rng.random_range(0..10)).collect();
            Ok((x, Tensor::from_vec(y, opts.batch, device)?))
        })
        .collect()
}

/// Training images/s of ResNet-18 (`opts.resnet_width` channels in the first stage).
pub fn train(opts: &BenchOptions) -> Result<Rates> {
    let device = Device::Cpu;
    let vars = SeededVarMap::new(opts.seed);
    let task = Arc::new(Classification { classes: 10 });
    let ctx = BuildCtx {
        input: InputShape::Image([3, 32, 32]),
        outputs: 10,
        task: task.clone(),
        ops: opts.kernels.into(),
        device: device.clone(),
        vars: &vars,
    };
    let net = Resnet::new(&config(opts.resnet_width), &ctx)?;
    let params = vars.named_vars()?.into_iter().map(|(_, v)| v).collect();
    let mut optimizer = AnyOptimizer::from_config(
        &OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 5e-4,
        },
        params,
    )?;
    optimizer.set_fused(opts.kernels == Kernels::Fused);
    let data = batches(opts, &device)?;
    on_pool(|| {
        time_rates(opts, |call| {
            let (x, y) = &data[call % BATCHES];
            let step = net.train_step(x, y, &*task, 0)?;
            optimizer.step(&step.grads)?;
            Ok(())
        })
    })
}

/// Inference images/s of ResNet-18 in evaluation mode, over detached parameters.
pub fn infer(opts: &BenchOptions) -> Result<Rates> {
    let device = Device::Cpu;
    let vars = SeededVarMap::new(opts.seed);
    let cfg = config(opts.resnet_width);
    let ops = opts.kernels.into();
    Resnet::from_config(
        &cfg,
        [3, 32, 32],
        10,
        ops,
        vars.var_builder(DType::F32, &device),
    )?;
    let net = Resnet::from_config(&cfg, [3, 32, 32], 10, ops, super::frozen(&vars, &device)?)?;
    let data = batches(opts, &device)?;
    on_pool(|| {
        time_rates(opts, |call| {
            net.forward(&data[call % BATCHES].0)?;
            Ok(())
        })
    })
}
