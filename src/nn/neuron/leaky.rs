//! Leaky integrate-and-fire (first-order LIF): a pure step function and a thin layer that runs
//! it over time. The layer never keeps membrane state between calls.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::reset::integrate;
use super::surrogate::spike;
use super::NeuronDynamics;
use crate::config::{LeakyConfig, Reset, Surrogate};
use crate::nn::fused::{self, LifOutput, LifSpec};
use crate::nn::probe::Probe;
use crate::nn::Ops;

/// The state a Leaky neuron carries from one step to the next.
#[derive(Debug, Clone)]
pub struct LeakyState {
    /// Membrane potential `U[t]`.
    pub mem: Tensor,
}

/// The parameters of a Leaky neuron (norse's `LIFParameters`): decay β, threshold θ (rank 0,
/// or one sample's neuron shape), the reset and the surrogate gradient.
#[derive(Debug, Clone)]
pub struct LeakyParams {
    /// Membrane decay per step (clamped to [0, 1] by the layer; used as given by [`leaky_step`]).
    pub beta: Tensor,
    /// Firing threshold.
    pub threshold: Tensor,
    /// What a spike does to the membrane.
    pub reset: Reset,
    /// The spike's gradient.
    pub surrogate: Surrogate,
}

/// One step of LIF dynamics (snnTorch's `Leaky` with its default delayed reset):
/// `R = H(U[t-1] - θ)` (detached), `U[t] = β·U[t-1] + I[t] - R·θ` (subtract; zero:
/// `β·((1 - R)·U[t-1]) + I[t]`; none: `β·U[t-1] + I[t]`; see [`integrate`]), `S[t] = H(U[t] - θ)`
/// with a surrogate gradient. `p.beta` is used as given (clamp it to [0, 1] before).
///
/// # Shapes
/// `input`, `state.mem`: `[B, ...]`; `p.beta`, `p.threshold`: broadcastable to them
/// -> spikes `[B, ...]` and the new state.
pub fn leaky_step(
    input: &Tensor,
    state: &LeakyState,
    p: &LeakyParams,
) -> Result<(Tensor, LeakyState)> {
    let mem = integrate(&state.mem, &p.beta, input, &p.threshold, p.reset)?;
    let spikes = spike(&mem.broadcast_sub(&p.threshold)?, p.surrogate)?;
    Ok((spikes, LeakyState { mem }))
}

/// A layer of LIF neurons: decay β and threshold θ shared or learned per neuron.
#[derive(Debug, Clone)]
pub struct Leaky {
    params: LeakyParams,
}

/// A scalar parameter: learned (one per neuron, named `name` under `vb`) or a fixed constant.
pub(crate) fn neuron_param(
    value: f64,
    learn: bool,
    neurons: &[usize],
    name: &str,
    vb: &VarBuilder,
) -> Result<Tensor> {
    if learn {
        vb.get_with_hints(neurons, name, Init::Const(value))
    } else {
        constant(value, vb.dtype(), vb.device())
    }
}

/// A rank-0 tensor holding `value`.
pub(crate) fn constant(value: f64, dtype: DType, device: &Device) -> Result<Tensor> {
    Tensor::new(value, device)?.to_dtype(dtype)
}

impl Leaky {
    /// Builds from its parameters.
    pub fn new(params: LeakyParams) -> Self {
        Leaky { params }
    }

    /// The parameters (β unclamped).
    pub fn params(&self) -> &LeakyParams {
        &self.params
    }

    /// Builds from config for neurons of shape `neurons` (`[N]`, or `[C, H, W]` after a conv);
    /// learned β and θ are named `beta` and `threshold` under `vb`.
    pub fn from_config(cfg: &LeakyConfig, neurons: &[usize], vb: VarBuilder) -> Result<Self> {
        let params = LeakyParams {
            beta: neuron_param(cfg.beta, cfg.learn_beta, neurons, "beta", &vb)?,
            threshold: neuron_param(
                cfg.threshold,
                cfg.learn_threshold,
                neurons,
                "threshold",
                &vb,
            )?,
            reset: cfg.reset,
            surrogate: cfg.surrogate,
        };
        Ok(Leaky::new(params))
    }

    /// Scalar β (unclamped) and θ, reset and surrogate when both parameters are fixed
    /// single values (not learned), as the fused spiking conv block needs.
    pub fn fixed_scalars(&self) -> Result<Option<(f32, f32, Reset, Surrogate)>> {
        let (b, th) = (&self.params.beta, &self.params.threshold);
        if b.elem_count() != 1 || th.elem_count() != 1 || b.track_op() || th.track_op() {
            return Ok(None);
        }
        let scalar = |t: &Tensor| -> Result<f32> {
            t.to_dtype(DType::F32)?.flatten_all()?.get(0)?.to_scalar()
        };
        Ok(Some((
            scalar(b)?,
            scalar(th)?,
            self.params.reset,
            self.params.surrogate,
        )))
    }

    fn fused_scan(&self, current: &Tensor, output: LifOutput) -> Result<Tensor> {
        let spec = LifSpec {
            reset: self.params.reset,
            surrogate: self.params.surrogate,
            output,
        };
        fused::lif(
            current,
            &self.params.beta.flatten_all()?,
            &self.params.threshold.flatten_all()?,
            spec,
        )
    }

