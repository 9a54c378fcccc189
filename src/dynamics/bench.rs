//! Timings of issue 19's recipe on this machine: one flossing step (N = 80, k = 75, 55 steps,
//! forward and adjoint) and one training step (B = 16, T = 300, BPTT and the optimizer update)
//! of an experiment's network, as the median of repeated calls.

use std::time::Instant;

use serde::Serialize;

use super::floss::Flosser;
use crate::config::ExperimentConfig;
use crate::error::{Error, Result};
use crate::train::build_run;
use crate::train::optim::AnyOptimizer;

/// Median wall times in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DynamicsBench {
    /// The experiment timed.
    pub experiment: String,
    /// State size `N`, flossed exponents `k` and flossing trajectory steps.
    pub state_size: usize,
    /// Flossed exponents `k`.
    pub exponents: usize,
    /// Flossing trajectory length.
    pub floss_steps: usize,
    /// One flossing step (trajectory, Jacobians, QRs, their adjoint, the update).
    pub floss_step_ms: f64,
    /// Training batch size and sequence length.
    pub batch: usize,
    /// Training sequence length.
    pub sequence_steps: usize,
    /// One training step (forward, BPTT, clipping-free optimizer update).
    pub train_step_ms: f64,
    /// Repeats per median.
    pub repeats: usize,
    /// Threads of the compute pool.
    pub threads: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `repeats` flossing and training steps of `cfg` (which must declare flossing) after
/// `warmup` untimed ones of each.
pub fn time_steps(cfg: &ExperimentConfig, warmup: usize, repeats: usize) -> Result<DynamicsBench> {
    let floss_cfg = cfg
        .dynamics
        .as_ref()
        .and_then(|d| d.flossing.as_ref())
        .ok_or_else(|| {
            Error::invalid(
                "dynamics.flossing",
                "absent: the experiment declares no flossing",
            )
        })?;
    let run = build_run(cfg, None)?;
    let mut flosser = Flosser::new(floss_cfg, &run.params)?;
    let batch: Vec<usize> = (0..cfg.batch_size.min(run.data.train.len())).collect();
    let b = run.data.train.batch(&batch, &run.device)?;
    let one = run.data.train.batch(&[0], &run.device)?;
    let single = run.net.encode(&one.input, 0)?;
    let input = run.net.encode(&b.input, 0)?;
    let mut optimizer = AnyOptimizer::from_config(
        &cfg.optimizer,
        run.params.iter().map(|(_, v)| v.clone()).collect(),
    )?;
    let task = run.data.task.clone();
    let (mut floss, mut train) = (Vec::new(), Vec::new());
    for i in 0..warmup + repeats {
        let t = Instant::now();
        flosser.step(&*run.net, &single)?;
        let floss_ms = 1e3 * t.elapsed().as_secs_f64();
        let t = Instant::now();
        let step = run.net.train_step(&input, &b.target, &*task, 0)?;
        optimizer.step(&step.grads)?;
        let train_ms = 1e3 * t.elapsed().as_secs_f64();
        if i >= warmup {
            floss.push(floss_ms);
            train.push(train_ms);
        }
    }
    let system = super::system_of(&*run.net, &super::DynamicsOptions::f64())?;
    Ok(DynamicsBench {
        experiment: cfg.name.clone(),
        state_size: system.state_size(),
        exponents: floss_cfg.spectrum.exponents,
        floss_steps: floss_cfg.spectrum.steps,
        floss_step_ms: median(floss),
        batch: batch.len(),
        sequence_steps: input.dim(0)?,
        train_step_ms: median(train),
        repeats,
        threads: rayon::current_num_threads(),
    })
}
