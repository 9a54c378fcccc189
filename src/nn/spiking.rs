//! Pieces shared by the spiking networks: the input projection of a whole sequence and the
//! output layer's readout.

use candle_core::{Module, Result, Tensor};
use candle_nn::Linear;

use super::fused;
use super::neuron::Neuron;
use super::probe::Probe;
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
    /// Whether the fused kernels are on.
    pub fused: bool,
    /// Time steps per sample (the readout's count targets scale with it).
    pub steps: usize,
}

impl SpikingStack {
    /// The training loss of `scores` from [`SpikingStack::forward_probed`].
    ///
    /// # Shapes
    /// `scores`: `[B, classes]`, `labels`: `[B]` -> scalar.
    pub fn loss(&self, scores: &Tensor, labels: &Tensor) -> Result<Tensor> {
        self.readout.loss(scores, labels, self.steps, self.fused)
    }

    /// Runs every layer over all time steps and reads the output layer out (time-first
    /// tensors throughout: no reshapes, which would cost a copy of the gradient in backward).
    ///
    /// # Shapes
    /// `x`: `[T, B, K]` (spikes when `x_is_spikes`) -> scores `[B, classes]`.
    pub fn forward_probed(
        &self,
        x: &Tensor,
        x_is_spikes: bool,
        probe: &mut dyn Probe,
    ) -> Result<Tensor> {
        let mut x = x.clone();
        let mut spikes_in = x_is_spikes;
        let last = self.fcs.len().saturating_sub(1);
        for (i, (fc, neuron)) in self.fcs.iter().zip(&self.neurons).enumerate() {
            let current = project(fc, &x, spikes_in, self.fused)?;
            let name = format!("lif{}", self.first + i);
            if i == last {
                return read_out(&self.readout, neuron, &name, &current, probe);
            }
            x = neuron.forward_probed(&name, &current, probe)?;
            spikes_in = true;
        }
        candle_core::bail!("a spiking network needs at least its output layer")
    }
}

/// `x·wᵀ + b` for all time steps at once: rows of active inputs gathered when `x` holds spikes
/// and the fused kernels are on, a plain matmul otherwise.
///
/// # Shapes
/// `x`: `[T, B, K]` -> `[T, B, N]`.
pub fn project(layer: &Linear, x: &Tensor, x_is_spikes: bool, fused: bool) -> Result<Tensor> {
    if fused && x_is_spikes && fused::available(x) {
        fused::sparse_linear(x, layer.weight(), layer.bias())
    } else {
        layer.forward(x)
    }
}

/// Runs the output neuron over `current` and turns its activity into class scores, reporting
/// it to `probe` as `name`.
///
/// # Shapes
/// `current`: `[T, B, C]` -> scores `[B, C]`.
pub fn read_out(
    readout: &Readout,
    neuron: &Neuron,
    name: &str,
    current: &Tensor,
    probe: &mut dyn Probe,
) -> Result<Tensor> {
    if readout.needs_membrane() || probe.wants_membrane() {
        let (spikes, mem) = neuron.forward_with_membrane(current)?;
        probe.record(name, &spikes, Some(&mem))?;
        readout.scores(&spikes, Some(&mem))
    } else {
        let spikes = neuron.forward_probed(name, current, probe)?;
        readout.scores(&spikes, None)
    }
}
