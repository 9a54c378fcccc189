//! The trainer's side of dynamics: flossing before training steps as the schedule says, and
//! the per-epoch measurements (`history.csv` columns and `spectrum.csv` rows).

use candle_core::{Device, Tensor, Var};

use super::floss::{FlossCounters, Flosser, CHECKPOINT_PREFIX};
use super::monitor::{self, SpectrumEstimate};
use crate::config::DynamicsConfig;
use crate::data::encode::batch_seed;
use crate::data::{Split, Task};
use crate::error::{Error, Result};
use crate::metric::NamedValue;
use crate::nn::Network;

/// The stream of flossing inputs' encoding seeds (apart from training and evaluation).
const FLOSS_STREAM: u64 = u64::MAX - 7;

/// Flossing and measurement state of one training run.
#[derive(Debug)]
pub struct TrainingDynamics {
    cfg: DynamicsConfig,
    flosser: Option<Flosser>,
    seed: u64,
    /// Flossing steps and summed loss since the last epoch record.
    epoch_floss: (u64, f64),
}

impl TrainingDynamics {
    /// The run's dynamics for `cfg` (none when absent), checking that `net` has a dynamics view.
    pub fn new(
        cfg: Option<&DynamicsConfig>,
        net: &dyn Network,
        params: &[(String, Var)],
        seed: u64,
    ) -> Result<Option<Self>> {
        let Some(cfg) = cfg else { return Ok(None) };
        super::system_of(net, &super::DynamicsOptions::f64())?;
        let flosser = cfg
            .flossing
            .as_ref()
            .map(|f| Flosser::new(f, params))
            .transpose()?;
        Ok(Some(TrainingDynamics {
            cfg: cfg.clone(),
            flosser,
            seed,
            epoch_floss: (0, 0.0),
        }))
    }

    /// The encoded input `[T, 1, ...]` of flossing step `step`: a training sample chosen by
    /// `(seed, step)`.
    fn floss_input(
        &self,
        net: &dyn Network,
        train: &dyn Split,
        step: u64,
        device: &Device,
    ) -> Result<Tensor> {
        let pick = batch_seed(self.seed, FLOSS_STREAM, step as usize);
        let index = (pick % train.len().max(1) as u64) as usize;
        let batch = train.batch(&[index], device)?;
        Ok(net.encode(&batch.input, pick)?)
    }

    /// The encoding seed of validation inputs (the first validation batch's).
    fn val_seed(&self) -> u64 {
        batch_seed(self.seed, crate::train::VAL_STREAM, 0)
    }

    /// Runs the flossing steps the schedule asks for before the training step that follows
    /// `steps_done` training steps.
    pub fn before_step(
        &mut self,
        steps_done: u64,
        net: &dyn Network,
        train: &dyn Split,
        device: &Device,
    ) -> Result<()> {
        self.before_step_losses(steps_done, net, train, device)
            .map(|_| ())
    }

    /// [`TrainingDynamics::before_step`], returning each flossing step's loss.
    pub fn before_step_losses(
        &mut self,
        steps_done: u64,
        net: &dyn Network,
        train: &dyn Split,
        device: &Device,
    ) -> Result<Vec<f64>> {
        let mut losses = Vec::new();
        let Some(flosser) = &self.flosser else {
            return Ok(losses);
        };
        let probe = match flosser.config().adaptive {
            Some(_) => Some(self.floss_input(net, train, flosser.counters.steps, device)?),
            None => None,
        };
        let probe = || probe.ok_or_else(|| Error::invalid("dynamics.flossing.adaptive", "absent"));
        let due = match self.flosser.as_mut() {
            Some(f) => f.due(steps_done, net, probe)?,
            None => 0,
        };
        for _ in 0..due {
            let step = self.flosser.as_ref().map_or(0, |f| f.counters.steps);
            let input = self.floss_input(net, train, step, device)?;
            if let Some(f) = self.flosser.as_mut() {
                let out = f.step(net, &input)?;
                self.epoch_floss.0 += 1;
                self.epoch_floss.1 += out.loss;
                losses.push(out.loss);
            }
        }
        Ok(losses)
    }

    /// The spectrum on the first validation sequences (epoch 0: before training).
    pub fn spectrum(
        &self,
        net: &dyn Network,
        val: &dyn Split,
        device: &Device,
    ) -> Result<Option<SpectrumEstimate>> {
        self.cfg
            .spectrum
            .as_ref()
            .map(|s| monitor::spectrum(net, val, s, self.val_seed(), device, "dynamics.spectrum"))
            .transpose()
    }

    /// The epoch's `history.csv` columns and its spectrum (for `spectrum.csv`).
    pub fn epoch_columns(
        &mut self,
        net: &dyn Network,
        task: &dyn Task,
        val: &dyn Split,
        device: &Device,
    ) -> Result<(Vec<NamedValue>, Option<SpectrumEstimate>)> {
        let mut out = Vec::new();
        let spectrum = self.spectrum(net, val, device)?;
        if let Some(s) = &spectrum {
            let batch = self.cfg.gradient_batch;
            let g = monitor::gradients(net, task, val, batch, self.val_seed(), device)?;
            out.extend(monitor::columns(s, &g));
        }
        if let Some(f) = &self.flosser {
            let (steps, loss) = std::mem::take(&mut self.epoch_floss);
            out.push(NamedValue::new("floss_steps", f.counters.steps as f64));
            out.push(NamedValue::new(
                "floss_loss",
                if steps > 0 {
                    loss / steps as f64
                } else {
                    f64::NAN
                },
            ));
        }
        Ok((out, spectrum))
    }

    /// The flossing counters and optimizer tensors for a checkpoint.
    pub fn checkpoint(&self) -> (Option<FlossCounters>, Vec<(String, Tensor)>) {
        match &self.flosser {
            Some(f) => (Some(f.counters.clone()), f.state_tensors()),
            None => (None, Vec::new()),
        }
    }

    /// Restores flossing from a checkpoint's counters and tensors.
    pub fn restore(
        &mut self,
        counters: Option<FlossCounters>,
        tensors: &[(String, Tensor)],
    ) -> Result<()> {
        if let (Some(f), Some(c)) = (self.flosser.as_mut(), counters) {
            f.restore(c, tensors)?;
        }
        Ok(())
    }
}

/// Named tensors, as checkpoints hold them.
pub type Named = Vec<(String, Tensor)>;

/// Splits checkpoint extra state into the network's and flossing's (by [`CHECKPOINT_PREFIX`]).
pub fn split_extra(extra: Named) -> (Named, Named) {
    extra
        .into_iter()
        .partition(|(name, _)| !name.starts_with(CHECKPOINT_PREFIX))
}
