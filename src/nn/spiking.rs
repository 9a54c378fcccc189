//! Pieces shared by the spiking networks: the input projection of a whole sequence and the
//! output layer's readout.

use candle_core::{Result, Tensor};
use candle_nn::Linear;

use super::neuron::Neuron;
use super::probe::Probe;
use super::Ops;
use crate::config::Readout;

/// A stack of spiking fully connected layers ending in the output layer and its readout.
#[derive(Debug, Clone)]
pub struct SpikingStack {
    /// Linear maps `fc<first>, ...`.
    pub fcs: Vec<Linear>,
    /// The neuron layer after each linear map, `lif<first>, ...`.
    pub neurons: Vec<Neuron>,
    /// Number of the first layer (layers are reported as `lif<first + i>`).
    pub first: usize,
    /// How the output layer becomes scores.
    pub readout: Readout,
    /// Time steps per sample (the readout's count targets scale with it).
    pub steps: usize,
}

impl SpikingStack {
    /// The training loss of `scores` from [`SpikingStack::forward_probed`] under `ops`.
    ///
    /// # Shapes
    /// `scores`: `[B, classes]`, `labels`: `[B]` -> scalar.
    pub fn loss(&self, ops: Ops, scores: &Tensor, labels: &Tensor) -> Result<Tensor> {
        self.readout.loss(scores, labels, self.steps, ops)
    }

    /// Runs every layer over all time steps under `ops` and reads the output layer out
    /// (time-first tensors throughout: no reshapes, which would cost a copy of the gradient in
    /// backward).
    ///
    /// # Shapes
    /// `x`: `[T, B, K]` (spikes when `x_is_spikes`) -> scores `[B, classes]`.
    pub fn forward_probed(
        &self,
        ops: Ops,
        x: &Tensor,
        x_is_spikes: bool,
        probe: &mut dyn Probe,
    ) -> Result<Tensor> {
        let mut x = x.clone();
        let mut spikes_in = x_is_spikes;
        let last = self.fcs.len().saturating_sub(1);
        for (i, (fc, neuron)) in self.fcs.iter().zip(&self.neurons).enumerate() {
            let current = ops.project(fc, &x, spikes_in)?;
            let name = format!("lif{}", self.first + i);
            if i == last {
                return read_out(ops, &self.readout, neuron, &name, &current, probe);
            }
            x = neuron.forward_probed(ops, &name, &current, probe)?;
            spikes_in = true;
        }
        candle_core::bail!("a spiking network needs at least its output layer")
    }
}

/// Runs the output neuron over `current` under `ops` and turns its activity into class scores,
/// reporting it to `probe` as `name`.
///
/// # Shapes
/// `current`: `[T, B, C]` -> scores `[B, C]`.
pub fn read_out(
    ops: Ops,
    readout: &Readout,
    neuron: &Neuron,
    name: &str,
    current: &Tensor,
    probe: &mut dyn Probe,
) -> Result<Tensor> {
    if readout.needs_membrane() || probe.wants_membrane() {
        let (spikes, mem) = neuron.forward_with_membrane(ops, current)?;
        probe.record(name, &spikes, Some(&mem))?;
        readout.scores(&spikes, Some(&mem))
    } else {
        let spikes = neuron.forward_probed(ops, name, current, probe)?;
        readout.scores(&spikes, None)
    }
}
