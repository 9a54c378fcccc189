//! Evidence reports: for a selection of experiments, `report.md` with summary and paired
//! tables, the CSVs behind them, and figures, listing every run directory (with its config hash
//! and git commit) that a number came from.

use std::path::{Path, PathBuf};

use polars::prelude::{BooleanChunked, DataFrame, NewChunkedArray};
use serde::Serialize;

use super::{is_percent, num, pvalue, render, value_text};
use crate::error::{Error, Result};
use crate::frame::{column, f64_column, str_column, to_csv as csv};
use crate::fsutil::write_atomic;
use crate::metric::{MetricSpec, Mode};
use crate::plot::{Figure, FinalMetric, LearningCurves};
use crate::runs::{direction_text, metric_spec, metrics_column_names, Problem, RunScan};
use crate::stats::{paired_comparisons, summarize, Group, Pair};

/// What a report covers and how it is labelled.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// Report title.
    pub title: String,
    /// Groups to include (`experiment` selects all its variants).
    pub groups: Vec<Group>,
    /// Group every other group is compared with, seed by seed.
    pub baseline: Option<Group>,
    /// Run metric summarised and compared: any numeric `runs` column (`best_val_acc`,
    /// `objective_best`, `test_position_rmse`); its direction and unit come from the runs
    /// ([`crate::runs::metric_spec`]).
    pub metric: String,
    /// History column for the learning curves (any `history` column, e.g. `val_acc`,
    /// `val_position_rmse`); `None`: the selected runs' objective (`val_acc` for version 1).
    pub curve_metric: Option<String>,
    /// How the runs root is shown in the report.
    pub root: String,
    /// Generation time shown in the report.
    pub generated: String,
    /// Directory whose `report.md.j2` overrides the shipped template.
    pub templates: Option<PathBuf>,
}

