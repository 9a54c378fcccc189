//! The scale check: one training step (forward over T steps of K microsteps, loss, backward)
//! of a connectome core on a synthetic random graph of a given size (FlyWire 783: 139,255
//! neurons, 15,091,983 edges), with its wall time and peak memory.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::csr::Csr;
use super::spectral::scale_to_radius;
use crate::config::RecurrentTraining;
use crate::data::path_integration::PathTask;
use crate::data::InputShape;
use crate::error::Result;
use crate::nn::{Bpu, BpuParts, BuildCtx, Network, Ops, SeededVarMap};

/// What to time.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleSpec {
    /// Neurons.
    pub neurons: usize,
    /// Edges (drawn uniformly per row; duplicates merged, so slightly fewer).
    pub edges: usize,
    /// Sequences per batch.
    pub batch: usize,
    /// Time steps.
    pub steps: usize,
    /// Microsteps per time step.
    pub microsteps: usize,
    /// Sensory and output pool size each.
    pub pool: usize,
    /// Outputs per step.
    pub outputs: usize,
}

impl ScaleSpec {
    /// FlyWire 783 as upstream trained it: batch 16, T = 50, K = 3, pools of 6,963, the polar
    /// bump's 35 outputs.
    pub fn flywire() -> Self {
        ScaleSpec {
            neurons: 139_255,
            edges: 15_091_983,
            batch: 16,
            steps: 50,
            microsteps: 3,
            pool: 6_963,
            outputs: 35,
        }
    }
}

/// Measured times (s) and memory (MiB).
#[derive(Debug, Clone, Serialize)]
pub struct ScaleResult {
    /// The spec.
    pub spec: ScaleSpec,
    /// Edges after merging duplicates.
    pub edges_built: usize,
    /// Building the graph and its transpose, scaling it (s).
    pub build_s: f64,
    /// Forward pass (s).
    pub forward_s: f64,
    /// Backward pass (s).
    pub backward_s: f64,
    /// Forward + backward (s): one training step without the optimizer.
    pub step_s: f64,
    /// Peak resident memory of the process (MiB), from `/proc/self/status` `VmHWM`.
    pub peak_rss_mib: Option<f64>,
    /// Threads used.
    pub threads: usize,
}

/// A random graph of `n` nodes with about `edges` entries (uniform columns per row).
pub fn random_graph(n: usize, edges: usize, seed: u64) -> Csr {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let per_row = edges as f64 / n as f64;
    let mut row_ptr = Vec::with_capacity(n + 1);
    row_ptr.push(0usize);
    let (mut col, mut val) = (Vec::with_capacity(edges), Vec::with_capacity(edges));
    let mut cols = Vec::new();
    for _ in 0..n {
        let k = (per_row + rng.random_range(-0.5..0.5)).round().max(0.0) as usize;
        cols.clear();
        cols.extend((0..k).map(|_| rng.random_range(0..n as u32)));
        cols.sort_unstable();
        cols.dedup();
        for &c in &cols {
            col.push(c);
            val.push(rng.random_range(1..20) as f32);
        }
        row_ptr.push(col.len());
    }
    Csr {
        n,
        row_ptr,
        col,
        val,
    }
}

/// Times one training step of `spec` on the CPU.
pub fn time_step(spec: &ScaleSpec) -> Result<ScaleResult> {
    let t0 = Instant::now();
    let raw = random_graph(spec.neurons, spec.edges, 7);
    let scaled = scale_to_radius(&raw, 0.95)?;
    let sensory: Vec<usize> = (0..spec.pool).collect();
    let output: Vec<usize> = (spec.pool..2 * spec.pool).collect();
    let vars = SeededVarMap::new(0);
    let task_cfg: crate::config::PathIntegrationConfig = crate::config::from_yaml_str(&format!(
        "{{targets: polar_bump, heading_bins: {}}}",
        spec.outputs.saturating_sub(3).max(4)
    ))?;
    let ctx = BuildCtx {
        input: InputShape::Sequence {
            channels: 2,
            steps: spec.steps,
        },
        outputs: spec.outputs,
        task: std::sync::Arc::new(PathTask::new(&task_cfg)),
        ops: Ops::Fused,
        device: Device::Cpu,
        vars: &vars,
    };
    let parts = BpuParts {
        matrix: &scaled.matrix,
        sensory: &sensory,
        output: &output,
        microsteps: spec.microsteps,
        reset_each_step: false,
        recurrent: RecurrentTraining::Frozen,
        dtype: DType::F32,
    };
    let net = Bpu::from_parts(&parts, 2, &ctx)?;
    let build_s = t0.elapsed().as_secs_f64();
    let x = Tensor::rand(0f32, 1f32, (spec.steps, spec.batch, 2), &Device::Cpu)?;
    let y = Tensor::rand(
        0f32,
        1f32,
        (spec.steps, spec.batch, spec.outputs),
        &Device::Cpu,
    )?;
    let (forward_s, backward_s) = crate::train::on_pool(|| -> Result<(f64, f64)> {
        let t1 = Instant::now();
        let out = net.forward(&x)?;
        let loss = (out - &y)?.sqr()?.mean_all()?;
        let _ = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        let f = t1.elapsed().as_secs_f64();
        let t2 = Instant::now();
        let grads = loss.backward()?;
        drop(grads);
        Ok((f, t2.elapsed().as_secs_f64()))
    })?;
    Ok(ScaleResult {
        spec: spec.clone(),
        edges_built: scaled.matrix.nnz(),
        build_s,
        forward_s,
        backward_s,
        step_s: forward_s + backward_s,
        peak_rss_mib: peak_rss_mib(),
        threads: rayon::current_num_threads(),
    })
}

/// `VmHWM` of `/proc/self/status` in MiB (Linux).
pub fn peak_rss_mib() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
