//! The statistics of [`super`] over the `runs` frame of [`crate::runs::scan`]: frames in,
//! frames out.

use std::collections::BTreeMap;

use polars::prelude::DataFrame;

use super::{describe, paired, PairedTest};
use crate::error::{Error, Result};
use crate::frame::{f64_column, str_column, Frame, Values};
use crate::metric::MetricSpec;
use crate::runs::{agreed_spec, row_specs};

/// Columns of [`summarize`]'s frame, in order.
pub const SUMMARY_COLUMNS: &[&str] = &[
    "experiment",
    "variant",
    "model",
    "dataset",
    "metric",
    "mode",
    "unit",
    "n_seeds",
    "mean",
    "std",
    "ci95_low",
    "ci95_high",
    "best_seed",
    "best_value",
    "seeds",
];

/// Columns of [`paired_comparisons`]' frame, in order: the reference's
/// `paired_comparisons.csv` columns, then the tests.
pub const PAIRED_COLUMNS: &[&str] = &[
    "model",
    "baseline_model",
    "comparison_type",
    "metric",
    "paired_seed_count",
    "mean_delta",
    "std_delta",
    "se_delta",
    "ci95_low",
    "ci95_high",
    "t_statistic",
    "t_pvalue",
    "wilcoxon_statistic",
    "wilcoxon_pvalue",
    "cohens_d",
];

/// One experiment, or one variant of it: `name` or `name/variant`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Group {
    /// Experiment name.
    pub experiment: String,
    /// Variant name; `None` means the experiment's only variant.
    pub variant: Option<String>,
}

impl Group {
    /// Parses `experiment` or `experiment/variant`.
    pub fn parse(text: &str) -> Result<Group> {
        let (experiment, variant) = match text.split_once('/') {
            Some((e, v)) => (e, Some(v.to_string())),
            None => (text, None),
        };
        if experiment.is_empty() || variant.as_deref() == Some("") {
            return Err(Error::Analysis(format!(
                "`{text}` is not a run group; write `experiment` or `experiment/variant`"
            )));
        }
        Ok(Group {
            experiment: experiment.to_string(),
            variant,
        })
    }

    /// `experiment`, or `experiment/variant` unless the variant is `default`.
    pub fn label(experiment: &str, variant: &str) -> String {
        if variant == "default" {
            experiment.to_string()
        } else {
            format!("{experiment}/{variant}")
        }
    }
}

/// The completed runs of `runs` with a value of `metric`, as `(experiment, variant) -> rows`.
struct Completed {
    groups: BTreeMap<(String, String), Rows>,
}

/// One group's completed runs (by seed) and the metric's direction and unit in them.
#[derive(Debug, Clone)]
struct Rows {
    rows: Vec<Row>,
    spec: MetricSpec,
}

/// A completed run and what it says of the metric's direction and unit.
type RowSpec = (Row, Option<MetricSpec>);

/// One completed run's fields used by the statistics.
#[derive(Debug, Clone)]
struct Row {
    seed: u64,
    value: f64,
    model: String,
    dataset: String,
}

impl Completed {
    fn of(runs: &DataFrame, metric: &str) -> Result<Completed> {
        let experiment = str_column(runs, "experiment")?;
        let variant = str_column(runs, "variant")?;
        let status = str_column(runs, "status")?;
        let model = str_column(runs, "model")?;
        let dataset = str_column(runs, "dataset")?;
        let seed = f64_column(runs, "seed")?;
        let value = f64_column(runs, metric)?;
        let specs = row_specs(runs, metric)?;
        let mut found: BTreeMap<(String, String), Vec<RowSpec>> = BTreeMap::new();
        for i in 0..runs.height() {
            let (Some(e), Some(v), Some(s), Some(x)) =
                (&experiment[i], &variant[i], seed[i], value[i])
            else {
                continue;
            };
            if status[i].as_deref() != Some("completed") {
                continue;
            }
            let row = Row {
                seed: s as u64,
                value: x,
                model: model[i].clone().unwrap_or_default(),
                dataset: dataset[i].clone().unwrap_or_default(),
            };
            found
                .entry((e.clone(), v.clone()))
                .or_default()
                .push((row, specs[i].clone()));
        }
        let mut groups = BTreeMap::new();
        for (key, found) in found {
            let (mut rows, specs): (Vec<Row>, Vec<Option<MetricSpec>>) = found.into_iter().unzip();
            rows.sort_by_key(|r| r.seed);
            let spec = agreed_spec(metric, specs.into_iter().flatten())?;
            groups.insert(key, Rows { rows, spec });
        }
        Ok(Completed { groups })
    }

