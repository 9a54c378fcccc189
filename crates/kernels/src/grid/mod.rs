//! The grid-neuron lattice of ThomasPluck/grid-neurons: an `N x M` grid of first-order analog
//! cells, each driven by its left and upper neighbours, read out on the bottom row; with its
//! local online gradient (SnAP-1 traces and a reverse-raster message pass), the exact BPTT
//! gradient of the same forward, and full RTRL for small grids.
//!
//! Cell `k = (i, j)` (index `i·M + j`) with parameters `θ_k = (log τ, w_L, w_T, b)` and, per
//! step of `dt_s` seconds (zero-order hold), `a = exp(-dt/τ)`, `c = 1 - a`:
//! `u = w_L·y_left + w_T·y_top`, `s ← a·s + c·u`, `y = tanh(s + b)`. Cells update in raster
//! order within a step, so a signal crosses the grid in one step; `y_left` of column 0 is the
//! input channel `i`, `y_top` of row 0 is 0. `s = 0` at the start of every sequence.
//!
//! Layouts: inputs `[B, T, N]` (already scaled and routed to the N rows), per-step outputs of
//! the bottom row `[B, T, M]`, parameters and gradients per cell in raster order.
//! Samples run in lock-step, `L` per block (SIMD lanes); blocks run on the rayon pool and
//! their results are summed in block order, so results do not depend on the thread count.

#![allow(clippy::needless_range_loop)] // lane loops index several arrays by lane

pub mod bptt;
mod lanes;
mod noise;
pub mod rtrl;
#[cfg(test)]
mod tests;

use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

use rayon::prelude::*;

/// The names of a cell's four parameters, in the order used by every gradient here.
pub const PARAMS: [&str; 4] = ["log_tau", "w_left", "w_top", "bias"];

/// A float type the grid kernels run in (`f32` for training, `f64` for the checks).
pub trait Real:
    Copy
    + Default
    + Send
    + Sync
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + std::fmt::Debug
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// `x` rounded to this type.
    fn of(x: f64) -> Self;
    /// This value as `f64`.
    fn to_f64(self) -> f64;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Exponential.
    fn exp(self) -> Self;
}

macro_rules! real {
    ($t:ty) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline(always)]
            fn of(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
        }
    };
}
real!(f32);
real!(f64);

/// The grid's size and time step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridShape {
    /// Rows `N` (= input channels).
    pub rows: usize,
    /// Columns `M` (= outputs, read on the bottom row).
    pub cols: usize,
    /// The time step in seconds (upstream: 1 ms).
    pub dt_s: f64,
}

impl GridShape {
    /// Number of cells `N·M`.
    pub fn cells(&self) -> usize {
        self.rows * self.cols
    }
}

/// The four parameter vectors of a grid, one value per cell in raster order.
#[derive(Debug, Clone, PartialEq)]
pub struct GridParams<R> {
    /// `log τ` (τ in seconds).
    pub log_tau: Vec<R>,
    /// Weight of the left neighbour's output (the input channel in column 0).
    pub w_left: Vec<R>,
    /// Weight of the upper neighbour's output.
    pub w_top: Vec<R>,
    /// Bias inside the tanh.
    pub bias: Vec<R>,
}

impl<R: Real> GridParams<R> {
    /// The parameter vector `p` (in [`PARAMS`] order).
    pub fn get(&self, p: usize) -> &[R] {
        match p {
            0 => &self.log_tau,
            1 => &self.w_left,
            2 => &self.w_top,
            _ => &self.bias,
        }
    }

    /// The parameter vector `p`, mutable.
    pub fn get_mut(&mut self, p: usize) -> &mut Vec<R> {
        match p {
            0 => &mut self.log_tau,
            1 => &mut self.w_left,
            2 => &mut self.w_top,
            _ => &mut self.bias,
        }
    }

    fn check(&self, shape: &GridShape) -> Result<(), String> {
        for p in 0..4 {
            if self.get(p).len() != shape.cells() {
                return Err(format!(
                    "grid: `{}` has {} values, expected {} ({} x {} cells)",
                    PARAMS[p],
                    self.get(p).len(),
                    shape.cells(),
                    shape.rows,
                    shape.cols
                ));
            }
        }
        Ok(())
    }
}

/// How the bottom row's outputs become the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Readout {
    /// Softmax cross-entropy of the outputs summed over time (upstream's `sum`).
    #[default]
    Sum,
    /// The mean over steps of each step's softmax cross-entropy (upstream's `per_t`).
    PerStep,
}

/// Which gradient [`gradient`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// The local online SnAP-1 rule.
    #[default]
    Snap1,
    /// Exact backpropagation through time of the same forward.
    Bptt,
}

