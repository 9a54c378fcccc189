//! Optimizers behind candle's `Optimizer` trait, with PyTorch's update rules and state that can
//! be saved to and restored from a checkpoint (candle-nn's keep theirs private).
//!
//! On CPU `f32` parameters the updates run in place through the kernels crate (one pass per
//! updated tensor, no temporaries); elsewhere, or after `set_fused(false)`, they are chains of
//! tensor ops. Both paths do the same f32 operations in the same order.

use autoresearch_kernels::optim::{AdamStep, SgdStep};
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use candle_nn::Optimizer;

use crate::config::OptimizerConfig;

#[path = "optim_fused.rs"]
mod fused;
use fused::{fusable, Update};

/// Hyper-parameters of [`Adam`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamParams {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// `true`: AdamW (decay applied to the weights); `false`: L2 added to the gradient.
    pub decoupled: bool,
}

/// Adam / AdamW.
#[derive(Debug)]
pub struct Adam {
    vars: Vec<Var>,
    m: Vec<Var>,
    v: Vec<Var>,
    step_t: u64,
    params: AdamParams,
    fused: bool,
    /// Learning-rate multiplier of each variable (1 unless set).
    scales: Vec<f64>,
}

impl Optimizer for Adam {
    type Config = AdamParams;

    fn new(vars: Vec<Var>, params: AdamParams) -> candle_core::Result<Self> {
        let zeros = |vars: &[Var]| -> candle_core::Result<Vec<Var>> {
            vars.iter()
                .map(|v| Var::zeros(v.shape(), v.dtype(), v.device()))
                .collect()
        };
        Ok(Adam {
            m: zeros(&vars)?,
            v: zeros(&vars)?,
            scales: vec![1.0; vars.len()],
            vars,
            step_t: 0,
            params,
            fused: true,
        })
    }

    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        self.step_t += 1;
        let p = self.params;
        let t = self.step_t as i32;
        let bias1 = 1.0 - p.beta1.powi(t);
        let bias2 = 1.0 - p.beta2.powi(t);
        let decay = p.weight_decay != 0.0 && p.decoupled;
        let constants_at = |lr: f64| AdamStep {
            beta1: p.beta1 as f32,
            one_minus_beta1: (1.0 - p.beta1) as f32,
            beta2: p.beta2 as f32,
            one_minus_beta2: (1.0 - p.beta2) as f32,
            l2: if p.decoupled {
                0.0
            } else {
                p.weight_decay as f32
            },
            inv_bias1: (1.0 / bias1) as f32,
            inv_bias2: (1.0 / bias2) as f32,
            eps: p.eps as f32,
            lr: lr as f32,
            decay: if decay {
                (1.0 - lr * p.weight_decay) as f32
            } else {
                1.0
            },
        };
        for (((var, m), v), scale) in self.vars.iter().zip(&self.m).zip(&self.v).zip(&self.scales) {
            let Some(g) = grads.get(var) else { continue };
            let lr = p.lr * scale;
            let constants = constants_at(lr);
            let theta = var.as_tensor();
            if self.fused && fusable(&[theta, g, m.as_tensor(), v.as_tensor()]) {
                let g = g.contiguous()?;
                m.inplace_op3(&g, theta, &Update::AdamM(constants))?;
                v.inplace_op3(&g, theta, &Update::AdamV(constants))?;
                theta.inplace_op3(m, v, &Update::AdamP(constants))?;
                continue;
            }
            let g = if p.weight_decay != 0.0 && !p.decoupled {
                (g + theta.affine(p.weight_decay, 0.0)?)?
            } else {
                g.clone()
            };
            let m_next = ((m.as_tensor() * p.beta1)? + (&g * (1.0 - p.beta1))?)?;
            let v_next = ((v.as_tensor() * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?;
            let denom = ((&v_next / bias2)?.sqrt()? + p.eps)?;
            let update = ((&m_next / bias1)? / denom)?;
            let decayed = if decay {
                (theta * (1.0 - lr * p.weight_decay))?
            } else {
                theta.clone()
            };
            var.set(&(decayed - (update * lr)?)?)?;
            m.set(&m_next)?;
            v.set(&v_next)?;
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.params.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }
}

/// Hyper-parameters of [`Sgd`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdParams {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (0 disables the buffer).
    pub momentum: f64,
    /// Dampening of the momentum buffer's gradient term.
    pub dampening: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 weight decay added to the gradient.
    pub weight_decay: f64,
}

/// SGD with momentum and Nesterov momentum (PyTorch's formulation).
#[derive(Debug)]
pub struct Sgd {
    vars: Vec<Var>,
    buffers: Vec<Option<Var>>,
    step_t: u64,
    params: SgdParams,
    fused: bool,
    /// Learning-rate multiplier of each variable (1 unless set).
    scales: Vec<f64>,
}

impl Optimizer for Sgd {
    type Config = SgdParams;

