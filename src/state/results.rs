//! Results of an iteration's experiments, computed from the `runs` frame of
//! [`crate::runs::scan`]: what state logic needs of each run, then per-variant statistics.

use std::collections::BTreeMap;

use polars::prelude::DataFrame;

use super::plan::{PlannedExperiment, VariantResult};
use crate::error::Result;
use crate::frame::{f64_column, str_column};
use crate::stats::{best_by_seed, describe};

/// What the state needs of one run directory.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// Experiment config id.
    pub experiment: String,
    /// Variant.
    pub variant: String,
    /// Seed (none when unreadable).
    pub seed: Option<u64>,
    /// `running`, `completed`, `failed` or `killed`.
    pub status: String,
    /// Value of the metric (none when missing).
    pub value: Option<f64>,
    /// When it finished (RFC 3339), if it did.
    pub finished_at: Option<String>,
    /// The run directory.
    pub path: String,
}

impl RunRow {
    /// The rows of a `runs` frame, with `metric` as the value.
    pub fn from_frame(runs: &DataFrame, metric: &str) -> Result<Vec<RunRow>> {
        if runs.height() == 0 {
            return Ok(Vec::new());
        }
        let text = |name: &str| str_column(runs, name);
        let (experiment, variant, status, finished, path) = (
            text("experiment")?,
            text("variant")?,
            text("status")?,
            text("finished_at")?,
            text("path")?,
        );
        let seed = f64_column(runs, "seed")?;
        let value = f64_column(runs, metric)?;
        Ok((0..runs.height())
            .map(|i| RunRow {
                experiment: experiment[i].clone().unwrap_or_default(),
                variant: variant[i].clone().unwrap_or_default(),
                seed: seed[i].map(|s| s as u64),
                status: status[i].clone().unwrap_or_default(),
                value: value[i],
                finished_at: finished[i].clone(),
                path: path[i].clone().unwrap_or_default(),
            })
            .collect())
    }
}

/// Per variant of `plan`, over its completed runs with a value: seeds, mean, std, best seed,
/// the run directories, and the invalid reason if marked. Variants in name order.
pub fn compute(
    plan: &PlannedExperiment,
    runs: &[RunRow],
    metric: &str,
) -> Result<Vec<VariantResult>> {
    let mut by_variant: BTreeMap<&str, Vec<&RunRow>> = BTreeMap::new();
    for r in runs {
        if r.status == "completed"
            && r.value.is_some()
            && plan.matches(&r.experiment, &r.variant, r.seed)
        {
            by_variant.entry(&r.variant).or_default().push(r);
        }
    }
    let mut out = Vec::new();
    for (variant, mut rows) in by_variant {
        rows.sort_by_key(|r| r.seed);
        let values: Vec<f64> = rows.iter().filter_map(|r| r.value).collect();
        let d = describe(&values)?;
        let Some(best) = best_by_seed(rows.iter(), |r| {
            (r.value.unwrap_or(f64::NAN), r.seed.unwrap_or_default())
        }) else {
            continue;
        };
        out.push(VariantResult {
            variant: variant.to_string(),
            metric: metric.to_string(),
            n_seeds: d.n as u64,
            mean: d.mean,
            std: d.std,
            best_seed: best.seed.unwrap_or_default(),
            best_value: best.value.unwrap_or(f64::NAN),
            runs: rows.iter().map(|r| r.path.clone()).collect(),
            invalid: plan.invalid_reason(variant).map(str::to_string),
        });
    }
    Ok(out)
}
