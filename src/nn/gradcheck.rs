//! Test helpers: gradients against central finite differences in f64.
//!
//! Smooth models are checked directly ([`fd_error`]). A spiking model's forward pass is a step
//! function, so finite differences of it say nothing about its surrogate gradient; instead its
//! autograd gradient is checked against finite differences of an independent scalar
//! re-implementation in which every spike `H(x)` is replaced by its linearisation
//! `H(x₀) + S'(x₀)·(x - x₀)` and every (detached) reset by its value, both frozen at the base
//! parameters ([`frozen_error`]). At the base point that twin computes exactly the model's
//! forward values, and its exact gradient is by definition the surrogate gradient.

use std::collections::BTreeMap;

use candle_core::{Result, Tensor};

use crate::config::Reset;
use crate::nn::SeededVarMap;

/// Parameter values by name.
pub type Params = BTreeMap<String, Vec<f64>>;

const EPS: f64 = 1e-6;

/// Largest |central difference - autograd| over every entry of every variable of `vars` for
/// the scalar `loss`.
pub fn fd_error(vars: &SeededVarMap, loss: impl Fn() -> Result<Tensor>) -> Result<f64> {
    let grads = loss()?.backward()?;
    let mut worst = 0f64;
    for (name, var) in vars.named_vars()? {
        let Some(g) = grads.get(&var) else {
            candle_core::bail!("no gradient for {name}")
        };
        let analytic: Vec<f64> = g.flatten_all()?.to_vec1()?;
        let base: Vec<f64> = var.as_tensor().flatten_all()?.to_vec1()?;
        for i in 0..base.len() {
            let eval = |delta: f64| -> Result<f64> {
                let mut p = base.clone();
                p[i] += delta;
                var.set(&Tensor::from_vec(p, var.shape(), var.device())?)?;
                loss()?.to_scalar::<f64>()
            };
            let fd = (eval(EPS)? - eval(-EPS)?) / (2.0 * EPS);
            var.set(&Tensor::from_vec(base.clone(), var.shape(), var.device())?)?;
            worst = worst.max((fd - analytic[i]).abs());
        }
    }
    Ok(worst)
}

/// Records spikes and resets on the first pass, replays them frozen afterwards.
#[derive(Debug)]
pub struct Freeze {
    slope: f64,
    spikes: Vec<(f64, f64)>,
    resets: Vec<f64>,
    next_spike: usize,
    next_reset: usize,
    recording: bool,
}

impl Freeze {
    /// Records with the fast-sigmoid surrogate of `slope`.
    pub fn new(slope: f64) -> Self {
        Freeze {
            slope,
            spikes: vec![],
            resets: vec![],
            next_spike: 0,
            next_reset: 0,
            recording: true,
        }
    }

    /// Starts replaying from the first recorded spike and reset.
    pub fn rewind(&mut self) {
        self.recording = false;
        self.next_spike = 0;
        self.next_reset = 0;
    }

    /// Share of recorded spikes that fired.
    pub fn fired(&self) -> f64 {
        let n = self.spikes.iter().filter(|(x, _)| *x > 0.0).count();
        n as f64 / self.spikes.len().max(1) as f64
    }

    /// The spike of `x`: `H(x)` while recording, the frozen linearisation after.
    pub fn spike(&mut self, x: f64) -> f64 {
        let h = |x: f64| if x > 0.0 { 1.0 } else { 0.0 };
        if self.recording {
            let g = 1.0 / (1.0 + self.slope * x.abs()).powi(2);
            self.spikes.push((x, g));
            h(x)
        } else {
            let (x0, g) = self.spikes[self.next_spike];
            self.next_spike += 1;
            h(x0) + g * (x - x0)
        }
    }

    /// The detached reset `H(u - θ)`: computed while recording, frozen after.
    pub fn reset(&mut self, u: f64, theta: f64) -> f64 {
        if self.recording {
            let r = if u - theta > 0.0 { 1.0 } else { 0.0 };
            self.resets.push(r);
            r
        } else {
            self.next_reset += 1;
            self.resets[self.next_reset - 1]
        }
    }
}

/// `w·x + b` with `w` row-major `[out, in]`.
pub fn linear(x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    b.iter()
        .enumerate()
        .map(|(o, bo)| {
            bo + x
                .iter()
                .enumerate()
                .map(|(i, xi)| w[o * x.len() + i] * xi)
                .sum::<f64>()
        })
        .collect()
}

/// The recurrent feedback of a LIF layer.
pub enum Feedback<'a> {
    /// No feedback (plain Leaky).
    None,
    /// `W·S + b`, `W` row-major `[N, N]`.
    Linear(&'a [f64], &'a [f64]),
    /// `w ⊙ S`.
    OneToOne(&'a [f64]),
}

