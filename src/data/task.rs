//! What a network is trained to do: the [`Task`] trait (declared metrics, default objective,
//! loss, metric accumulation) and the tasks of this crate.
//!
//! A task sees only network outputs and targets; the trainer averages each declared metric over
//! an epoch or an evaluation split with [`MetricSums`] and the task's [`Task::finish`].

use std::fmt::Debug;

use candle_core::{DType, Result, Tensor, D};

use crate::metric::{MetricSpec, Mode, NamedValue, Objective};

/// Running sums of the declared metrics over batches: `(name, sum, weight)` in declaration
/// order; the mean of a metric is `sum / weight` unless the task's `finish` says otherwise.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricSums {
    entries: Vec<(String, f64, f64)>,
}

impl MetricSums {
    /// Adds `sum` over `weight` items (samples, scored steps, coordinates) to metric `name`.
    pub fn add(&mut self, name: &str, sum: f64, weight: f64) {
        match self.entries.iter_mut().find(|(n, _, _)| n == name) {
            Some(entry) => {
                entry.1 += sum;
                entry.2 += weight;
            }
            None => self.entries.push((name.to_string(), sum, weight)),
        }
    }

    /// The mean of metric `name` (NaN when nothing was added).
    pub fn mean(&self, name: &str) -> f64 {
        self.entries
            .iter()
            .find(|(n, _, _)| n == name)
            .map_or(f64::NAN, |(_, s, w)| s / w)
    }

    /// Every metric's mean, in the order first added.
    pub fn means(&self) -> Vec<NamedValue> {
        self.entries
            .iter()
            .map(|(n, s, w)| NamedValue::new(n.clone(), s / w))
            .collect()
    }
}

/// A task: what the outputs of a network mean and how they are scored.
///
/// Metrics are declared without a split (`acc`, `position_rmse`); the trainer records them as
/// `train_<m>` and `val_<m>` per epoch and `<split>_<m>` at the best checkpoint. `loss` is
/// always declared (the training loss, lower is better) and need not be accumulated: the
/// trainer measures it from the network's own loss.
pub trait Task: Debug + Send + Sync {
    /// Every metric, the loss first.
    fn metrics(&self) -> Vec<MetricSpec>;
    /// The declared metric whose validation value picks the best checkpoint by default.
    fn default_objective(&self) -> &'static str;
    /// The training loss of `output` against `target` (a scalar).
    fn loss(&self, output: &Tensor, target: &Tensor) -> Result<Tensor>;
    /// Adds this batch's sums of every metric other than the loss to `sums`.
    fn accumulate(&self, output: &Tensor, target: &Tensor, sums: &mut MetricSums) -> Result<()>;
    /// The value of every metric other than the loss from the sums of a whole split.
    fn finish(&self, sums: &MetricSums) -> Vec<NamedValue> {
        sums.means()
    }
}

/// Every per-epoch column a task's metrics give: `train_<m>` and `val_<m>` for each declared
/// metric `m` (the loss included), with its direction and unit.
pub fn epoch_columns(task: &dyn Task) -> Vec<MetricSpec> {
    ["train", "val"]
        .iter()
        .flat_map(|split| {
            task.metrics().into_iter().map(move |m| MetricSpec {
                name: format!("{split}_{}", m.name),
                ..m
            })
        })
        .collect()
}

/// The objective of a run: `metric` (a column of [`epoch_columns`]) in direction `mode`, or the
/// task's default on the validation split; errors name `key` and list the valid columns.
pub fn resolve_objective(
    task: &dyn Task,
    metric: Option<&str>,
    mode: Option<Mode>,
    key: &str,
) -> crate::Result<Objective> {
    let columns = epoch_columns(task);
    let wanted = match metric {
        Some(m) => m.to_string(),
        None => format!("val_{}", task.default_objective()),
    };
    let spec = columns.iter().find(|c| c.name == wanted).ok_or_else(|| {
        let valid: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        crate::Error::invalid(
            key,
            format!(
                "`{wanted}` is not a metric of this task (valid: {})",
                valid.join(", ")
            ),
        )
    })?;
    if let Some(m) = mode.filter(|m| *m != spec.mode) {
        // CHPC-Autoresearch's early stopping took `mode` over the metric and so stopped on
        // the *lowest* accuracy; a direction against the metric's own is refused
        return Err(crate::Error::invalid(
            key,
            format!(
                "`{wanted}` improves when it gets {}, so `mode: {}` would keep the worst epochs; leave `mode` out (it follows the metric)",
                if spec.mode == Mode::Max { "larger" } else { "smaller" },
                if m == Mode::Max { "max" } else { "min" },
            ),
        ));
    }
    Ok(Objective {
        metric: spec.name.clone(),
        mode: spec.mode,
        unit: spec.unit.clone(),
        best: None,
        best_epoch: None,
    })
}

/// The objective of a run (`objective:`, else the task's default on the validation split) and
/// the objective early stopping watches (`early_stopping.metric`, else the objective; its mode,
/// else the metric's direction), each checked against the task's columns.
pub fn run_objectives(
    task: &dyn Task,
    objective: Option<&crate::config::ObjectiveConfig>,
    early_stopping: Option<&crate::config::EarlyStoppingConfig>,
) -> crate::Result<(Objective, Option<Objective>)> {
    let main = resolve_objective(
        task,
        objective.map(|o| o.metric.as_str()),
        objective.and_then(|o| o.mode),
        "objective.metric",
    )?;
    let watch = early_stopping
        .map(|es| {
            resolve_objective(
                task,
                Some(es.metric.as_deref().unwrap_or(&main.metric)),
                es.mode.or(es.metric.is_none().then_some(main.mode)),
                "early_stopping.metric",
            )
        })
        .transpose()?;
    Ok((main, watch))
}

