//! Probes: what a network reports about its spiking layers while it runs, without any flag
//! changing what `forward` returns (firing rates for `history.csv`, traces for plots).

use candle_core::{DType, Result, Tensor};

/// Receives each spiking layer's activity as the network runs.
pub trait Probe {
    /// Whether layers should also compute their membrane potentials (slower on fused kernels).
    fn wants_membrane(&self) -> bool {
        false
    }

    /// Layer `name` produced `spikes` `[T, B, ...]`, and `membrane` (same shape) when asked for.
    fn record(&mut self, name: &str, spikes: &Tensor, membrane: Option<&Tensor>) -> Result<()>;

    /// Whether [`Probe::record_count`] suffices, so layers may skip building their spike tensor
    /// (fused spiking conv blocks never materialise it).
    fn counts_suffice(&self) -> bool {
        false
    }

    /// Layer `name` fired `spikes` times over `neuron_steps` neurons x steps x samples (called
    /// instead of [`Probe::record`] only when [`Probe::counts_suffice`]).
    fn record_count(&mut self, name: &str, spikes: f64, neuron_steps: usize) -> Result<()> {
        let _ = (spikes, neuron_steps);
        candle_core::bail!("layer {name} reported only a spike count to a probe that wants tensors")
    }
}

/// A probe that ignores everything (plain `forward`).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProbe;

impl Probe for NoProbe {
    fn record(&mut self, _: &str, _: &Tensor, _: Option<&Tensor>) -> Result<()> {
        Ok(())
    }

    fn counts_suffice(&self) -> bool {
        true
    }

    fn record_count(&mut self, _: &str, _: f64, _: usize) -> Result<()> {
        Ok(())
    }
}

/// Accumulates each spiking layer's mean firing rate (spikes per neuron per step) over batches,
/// and optionally how many samples each layer fired fewer than `k` spikes for (hpo_snn's
/// activity constraint).
#[derive(Debug, Default, Clone)]
pub struct FiringRates {
    layers: Vec<(String, f64, usize)>,
    silent_below: Option<usize>,
    /// Per layer: samples with fewer than `silent_below` spikes, samples seen.
    silent: Vec<(String, usize, usize)>,
}

impl FiringRates {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// An accumulator that also counts, per layer, the samples with fewer than `k` spikes
    /// (over all its neurons and steps); layers then hand over their spike tensors.
    pub fn counting_silent(k: usize) -> Self {
        FiringRates {
            silent_below: Some(k),
            ..Self::default()
        }
    }

    /// Per layer, the fraction of samples with fewer than `k` spikes (empty unless built by
    /// [`FiringRates::counting_silent`]).
    pub fn silent_fractions(&self) -> Vec<LayerRate> {
        self.silent
            .iter()
            .map(|(name, silent, seen)| LayerRate {
                layer: name.clone(),
                rate: *silent as f64 / (*seen).max(1) as f64,
            })
            .collect()
    }

    /// Each layer's mean firing rate, in the order layers first reported.
    pub fn rates(&self) -> Vec<LayerRate> {
        self.layers
            .iter()
            .map(|(name, sum, count)| LayerRate {
                layer: name.clone(),
                rate: sum / (*count).max(1) as f64,
            })
            .collect()
    }
}

/// A spiking layer's mean firing rate.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRate {
    /// The layer's name, e.g. `lif1`.
    pub layer: String,
    /// Spikes per neuron and time step, averaged over the batches seen.
    pub rate: f64,
}

impl Probe for FiringRates {
    fn record(&mut self, name: &str, spikes: &Tensor, _: Option<&Tensor>) -> Result<()> {
        let sum = spikes
            .detach()
            .abs()?
            .sum_all()?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        if let Some(k) = self.silent_below {
            // [T, B, ...] -> spikes per sample [B]
            let per_sample: Vec<f32> = spikes
                .detach()
                .abs()?
                .sum(0)?
                .flatten_from(1)?
                .sum(1)?
                .to_dtype(DType::F32)?
                .to_vec1()?;
            let silent = per_sample
                .iter()
                .filter(|&&c| (c as f64) < k as f64)
                .count();
            match self.silent.iter_mut().find(|(n, _, _)| n == name) {
                Some(entry) => {
                    entry.1 += silent;
                    entry.2 += per_sample.len();
                }
                None => self
                    .silent
                    .push((name.to_string(), silent, per_sample.len())),
            }
        }
        self.record_count(name, sum, spikes.elem_count())
    }

    fn counts_suffice(&self) -> bool {
        self.silent_below.is_none()
    }

    fn record_count(&mut self, name: &str, spikes: f64, neuron_steps: usize) -> Result<()> {
        match self.layers.iter_mut().find(|(n, _, _)| n == name) {
            Some(entry) => {
                entry.1 += spikes;
                entry.2 += neuron_steps;
            }
            None => self.layers.push((name.to_string(), spikes, neuron_steps)),
        }
        Ok(())
    }
}

/// One spiking layer's recorded activity.
#[derive(Debug, Clone)]
pub struct LayerTrace {
    /// Layer name (`lif1`, `lif2`, ...).
    pub name: String,
    /// Spikes `[T, B, ...]`.
    pub spikes: Tensor,
    /// Membrane potentials `[T, B, ...]`.
    pub membrane: Tensor,
}

/// A `[T][N]` matrix as rows (one per time step).
pub type Rows = Vec<Vec<f32>>;

impl LayerTrace {
    /// Spikes and membrane of batch sample `sample`, its first `neurons` neurons (flattened over
    /// the feature dims), as `[T][N]` rows: the input of
    /// [`crate::plot::SpikeRaster`] and [`crate::plot::MembraneTrace`].
    pub fn sample(&self, sample: usize, neurons: usize) -> Result<(Rows, Rows)> {
        let rows = |t: &Tensor| -> Result<Rows> {
            let dims = t.dims();
            if dims.len() < 3 || sample >= dims[1] {
                candle_core::bail!(
                    "trace of {}: sample {sample} of a {:?} tensor ([T, B, ...] expected)",
                    self.name,
                    dims
                );
            }
            let one = t.narrow(1, sample, 1)?.flatten_from(1)?;
            let n = neurons.min(one.dim(1)?);
            one.narrow(1, 0, n)?.to_dtype(DType::F32)?.to_vec2()
        };
        Ok((rows(&self.spikes)?, rows(&self.membrane)?))
    }
}

/// Membrane and spike traces of every spiking layer for one batch, for plotting.
#[derive(Debug, Clone, Default)]
pub struct Traces {
    /// The layers in network order.
    pub layers: Vec<LayerTrace>,
}

impl Traces {
    /// The trace of layer `name`.
    pub fn layer(&self, name: &str) -> Option<&LayerTrace> {
        self.layers.iter().find(|l| l.name == name)
    }
}

impl Probe for Traces {
    fn wants_membrane(&self) -> bool {
        true
    }

    fn record(&mut self, name: &str, spikes: &Tensor, membrane: Option<&Tensor>) -> Result<()> {
        let membrane = match membrane {
            Some(m) => m.detach(),
            None => candle_core::bail!("layer {name} reported no membrane to a trace recorder"),
        };
        self.layers.push(LayerTrace {
            name: name.to_string(),
            spikes: spikes.detach(),
            membrane,
        });
        Ok(())
    }
}
