//! Evidence reports: for a selection of experiments, `report.md` with summary and paired
//! tables, the CSVs behind them, and figures, listing every run directory (with its config hash
//! and git commit) that a number came from.

use std::path::{Path, PathBuf};

use polars::prelude::{BooleanChunked, DataFrame, NewChunkedArray};
use serde::Serialize;

use super::{num, pct, pvalue, render};
use crate::error::{Error, Result};
use crate::frame::{f64_column, str_column, to_csv as csv};
use crate::fsutil::write_atomic;
use crate::plot::{Figure, FinalMetric, LearningCurves};
use crate::runs::{Problem, RunScan, RUN_COLUMNS};
use crate::stats::{paired_comparisons, summarize, Group};

/// What a report covers and how it is labelled.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// Report title.
    pub title: String,
    /// Groups to include (`experiment` selects all its variants).
    pub groups: Vec<Group>,
    /// Group every other group is compared with, seed by seed.
    pub baseline: Option<Group>,
    /// Run metric summarised and compared (a `runs` column, e.g. `best_val_acc`).
    pub metric: String,
    /// History column for the learning curves (e.g. `val_acc`).
    pub curve_metric: String,
    /// How the runs root is shown in the report.
    pub root: String,
    /// Generation time shown in the report.
    pub generated: String,
    /// Directory whose `report.md.j2` overrides the shipped template.
    pub templates: Option<PathBuf>,
}

impl ReportOptions {
    /// Options for `groups` with the defaults: `best_val_acc`, curves of `val_acc`, the first
    /// group as baseline when there are several, generated now.
    pub fn new(title: impl Into<String>, groups: Vec<Group>, root: impl Into<String>) -> Self {
        ReportOptions {
            title: title.into(),
            baseline: (groups.len() > 1).then(|| groups[0].clone()),
            groups,
            metric: "best_val_acc".into(),
            curve_metric: "val_acc".into(),
            root: root.into(),
            generated: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            templates: None,
        }
    }
}

/// A built report: its markdown, frames and figures, written by [`EvidenceReport::write`].
#[derive(Debug, Clone)]
pub struct EvidenceReport {
    /// `report.md`.
    pub markdown: String,
    /// `metrics_by_seed.csv`: the selected runs, one row each, with every `metrics.json` field,
    /// the config hash and the run directory.
    pub by_seed: DataFrame,
    /// `metrics_summary.csv`: one row per experiment and variant.
    pub summary: DataFrame,
    /// `paired_comparisons.csv`, when a baseline was given.
    pub paired: Option<DataFrame>,
    /// Figures by file stem.
    pub figures: Vec<(String, Figure)>,
}

impl EvidenceReport {
    /// Builds the report of `options.groups` from a scan.
    pub fn build(scan: &RunScan, options: &ReportOptions) -> Result<EvidenceReport> {
        if options.groups.is_empty() {
            return Err(Error::Analysis(
                "a report needs at least one experiment (or experiment/variant)".into(),
            ));
        }
        let runs = select(&scan.runs, &options.groups)?;
        if runs.height() == 0 {
            let (e, v) = (
                str_column(&scan.runs, "experiment")?,
                str_column(&scan.runs, "variant")?,
            );
            let mut there: Vec<String> = e
                .iter()
                .zip(&v)
                .filter_map(|(e, v)| Some(Group::label(e.as_deref()?, v.as_deref()?)))
                .collect();
            there.sort();
            there.dedup();
            return Err(Error::Analysis(format!(
                "no runs of {} under {} (there are: {})",
                labels(&options.groups),
                options.root,
                if there.is_empty() {
                    "none".into()
                } else {
                    there.join(", ")
                }
            )));
        }
        let summary = summarize(&runs, &options.metric)?;
        let paired = match &options.baseline {
            Some(base) => {
                let pairs = comparison_pairs(&summary, base)?;
                (!pairs.is_empty())
                    .then(|| paired_comparisons(&runs, &options.metric, &pairs))
                    .transpose()?
            }
            None => None,
        };
        let by_seed = crate::frame::select(&runs, RUN_COLUMNS)?;
        let history = select(&scan.history, &options.groups)?;
        let mut figures = Vec::new();
        if history.height() > 0 {
            let curves = LearningCurves::from_history(&history, &options.curve_metric)?;
            figures.push(("learning_curves".to_string(), Figure::render(&curves)?));
        }
        if summary.height() > 0 {
            let points = FinalMetric::from_frames(&summary, &runs)?;
            figures.push(("final_metric".to_string(), Figure::render(&points)?));
        }
        let context = Context::new(options, &runs, &summary, paired.as_ref(), &figures, scan)?;
        let markdown = render("report.md.j2", options.templates.as_deref(), context)?;
        Ok(EvidenceReport {
            markdown,
            by_seed,
            summary,
            paired,
            figures,
        })
    }

