//! Synaptic (second-order LIF) neuron: a decaying synaptic current feeds the membrane.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::leaky::neuron_param;
use super::surrogate::spike;
use super::{report, scan_steps};
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

/// A layer of Synaptic neurons (snnTorch's `Synaptic`): `I_syn[t] = α·I_syn[t-1] + X[t]`,
/// `U[t] = β·U[t-1] + I_syn[t] - R·θ` with `R = H(U[t-1] - θ)` detached (zero reset:
/// `β·((1 - R)·U[t-1]) + I_syn[t]`; none: no reset term), `S[t] = H(U[t] - θ)`.
#[derive(Debug, Clone)]
pub struct Synaptic {
    alpha: Tensor,
    beta: Tensor,
    threshold: Tensor,
    reset: Reset,
    surrogate: Surrogate,
}

impl Synaptic {
    /// Builds from α, β and θ tensors (rank 0, or one sample's neuron shape).
    pub fn new(
        alpha: Tensor,
        beta: Tensor,
        threshold: Tensor,
        reset: Reset,
        surrogate: Surrogate,
    ) -> Self {
        Synaptic {
            alpha,
            beta,
            threshold,
            reset,
            surrogate,
        }
    }

    /// Builds from config for neurons of shape `neurons`; learned values are named `alpha`,
    /// `beta`, `threshold` under `vb`.
    pub fn from_config(cfg: &SynapticConfig, neurons: &[usize], vb: VarBuilder) -> Result<Self> {
        Ok(Synaptic::new(
            neuron_param(cfg.alpha, cfg.learn_alpha, neurons, "alpha", &vb)?,
            neuron_param(cfg.beta, cfg.learn_beta, neurons, "beta", &vb)?,
            neuron_param(
                cfg.threshold,
                cfg.learn_threshold,
                neurons,
                "threshold",
                &vb,
            )?,
            cfg.reset,
            cfg.surrogate,
        ))
    }

    /// Zero current and membrane for inputs shaped like `input_step` (`[B, ...]`).
    pub fn zero_state(&self, input_step: &Tensor) -> Result<SynapticState> {
        Ok(SynapticState {
            syn: input_step.zeros_like()?,
            mem: input_step.zeros_like()?,
        })
    }

    /// One step.
    ///
    /// # Shapes
    /// `input`: `[B, ...]` -> spikes `[B, ...]` and the new state.
    pub fn step(&self, input: &Tensor, state: &SynapticState) -> Result<(Tensor, SynapticState)> {
        let alpha = self.alpha.clamp(0.0, 1.0)?;
        let beta = self.beta.clamp(0.0, 1.0)?;
        let th = &self.threshold;
        let prev = &state.mem;
        let fired = prev.broadcast_sub(th)?.gt(0.0)?.to_dtype(prev.dtype())?;
        let syn = (state.syn.broadcast_mul(&alpha)? + input)?;
        let mem = match self.reset {
            Reset::Subtract => ((prev.broadcast_mul(&beta)? + &syn)? - fired.broadcast_mul(th)?)?,
            Reset::Zero => ((fired.affine(-1.0, 1.0)? * prev)?.broadcast_mul(&beta)? + &syn)?,
            Reset::None => (prev.broadcast_mul(&beta)? + &syn)?,
        };
        let spikes = spike(&mem.broadcast_sub(th)?, self.surrogate)?;
        Ok((spikes, SynapticState { syn, mem }))
    }

    /// Spikes and membranes over all steps from a zero state.
    ///
    /// # Shapes
    /// `input`: `[T, B, ...]` -> (spikes, membrane), each `[T, B, ...]`.
    pub fn scan(&self, input: &Tensor) -> Result<(Tensor, Tensor)> {
        scan_steps(
            input,
            self.zero_state(&input.get(0)?)?,
            |x, s| self.step(x, s),
            |s| &s.mem,
        )
    }

    /// Spikes over all steps, reported to `probe` as `name`.
    ///
    /// # Shapes
    /// `input`: `[T, B, ...]` -> spikes `[T, B, ...]`.
    pub fn forward_probed(
        &self,
        name: &str,
        input: &Tensor,
        probe: &mut dyn Probe,
    ) -> Result<Tensor> {
        report(name, self.scan(input)?, probe)
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
        let layer = Synaptic::new(
            c(0.5)?,
            c(0.5)?,
            c(1.0)?,
            Reset::Subtract,
            Surrogate::default(),
        );
        let input = Tensor::new(&[1.0f32, 0.0, 0.0, 0.0], &dev)?.reshape((4, 1, 1))?;
        let (s, m) = layer.scan(&input)?;
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