/// Perturbations of SnAP-1's learning path (never of the forward), as upstream's
/// measurement-robustness study defines them. [`Perturbation::default`] is none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Perturbation {
    /// Cross-trace retention becomes `a_d·(1 - leak)`.
    pub leak: f64,
    /// Every message read is multiplied by this when positive.
    pub gain_positive: f64,
    /// Every message read is multiplied by this when negative.
    pub gain_negative: f64,
    /// The cross-trace in the past-only bracket is scaled by `1 + subtraction` while the
    /// current-step term keeps unit gain.
    pub subtraction: f64,
    /// Gaussian noise added to the cross-traces after each step, std relative to their RMS
    /// (per sample and parameter type).
    pub trace_noise: f64,
    /// Gaussian noise added to every message read, std relative to the RMS of that step's
    /// readout error.
    pub message_noise: f64,
}

impl Default for Perturbation {
    fn default() -> Self {
        Perturbation {
            leak: 0.0,
            gain_positive: 1.0,
            gain_negative: 1.0,
            subtraction: 0.0,
            trace_noise: 0.0,
            message_noise: 0.0,
        }
    }
}

impl Perturbation {
    /// Whether this perturbs nothing.
    pub fn is_none(&self) -> bool {
        *self == Perturbation::default()
    }

    fn touches_messages(&self) -> bool {
        self.gain_positive != 1.0 || self.gain_negative != 1.0 || self.message_noise != 0.0
    }
}

/// Settings of one [`gradient`] call.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GradientOptions {
    /// The loss.
    pub readout: Readout,
    /// SnAP-1 or BPTT.
    pub method: Method,
    /// SnAP-1's learning-path perturbations (an error with BPTT unless none).
    pub perturbation: Perturbation,
    /// Seeds the noise draws of the perturbations (unused without noise).
    pub noise_seed: u64,
}

/// The result of [`gradient`]: the summed loss and the gradients summed over the batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradient<R> {
    /// Sum over the batch of each sample's loss.
    pub loss_sum: f64,
    /// `[4][cells]` gradients of the summed loss, in [`PARAMS`] order.
    pub grads: [Vec<f64>; 4],
    /// The bottom row's outputs `[B, T, M]`.
    pub outputs: Vec<R>,
}

/// Per-cell constants of one parameter setting.
#[derive(Debug, Clone)]
pub(crate) struct Coeffs<R> {
    pub rows: usize,
    pub cols: usize,
    pub a: Vec<R>,
    pub c: Vec<R>,
    /// `a` of the cross-traces (leaky under a perturbation).
    pub a_cross: Vec<R>,
    pub tau: Vec<R>,
    /// `∂a/∂τ = a·dt/τ²`.
    pub q: Vec<R>,
    pub wl: Vec<R>,
    pub wt: Vec<R>,
    pub b: Vec<R>,
}

impl<R: Real> Coeffs<R> {
    pub fn new(shape: &GridShape, p: &GridParams<R>, leak: f64) -> Result<Self, String> {
        p.check(shape)?;
        if shape.dt_s.is_nan() || shape.dt_s <= 0.0 {
            return Err(format!("grid: dt_s must be positive, got {}", shape.dt_s));
        }
        let dt = R::of(shape.dt_s);
        let tau: Vec<R> = p.log_tau.iter().map(|l| l.exp()).collect();
        let a: Vec<R> = tau.iter().map(|t| (-(dt / *t)).exp()).collect();
        let keep = R::of(1.0 - leak);
        Ok(Coeffs {
            rows: shape.rows,
            cols: shape.cols,
            c: a.iter().map(|a| R::ONE - *a).collect(),
            a_cross: a
                .iter()
                .map(|a| if leak == 0.0 { *a } else { *a * keep })
                .collect(),
            q: a.iter()
                .zip(&tau)
                .map(|(a, t)| *a * dt / (*t * *t))
                .collect(),
            a,
            tau,
            wl: p.w_left.clone(),
            wt: p.w_top.clone(),
            b: p.bias.clone(),
        })
    }
}

fn check_input<R>(shape: &GridShape, x: &[R], batch: usize) -> Result<usize, String> {
    let per = batch * shape.rows;
    if shape.rows == 0 || shape.cols == 0 || batch == 0 || x.is_empty() || x.len() % per != 0 {
        return Err(format!(
            "grid: {} input values do not make [B={batch}, T, N={}] for a {} x {} grid",
            x.len(),
            shape.rows,
            shape.rows,
            shape.cols
        ));
    }
    Ok(x.len() / per)
}

/// Lanes per block: 8 for batches, 1 for single samples (batch-1 SGD).
fn lanes_for(batch: usize) -> usize {
    if batch == 1 {
        1
    } else {
        8
    }
}

/// The bottom row's outputs `[B, T, M]` for inputs `x` `[B, T, N]`.
pub fn forward<R: Real>(
    shape: &GridShape,
    params: &GridParams<R>,
    x: &[R],
    batch: usize,
) -> Result<Vec<R>, String> {
    let steps = check_input(shape, x, batch)?;
    let k = Coeffs::new(shape, params, 0.0)?;
    let blocks = blocks(batch, lanes_for(batch));
    let parts: Vec<Vec<R>> = blocks
        .par_iter()
        .map(|&(start, n)| {
            if lanes_for(batch) == 1 {
                lanes::forward_block::<R, 1>(&k, x, start, n, steps)
            } else {
                lanes::forward_block::<R, 8>(&k, x, start, n, steps)
            }
        })
        .collect();
    Ok(parts.concat())
}