/// The metrics of a task scored by accuracy: the loss and `acc` (a fraction).
fn loss_and_accuracy() -> Vec<MetricSpec> {
    vec![
        MetricSpec::new("loss", Mode::Min, ""),
        MetricSpec::new("acc", Mode::Max, "fraction"),
    ]
}

/// Classification into `classes` classes: outputs `[B, classes]` scores, targets `[B]` u32
/// class indices; accuracy (fraction, higher is better) and cross-entropy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    /// Number of classes.
    pub classes: usize,
}

impl Task for Classification {
    fn metrics(&self) -> Vec<MetricSpec> {
        loss_and_accuracy()
    }
    fn default_objective(&self) -> &'static str {
        "acc"
    }
    fn loss(&self, output: &Tensor, target: &Tensor) -> Result<Tensor> {
        candle_nn::loss::cross_entropy(output, target)
    }
    fn accumulate(&self, output: &Tensor, target: &Tensor, sums: &mut MetricSums) -> Result<()> {
        let correct = output
            .argmax(1)?
            .eq(target)?
            .to_dtype(DType::F32)?
            .sum_all()?
            .to_scalar::<f32>()? as f64;
        sums.add("acc", correct, output.dim(0)? as f64);
        Ok(())
    }
}

/// Binary labelling of every time step from `scored_from` on: outputs are logits `[T, B, 1]`,
/// targets `[T, B, 1]` in {0, 1}; accuracy over the scored steps (chance 0.5) and the mean
/// binary cross-entropy over them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepLabelling {
    /// First scored step (0-based); earlier steps carry no loss and no accuracy.
    pub scored_from: usize,
}

impl StepLabelling {
    /// The scored steps of `[T, B, R]` as `[T - scored_from, B, R]`.
    fn scored(&self, x: &Tensor) -> Result<Tensor> {
        let steps = x.dim(0)?;
        if self.scored_from >= steps {
            candle_core::bail!(
                "sequence of {steps} steps has no scored step (scoring starts at step {})",
                self.scored_from
            );
        }
        x.narrow(0, self.scored_from, steps - self.scored_from)
    }
}

impl Task for StepLabelling {
    fn metrics(&self) -> Vec<MetricSpec> {
        loss_and_accuracy()
    }
    fn default_objective(&self) -> &'static str {
        "acc"
    }
    fn loss(&self, output: &Tensor, target: &Tensor) -> Result<Tensor> {
        bce_with_logits(&self.scored(output)?, &self.scored(target)?)
    }
    fn accumulate(&self, output: &Tensor, target: &Tensor, sums: &mut MetricSums) -> Result<()> {
        let (z, y) = (self.scored(output)?, self.scored(target)?);
        let predicted = z.ge(0.0)?.to_dtype(DType::F32)?;
        let correct = predicted.eq(&y)?.to_dtype(DType::F32)?.sum_all()?;
        sums.add(
            "acc",
            correct.to_scalar::<f32>()? as f64,
            z.elem_count() as f64,
        );
        Ok(())
    }
}

/// Mean binary cross-entropy of logits `z` against targets `y` in [0, 1], computed stably as
/// `max(z, 0) - z·y + log(1 + exp(-|z|))`.
pub fn bce_with_logits(z: &Tensor, y: &Tensor) -> Result<Tensor> {
    let softplus = z.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    (z.relu()? - (z * y)?)?.add(&softplus)?.mean_all()
}

/// Mean squared error over every element.
pub fn mse(output: &Tensor, target: &Tensor) -> Result<Tensor> {
    (output - target)?.sqr()?.mean_all()
}

/// Squared error summed over all but the last axis and the element count, for an RMSE.
pub fn squared_error_sum(output: &Tensor, target: &Tensor) -> Result<(f64, f64)> {
    let d = (output - target)?;
    let sum = d
        .sqr()?
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?;
    Ok((sum, d.elem_count() as f64))
}

/// Index of the largest element along the last axis.
pub fn argmax_last(x: &Tensor) -> Result<Tensor> {
    x.argmax(D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn bce_matches_the_formula_and_scoring_skips_early_steps() -> Result<()> {
        let dev = Device::Cpu;
        let z = Tensor::new(&[[[2.0f32]], [[-1.0]], [[0.5]]], &dev)?;
        let y = Tensor::new(&[[[1.0f32]], [[1.0]], [[0.0]]], &dev)?;
        let task = StepLabelling { scored_from: 1 };
        let expected = ((1.0f64 + 1f64.exp()).ln() + (1.0f64 + 0.5f64.exp()).ln()) / 2.0;
        let got = task.loss(&z, &y)?.to_scalar::<f32>()? as f64;
        assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
        let mut sums = MetricSums::default();
        task.accumulate(&z, &y, &mut sums)?;
        assert_eq!(sums.mean("acc"), 0.0);
        let task = StepLabelling { scored_from: 0 };
        let mut sums = MetricSums::default();
        task.accumulate(&z, &y, &mut sums)?;
        assert!((sums.mean("acc") - 1.0 / 3.0).abs() < 1e-12);
        assert!(StepLabelling { scored_from: 3 }.loss(&z, &y).is_err());
        Ok(())
    }
}
