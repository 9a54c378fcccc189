//! Spiking neurons as state-in/state-out step functions plus thin layers that loop over time.
//!
//! Time is the first axis (`[T, B, ...]`); layers never keep state between calls: every call
//! starts from [`Leaky::zero_state`] (or its twin), and a step function takes and returns the
//! state explicitly, so a notebook can drive a neuron one step at a time.

mod leaky;
pub mod reset;
mod rleaky;
mod slstm;
mod surrogate;
mod synaptic;

pub(crate) use leaky::{constant, neuron_param};
pub use leaky::{leaky_step, Leaky, LeakyParams, LeakyState};
pub use rleaky::{rleaky_step, Feedback, RLeaky, RLeakyState};
pub use slstm::{slstm_step, Slstm, SlstmParams, SlstmState};
pub use surrogate::{spike, surrogate_derivative, surrogate_grad};
pub use synaptic::{synaptic_step, Synaptic, SynapticParams, SynapticState};

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::config::NeuronConfig;
use crate::nn::probe::Probe;
use crate::nn::Ops;

/// What a scan over time returns: the spikes and membranes of every step, and the last state
/// (to continue from: truncated BPTT, chunked sequences, stepping a net from a notebook).
#[derive(Debug, Clone)]
pub struct Scan<S> {
    /// Spikes `[T, B, ...]`.
    pub spikes: Tensor,
    /// Membranes `[T, B, ...]`.
    pub membrane: Tensor,
    /// The state after the last step.
    pub last: S,
}

/// The dynamics every spiking neuron shares: a zero state, one step, and a scan over time that
/// starts from a given state and returns the last one. The neuron's parameters live in its
/// parameter record (`LeakyParams`, `SynapticParams`, `SlstmParams`).
pub trait NeuronDynamics {
    /// What the neuron carries from one step to the next.
    type State: Clone;

    /// A zero state for inputs shaped like one step of input, `input_step` (`[B, ...]`).
    fn zero_state(&self, input_step: &Tensor) -> Result<Self::State>;

    /// One step from `state`: the spikes and the new state.
    ///
    /// # Shapes
    /// `input`: `[B, ...]` -> spikes `[B, N...]`.
    fn step(&self, input: &Tensor, state: &Self::State) -> Result<(Tensor, Self::State)>;

    /// The membrane of a state.
    fn membrane(state: &Self::State) -> &Tensor;

    /// Runs [`NeuronDynamics::step`] over the first axis of `input` from `state`.
    ///
    /// # Shapes
    /// `input`: `[T, B, ...]` -> spikes and membranes `[T, B, N...]`, and the last state.
    fn scan_from(&self, input: &Tensor, state: Self::State) -> Result<Scan<Self::State>> {
        let steps = input.dim(0)?;
        let (mut spikes, mut mems) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
        let mut state = state;
        for t in 0..steps {
            let (s, next) = self.step(&input.get(t)?, &state)?;
            spikes.push(s);
            mems.push(Self::membrane(&next).clone());
            state = next;
        }
        Ok(Scan {
            spikes: Tensor::stack(&spikes, 0)?,
            membrane: Tensor::stack(&mems, 0)?,
            last: state,
        })
    }

    /// [`NeuronDynamics::scan_from`] the zero state.
    ///
    /// # Shapes
    /// `input`: `[T, B, ...]` -> (spikes, membrane), each `[T, B, N...]`.
    fn scan_zero(&self, input: &Tensor) -> Result<(Tensor, Tensor)> {
        let scan = self.scan_from(input, self.zero_state(&input.get(0)?)?)?;
        Ok((scan.spikes, scan.membrane))
    }
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
    /// First-order LIF (one fused kernel per scan under [`Ops::Fused`]).
    Leaky(Leaky),
    /// Second-order LIF (plain ops).
    Synaptic(Synaptic),
}

impl Neuron {
    /// Builds the configured neuron for neurons of shape `neurons`; learned parameters under `vb`.
    pub fn from_config(cfg: &NeuronConfig, neurons: &[usize], vb: VarBuilder) -> Result<Self> {
        Ok(match cfg {
            NeuronConfig::Leaky(c) => Neuron::Leaky(Leaky::from_config(c, neurons, vb)?),
            NeuronConfig::Synaptic(c) => Neuron::Synaptic(Synaptic::from_config(c, neurons, vb)?),
        })
    }

    /// Spikes over all steps under `ops`, reported to `probe` as `name`.
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
        match self {
            Neuron::Leaky(n) => n.forward_probed(ops, name, current, probe),
            Neuron::Synaptic(n) => n.forward_probed(name, current, probe),
        }
    }

    /// Spikes and membranes over all steps under `ops`, both differentiable.
    ///
    /// # Shapes
    /// `current`: `[T, B, ...]` -> (spikes, membrane), each `[T, B, ...]`.
    pub fn forward_with_membrane(&self, ops: Ops, current: &Tensor) -> Result<(Tensor, Tensor)> {
        match self {
            Neuron::Leaky(n) => n.forward_with_membrane(ops, current),
            Neuron::Synaptic(n) => n.scan_zero(current),
        }
    }
}