/// Every cell's output `y` after each step for one sample: `[T, cells]` in raster order.
///
/// # Shapes
/// `x` `[T, N]`.
pub fn cell_outputs<R: Real>(
    shape: &GridShape,
    params: &GridParams<R>,
    x: &[R],
) -> Result<Vec<R>, String> {
    let steps = check_input(shape, x, 1)?;
    let k = Coeffs::new(shape, params, 0.0)?;
    let mut lanes = lanes::Lanes::<R, 1>::new(shape.cells());
    let mut out = Vec::with_capacity(steps * shape.cells());
    for t in 0..steps {
        let xt: Vec<[R; 1]> = x[t * shape.rows..(t + 1) * shape.rows]
            .iter()
            .map(|v| [*v])
            .collect();
        lanes.forward_step::<false>(&k, &xt);
        out.extend(lanes.y.iter().map(|v| v[0]));
    }
    Ok(out)
}

/// The loss of a batch and its gradient by `opts.method`, summed over the batch.
///
/// # Shapes
/// `x` `[B, T, N]`, `labels` `[B]` (each `< M`).
pub fn gradient<R: Real>(
    shape: &GridShape,
    params: &GridParams<R>,
    x: &[R],
    labels: &[u32],
    opts: &GradientOptions,
) -> Result<Gradient<R>, String> {
    let batch = labels.len();
    let steps = check_input(shape, x, batch)?;
    if let Some(l) = labels.iter().find(|l| **l as usize >= shape.cols) {
        return Err(format!(
            "grid: label {l} but the grid reads out {} classes",
            shape.cols
        ));
    }
    if opts.method == Method::Bptt && !opts.perturbation.is_none() {
        return Err("grid: the learning-path perturbations apply to SnAP-1 only, not BPTT".into());
    }
    let k = Coeffs::new(shape, params, opts.perturbation.leak)?;
    let lanes = lanes_for(batch);
    let job = lanes::Job {
        k: &k,
        x,
        labels,
        steps,
        opts,
    };
    let parts: Vec<lanes::BlockResult<R>> = blocks(batch, lanes)
        .par_iter()
        .map(|&(start, n)| match (lanes, opts.method) {
            (1, Method::Snap1) => job.snap1_block::<1>(start, n),
            (_, Method::Snap1) => job.snap1_block::<8>(start, n),
            (1, Method::Bptt) => bptt::block::<R, 1>(&job, start, n),
            (_, Method::Bptt) => bptt::block::<R, 8>(&job, start, n),
        })
        .collect();
    let cells = shape.cells();
    let mut out = Gradient {
        loss_sum: 0.0,
        grads: std::array::from_fn(|_| vec![0.0; cells]),
        outputs: Vec::with_capacity(batch * steps * shape.cols),
    };
    for part in parts {
        out.loss_sum += part.loss_sum;
        for (total, g) in out.grads.iter_mut().zip(&part.grads) {
            for (t, v) in total.iter_mut().zip(g) {
                *t += *v;
            }
        }
        out.outputs.extend(part.outputs);
    }
    Ok(out)
}

/// `(first sample, samples)` of each block of `lanes` samples.
fn blocks(batch: usize, lanes: usize) -> Vec<(usize, usize)> {
    (0..batch)
        .step_by(lanes)
        .map(|s| (s, lanes.min(batch - s)))
        .collect()
}

/// One sample's loss and `∂loss/∂y` of the bottom row `[T, M]` from its outputs `[T, M]`.
pub fn loss_and_error(
    readout: Readout,
    outputs: &[f64],
    cols: usize,
    label: usize,
) -> (f64, Vec<f64>) {
    let steps = outputs.len() / cols;
    match readout {
        Readout::Sum => {
            let mut logits = vec![0.0; cols];
            for row in outputs.chunks(cols) {
                for (l, y) in logits.iter_mut().zip(row) {
                    *l += *y;
                }
            }
            let (loss, err) = softmax_ce(&logits, label);
            (loss, err.repeat(steps))
        }
        Readout::PerStep => {
            let mut loss = 0.0;
            let mut errors = Vec::with_capacity(outputs.len());
            let inv = 1.0 / steps as f64;
            for row in outputs.chunks(cols) {
                let (l, e) = softmax_ce(row, label);
                loss += l * inv;
                errors.extend(e.into_iter().map(|v| v * inv));
            }
            (loss, errors)
        }
    }
}

/// Cross-entropy of softmax(`logits`) against `label`, and its gradient `softmax - onehot`.
fn softmax_ce(logits: &[f64], label: usize) -> (f64, Vec<f64>) {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let z: f64 = e.iter().sum();
    let loss = z.ln() + max - logits[label];
    let grad = e
        .iter()
        .enumerate()
        .map(|(j, v)| v / z - if j == label { 1.0 } else { 0.0 })
        .collect();
    (loss, grad)
}
