//! Recurrent leaky integrate-and-fire (snnTorch's `RLeaky`): a Leaky neuron that also receives
//! its own previous spikes through a learned map `V`.

use candle_core::{DType, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::leaky::{leaky_step, LeakyParams, LeakyState};
use super::neuron_param;
use super::{report, NeuronDynamics};
use crate::config::{LeakyConfig, Recurrence};
use crate::nn::layers::linear;
use crate::nn::probe::Probe;
use crate::nn::{fused, Ops};

/// The state an RLeaky neuron carries: its last spikes and membrane.
#[derive(Debug, Clone)]
pub struct RLeakyState {
    /// Spikes `S[t]` (with their surrogate gradient), fed back at the next step.
    pub spikes: Tensor,
    /// Membrane potential `U[t]`.
    pub mem: Tensor,
}

/// The feedback map `V` of an RLeaky layer.
#[derive(Debug, Clone)]
pub enum Feedback {
    /// All-to-all: `V(S) = S·Wᵀ + b`, `W` `[N, N]` (PyTorch `Linear` init).
    Linear {
        /// `W` `[N, N]`: the parameter tensor itself (the one a `GradStore` holds a gradient
        /// for).
        weight: Tensor,
        /// `Wᵀ` `[N, N]`: one view shared by every step, so their gradients accumulate into one
        /// contiguous tensor.
        weight_t: Tensor,
        /// `b` `[N]`.
        bias: Tensor,
    },
    /// One-to-one: `V(S) = w ⊙ S`, `w` `[N]` (initialised to 1, as snnTorch).
    OneToOne(Tensor),
}

impl Feedback {
    /// All-to-all feedback from `weight` `[N, N]` and `bias` `[N]`.
    pub fn linear(weight: &Tensor, bias: Tensor) -> Result<Self> {
        Ok(Feedback::Linear {
            weight: weight.clone(),
            weight_t: weight.t()?,
            bias,
        })
    }

    /// Creates the configured map for `n` neurons under `vb` (`weight`, and `bias` when linear).
    pub fn new(recurrence: Recurrence, n: usize, vb: VarBuilder) -> Result<Self> {
        match recurrence {
            Recurrence::Linear => {
                let l = linear(n, n, vb)?;
                match l.bias() {
                    Some(b) => Feedback::linear(l.weight(), b.clone()),
                    None => candle_core::bail!("recurrent feedback of {n} neurons has no bias"),
                }
            }
            Recurrence::OneToOne => Ok(Feedback::OneToOne(vb.get_with_hints(
                n,
                "weight",
                Init::Const(1.0),
            )?)),
        }
    }

    /// `V(S)`.
    ///
    /// # Shapes
    /// `spikes`: `[B, N]` -> `[B, N]`.
    pub fn apply(&self, spikes: &Tensor) -> Result<Tensor> {
        match self {
            Feedback::Linear { weight_t, bias, .. } => spikes.matmul(weight_t)?.broadcast_add(bias),
            Feedback::OneToOne(w) => spikes.broadcast_mul(w),
        }
    }
}

/// One RLeaky step: `U[t] = β·U[t-1] + I[t] + V(S[t-1]) - R·θ` with `R = H(U[t-1] - θ)`
/// detached (zero reset: `β·((1 - R)·U[t-1]) + I[t] + V(S[t-1])`; none: no reset term), and
/// `S[t] = H(U[t] - θ)` with a surrogate gradient; i.e. [`leaky_step`] on `I[t] + V(S[t-1])`.
///
/// # Shapes
/// `input`, `state.*`: `[B, N]`; `beta`, `threshold`: broadcastable -> spikes `[B, N]` and the
/// new state.
pub fn rleaky_step(
    input: &Tensor,
    state: &RLeakyState,
    feedback: &Feedback,
    p: &LeakyParams,
) -> Result<(Tensor, RLeakyState)> {
    let current = (input + feedback.apply(&state.spikes)?)?;
    let leaky = LeakyState {
        mem: state.mem.clone(),
    };
    let (spikes, next) = leaky_step(&current, &leaky, p)?;
    Ok((
        spikes.clone(),
        RLeakyState {
            spikes,
            mem: next.mem,
        },
    ))
}

/// A layer of recurrent LIF neurons: the feedback map and Leaky parameters.
#[derive(Debug, Clone)]
pub struct RLeaky {
    feedback: Feedback,
    params: LeakyParams,
}

impl RLeaky {
    /// Builds from the feedback map and the Leaky parameters (β and θ rank 0 or `[N]`).
    pub fn new(feedback: Feedback, params: LeakyParams) -> Self {
        RLeaky { feedback, params }
    }

    /// The Leaky parameters (β unclamped).
    pub fn params(&self) -> &LeakyParams {
        &self.params
    }

    /// The feedback map `V`.
    pub fn feedback(&self) -> &Feedback {
        &self.feedback
    }

    /// Builds `n` neurons from config: the feedback under `vb.pp("recurrent")`, learned β and θ
    /// as `beta` and `threshold` under `vb`.
    pub fn from_config(
        cfg: &LeakyConfig,
        recurrence: Recurrence,
        n: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let params = LeakyParams {
            beta: neuron_param(cfg.beta, cfg.learn_beta, &[n], "beta", &vb)?,
            threshold: neuron_param(cfg.threshold, cfg.learn_threshold, &[n], "threshold", &vb)?,
            reset: cfg.reset,
            surrogate: cfg.surrogate,
        };
        Ok(RLeaky::new(
            Feedback::new(recurrence, n, vb.pp("recurrent"))?,
            params,
        ))
    }

    /// The constants of the fused op, when it applies: all-to-all feedback and β, θ fixed
    /// scalars (learned or per-neuron values take the plain path).
    fn fused_consts(&self) -> Result<Option<fused::RLeakyConsts>> {
        let (beta, threshold) = (&self.params.beta, &self.params.threshold);
        let fixed = |t: &Tensor| t.rank() == 0 && !t.track_op();
        if !matches!(self.feedback, Feedback::Linear { .. }) || !fixed(beta) || !fixed(threshold) {
            return Ok(None);
        }
        let scalar = |t: &Tensor| t.to_dtype(DType::F64)?.to_scalar::<f64>();
        Ok(Some(fused::RLeakyConsts {
            beta: scalar(beta)?,
            threshold: scalar(threshold)?,
            reset: self.params.reset,
            surrogate: self.params.surrogate,
        }))
    }

    /// Spikes and membranes over all steps from a zero state: one fused op where `ops` allows
    /// it (see [`fused::rleaky`]), else the plain steps.
    ///
    /// # Shapes
    /// `current`: `[T, B, N]` -> (spikes, membranes), each `[T, B, N]`.
    pub fn scan_with(&self, ops: Ops, current: &Tensor) -> Result<(Tensor, Tensor)> {
        if ops.fuses(current) {
            if let (Some(consts), Feedback::Linear { weight, bias, .. }) =
                (self.fused_consts()?, &self.feedback)
            {
                return fused::rleaky(consts, current, weight, bias);
            }
        }
        self.scan_zero(current)
    }

    /// Spikes over all steps from a zero state, reported to `probe` as `name` (with membranes
    /// if it asks).
    ///
    /// # Shapes
    /// `current`: `[T, B, N]` -> spikes `[T, B, N]`.
    pub fn forward_probed(
        &self,
        ops: Ops,
        name: &str,
        current: &Tensor,
        probe: &mut dyn Probe,
    ) -> Result<Tensor> {
        report(name, self.scan_with(ops, current)?, probe)
    }
}

impl NeuronDynamics for RLeaky {
    type State = RLeakyState;

    /// No spikes and a zero membrane for inputs shaped like `input_step` (`[B, N]`).
    fn zero_state(&self, input_step: &Tensor) -> Result<RLeakyState> {
        let zeros = input_step.zeros_like()?;
        Ok(RLeakyState {
            spikes: zeros.clone(),
            mem: zeros,
        })
    }

    /// One step of [`rleaky_step`] with β clamped to [0, 1].
    fn step(&self, input: &Tensor, state: &RLeakyState) -> Result<(Tensor, RLeakyState)> {
        let params = LeakyParams {
            beta: self.params.beta.clamp(0.0, 1.0)?,
            ..self.params.clone()
        };
        rleaky_step(input, state, &self.feedback, &params)
    }

    fn membrane(state: &RLeakyState) -> &Tensor {
        &state.mem
    }
}

#[cfg(test)]
mod tests {
    use super::super::leaky::constant;
    use super::*;
    use crate::config::{Reset, Surrogate};
    use crate::nn::gradcheck::{self, frozen_error, Params};
    use crate::nn::SeededVarMap;
    use candle_core::{DType, Device};

    fn close(got: &Tensor, want: &[f64]) -> Result<()> {
        let got: Vec<f64> = got.flatten_all()?.to_vec1()?;
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "got {got:?}, want {want:?}");
        }
        Ok(())
    }

    fn layer(feedback: Feedback, reset: Reset) -> Result<RLeaky> {
        let dev = Device::Cpu;
        let params = LeakyParams {
            beta: constant(0.5, DType::F64, &dev)?,
            threshold: constant(1.0, DType::F64, &dev)?,
            reset,
            surrogate: Surrogate::default(),
        };
        Ok(RLeaky::new(feedback, params))
    }

    #[test]
    fn one_to_one_traces_match_hand_computation_for_each_reset() -> Result<()> {
        // one neuron, β = 0.5, θ = 1, feedback weight 0.5: U = 0.5·U + I + 0.5·S[t-1] - reset
        let dev = Device::Cpu;
        let input = Tensor::new(&[0.8f64, 0.8, 0.8, 0.0, 1.5, 0.2], &dev)?.reshape((6, 1, 1))?;
        let w = Tensor::new(&[0.5f64], &dev)?;
        let run = |reset| -> Result<(Tensor, Tensor)> {
            layer(Feedback::OneToOne(w.clone()), reset)?.scan_zero(&input)
        };
        // t0 0.8; t1 0.4 + 0.8 = 1.2 (spike); t2 0.6 + 0.8 + 0.5 - 1 = 0.9; t3 0.45;
        // t4 0.225 + 1.5 = 1.725 (spike); t5 0.8625 + 0.2 + 0.5 - 1 = 0.5625
        let (s, m) = run(Reset::Subtract)?;
        close(&m, &[0.8, 1.2, 0.9, 0.45, 1.725, 0.5625])?;
        close(&s, &[0., 1., 0., 0., 1., 0.])?;
        // zero: t2 0 + 0.8 + 0.5 = 1.3 (spike); t3 0 + 0 + 0.5 = 0.5; t4 0.25 + 1.5 = 1.75
        // (spike); t5 0 + 0.2 + 0.5 = 0.7
        let (s, m) = run(Reset::Zero)?;
        close(&m, &[0.8, 1.2, 1.3, 0.5, 1.75, 0.7])?;
        close(&s, &[0., 1., 1., 0., 1., 0.])?;
        // none: t2 1.9; t3 0.95 + 0.5 = 1.45; t4 0.725 + 1.5 + 0.5 = 2.725; t5 2.0625
        let (s, m) = run(Reset::None)?;
        close(&m, &[0.8, 1.2, 1.9, 1.45, 2.725, 2.0625])?;
        close(&s, &[0., 1., 1., 1., 1., 1.])
    }

    #[test]
    fn all_to_all_trace_matches_hand_computation() -> Result<()> {
        // two neurons; V(S) = W·S + b with W = [[0, -0.5], [0.4, 0.2]], b = [0.1, -0.1]
        let dev = Device::Cpu;
        let w = Tensor::new(&[[0.0f64, -0.5], [0.4, 0.2]], &dev)?;
        let b = Tensor::new(&[0.1f64, -0.1], &dev)?;
        let fb = Feedback::linear(&w, b)?;
        let input = Tensor::new(&[[1.0f64, 0.95], [0.6, 0.3], [0.0, 0.3], [0.9, 0.0]], &dev)?
            .reshape((4, 1, 2))?;
        let (s, m) = layer(fb, Reset::Subtract)?.scan_zero(&input)?;
        // t0: V = b: U = [1.1, 0.85], S = [1, 0]
        // t1: V = [0.1, 0.3]: U = [0.55 + 0.6 + 0.1 - 1, 0.425 + 0.3 + 0.3] = [0.25, 1.025], S = [0, 1]
        // t2: V = [-0.4, 0.1]: U = [0.125 - 0.4, 0.5125 + 0.3 + 0.1 - 1] = [-0.275, -0.0875]
        // t3: V = b: U = [-0.1375 + 0.9 + 0.1, -0.04375 - 0.1] = [0.8625, -0.14375]
        close(
            &m,
            &[1.1, 0.85, 0.25, 1.025, -0.275, -0.0875, 0.8625, -0.14375],
        )?;
        close(&s, &[1., 0., 0., 1., 0., 0., 0., 0.])
    }

    /// Surrogate gradient of `Σ c·S + Σ d·U` w.r.t. input, feedback, β and θ, against the
    /// frozen scalar twin.
    fn gradient_error(recurrence: Recurrence, reset: Reset) -> Result<(f64, f64)> {
        let dev = Device::Cpu;
        let vars = SeededVarMap::new(5);
        let vb = vars.var_builder(DType::F64, &dev);
        let slope = 5.0;
        let cfg = LeakyConfig {
            beta: 0.7,
            threshold: 0.6,
            reset,
            surrogate: Surrogate::FastSigmoid { slope },
            learn_beta: true,
            learn_threshold: true,
        };
        let (t, n) = (6, 3);
        let layer = RLeaky::from_config(&cfg, recurrence, n, vb.pp("lif"))?;
        let init = candle_nn::Init::Uniform { lo: 0.0, up: 0.9 };
        let input = vb.get_with_hints((t, 1, n), "input", init)?;
        let c: Vec<f64> = (0..t * n).map(|i| (i % 3) as f64 - 0.7).collect();
        let d: Vec<f64> = (0..t * n).map(|i| 0.3 * (i % 4) as f64 - 0.5).collect();
        let (ct, dt) = (
            Tensor::from_vec(c.clone(), (t, 1, n), &dev)?,
            Tensor::from_vec(d.clone(), (t, 1, n), &dev)?,
        );
        let library = || -> Result<Tensor> {
            let (s, m) = layer.scan_zero(&input)?;
            (s * &ct)?.sum_all()? + (m * &dt)?.sum_all()?
        };
        let reference = |p: &Params, fz: &mut gradcheck::Freeze| {
            let cur: Vec<Vec<f64>> = p["input"].chunks(n).map(<[f64]>::to_vec).collect();
            let fb = match recurrence {
                Recurrence::Linear => gradcheck::Feedback::Linear(
                    &p["lif.recurrent.weight"],
                    &p["lif.recurrent.bias"],
                ),
                Recurrence::OneToOne => gradcheck::Feedback::OneToOne(&p["lif.recurrent.weight"]),
            };
            let (s, m) = gradcheck::lif(&cur, &p["lif.beta"], &p["lif.threshold"], reset, &fb, fz);
            let dot = |x: Vec<Vec<f64>>, w: &[f64]| -> f64 {
                x.concat().iter().zip(w).map(|(a, b)| a * b).sum()
            };
            dot(s, &c) + dot(m, &d)
        };
        frozen_error(&vars, slope, library, reference)
    }

    #[test]
    fn surrogate_gradients_match_the_frozen_twin_for_each_recurrence_and_reset() -> Result<()> {
        for recurrence in [Recurrence::Linear, Recurrence::OneToOne] {
            for reset in [Reset::Subtract, Reset::Zero, Reset::None] {
                let (err, fired) = gradient_error(recurrence, reset)?;
                assert!(err < 1e-7, "{recurrence:?} {reset:?}: max error {err}");
                assert!(
                    fired > 0.1 && fired < 0.9,
                    "{recurrence:?} {reset:?}: fired {fired}"
                );
            }
        }
        Ok(())
    }
}
