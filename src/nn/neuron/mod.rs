//! Spiking neurons as state-in/state-out step functions plus thin layers that loop over time.
//!
//! Time is the first axis (`[T, B, ...]`); layers never keep state between calls: every call
//! starts from [`Leaky::zero_state`] (or its twin), and a step function takes and returns the
//! state explicitly, so a notebook can drive a neuron one step at a time.

mod leaky;
mod rleaky;
mod slstm;
mod surrogate;
mod synaptic;

pub(crate) use leaky::{constant, neuron_param};
pub use leaky::{leaky_step, Leaky, LeakyState};
pub use rleaky::{rleaky_step, Feedback, RLeaky, RLeakyState};
pub use slstm::{slstm_step, Slstm, SlstmState};
pub use surrogate::{spike, surrogate_grad};
pub use synaptic::{Synaptic, SynapticState};

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::config::NeuronConfig;
use crate::nn::probe::Probe;

/// The one time loop of every plain-path neuron: runs `step` over the first axis of `input` from
/// `state` and stacks the spikes and the membranes (`mem` picks the membrane out of a state).
///
/// # Shapes
/// `input`: `[T, B, ...]` -> (spikes, membrane), each `[T, B, N...]`.
pub(crate) fn scan_steps<S>(
    input: &Tensor,
    mut state: S,
    step: impl Fn(&Tensor, &S) -> Result<(Tensor, S)>,
    mem: impl Fn(&S) -> &Tensor,
) -> Result<(Tensor, Tensor)> {
    let steps = input.dim(0)?;
    let (mut spikes, mut mems) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
    for t in 0..steps {
        let (s, next) = step(&input.get(t)?, &state)?;
        spikes.push(s);
        mems.push(mem(&next).clone());
        state = next;
    }
    Ok((Tensor::stack(&spikes, 0)?, Tensor::stack(&mems, 0)?))
}

/// Reports a scan's spikes (with its membranes when the probe asks) to `probe` as `name`, and
/// returns the spikes.
pub(crate) fn report(
    name: &str,
    (spikes, mem): (Tensor, Tensor),
    probe: &mut dyn Probe,
) -> Result<Tensor> {
    probe.record(name, &spikes, probe.wants_membrane().then_some(&mem))?;
    Ok(spikes)
}

/// A feed-forward spiking layer of the configured neuron type.
#[derive(Debug, Clone)]
pub enum Neuron {
    /// First-order LIF (fused kernel on CPU when enabled).
    Leaky(Leaky),
    /// Second-order LIF (plain ops).
    Synaptic(Synaptic),
}

impl Neuron {
    /// Builds the configured neuron for neurons of shape `neurons`; learned parameters under `vb`.
    pub fn from_config(
        cfg: &NeuronConfig,
        neurons: &[usize],
        fused: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(match cfg {
            NeuronConfig::Leaky(c) => Neuron::Leaky(Leaky::from_config(c, neurons, fused, vb)?),
            NeuronConfig::Synaptic(c) => Neuron::Synaptic(Synaptic::from_config(c, neurons, vb)?),
        })
    }

    /// Spikes over all steps, reported to `probe` as `name`.
    ///
    /// # Shapes
    /// `current`: `[T, B, ...]` -> spikes `[T, B, ...]`.
    pub fn forward_probed(
        &self,
        name: &str,
        current: &Tensor,
        probe: &mut dyn Probe,
    ) -> Result<Tensor> {
        match self {
            Neuron::Leaky(n) => n.forward_probed(name, current, probe),
            Neuron::Synaptic(n) => n.forward_probed(name, current, probe),
        }
    }

    /// Spikes and membranes over all steps, both differentiable.
    ///
    /// # Shapes
    /// `current`: `[T, B, ...]` -> (spikes, membrane), each `[T, B, ...]`.
    pub fn forward_with_membrane(&self, current: &Tensor) -> Result<(Tensor, Tensor)> {
        match self {
            Neuron::Leaky(n) => n.forward_with_membrane(current),
            Neuron::Synaptic(n) => n.scan(current),
        }
    }
}