    /// Writes `report.md`, the CSVs and the figures (SVG and PNG) into `dir`, each atomically;
    /// returns the paths written.
    pub fn write(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
        let dir = dir.as_ref();
        let mut written = Vec::new();
        let mut put = |name: &str, bytes: &[u8]| -> Result<()> {
            let path = dir.join(name);
            write_atomic(&path, bytes)?;
            written.push(path);
            Ok(())
        };
        put("report.md", self.markdown.as_bytes())?;
        put("metrics_by_seed.csv", &csv(&self.by_seed)?)?;
        put("metrics_summary.csv", &csv(&self.summary)?)?;
        if let Some(p) = &self.paired {
            put("paired_comparisons.csv", &csv(p)?)?;
        }
        for (stem, figure) in &self.figures {
            let (svg, png) = figure.save(dir, stem)?;
            written.push(svg);
            written.push(png);
        }
        Ok(written)
    }
}

/// The rows of `df` (with `experiment` and `variant` columns) in any of `groups`.
fn select(df: &DataFrame, groups: &[Group]) -> Result<DataFrame> {
    let (exp, var) = (str_column(df, "experiment")?, str_column(df, "variant")?);
    let mask: Vec<bool> = exp
        .iter()
        .zip(&var)
        .map(|(e, v)| {
            groups.iter().any(|g| {
                e.as_deref() == Some(g.experiment.as_str())
                    && g.variant
                        .as_ref()
                        .is_none_or(|want| v.as_ref() == Some(want))
            })
        })
        .collect();
    df.filter(&BooleanChunked::from_slice("selected".into(), &mask))
        .map_err(|e| Error::Analysis(format!("selecting runs: {e}")))
}

/// Every summary group other than the baseline, paired with the baseline.
fn comparison_pairs(summary: &DataFrame, base: &Group) -> Result<Vec<(Group, Group)>> {
    let (exp, var) = (
        str_column(summary, "experiment")?,
        str_column(summary, "variant")?,
    );
    Ok(exp
        .into_iter()
        .zip(var)
        .filter_map(|(e, v)| Some((e?, v?)))
        .filter(|(e, v)| !(*e == base.experiment && base.variant.as_ref().is_none_or(|b| b == v)))
        .map(|(e, v)| {
            (
                Group {
                    experiment: e,
                    variant: Some(v),
                },
                base.clone(),
            )
        })
        .collect())
}