    fn new(vars: Vec<Var>, params: SgdParams) -> candle_core::Result<Self> {
        if params.nesterov && (params.momentum <= 0.0 || params.dampening != 0.0) {
            candle_core::bail!("optimizer.nesterov needs momentum > 0 and dampening = 0");
        }
        Ok(Sgd {
            buffers: vec![None; vars.len()],
            scales: vec![1.0; vars.len()],
            vars,
            step_t: 0,
            params,
            fused: true,
        })
    }

    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        self.step_t += 1;
        let p = self.params;
        let constants_at = |lr: f64| SgdStep {
            lr: lr as f32,
            momentum: p.momentum as f32,
            one_minus_dampening: (1.0 - p.dampening) as f32,
            l2: p.weight_decay as f32,
            nesterov: p.nesterov,
        };
        for ((var, buffer), scale) in self
            .vars
            .iter()
            .zip(self.buffers.iter_mut())
            .zip(&self.scales)
        {
            let Some(g) = grads.get(var) else { continue };
            let lr = p.lr * scale;
            let constants = constants_at(lr);
            let theta = var.as_tensor();
            let buffer_ok = buffer.as_ref().is_none_or(|b| fusable(&[b.as_tensor()]));
            if self.fused && buffer_ok && fusable(&[theta, g]) {
                let g = g.contiguous()?;
                if p.momentum == 0.0 {
                    theta.inplace_op2(&g, &Update::SgdP(constants, false))?;
                    continue;
                }
                let first = buffer.is_none();
                let b = match buffer {
                    Some(b) => b,
                    None => buffer.insert(Var::zeros(theta.shape(), DType::F32, theta.device())?),
                };
                b.inplace_op3(&g, theta, &Update::SgdBuffer(constants, first))?;
                theta.inplace_op3(&g, b, &Update::SgdP(constants, true))?;
                continue;
            }
            let mut d = if p.weight_decay != 0.0 {
                (g + (theta * p.weight_decay)?)?
            } else {
                g.clone()
            };
            if p.momentum != 0.0 {
                let next = match buffer {
                    None => d.clone(),
                    Some(b) => ((b.as_tensor() * p.momentum)? + (&d * (1.0 - p.dampening))?)?,
                };
                match buffer {
                    Some(b) => b.set(&next)?,
                    None => *buffer = Some(Var::from_tensor(&next)?),
                }
                d = if p.nesterov {
                    (d + (next * p.momentum)?)?
                } else {
                    next
                };
            }
            var.set(&(theta - (d * lr)?)?)?;
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.params.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }
}

/// Optimizer state for a checkpoint: the step count and named per-parameter slots.
#[derive(Debug, Clone)]
pub struct OptimizerState {
    /// Number of steps taken.
    pub step: u64,
    /// `(slot, tensors)`, one tensor per parameter in parameter order (missing = not created yet).
    pub slots: Vec<(&'static str, Vec<Option<Tensor>>)>,
}

/// The configured optimizer.
#[derive(Debug)]
pub enum AnyOptimizer {
    /// Adam or AdamW.
    Adam(Adam),
    /// SGD.
    Sgd(Sgd),
}

impl AnyOptimizer {
    /// Builds the configured optimizer over `vars` (in a stable order).
    pub fn from_config(cfg: &OptimizerConfig, vars: Vec<Var>) -> candle_core::Result<Self> {
        Ok(match *cfg {
            OptimizerConfig::Adam {
                lr,
                betas,
                eps,
                weight_decay,
            }
            | OptimizerConfig::Adamw {
                lr,
                betas,
                eps,
                weight_decay,
            } => {
                let decoupled = matches!(cfg, OptimizerConfig::Adamw { .. });
                AnyOptimizer::Adam(Adam::new(
                    vars,
                    AdamParams {
                        lr,
                        beta1: betas[0],
                        beta2: betas[1],
                        eps,
                        weight_decay,
                        decoupled,
                    },
                )?)
            }
            OptimizerConfig::Sgd {
                lr,
                momentum,
                dampening,
                nesterov,
                weight_decay,
            } => AnyOptimizer::Sgd(Sgd::new(
                vars,
                SgdParams {
                    lr,
                    momentum,
                    dampening,
                    nesterov,
                    weight_decay,
                },
            )?),
        })
    }