/// One sample of (R)Leaky dynamics with per-neuron `beta` and `theta` (length 1 or N): spikes
/// and membranes `[T][N]`.
pub fn lif(
    cur: &[Vec<f64>],
    beta: &[f64],
    theta: &[f64],
    reset: Reset,
    fb: &Feedback,
    fz: &mut Freeze,
) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let n = cur[0].len();
    let at = |v: &[f64], i: usize| if v.len() == 1 { v[0] } else { v[i] };
    let (mut s, mut u) = (vec![0.0; n], vec![0.0; n]);
    let (mut spikes, mut mems) = (vec![], vec![]);
    for c in cur {
        let v = match fb {
            Feedback::None => vec![0.0; n],
            Feedback::Linear(w, b) => linear(&s, w, b),
            Feedback::OneToOne(w) => s.iter().zip(w.iter()).map(|(s, w)| s * w).collect(),
        };
        for i in 0..n {
            let (b, th) = (at(beta, i), at(theta, i));
            let r = fz.reset(u[i], th);
            let drive = c[i] + v[i];
            u[i] = match reset {
                Reset::Subtract => b * u[i] + drive - r * th,
                Reset::Zero => b * (1.0 - r) * u[i] + drive,
                Reset::None => b * u[i] + drive,
            };
        }
        s = (0..n).map(|i| fz.spike(u[i] - at(theta, i))).collect();
        spikes.push(s.clone());
        mems.push(u.clone());
    }
    (spikes, mems)
}

fn sig(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// One LSTM step (PyTorch gates i, f, g, o) on pre-activations `[4H]`: `(h, c)`.
pub fn lstm_gates(pre: &[f64], c: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let n = c.len();
    let c: Vec<f64> = (0..n)
        .map(|k| sig(pre[n + k]) * c[k] + sig(pre[k]) * pre[2 * n + k].tanh())
        .collect();
    let h = (0..n).map(|k| sig(pre[3 * n + k]) * c[k].tanh()).collect();
    (h, c)
}

/// LSTM or SLSTM weights (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`) under `prefix`.
pub fn lstm_weights<'a>(p: &'a Params, prefix: &str) -> [&'a [f64]; 4] {
    ["weight_ih", "weight_hh", "bias_ih", "bias_hh"].map(|k| p[&format!("{prefix}.{k}")].as_slice())
}

/// One sample of an LSTM (`theta: None`) or SLSTM layer over `x` `[T][in]`: outputs (`h`, or
/// spikes) and membranes `[T][H]`.
pub fn lstm(
    x: &[Vec<f64>],
    w: [&[f64]; 4],
    spiking: Option<(f64, Reset)>,
    fz: &mut Freeze,
) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let n = w[3].len() / 4;
    let (mut h, mut c) = (vec![0.0; n], vec![0.0; n]);
    let (mut outs, mut mems) = (vec![], vec![]);
    for xt in x {
        let pre: Vec<f64> = linear(xt, w[0], w[2])
            .iter()
            .zip(linear(&h, w[1], w[3]))
            .map(|(a, b)| a + b)
            .collect();
        let (hn, cn) = lstm_gates(&pre, &c);
        c = cn;
        match spiking {
            None => {
                h = hn;
                outs.push(h.clone());
            }
            Some((th, reset)) => {
                h = (0..n)
                    .map(|k| {
                        let r = fz.reset(h[k], th);
                        match reset {
                            Reset::Subtract => hn[k] - r * th,
                            Reset::Zero => (1.0 - r) * hn[k],
                            Reset::None => hn[k],
                        }
                    })
                    .collect();
                outs.push(h.iter().map(|m| fz.spike(m - th)).collect());
            }
        }
        mems.push(h.clone());
    }
    (outs, mems)
}

/// Cross-entropy of one sample's `scores` against `label`.
pub fn ce(scores: &[f64], label: usize) -> f64 {
    let m = scores.iter().cloned().fold(f64::MIN, f64::max);
    m + scores.iter().map(|s| (s - m).exp()).sum::<f64>().ln() - scores[label]
}

/// Sum over time of `[T][N]`.
pub fn count(x: &[Vec<f64>]) -> Vec<f64> {
    (0..x[0].len())
        .map(|i| x.iter().map(|r| r[i]).sum())
        .collect()
}

/// The parameters of `vars` as f64 vectors.
pub fn params(vars: &SeededVarMap) -> Result<Params> {
    vars.named_vars()?
        .into_iter()
        .map(|(n, v)| Ok((n, v.as_tensor().flatten_all()?.to_vec1::<f64>()?)))
        .collect()
}

/// Checks the surrogate gradient of `library` (a scalar loss over the variables of `vars`)
/// against finite differences of its frozen scalar twin `reference`; returns the largest
/// absolute gradient error and the share of spikes that fired. Errors if the twin's forward
/// value differs from the library's.
pub fn frozen_error(
    vars: &SeededVarMap,
    slope: f64,
    library: impl Fn() -> Result<Tensor>,
    reference: impl Fn(&Params, &mut Freeze) -> f64,
) -> Result<(f64, f64)> {
    let base = params(vars)?;
    let mut fz = Freeze::new(slope);
    let want = reference(&base, &mut fz);
    let loss = library()?;
    let got = loss.to_scalar::<f64>()?;
    if (got - want).abs() > 1e-9 * (1.0 + want.abs()) {
        candle_core::bail!("forward differs from the scalar twin: {got} vs {want}");
    }
    let grads = loss.backward()?;
    let mut worst = 0f64;
    for (name, var) in vars.named_vars()? {
        let analytic: Vec<f64> = match grads.get(&var) {
            Some(g) => g.flatten_all()?.to_vec1()?,
            None => vec![0.0; var.elem_count()],
        };
        for (i, a) in analytic.iter().enumerate() {
            let mut eval = |delta: f64| {
                let mut p = base.clone();
                if let Some(v) = p.get_mut(&name) {
                    v[i] += delta;
                }
                fz.rewind();
                reference(&p, &mut fz)
            };
            let fd = (eval(EPS) - eval(-EPS)) / (2.0 * EPS);
            worst = worst.max((fd - a).abs());
        }
    }
    Ok((worst, fz.fired()))
}
