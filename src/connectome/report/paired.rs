//! Paired comparisons of the connectome with every other trained model, per split and metric
//! (`paired_comparisons.csv`, `matched_topology_comparisons.csv`).

use polars::prelude::DataFrame;

use super::collect::{is_matched_control, Sweep, BASELINE};
use super::tables::{direction, metric_columns, value, Column};
use crate::error::Result;
use crate::frame::{Frame, Values};
use crate::metric::Mode;
use crate::stats::paired;

/// One paired comparison: the connectome minus another model over their common seeds.
#[derive(Debug, Clone)]
pub struct PairedRow {
    /// `connectome`.
    pub model: String,
    /// The model compared with.
    pub baseline: String,
    /// `matched_topology_control` or `reference_baseline`.
    pub kind: &'static str,
    /// Split.
    pub split: String,
    /// Metric column.
    pub metric: Column,
    /// Seeds paired.
    pub n: usize,
    /// Mean of connectome - baseline.
    pub mean_delta: f64,
    /// Sample std of the deltas.
    pub std_delta: Option<f64>,
    /// Standard error.
    pub se_delta: Option<f64>,
    /// Paired t-test p-value.
    pub t_pvalue: Option<f64>,
    /// Wilcoxon signed-rank p-value.
    pub wilcoxon_pvalue: Option<f64>,
    /// Whether the connectome is better on average, in the metric's direction.
    pub connectome_better: bool,
}

/// Paired deltas of the connectome against every other trained model, per split and metric.
pub fn paired_rows(sweep: &Sweep) -> Result<Vec<PairedRow>> {
    let mut out = Vec::new();
    for other in sweep.models() {
        if other == BASELINE
            || sweep
                .rows
                .iter()
                .all(|r| r.model != other || r.seed.is_none())
        {
            continue;
        }
        let kind = if is_matched_control(&other) {
            "matched_topology_control"
        } else {
            "reference_baseline"
        };
        for (split, _, _) in sweep.splits() {
            let (a, b) = (
                sweep.seeds_of(BASELINE, &split),
                sweep.seeds_of(&other, &split),
            );
            let common: Vec<u64> = a.keys().filter(|s| b.contains_key(s)).copied().collect();
            if common.is_empty() {
                continue;
            }
            for c in metric_columns(sweep) {
                let xs: Vec<f64> = common
                    .iter()
                    .filter_map(|s| value(sweep, a[s], &c))
                    .collect();
                let ys: Vec<f64> = common
                    .iter()
                    .filter_map(|s| value(sweep, b[s], &c))
                    .collect();
                if xs.len() != common.len() || ys.len() != common.len() {
                    continue;
                }
                let p = paired(&xs, &ys)?;
                out.push(PairedRow {
                    model: BASELINE.into(),
                    baseline: other.clone(),
                    kind,
                    split: split.clone(),
                    metric: c,
                    n: p.n,
                    mean_delta: p.mean_delta,
                    std_delta: p.std_delta,
                    se_delta: p.se_delta,
                    t_pvalue: p.t_pvalue,
                    wilcoxon_pvalue: p.wilcoxon.map(|w| w.pvalue),
                    connectome_better: match c.mode {
                        Mode::Min => p.mean_delta < 0.0,
                        Mode::Max => p.mean_delta > 0.0,
                    },
                });
            }
        }
    }
    Ok(out)
}

/// `paired_comparisons.csv` (or, `matched_only`, `matched_topology_comparisons.csv`):
/// upstream's columns (CI = mean ∓ 1.96 SE, empty below 2 seeds) plus direction, p-values and
/// which side is better.
pub fn paired_frame(rows: &[PairedRow], matched_only: bool) -> Result<DataFrame> {
    let rows: Vec<&PairedRow> = rows
        .iter()
        .filter(|r| !matched_only || r.kind == "matched_topology_control")
        .collect();
    let ci = |r: &PairedRow, s: f64| {
        r.se_delta
            .filter(|_| r.n >= 2)
            .map(|se| r.mean_delta + s * 1.96 * se)
    };
    Frame::new()
        .strs("model", rows.iter().map(|r| r.model.clone()))
        .strs("baseline_model", rows.iter().map(|r| r.baseline.clone()))
        .strs("comparison_type", rows.iter().map(|r| r.kind))
        .strs("split", rows.iter().map(|r| r.split.clone()))
        .strs("metric", rows.iter().map(|r| r.metric.name))
        .strs("direction", rows.iter().map(|r| direction(r.metric.mode)))
        .strs("unit", rows.iter().map(|r| r.metric.unit))
        .u64s("paired_seed_count", rows.iter().map(|r| r.n as u64))
        .f64s("mean_delta", rows.iter().map(|r| r.mean_delta))
        .with(
            "std_delta",
            Values::F64(rows.iter().map(|r| r.std_delta).collect()),
        )
        .with(
            "se_delta",
            Values::F64(rows.iter().map(|r| r.se_delta).collect()),
        )
        .with(
            "ci95_low",
            Values::F64(rows.iter().map(|r| ci(r, -1.0)).collect()),
        )
        .with(
            "ci95_high",
            Values::F64(rows.iter().map(|r| ci(r, 1.0)).collect()),
        )
        .with(
            "t_pvalue",
            Values::F64(rows.iter().map(|r| r.t_pvalue).collect()),
        )
        .with(
            "wilcoxon_pvalue",
            Values::F64(rows.iter().map(|r| r.wilcoxon_pvalue).collect()),
        )
        .with(
            "connectome_better",
            Values::Bool(rows.iter().map(|r| Some(r.connectome_better)).collect()),
        )
        .finish()
}