impl ReportOptions {
    /// Options for `groups` with the defaults: `best_val_acc`, curves of the runs' objective,
    /// the first group as baseline when there are several, generated now.
    pub fn new(title: impl Into<String>, groups: Vec<Group>, root: impl Into<String>) -> Self {
        ReportOptions {
            title: title.into(),
            baseline: (groups.len() > 1).then(|| groups[0].clone()),
            groups,
            metric: "best_val_acc".into(),
            curve_metric: None,
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
    /// Figures, each with its file stem.
    pub figures: Vec<NamedFigure>,
}

/// A report's figure and the file stem it is saved under (`<stem>.svg`, `<stem>.png`).
#[derive(Debug, Clone)]
pub struct NamedFigure {
    /// File stem, e.g. `learning_curves`.
    pub stem: String,
    /// The rendered figure.
    pub figure: Figure,
}

impl EvidenceReport {
    /// The figure saved as `stem` (`learning_curves`, `final_metric`), if the report has it.
    pub fn figure(&self, stem: &str) -> Option<&Figure> {
        self.figures
            .iter()
            .find(|f| f.stem == stem)
            .map(|f| &f.figure)
    }

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
        let spec = metric_spec(&runs, &options.metric)?;
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
        let names = metrics_column_names(&runs);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let by_seed = crate::frame::select(&runs, &names)?;
        let history = select(&scan.history, &options.groups)?;
        let mut figures = Vec::new();
        if history.height() > 0 {
            let curve_metric = curve_metric(options, &runs)?;
            let unit = metric_spec(&runs, &curve_metric).map_or_else(|_| String::new(), |s| s.unit);
            let curves = LearningCurves::from_history(&history, &curve_metric)?.with_unit(unit);
            figures.push(NamedFigure {
                stem: "learning_curves".into(),
                figure: Figure::render(&curves)?,
            });
        }
        if summary.height() > 0 {
            let points = FinalMetric::from_frames(&summary, &runs)?.with_unit(spec.unit.clone());
            figures.push(NamedFigure {
                stem: "final_metric".into(),
                figure: Figure::render(&points)?,
            });
        }
        let frames = Frames {
            runs: &runs,
            summary: &summary,
            paired: paired.as_ref(),
        };
        let context = Context::new(options, &spec, frames, &figures, scan)?;
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
        for NamedFigure { stem, figure } in &self.figures {
            let saved = figure.save(dir, stem)?;
            written.push(saved.svg);
            written.push(saved.png);
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

/// The history column of the learning curves: the one asked for, else the objective of the
/// selected runs (the first run's).
fn curve_metric(options: &ReportOptions, runs: &DataFrame) -> Result<String> {
    if let Some(name) = &options.curve_metric {
        return Ok(name.clone());
    }
    let objective = if column(runs, "objective").is_ok() {
        str_column(runs, "objective")?.into_iter().flatten().next()
    } else {
        None
    };
    Ok(objective.unwrap_or_else(|| "val_acc".into()))
}

/// Every summary group other than the baseline, paired with the baseline.
fn comparison_pairs(summary: &DataFrame, base: &Group) -> Result<Vec<Pair>> {
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
            let model = Group {
                experiment: e,
                variant: Some(v),
            };
            Pair::new(model, base.clone())
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
    /// The metric's unit and direction when worth saying (` (world units; lower is better)`),
    /// else empty: a fraction is shown in percent and higher is the default.
    metric_note: String,
    /// Whether lower values are better (the paired table then says what a delta means).
    lower_is_better: bool,
    /// ` (%)` for fractions (shown in percent), else empty.
    unit: &'static str,
    /// ` (pp)` for differences of fractions (percentage points), else empty.
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

/// The frames a report is built from.
#[derive(Clone, Copy)]
struct Frames<'a> {
    runs: &'a DataFrame,
    summary: &'a DataFrame,
    paired: Option<&'a DataFrame>,
}

/// How a metric's values are written: in percent for a fraction, else four decimals.
#[derive(Clone, Copy)]
struct Format {
    percent: bool,
}

impl Format {
    /// One value, or `—` when missing.
    fn value(self, x: Option<f64>) -> String {
        match x {
            Some(v) if v.is_finite() && self.percent => super::pct(v),
            other => num(other),
        }
    }

    /// `[low, high]`, or `—` when the interval is undefined.
    fn interval(self, low: Option<f64>, high: Option<f64>) -> String {
        match (low, high) {
            (Some(a), Some(b)) => format!("[{}, {}]", self.value(Some(a)), self.value(Some(b))),
            _ => "—".into(),
        }
    }
}

/// ` (<unit>; lower is better)` as far as either applies, else empty.
fn metric_note(spec: &MetricSpec) -> String {
    let mut notes: Vec<&str> = Vec::new();
    if !spec.unit.is_empty() && !is_percent(&spec.unit) {
        notes.push(&spec.unit);
    }
    if spec.mode == Mode::Min {
        notes.push(direction_text(Mode::Min));
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    }
}

/// A cell's text, `—` when missing.
fn text(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "—".into())
}

impl Context {
    fn new(
        options: &ReportOptions,
        spec: &MetricSpec,
        frames: Frames<'_>,
        figures: &[NamedFigure],
        scan: &RunScan,
    ) -> Result<Context> {
        let format = Format {
            percent: is_percent(&spec.unit),
        };
        let paired = match frames.paired {
            Some(p) => paired_rows(p, format)?,
            None => Vec::new(),
        };
        let figure_refs = figures
            .iter()
            .map(|NamedFigure { stem, .. }| FigureRef {
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
            metric: options.metric.clone(),
            metric_note: metric_note(spec),
            lower_is_better: spec.mode == Mode::Min,
            unit: if format.percent { " (%)" } else { "" },
            delta_unit: if format.percent { " (pp)" } else { "" },
            summary: summary_rows(frames.summary, format)?,
            paired,
            figures: figure_refs,
            runs: run_rows(frames.runs, &options.metric, format)?,
            problems,
        })
    }
}

/// The summary table's rows.
fn summary_rows(summary: &DataFrame, format: Format) -> Result<Vec<SummaryRow>> {
    let s = |c: &str| str_column(summary, c);
    let f = |c: &str| f64_column(summary, c);
    let (e, v, m, d) = (s("experiment")?, s("variant")?, s("model")?, s("dataset")?);
    let (n, mean, std) = (f("n_seeds")?, f("mean")?, f("std")?);
    let (lo, hi, bs, bv) = (
        f("ci95_low")?,
        f("ci95_high")?,
        f("best_seed")?,
        f("best_value")?,
    );
    Ok((0..summary.height())
        .map(|i| SummaryRow {
            experiment: text(&e[i]),
            variant: text(&v[i]),
            model: text(&m[i]),
            dataset: text(&d[i]),
            n: n[i].unwrap_or(0.0) as u64,
            mean: format.value(mean[i]),
            std: format.value(std[i]),
            ci: format.interval(lo[i], hi[i]),
            best: format!(
                "seed {} ({})",
                bs[i].unwrap_or(0.0) as u64,
                value_text(bv[i].unwrap_or(f64::NAN), format.percent)
            ),
        })
        .collect())
}

/// The paired table's rows.
fn paired_rows(p: &DataFrame, format: Format) -> Result<Vec<PairedRow>> {
    let f = |c: &str| f64_column(p, c);
    let (m, b) = (str_column(p, "model")?, str_column(p, "baseline_model")?);
    let (n, mean, std, lo, hi) = (
        f("paired_seed_count")?,
        f("mean_delta")?,
        f("std_delta")?,
        f("ci95_low")?,
        f("ci95_high")?,
    );
    let (tp, wp, d) = (f("t_pvalue")?, f("wilcoxon_pvalue")?, f("cohens_d")?);
    Ok((0..p.height())
        .map(|i| PairedRow {
            model: text(&m[i]),
            baseline: text(&b[i]),
            n: n[i].unwrap_or(0.0) as u64,
            mean: format.value(mean[i]),
            std: format.value(std[i]),
            ci: format.interval(lo[i], hi[i]),
            t_p: pvalue(tp[i]),
            w_p: pvalue(wp[i]),
            d: num(d[i]),
        })
        .collect())
}

/// The runs table's rows: every selected run with its value of `metric`.
fn run_rows(runs: &DataFrame, metric: &str, format: Format) -> Result<Vec<RunRow>> {
    let s = |c: &str| str_column(runs, c);
    let (path, status, seed) = (s("path")?, s("status")?, f64_column(runs, "seed")?);
    let (value, hash, commit) = (
        f64_column(runs, metric)?,
        s("config_hash")?,
        s("git_commit")?,
    );
    Ok((0..runs.height())
        .map(|i| RunRow {
            path: text(&path[i]),
            status: text(&status[i]),
            used: if status[i].as_deref() == Some("completed") && value[i].is_some() {
                "yes"
            } else {
                "no"
            },
            seed: seed[i].map_or("—".into(), |x| (x as u64).to_string()),
            value: format.value(value[i]),
            config_hash: text(&hash[i]),
            git_commit: commit[i]
                .as_deref()
                .map_or("—".into(), |c| c.chars().take(12).collect()),
        })
        .collect())
}
