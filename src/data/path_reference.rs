//! Reference rows for path integration, scored by the task's own metrics: the mean predictor
//! (the per-step mean of the training targets, the best constant output) and the oracle
//! integrator (exact integration of the inputs it is given, so its error on a noisy split is
//! what the noise alone costs; zero on clean splits).

use candle_core::{Device, Tensor};

use super::dataset::{Dataset, Split};
use super::path_integration::{integrate, PathTask};
use super::task::{MetricSums, Task};
use crate::config::PathIntegrationConfig;
use crate::error::Result;
use crate::metric::NamedValue;

/// Walks per batch when scoring.
const BATCH: usize = 250;

/// Scores of one reference model on one split.
#[derive(Debug, Clone)]
pub struct ReferenceRow {
    /// `mean_predictor` or `oracle_integrator`.
    pub model: &'static str,
    /// The split (`test`, `test_t100`, ...).
    pub split: String,
    /// The task's metrics, `loss` first.
    pub metrics: Vec<NamedValue>,
}

/// Both reference models on every test split of `data` (made from `cfg`).
pub fn reference_rows(cfg: &PathIntegrationConfig, data: &Dataset) -> Result<Vec<ReferenceRow>> {
    let task = PathTask::new(cfg);
    let mean = mean_target(&task, data.train.as_ref())?;
    let mut rows = Vec::new();
    for (name, split) in &data.tests {
        let (m, o) = (
            score(&task, split.as_ref(), |x, _| {
                let (t_len, b, _) = x.dims3()?;
                mean_outputs(&mean, t_len, b)
            })?,
            score(&task, split.as_ref(), |x, _| oracle_outputs(&task, x))?,
        );
        rows.push(ReferenceRow {
            model: "mean_predictor",
            split: name.clone(),
            metrics: m,
        });
        rows.push(ReferenceRow {
            model: "oracle_integrator",
            split: name.clone(),
            metrics: o,
        });
    }
    Ok(rows)
}

/// The task's loss and metrics of `predict(input, target)` over a whole split.
fn score(
    task: &PathTask,
    split: &dyn Split,
    predict: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Vec<NamedValue>> {
    let mut sums = MetricSums::default();
    let (mut loss, mut count) = (0.0, 0usize);
    let indices: Vec<usize> = (0..split.len()).collect();
    for chunk in indices.chunks(BATCH) {
        let batch = split.batch(chunk, &Device::Cpu)?;
        let out = predict(&batch.input, &batch.target)?;
        task.accumulate(&out, &batch.target, &mut sums)?;
        loss += f64::from(task.loss(&out, &batch.target)?.to_scalar::<f32>()?) * chunk.len() as f64;
        count += chunk.len();
    }
    let mut metrics = vec![NamedValue::new("loss", loss / count.max(1) as f64)];
    metrics.extend(task.finish(&sums));
    Ok(metrics)
}

/// Per-step mean of the training targets `[T_train, R]`, in output space (the bump as logits).
fn mean_target(task: &PathTask, train: &dyn Split) -> Result<Tensor> {
    let indices: Vec<usize> = (0..train.len()).collect();
    let mut sum: Option<Tensor> = None;
    for chunk in indices.chunks(BATCH) {
        let y = train.batch(chunk, &Device::Cpu)?.target.sum(1)?;
        sum = Some(match sum {
            Some(s) => (s + y)?,
            None => y,
        });
    }
    let Some(sum) = sum else {
        return Err(crate::Error::invalid("data.train_sequences", "0 walks"));
    };
    let mean = (sum / train.len() as f64)?;
    task.output_space(&mean)
}

/// The mean rows repeated for `b` walks of `t_len` steps (steps past training repeat the last).
fn mean_outputs(mean: &Tensor, t_len: usize, b: usize) -> Result<Tensor> {
    let (rows, r) = mean.dims2()?;
    let idx: Vec<u32> = (0..t_len).map(|t| t.min(rows - 1) as u32).collect();
    let idx = Tensor::from_vec(idx, t_len, mean.device())?;
    Ok(mean
        .index_select(&idx, 0)?
        .unsqueeze(1)?
        .broadcast_as((t_len, b, r))?
        .contiguous()?)
}

/// Integrates each walk's (possibly noisy) inputs `[T, B, 2]` and returns the targets of the
/// result in output space `[T, B, R]`.
pub fn oracle_outputs(task: &PathTask, input: &Tensor) -> Result<Tensor> {
    let x = input.to_vec3::<f32>()?;
    let (t_len, b) = (x.len(), x.first().map_or(0, Vec::len));
    let r = task.outputs();
    let mut out = vec![0f32; t_len * b * r];
    let mut row = Vec::with_capacity(r);
    for col in 0..b {
        let v = (0..t_len).map(|t| f64::from(x[t][col][0])).collect();
        let w = (0..t_len).map(|t| f64::from(x[t][col][1])).collect();
        let walk = integrate(v, w);
        for t in 0..t_len {
            row.clear();
            task.target(walk.heading[t], walk.position[t], &mut row);
            out[(t * b + col) * r..(t * b + col + 1) * r].copy_from_slice(&row);
        }
    }
    let y = Tensor::from_vec(out, (t_len, b, r), input.device())?;
    task.output_space(&y)
}