fn labels(groups: &[Group]) -> String {
    groups
        .iter()
        .map(|g| Group::label(&g.experiment, g.variant.as_deref().unwrap_or("default")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What `report.md.j2` sees.
#[derive(Debug, Serialize)]
struct Context {
    title: String,
    generated: String,
    version: &'static str,
    root: String,
    metric: String,
    /// ` (%)` for accuracies (shown in percent), else empty.
    unit: &'static str,
    /// ` (pp)` for accuracy differences (percentage points), else empty.
    delta_unit: &'static str,
    summary: Vec<SummaryRow>,
    paired: Vec<PairedRow>,
    figures: Vec<FigureRef>,
    runs: Vec<RunRow>,
    problems: Vec<ProblemRow>,
}

#[derive(Debug, Serialize)]
struct SummaryRow {
    experiment: String,
    variant: String,
    model: String,
    dataset: String,
    n: u64,
    mean: String,
    std: String,
    ci: String,
    best: String,
}

#[derive(Debug, Serialize)]
struct PairedRow {
    model: String,
    baseline: String,
    n: u64,
    mean: String,
    std: String,
    ci: String,
    t_p: String,
    w_p: String,
    d: String,
}

#[derive(Debug, Serialize)]
struct FigureRef {
    caption: String,
    file: String,
}

#[derive(Debug, Serialize)]
struct RunRow {
    path: String,
    status: String,
    used: &'static str,
    seed: String,
    value: String,
    config_hash: String,
    git_commit: String,
}

#[derive(Debug, Serialize)]
struct ProblemRow {
    path: String,
    reason: String,
}

/// Whether `metric` is an accuracy (a fraction shown in percent).
fn percent(metric: &str) -> bool {
    metric.ends_with("_acc")
}

/// `[low, high]` in the metric's format, or `—` when the interval is undefined.
fn interval_text(metric: &str, low: Option<f64>, high: Option<f64>) -> String {
    match (low, high) {
        (Some(a), Some(b)) => format!(
            "[{}, {}]",
            metric_text(metric, Some(a)),
            metric_text(metric, Some(b))
        ),
        _ => "—".into(),
    }
}

/// Percent with two decimals for accuracies, else four decimals.
fn metric_text(metric: &str, x: Option<f64>) -> String {
    match x {
        Some(v) if percent(metric) => pct(v),
        other => num(other),
    }
}

impl Context {
    fn new(
        options: &ReportOptions,
        runs: &DataFrame,
        summary: &DataFrame,
        paired: Option<&DataFrame>,
        figures: &[(String, Figure)],
        scan: &RunScan,
    ) -> Result<Context> {
        let metric = options.metric.as_str();
        let s = |df: &DataFrame, c: &str| str_column(df, c);
        let f = |df: &DataFrame, c: &str| f64_column(df, c);
        let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
        let mut summary_rows = Vec::new();
        {
            let (e, v, m, d) = (
                s(summary, "experiment")?,
                s(summary, "variant")?,
                s(summary, "model")?,
                s(summary, "dataset")?,
            );
            let (n, mean, std) = (
                f(summary, "n_seeds")?,
                f(summary, "mean")?,
                f(summary, "std")?,
            );
            let (lo, hi, bs, bv) = (
                f(summary, "ci95_low")?,
                f(summary, "ci95_high")?,
                f(summary, "best_seed")?,
                f(summary, "best_value")?,
            );
            for i in 0..summary.height() {
                let acc = percent(metric);
                summary_rows.push(SummaryRow {
                    experiment: text(&e[i]),
                    variant: text(&v[i]),
                    model: text(&m[i]),
                    dataset: text(&d[i]),
                    n: n[i].unwrap_or(0.0) as u64,
                    mean: metric_text(metric, mean[i]),
                    std: metric_text(metric, std[i]),
                    ci: interval_text(metric, lo[i], hi[i]),
                    best: format!(
                        "seed {} ({})",
                        bs[i].unwrap_or(0.0) as u64,
                        if acc {
                            format!("{}%", pct(bv[i].unwrap_or(f64::NAN)))
                        } else {
                            num(bv[i])
                        }
                    ),
                });
            }
        }
        let mut paired_rows = Vec::new();
        if let Some(p) = paired {
            let (m, b) = (s(p, "model")?, s(p, "baseline_model")?);
            let (n, mean, std, lo, hi) = (
                f(p, "paired_seed_count")?,
                f(p, "mean_delta")?,
                f(p, "std_delta")?,
                f(p, "ci95_low")?,
                f(p, "ci95_high")?,
            );
            let (tp, wp, d) = (
                f(p, "t_pvalue")?,
                f(p, "wilcoxon_pvalue")?,
                f(p, "cohens_d")?,
            );
            for i in 0..p.height() {
                paired_rows.push(PairedRow {
                    model: text(&m[i]),
                    baseline: text(&b[i]),
                    n: n[i].unwrap_or(0.0) as u64,
                    mean: metric_text(metric, mean[i]),
                    std: metric_text(metric, std[i]),
                    ci: interval_text(metric, lo[i], hi[i]),
                    t_p: pvalue(tp[i]),
                    w_p: pvalue(wp[i]),
                    d: num(d[i]),
                });
            }
        }
        let (path, status, seed) = (s(runs, "path")?, s(runs, "status")?, f(runs, "seed")?);
        let (value, hash, commit) = (
            f(runs, metric)?,
            s(runs, "config_hash")?,
            s(runs, "git_commit")?,
        );
        let run_rows = (0..runs.height())
            .map(|i| RunRow {
                path: text(&path[i]),
                status: text(&status[i]),
                used: if status[i].as_deref() == Some("completed") && value[i].is_some() {
                    "yes"
                } else {
                    "no"
                },
                seed: seed[i].map_or("—".into(), |x| (x as u64).to_string()),
                value: metric_text(metric, value[i]),
                config_hash: text(&hash[i]),
                git_commit: commit[i]
                    .as_deref()
                    .map_or("—".into(), |c| c.chars().take(12).collect()),
            })
            .collect();
        let figure_refs = figures
            .iter()
            .map(|(stem, _)| FigureRef {
                caption: stem.replace('_', " "),
                file: format!("{stem}.svg"),
            })
            .collect();
        let problems = scan
            .problems
            .iter()
            .map(|Problem { path, reason }| ProblemRow {
                path: path.display().to_string(),
                reason: reason.clone(),
            })
            .collect();
        Ok(Context {
            title: options.title.clone(),
            generated: options.generated.clone(),
            version: env!("CARGO_PKG_VERSION"),
            root: options.root.clone(),
            metric: metric.to_string(),
            unit: if percent(metric) { " (%)" } else { "" },
            delta_unit: if percent(metric) { " (pp)" } else { "" },
            summary: summary_rows,
            paired: paired_rows,
            figures: figure_refs,
            runs: run_rows,
            problems,
        })
    }
}