    /// Spikes over all steps from a zero membrane (the whole scan as one kernel when `ops`
    /// fuses `current`).
    ///
    /// # Shapes
    /// `current`: `[T, B, ...]` -> spikes `[T, B, ...]`.
    pub fn forward(&self, ops: Ops, current: &Tensor) -> Result<Tensor> {
        if ops.fuses(current) {
            self.fused_scan(current, LifOutput::Spikes)
        } else {
            Ok(self.scan_zero(current)?.0)
        }
    }

    /// Spikes and membranes over all steps under `ops`, both differentiable.
    ///
    /// # Shapes
    /// `current`: `[T, B, ...]` -> (spikes, membrane), each `[T, B, ...]`.
    pub fn forward_with_membrane(&self, ops: Ops, current: &Tensor) -> Result<(Tensor, Tensor)> {
        if ops.fuses(current) {
            Ok((
                self.fused_scan(current, LifOutput::Spikes)?,
                self.fused_scan(current, LifOutput::Membrane)?,
            ))
        } else {
            self.scan_zero(current)
        }
    }

    /// [`Leaky::forward`], reporting the layer to `probe` as `name` (with membranes if it asks).
    ///
    /// # Shapes
    /// `current`: `[T, B, ...]` -> spikes `[T, B, ...]`.
    pub fn forward_probed(
        &self,
        ops: Ops,
        name: &str,
        current: &Tensor,
        probe: &mut dyn Probe,
    ) -> Result<Tensor> {
        if probe.wants_membrane() {
            let (spikes, mem) = self.forward_with_membrane(ops, current)?;
            probe.record(name, &spikes, Some(&mem))?;
            Ok(spikes)
        } else {
            let spikes = self.forward(ops, current)?;
            probe.record(name, &spikes, None)?;
            Ok(spikes)
        }
    }
}

impl NeuronDynamics for Leaky {
    type State = LeakyState;

    /// A zero membrane for inputs shaped like `input_step` (`[B, ...]`).
    fn zero_state(&self, input_step: &Tensor) -> Result<LeakyState> {
        Ok(LeakyState {
            mem: input_step.zeros_like()?,
        })
    }

    /// One step of [`leaky_step`] with β clamped to [0, 1] (the plain path).
    fn step(&self, input: &Tensor, state: &LeakyState) -> Result<(Tensor, LeakyState)> {
        let params = LeakyParams {
            beta: self.params.beta.clamp(0.0, 1.0)?,
            ..self.params.clone()
        };
        leaky_step(input, state, &params)
    }

    fn membrane(state: &LeakyState) -> &Tensor {
        &state.mem
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Runs one neuron with β = 0.5, θ = 1 on a fixed input sequence through the layer.
    fn trace(reset: Reset) -> Result<(Vec<f32>, Vec<f32>)> {
        let dev = Device::Cpu;
        let input = Tensor::new(&[0.8f32, 0.8, 0.8, 0.0, 1.5, 0.2], &dev)?.reshape((6, 1, 1))?;
        let params = LeakyParams {
            beta: constant(0.5, DType::F32, &dev)?,
            threshold: constant(1.0, DType::F32, &dev)?,
            reset,
            surrogate: Surrogate::default(),
        };
        let layer = Leaky::new(params);
        let (s, m) = layer.scan_zero(&input)?;
        Ok((s.flatten_all()?.to_vec1()?, m.flatten_all()?.to_vec1()?))
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
    }

    #[test]
    fn membrane_traces_match_hand_computation_for_each_reset() -> Result<()> {
        // U = 0.5·U + I; spike when U > 1; the reset acts one step later, from the detached spike.
        // t0: 0.8            t1: 0.4+0.8 = 1.2 (spike)   t2: 0.6+0.8 = 1.4 before reset
        let (s, m) = trace(Reset::Subtract)?;
        // t2: 1.4 - 1 = 0.4; t3: 0.2; t4: 0.1 + 1.5 = 1.6 (spike); t5: 0.8 + 0.2 - 1 = 0.0
        assert!(close(&m, &[0.8, 1.2, 0.4, 0.2, 1.6, 0.0]), "{m:?}");
        assert_eq!(s, vec![0.0, 1.0, 0.0, 0.0, 1.0, 0.0]);
        let (s, m) = trace(Reset::Zero)?;
        // t2: 0.5·0 + 0.8 = 0.8; t3: 0.4; t4: 0.2 + 1.5 = 1.7 (spike); t5: 0 + 0.2
        assert!(close(&m, &[0.8, 1.2, 0.8, 0.4, 1.7, 0.2]), "{m:?}");
        assert_eq!(s, vec![0.0, 1.0, 0.0, 0.0, 1.0, 0.0]);
        let (s, m) = trace(Reset::None)?;
        // t2: 1.4 (spike); t3: 0.7; t4: 0.35 + 1.5 = 1.85 (spike); t5: 0.925 + 0.2 = 1.125 (spike)
        assert!(close(&m, &[0.8, 1.2, 1.4, 0.7, 1.85, 1.125]), "{m:?}");
        assert_eq!(s, vec![0.0, 1.0, 1.0, 0.0, 1.0, 1.0]);
        Ok(())
    }
}
