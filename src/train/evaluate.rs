//! Evaluating a network on a split: the loss, every metric its task declares, firing rates.

use candle_core::{DType, Device};

use super::on_pool;
use crate::data::encode::batch_seed;
use crate::data::{Batch, MetricSums, Split, Task};
use crate::error::Result;
use crate::metric::NamedValue;
use crate::nn::{FiringRates, LayerRate, Network};

/// Encoder stream of validation batches (training batches use the epoch index).
pub const VAL_STREAM: u64 = u64::MAX;
/// Encoder stream of test batches.
pub const TEST_STREAM: u64 = u64::MAX - 1;

/// What one pass over an evaluation split measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean loss (the network's training loss).
    pub loss: f64,
    /// Every other declared metric of the task, by name without split (`acc`, ...).
    pub metrics: Vec<NamedValue>,
    /// Mean firing rate of each spiking layer (spikes per neuron per step), in layer order.
    pub firing_rates: Vec<LayerRate>,
    /// Per spiking layer, the fraction of samples with fewer than `k` spikes (only when
    /// asked for, by [`evaluate_probed`] with [`FiringRates::counting_silent`]).
    pub silent_fractions: Vec<LayerRate>,
}

impl Evaluation {
    /// The value of metric `name` (`loss` included).
    pub fn metric(&self, name: &str) -> Option<f64> {
        if name == "loss" {
            return Some(self.loss);
        }
        self.metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }
}

/// Evaluates `net` on `split` in order, in batches of `batch_size`, encoding batch `i` with the
/// seed of (`seed`, `stream`, `i`) so every evaluation sees the same spikes.
pub fn evaluate(
    net: &dyn Network,
    task: &dyn Task,
    split: &dyn Split,
    batch_size: usize,
    seeds: (u64, u64),
    device: &Device,
) -> Result<Evaluation> {
    evaluate_probed(
        net,
        task,
        split,
        batch_size,
        seeds,
        device,
        FiringRates::new(),
    )
}

/// [`evaluate`] accumulating activity into `rates` (which may count silent samples).
pub fn evaluate_probed(
    net: &dyn Network,
    task: &dyn Task,
    split: &dyn Split,
    batch_size: usize,
    (seed, stream): (u64, u64),
    device: &Device,
    mut rates: FiringRates,
) -> Result<Evaluation> {
    on_pool(|| {
        let indices: Vec<usize> = (0..split.len()).collect();
        let mut loss_sum = 0.0;
        let mut sums = MetricSums::default();
        for (i, idx) in indices.chunks(batch_size.max(1)).enumerate() {
            let Batch {
                input: x,
                target: y,
            } = split.batch(idx, device)?;
            let input = net.encode(&x, batch_seed(seed, stream, i))?;
            let out = net.forward_probed(&input, &mut rates)?.detach();
            let loss = net.loss(&out, &y, task)?.to_dtype(DType::F32)?;
            loss_sum += loss.to_scalar::<f32>()? as f64 * idx.len() as f64;
            task.accumulate(&out, &y, &mut sums)?;
        }
        Ok(Evaluation {
            loss: loss_sum / split.len().max(1) as f64,
            metrics: task.finish(&sums),
            firing_rates: rates.rates(),
            silent_fractions: rates.silent_fractions(),
        })
    })
}
