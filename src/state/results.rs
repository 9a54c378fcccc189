//! Results of an iteration's experiments, computed from the `runs` frame of
//! [`crate::runs::scan`]: what state logic needs of each run, then per-variant statistics.

use std::collections::BTreeMap;

use polars::prelude::DataFrame;

use super::plan::{PlannedExperiment, VariantResult};
use crate::error::{Error, Result};
use crate::frame::{f64_column, str_column};
use crate::metric::Mode;
use crate::runs::row_specs;
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
    /// Whether higher or lower values of the metric are better in this run (from its objective
    /// and declared metrics, see [`crate::runs::row_specs`]; higher when it says nothing).
    pub mode: Mode,
    /// When it finished (RFC 3339), if it did.
    pub finished_at: Option<String>,
    /// The run directory.
    pub path: String,
}

impl RunRow {
    /// The rows of a `runs` frame, with `metric` (any numeric `runs` column) as the value.
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
        let specs = row_specs(runs, metric)?;
        Ok((0..runs.height())
            .map(|i| RunRow {
                experiment: experiment[i].clone().unwrap_or_default(),
                variant: variant[i].clone().unwrap_or_default(),
                seed: seed[i].map(|s| s as u64),
                status: status[i].clone().unwrap_or_default(),
                value: value[i],
                mode: specs[i].as_ref().map_or(Mode::Max, |s| s.mode),
                finished_at: finished[i].clone(),
                path: path[i].clone().unwrap_or_default(),
            })
            .collect())
    }
}

/// Per variant of `plan`, over its completed runs with a value: seeds, mean, std, best seed
/// in the metric's direction (the lowest value for a lower-is-better metric), the run
/// directories, and the invalid reason if marked. Variants in name order. An error when a
/// variant's runs disagree on the metric's direction.
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
        let mode = variant_mode(&plan.config, variant, metric, &rows)?;
        let values: Vec<f64> = rows.iter().filter_map(|r| r.value).collect();
        let d = describe(&values)?;
        let Some(best) = best_by_seed(rows.iter(), mode, |r| {
            (r.value.unwrap_or(f64::NAN), r.seed.unwrap_or_default())
        }) else {
            continue;
        };
        out.push(VariantResult {
            variant: variant.to_string(),
            metric: metric.to_string(),
            mode,
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

/// The direction of `metric` in the runs of one variant (they must agree).
fn variant_mode(config: &str, variant: &str, metric: &str, rows: &[&RunRow]) -> Result<Mode> {
    let mode = rows.first().map_or(Mode::Max, |r| r.mode);
    if rows.iter().any(|r| r.mode != mode) {
        return Err(Error::Analysis(format!(
            "the runs of {config}/{variant} disagree on whether `{metric}` is better higher or lower"
        )));
    }
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seed: u64, value: f64, mode: Mode) -> RunRow {
        RunRow {
            experiment: "pi".into(),
            variant: "default".into(),
            seed: Some(seed),
            status: "completed".into(),
            value: Some(value),
            mode,
            finished_at: None,
            path: format!("pi/default/seed_{seed}"),
        }
    }

    #[test]
    fn a_lower_is_better_metric_picks_the_lowest_seed_value() -> Result<()> {
        let plan: PlannedExperiment = serde_yaml_ng::from_str(
            "config: pi
",
        )
        .map_err(|e| Error::Analysis(e.to_string()))?;
        let runs = [0.3, 0.1, 0.2]
            .iter()
            .enumerate()
            .map(|(s, v)| row(s as u64, *v, Mode::Min))
            .collect::<Vec<_>>();
        let result = compute(&plan, &runs, "val_position_rmse")?;
        assert_eq!((result[0].best_seed, result[0].best_value), (1, 0.1));
        assert_eq!(result[0].mode, Mode::Min);
        let mut mixed = runs.clone();
        mixed[0].mode = Mode::Max;
        assert!(compute(&plan, &mixed, "val_position_rmse").is_err());
        Ok(())
    }
}