    /// The rows of `group`, with an error listing the groups there are.
    fn rows(&self, group: &Group) -> Result<(&(String, String), &Rows)> {
        let matches: Vec<_> = self
            .groups
            .iter()
            .filter(|((e, v), _)| {
                *e == group.experiment && group.variant.as_ref().is_none_or(|want| want == v)
            })
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::Analysis(format!(
                "no completed runs of `{}` (groups with completed runs: {})",
                Group::label(
                    &group.experiment,
                    group.variant.as_deref().unwrap_or("default")
                ),
                self.names().join(", ")
            ))),
            many => Err(Error::Analysis(format!(
                "`{}` has several variants ({}); name one as experiment/variant",
                group.experiment,
                many.iter()
                    .map(|((_, v), _)| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    fn names(&self) -> Vec<String> {
        self.groups
            .keys()
            .map(|(e, v)| Group::label(e, v))
            .collect()
    }
}

/// Per experiment and variant, over completed runs with a value of `metric` (any numeric
/// `runs` column, e.g. `best_val_acc`, `objective_best`, `test_position_rmse`): number of
/// seeds, mean, sample std (ddof 1), 95% t interval of the mean, the best seed and its value
/// in the metric's direction (the lowest for a lower-is-better metric; see
/// [`crate::runs::row_specs`]), the direction (`max` / `min`) and unit, and the seeds used
/// ([`SUMMARY_COLUMNS`]).
pub fn summarize(runs: &DataFrame, metric: &str) -> Result<DataFrame> {
    let completed = Completed::of(runs, metric)?;
    let mut out = SummaryColumns::default();
    for ((experiment, variant), Rows { rows, spec }) in &completed.groups {
        let values: Vec<f64> = rows.iter().map(|r| r.value).collect();
        let d = describe(&values)?;
        let Some(top) = super::best_by_seed(rows, spec.mode, |r| (r.value, r.seed)) else {
            continue;
        };
        out.experiment.push(experiment.clone());
        out.variant.push(variant.clone());
        out.model.push(rows[0].model.clone());
        out.dataset.push(rows[0].dataset.clone());
        out.mode.push(spec.mode.as_str().to_string());
        out.unit.push(spec.unit.clone());
        out.n.push(d.n as u64);
        out.mean.push(Some(d.mean));
        out.std.push(d.std);
        out.lo.push(d.ci95_low);
        out.hi.push(d.ci95_high);
        out.best_seed.push(top.seed);
        out.best.push(top.value);
        out.seeds.push(
            rows.iter()
                .map(|r| r.seed.to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    let metrics = vec![metric.to_string(); out.experiment.len()];
    Frame::new()
        .strs("experiment", out.experiment)
        .strs("variant", out.variant)
        .strs("model", out.model)
        .strs("dataset", out.dataset)
        .strs("metric", metrics)
        .strs("mode", out.mode)
        .strs("unit", out.unit)
        .u64s("n_seeds", out.n)
        .with("mean", Values::F64(out.mean))
        .with("std", Values::F64(out.std))
        .with("ci95_low", Values::F64(out.lo))
        .with("ci95_high", Values::F64(out.hi))
        .u64s("best_seed", out.best_seed)
        .f64s("best_value", out.best)
        .strs("seeds", out.seeds)
        .finish()
}

/// The columns of [`summarize`] while they are filled.
#[derive(Default)]
struct SummaryColumns {
    experiment: Vec<String>,
    variant: Vec<String>,
    model: Vec<String>,
    dataset: Vec<String>,
    mode: Vec<String>,
    unit: Vec<String>,
    n: Vec<u64>,
    mean: Vec<Option<f64>>,
    std: Vec<Option<f64>>,
    lo: Vec<Option<f64>>,
    hi: Vec<Option<f64>>,
    best_seed: Vec<u64>,
    best: Vec<f64>,
    seeds: Vec<String>,
}

/// Two groups compared seed by seed: `delta = model - baseline`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The group under test.
    pub model: Group,
    /// The reference it is compared with.
    pub baseline: Group,
}

impl Pair {
    /// `model` against `baseline`.
    pub fn new(model: Group, baseline: Group) -> Pair {
        Pair { model, baseline }
    }
}

/// Seed-paired comparisons of `metric` (any numeric `runs` column) for each [`Pair`] of
/// groups: the seeds both have completed, `delta = model - baseline`
/// ([`PAIRED_COLUMNS`]; for a lower-is-better metric a negative delta is an improvement). An
/// error names a group with no completed runs or no seed in common with its baseline, or a
/// pair whose metric improves in opposite directions (different tasks).
pub fn paired_comparisons(runs: &DataFrame, metric: &str, pairs: &[Pair]) -> Result<DataFrame> {
    let completed = Completed::of(runs, metric)?;
    let mut labels = Vec::new();
    let mut tests: Vec<PairedTest> = Vec::new();
    for Pair { model, baseline } in pairs {
        let ((me, mv), mrows) = completed.rows(model)?;
        let ((be, bv), brows) = completed.rows(baseline)?;
        agreed_spec(metric, [mrows.spec.clone(), brows.spec.clone()])?;
        let by_seed: BTreeMap<u64, f64> = brows.rows.iter().map(|r| (r.seed, r.value)).collect();
        let (a, b): (Vec<f64>, Vec<f64>) = mrows
            .rows
            .iter()
            .filter_map(|r| by_seed.get(&r.seed).map(|&base| (r.value, base)))
            .unzip();
        if a.is_empty() {
            return Err(Error::Analysis(format!(
                "`{}` and `{}` have no completed seed in common",
                Group::label(me, mv),
                Group::label(be, bv)
            )));
        }
        labels.push((Group::label(me, mv), Group::label(be, bv)));
        tests.push(paired(&a, &b)?);
    }
    let col = |f: &dyn Fn(&PairedTest) -> Option<f64>| Values::F64(tests.iter().map(f).collect());
    Frame::new()
        .strs("model", labels.iter().map(|l| l.0.clone()))
        .strs("baseline_model", labels.iter().map(|l| l.1.clone()))
        .strs("comparison_type", labels.iter().map(|_| "paired_by_seed"))
        .strs("metric", labels.iter().map(|_| metric.to_string()))
        .u64s("paired_seed_count", tests.iter().map(|t| t.n as u64))
        .with("mean_delta", col(&|t| Some(t.mean_delta)))
        .with("std_delta", col(&|t| t.std_delta))
        .with("se_delta", col(&|t| t.se_delta))
        .with("ci95_low", col(&|t| t.ci95_low))
        .with("ci95_high", col(&|t| t.ci95_high))
        .with("t_statistic", col(&|t| t.t_statistic))
        .with("t_pvalue", col(&|t| t.t_pvalue))
        .with(
            "wilcoxon_statistic",
            col(&|t| t.wilcoxon.map(|w| w.statistic)),
        )
        .with("wilcoxon_pvalue", col(&|t| t.wilcoxon.map(|w| w.pvalue)))
        .with("cohens_d", col(&|t| t.cohens_d))
        .finish()
}
