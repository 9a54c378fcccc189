//! What a run records about its dynamics after every epoch: the spectrum on fixed validation
//! sequences (mean and spread over them), `‖dL/dh_0‖` and the largest singular values of
//! `dL/dJ` on a fixed validation batch.

use candle_core::{DType, Device, Tensor, Var};

use super::lyapunov::{self, exponents};
use super::system::{trajectory, DynamicsOptions};
use crate::config::SpectrumConfig;
use crate::data::{Split, Task};
use crate::error::Result;
use crate::metric::NamedValue;
use crate::nn::Network;

/// Singular values of `dL/dJ` logged per epoch.
pub const SINGULAR_VALUES: usize = 3;

/// A spectrum averaged over input sequences.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectrumEstimate {
    /// Mean `λ_i` over the sequences, per step, largest first.
    pub mean: Vec<f64>,
    /// Standard deviation of `λ_i` over the sequences (0 for one sequence).
    pub std: Vec<f64>,
    /// Steps averaged per sequence.
    pub steps_averaged: usize,
    /// Sequences averaged over.
    pub sequences: usize,
}

/// The spectrum of `net` along the first `cfg.sequences` samples of `split`, each encoded with
/// `seed`; `key` names the settings in errors.
pub fn spectrum(
    net: &dyn Network,
    split: &dyn Split,
    cfg: &SpectrumConfig,
    seed: u64,
    device: &Device,
    key: &str,
) -> Result<SpectrumEstimate> {
    let opts = DynamicsOptions {
        reset_in_jacobian: cfg.reset_in_jacobian,
        ..DynamicsOptions::f64()
    };
    let system = super::system_of(net, &opts)?;
    let count = cfg.sequences.min(split.len());
    if count == 0 {
        return Err(crate::Error::invalid(
            key,
            "the validation split is empty: no sequence to measure on",
        ));
    }
    let mut runs = Vec::with_capacity(count);
    let mut averaged = 0;
    for i in 0..count {
        let batch = split.batch(&[i], device)?;
        let drive = system.drive(&net.encode(&batch.input, seed)?)?;
        lyapunov::check(cfg, system.state_size(), drive.dim(0)?, key)?;
        let e = exponents(&*system, &system.initial_state()?, &drive, cfg, false)?;
        averaged = e.steps_averaged;
        runs.push(e.values.to_vec1::<f64>()?);
    }
    let k = cfg.exponents;
    let mean: Vec<f64> = (0..k)
        .map(|i| runs.iter().map(|r| r[i]).sum::<f64>() / count.max(1) as f64)
        .collect();
    let std = (0..k)
        .map(|i| {
            let var = runs.iter().map(|r| (r[i] - mean[i]).powi(2)).sum::<f64>()
                / (count.max(2) - 1) as f64;
            if count > 1 {
                var.sqrt()
            } else {
                0.0
            }
        })
        .collect();
    Ok(SpectrumEstimate {
        mean,
        std,
        steps_averaged: averaged,
        sequences: count,
    })
}

/// Gradients of the task loss on a fixed batch: `‖dL/dh_0‖` and the largest singular values
/// of `dL/dJ` (empty when the recurrence has no matrix).
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    /// `‖dL/dh_0‖` (Frobenius over the batch's shared initial state).
    pub initial_state_norm: f64,
    /// The largest singular values of `dL/dJ`, descending.
    pub recurrent_singular_values: Vec<f64>,
}

/// [`Gradients`] of `net` on samples `0..batch` of `split`, encoded with `seed`.
pub fn gradients(
    net: &dyn Network,
    task: &dyn Task,
    split: &dyn Split,
    batch: usize,
    seed: u64,
    device: &Device,
) -> Result<Gradients> {
    let system = super::system_of(net, &DynamicsOptions::f64())?;
    let idx: Vec<usize> = (0..batch.min(split.len())).collect();
    if idx.is_empty() {
        return Err(crate::Error::invalid(
            "dynamics.gradient_batch",
            "no validation sequence to measure gradients on; use at least 1 with a non-empty split",
        ));
    }
    let b = split.batch(&idx, device)?;
    let input = net.encode(&b.input, seed)?;
    let h0 = Var::from_tensor(&system.initial_state()?.detach())?;
    let states = trajectory(&*system, h0.as_tensor(), &system.drive(&input)?)?;
    let output = system.readout(&states)?.to_dtype(DType::F32)?;
    let loss = net.loss(&output, &b.target, task)?;
    let grads = loss.backward()?;
    let norm = |t: &Tensor| -> Result<f64> {
        Ok(t.to_dtype(DType::F64)?
            .sqr()?
            .sum_all()?
            .sqrt()?
            .to_scalar::<f64>()?)
    };
    let initial_state_norm = match grads.get(h0.as_tensor()) {
        Some(g) => norm(g)?,
        None => 0.0,
    };
    let recurrent_singular_values = match system
        .recurrent_weight()
        .and_then(|w| grads.get(&w).cloned())
    {
        Some(g) => top_singular_values(&g, SINGULAR_VALUES)?,
        None => Vec::new(),
    };
    Ok(Gradients {
        initial_state_norm,
        recurrent_singular_values,
    })
}

/// The `count` largest singular values of a matrix, descending.
pub fn top_singular_values(m: &Tensor, count: usize) -> Result<Vec<f64>> {
    let (r, c) = m.dims2()?;
    let values = m.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let svd = nalgebra::DMatrix::from_row_slice(r, c, &values).singular_values();
    let mut s: Vec<f64> = svd.iter().copied().collect();
    s.sort_by(|a, b| b.total_cmp(a));
    s.truncate(count);
    Ok(s)
}

/// The `history.csv` columns of one epoch's measurements.
pub fn columns(spectrum: &SpectrumEstimate, grads: &Gradients) -> Vec<NamedValue> {
    let k = spectrum.mean.len();
    let mut out = vec![
        NamedValue::new("lambda_1", spectrum.mean[0]),
        NamedValue::new("lambda_1_std", spectrum.std[0]),
        NamedValue::new("lambda_k", spectrum.mean[k - 1]),
        NamedValue::new("lambda_mean", spectrum.mean.iter().sum::<f64>() / k as f64),
        NamedValue::new("grad_norm_h0", grads.initial_state_norm),
    ];
    for i in 0..SINGULAR_VALUES {
        let v = grads
            .recurrent_singular_values
            .get(i)
            .copied()
            .unwrap_or(f64::NAN);
        out.push(NamedValue::new(format!("dl_dj_sv{}", i + 1), v));
    }
    out
}