    /// One update from `grads`.
    pub fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        match self {
            AnyOptimizer::Adam(o) => o.step(grads),
            AnyOptimizer::Sgd(o) => o.step(grads),
        }
    }

    /// Chooses the in-place CPU kernels (`true`, the default; used where parameters are CPU
    /// `f32`) or the tensor-op reference path (`false`, e.g. for `kernels: plain`).
    pub fn set_fused(&mut self, fused: bool) {
        match self {
            AnyOptimizer::Adam(o) => o.fused = fused,
            AnyOptimizer::Sgd(o) => o.fused = fused,
        }
    }

    /// Multiplies each variable's learning rate by its entry of `scales` (parameter groups,
    /// in the order the optimizer was built with); an error if the lengths differ.
    pub fn set_lr_scales(&mut self, scales: Vec<f64>) -> candle_core::Result<()> {
        let slot = match self {
            AnyOptimizer::Adam(o) => &mut o.scales,
            AnyOptimizer::Sgd(o) => &mut o.scales,
        };
        if scales.len() != slot.len() {
            candle_core::bail!(
                "{} learning-rate scales for {} parameters",
                scales.len(),
                slot.len()
            );
        }
        *slot = scales;
        Ok(())
    }

    /// Sets the learning rate (the schedule calls this every step).
    pub fn set_learning_rate(&mut self, lr: f64) {
        match self {
            AnyOptimizer::Adam(o) => o.set_learning_rate(lr),
            AnyOptimizer::Sgd(o) => o.set_learning_rate(lr),
        }
    }

    /// A snapshot of the state for checkpointing.
    pub fn state(&self) -> OptimizerState {
        let all = |vs: &[Var]| vs.iter().map(|v| Some(v.as_tensor().clone())).collect();
        match self {
            AnyOptimizer::Adam(o) => OptimizerState {
                step: o.step_t,
                slots: vec![("m", all(&o.m)), ("v", all(&o.v))],
            },
            AnyOptimizer::Sgd(o) => OptimizerState {
                step: o.step_t,
                slots: vec![(
                    "momentum",
                    o.buffers
                        .iter()
                        .map(|b| b.as_ref().map(|v| v.as_tensor().clone()))
                        .collect(),
                )],
            },
        }
    }

