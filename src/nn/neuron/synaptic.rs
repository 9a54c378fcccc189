//! Synaptic (second-order LIF) neuron: a decaying synaptic current feeds the membrane.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::leaky::neuron_param;
use super::report;
use super::reset::integrate;
use super::surrogate::spike;
use super::NeuronDynamics;
use crate::config::{Reset, Surrogate, SynapticConfig};
use crate::nn::probe::Probe;

/// The state a Synaptic neuron carries from one step to the next.
#[derive(Debug, Clone)]
pub struct SynapticState {
    /// Synaptic current `I_syn[t]`.
    pub syn: Tensor,
    /// Membrane potential `U[t]`.
    pub mem: Tensor,
}

/// The parameters of a Synaptic neuron: current decay α, membrane decay β, threshold θ (rank 0
/// or one sample's neuron shape), the reset and the surrogate gradient.
#[derive(Debug, Clone)]
pub struct SynapticParams {
    /// Synaptic current decay per step (clamped to [0, 1] by the layer).
    pub alpha: Tensor,
    /// Membrane decay per step (clamped to [0, 1] by the layer).
    pub beta: Tensor,
    /// Firing threshold.
    pub threshold: Tensor,
    /// What a spike does to the membrane.
    pub reset: Reset,
    /// The spike's gradient.
    pub surrogate: Surrogate,
}

/// One Synaptic step (snnTorch's `Synaptic`): `I_syn[t] = α·I_syn[t-1] + X[t]`, then the
/// membrane integrates `I_syn[t]` as a Leaky neuron integrates its input ([`integrate`]),
/// `S[t] = H(U[t] - θ)`. `p.alpha` and `p.beta` are used as given.
///
/// # Shapes
/// `input`, `state.*`: `[B, ...]`; parameters broadcastable -> spikes `[B, ...]` and the new
/// state.
pub fn synaptic_step(
    input: &Tensor,
    state: &SynapticState,
    p: &SynapticParams,
) -> Result<(Tensor, SynapticState)> {
    let syn = (state.syn.broadcast_mul(&p.alpha)? + input)?;
    let mem = integrate(&state.mem, &p.beta, &syn, &p.threshold, p.reset)?;
    let spikes = spike(&mem.broadcast_sub(&p.threshold)?, p.surrogate)?;
    Ok((spikes, SynapticState { syn, mem }))
}

/// A layer of Synaptic neurons.
#[derive(Debug, Clone)]
pub struct Synaptic {
    params: SynapticParams,
}

impl Synaptic {
    /// Builds from its parameters.
    pub fn new(params: SynapticParams) -> Self {
        Synaptic { params }
    }

    /// The parameters (α and β unclamped).
    pub fn params(&self) -> &SynapticParams {
        &self.params
    }

    /// Builds from config for neurons of shape `neurons`; learned values are named `alpha`,
    /// `beta`, `threshold` under `vb`.
    pub fn from_config(cfg: &SynapticConfig, neurons: &[usize], vb: VarBuilder) -> Result<Self> {
        Ok(Synaptic::new(SynapticParams {
            alpha: neuron_param(cfg.alpha, cfg.learn_alpha, neurons, "alpha", &vb)?,
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
        }))
    }

    /// Spikes over all steps from a zero state, reported to `probe` as `name`.
    ///
    /// # Shapes
    /// `input`: `[T, B, ...]` -> spikes `[T, B, ...]`.
    pub fn forward_probed(
        &self,
        name: &str,
        input: &Tensor,
        probe: &mut dyn Probe,
    ) -> Result<Tensor> {
        report(name, self.scan_zero(input)?, probe)
    }
}

impl NeuronDynamics for Synaptic {
    type State = SynapticState;

    /// Zero current and membrane for inputs shaped like `input_step` (`[B, ...]`).
    fn zero_state(&self, input_step: &Tensor) -> Result<SynapticState> {
        Ok(SynapticState {
            syn: input_step.zeros_like()?,
            mem: input_step.zeros_like()?,
        })
    }

    /// One step of [`synaptic_step`] with α and β clamped to [0, 1].
    fn step(&self, input: &Tensor, state: &SynapticState) -> Result<(Tensor, SynapticState)> {
        let p = SynapticParams {
            alpha: self.params.alpha.clamp(0.0, 1.0)?,
            beta: self.params.beta.clamp(0.0, 1.0)?,
            ..self.params.clone()
        };
        synaptic_step(input, state, &p)
    }

    fn membrane(state: &SynapticState) -> &Tensor {
        &state.mem
    }
}

#[cfg(test)]
mod tests {
    use super::super::leaky::constant;
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn synaptic_trace_matches_hand_computation() -> Result<()> {
        let dev = Device::Cpu;
        let c = |v| constant(v, DType::F32, &dev);
        let layer = Synaptic::new(SynapticParams {
            alpha: c(0.5)?,
            beta: c(0.5)?,
            threshold: c(1.0)?,
            reset: Reset::Subtract,
            surrogate: Surrogate::default(),
        });
        let input = Tensor::new(&[1.0f32, 0.0, 0.0, 0.0], &dev)?.reshape((4, 1, 1))?;
        let (s, m) = layer.scan_zero(&input)?;
        // I_syn: 1, 0.5, 0.25, 0.125; U: 1, 0.5+0.5 = 1.0, 0.5+0.25 = 0.75, 0.375+0.125 = 0.5
        let m: Vec<f32> = m.flatten_all()?.to_vec1()?;
        for (got, want) in m.iter().zip([1.0f32, 1.0, 0.75, 0.5]) {
            assert!((got - want).abs() < 1e-6, "{m:?}");
        }
        // U never exceeds θ = 1 strictly: no spikes
        assert_eq!(s.flatten_all()?.to_vec1::<f32>()?, vec![0.0; 4]);
        Ok(())
    }
}