    /// Restores a state produced by [`AnyOptimizer::state`] for the same parameters.
    pub fn load_state(&mut self, state: &OptimizerState) -> candle_core::Result<()> {
        let slot = |name: &str| -> candle_core::Result<&Vec<Option<Tensor>>> {
            state
                .slots
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t)
                .ok_or_else(|| {
                    candle_core::Error::Msg(format!("optimizer state has no `{name}` slot"))
                })
        };
        match self {
            AnyOptimizer::Adam(o) => {
                for (targets, name) in [(&o.m, "m"), (&o.v, "v")] {
                    let saved = slot(name)?;
                    if saved.len() != targets.len() {
                        candle_core::bail!(
                            "optimizer slot `{name}` has {} tensors, model has {} parameters",
                            saved.len(),
                            targets.len()
                        );
                    }
                    for (t, s) in targets.iter().zip(saved) {
                        match s {
                            Some(s) => t.set(s)?,
                            None => {
                                candle_core::bail!("optimizer slot `{name}` is missing a tensor")
                            }
                        }
                    }
                }
                o.step_t = state.step;
            }
            AnyOptimizer::Sgd(o) => {
                let saved = slot("momentum")?;
                if saved.len() != o.buffers.len() {
                    candle_core::bail!(
                        "optimizer slot `momentum` has {} tensors, model has {} parameters",
                        saved.len(),
                        o.buffers.len()
                    );
                }
                o.buffers = saved
                    .iter()
                    .map(|s| s.as_ref().map(Var::from_tensor).transpose())
                    .collect::<candle_core::Result<_>>()?;
                o.step_t = state.step;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Runs `steps` updates of `f(x) = sum(x^2)/2` (gradient x) and returns x.
    fn run(cfg: &OptimizerConfig, x0: &[f32], steps: usize) -> candle_core::Result<Vec<f32>> {
        let x = Var::from_slice(x0, x0.len(), &Device::Cpu)?;
        let mut opt = AnyOptimizer::from_config(cfg, vec![x.clone()])?;
        for _ in 0..steps {
            let loss = (x.as_tensor().sqr()?.sum_all()? * 0.5)?;
            opt.step(&loss.backward()?)?;
        }
        x.as_tensor().to_vec1()
    }

    fn close(a: &[f32], b: &[f64]) -> bool {
        a.iter().zip(b).all(|(a, b)| (*a as f64 - b).abs() < 1e-6)
    }

    #[test]
    fn sgd_momentum_and_nesterov_match_hand_computation() -> candle_core::Result<()> {
        // x0 = 1, lr = 0.1, momentum 0.9, g = x.
        // plain momentum: b1 = 1, x1 = 0.9; b2 = 0.9*1 + 0.9 = 1.8, x2 = 0.9 - 0.18 = 0.72
        let cfg = OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        };
        assert!(close(&run(&cfg, &[1.0], 2)?, &[0.72]));
        // nesterov: b1 = 1, d = 1 + 0.9 = 1.9, x1 = 0.81; b2 = 0.9 + 0.81 = 1.71, d = 0.81 + 1.539 = 2.349, x2 = 0.5751
        let cfg = OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: true,
            weight_decay: 0.0,
        };
        assert!(close(&run(&cfg, &[1.0], 2)?, &[0.5751]));
        Ok(())
    }

    #[test]
    fn adam_first_step_moves_by_lr_and_adamw_decays() -> candle_core::Result<()> {
        // Adam's first bias-corrected step is lr * g/|g| (up to eps).
        let cfg = OptimizerConfig::Adam {
            lr: 0.01,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
        };
        assert!(close(&run(&cfg, &[2.0, -3.0], 1)?, &[1.99, -2.99]));
        // AdamW: x <- x(1 - lr*wd) - lr*sign(g)
        let cfg = OptimizerConfig::Adamw {
            lr: 0.01,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.1,
        };
        assert!(close(&run(&cfg, &[2.0], 1)?, &[2.0 * (1.0 - 0.001) - 0.01]));
        Ok(())
    }

    #[test]
    fn state_round_trip_continues_identically() -> candle_core::Result<()> {
        let cfg = OptimizerConfig::Adam {
            lr: 0.05,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
        };
        let straight = run(&cfg, &[1.0, 2.0], 6)?;
        let x = Var::from_slice(&[1.0f32, 2.0], 2, &Device::Cpu)?;
        let mut opt = AnyOptimizer::from_config(&cfg, vec![x.clone()])?;
        for _ in 0..3 {
            opt.step(&(x.as_tensor().sqr()?.sum_all()? * 0.5)?.backward()?)?;
        }
        let saved = opt.state();
        let x2 = Var::from_tensor(x.as_tensor())?;
        let mut opt2 = AnyOptimizer::from_config(&cfg, vec![x2.clone()])?;
        opt2.load_state(&saved)?;
        for _ in 0..3 {
            opt2.step(&(x2.as_tensor().sqr()?.sum_all()? * 0.5)?.backward()?)?;
        }
        assert_eq!(x2.as_tensor().to_vec1::<f32>()?, straight);
        Ok(())
    }

    /// Parameters (two shapes, one bigger than a kernel worker's share) after `steps` updates of
    /// `sum(a·x² + b·x + x³/10)` with the fused kernels on or off, plus the final state.
    fn trajectory(
        cfg: &OptimizerConfig,
        fused: bool,
        steps: usize,
    ) -> candle_core::Result<(Vec<Vec<f32>>, OptimizerState)> {
        let dev = Device::Cpu;
        let wave =
            |n: usize, k: f32| -> Vec<f32> { (0..n).map(|i| ((i as f32) * k).sin()).collect() };
        let shapes = [(3usize, 5usize), (300, 257)];
        let vars = shapes
            .iter()
            .map(|&(r, c)| Var::from_vec(wave(r * c, 0.37), (r, c), &dev))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let mut opt = AnyOptimizer::from_config(cfg, vars.clone())?;
        opt.set_fused(fused);
        for step in 0..steps {
            let mut loss = Tensor::zeros((), DType::F32, &dev)?;
            for (v, &(r, c)) in vars.iter().zip(&shapes) {
                let a = Tensor::from_vec(wave(r * c, 0.11 + step as f32), (r, c), &dev)?;
                let b = Tensor::from_vec(wave(r * c, 0.23), (r, c), &dev)?;
                let x = v.as_tensor();
                let term = ((x.sqr()? * a)? + (x * b)? + (x.powf(3.0)? * 0.1)?)?;
                loss = (loss + term.sum_all()?)?;
            }
            opt.step(&loss.backward()?)?;
        }
        let values = vars
            .iter()
            .map(|v| v.as_tensor().flatten_all()?.to_vec1::<f32>())
            .collect::<candle_core::Result<_>>()?;
        Ok((values, opt.state()))
    }

    #[test]
    fn fused_and_tensor_paths_agree() -> candle_core::Result<()> {
        let adam = |lr, weight_decay, decoupled: bool| {
            let betas = [0.9, 0.999];
            if decoupled {
                OptimizerConfig::Adamw {
                    lr,
                    betas,
                    eps: 1e-8,
                    weight_decay,
                }
            } else {
                OptimizerConfig::Adam {
                    lr,
                    betas,
                    eps: 1e-8,
                    weight_decay,
                }
            }
        };
        let sgd = |momentum, dampening, nesterov, weight_decay| OptimizerConfig::Sgd {
            lr: 0.01,
            momentum,
            dampening,
            nesterov,
            weight_decay,
        };
        let configs = [
            adam(1e-2, 0.0, false),
            adam(1e-2, 0.05, false),
            adam(1e-2, 0.05, true),
            sgd(0.0, 0.0, false, 0.0),
            sgd(0.9, 0.1, false, 0.01),
            sgd(0.9, 0.0, true, 0.01),
        ];
        for cfg in &configs {
            let (fused, fused_state) = trajectory(cfg, true, 6)?;
            let (plain, plain_state) = trajectory(cfg, false, 6)?;
            for (f, p) in fused.iter().zip(&plain) {
                for (a, b) in f.iter().zip(p) {
                    assert!((a - b).abs() <= 1e-6, "{cfg:?}: {a} vs {b}");
                }
            }
            assert_eq!(fused_state.step, plain_state.step);
            for ((name, fs), (_, ps)) in fused_state.slots.iter().zip(&plain_state.slots) {
                for (f, p) in fs.iter().zip(ps) {
                    let (f, p) = match (f, p) {
                        (Some(f), Some(p)) => (f, p),
                        (None, None) => continue,
                        _ => panic!("{cfg:?}: slot {name} exists on one path only"),
                    };
                    let diff = (f - p)?.abs()?.max_all()?.to_scalar::<f32>()?;
                    assert!(diff <= 1e-6, "{cfg:?}: slot {name} differs by {diff}");
                }
            }
        }
        Ok(())
    }
}
