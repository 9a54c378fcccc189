//! The README leaderboard: per dataset, groups ranked by the seed mean of their objective (the
//! metric that picked each run's best checkpoint, in its direction: validation accuracy for
//! classification, e.g. a position error for path integration), labelled from an annotations
//! file (project, iteration, notes, invalid / abandoned), with the upstream projects' values
//! beside ours where a [`Fidelity`] comparison has them, and the replacement of the README's
//! marked section.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use polars::prelude::{BooleanChunked, DataFrame, NewChunkedArray};
use serde::{Deserialize, Serialize};

use super::fidelity::{Fidelity, FidelityRow};
use super::reference::{ReferenceStatus, Statistic};
use super::{is_percent, render, value_pm};
use crate::error::{Error, Result};
use crate::frame::{f64_column, str_column};
use crate::metric::{MetricSpec, Mode};
use crate::runs::{direction_text, OBJECTIVE_BEST};
use crate::stats::{summarize, Group};

/// Marks the start of the generated section in a README.
pub const BEGIN: &str = "<!-- leaderboard:begin -->";
/// Marks its end.
pub const END: &str = "<!-- leaderboard:end -->";

/// Standing of a leaderboard entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    /// Ranked in its dataset's table.
    #[default]
    Valid,
    /// Listed under "Invalid / abandoned": the result is wrong (e.g. a leak or a bug).
    Invalid,
    /// Listed under "Invalid / abandoned": the line of work was dropped.
    Abandoned,
}

/// Labels of one experiment (or variant) on the leaderboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Annotation {
    /// Research project the runs belong to.
    #[serde(default)]
    pub project: Option<String>,
    /// Iteration of that project.
    #[serde(default)]
    pub iteration: Option<String>,
    /// Free text shown in the Notes column (or the reason, when not valid).
    #[serde(default)]
    pub notes: Option<String>,
    /// Whether the entry is ranked.
    #[serde(default)]
    pub status: EntryStatus,
}

/// `leaderboard.yaml`: annotations keyed by `experiment` or `experiment/variant` (the more
/// specific key wins).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Annotations {
    /// Entries by group key.
    #[serde(default)]
    pub entries: BTreeMap<String, Annotation>,
}

impl Annotations {
    /// Reads an annotations file; a missing file means no annotations.
    pub fn load(path: &Path) -> Result<Annotations> {
        if !path.exists() {
            return Ok(Annotations::default());
        }
        let text = std::fs::read_to_string(path).map_err(Error::io("reading", path))?;
        serde_yaml_ng::from_str(&text).map_err(|e| Error::ConfigParse {
            path: path.to_path_buf(),
            message: format!(
                "{e} (expected `entries: {{<experiment>[/<variant>]: {{project, iteration, notes, status: valid|invalid|abandoned}}}}`)"
            ),
        })
    }

    /// Adds `other`'s entries; where both name the same key, `other`'s label wins (e.g. the
    /// labels of [`crate::state::ProjectStore::annotations`] over those of `leaderboard.yaml`).
    pub fn merge(&mut self, other: Annotations) {
        self.entries.extend(other.entries);
    }

    /// The annotation of a group: `experiment/variant`, else `experiment`, else empty.
    fn of(&self, experiment: &str, variant: &str) -> Annotation {
        self.entries
            .get(&format!("{experiment}/{variant}"))
            .or_else(|| self.entries.get(experiment))
            .cloned()
            .unwrap_or_default()
    }
}

/// One table row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// 1-based rank in its dataset (0 for invalid entries).
    pub rank: usize,
    /// Project label, `—` when unannotated.
    pub project: String,
    /// Iteration label, `—` when unannotated.
    pub iteration: String,
    /// `experiment[/variant] (model kind)`.
    pub model: String,
    /// Dataset name.
    pub dataset: String,
    /// Seed mean ± std of the objective's best value, in percent for a fraction
    /// (`97.55% ± 0.13%`), else with four decimals (`0.1234 ± 0.0100`).
    pub value: String,
    /// Number of seeds.
    pub seeds: u64,
    /// Notes (or the reason an entry is invalid).
    pub notes: String,
    /// `valid`, `invalid` or `abandoned`.
    pub status: String,
    /// The upstream project's value for this experiment (`98.06% ± 0.15%, best epoch
    /// (CHPC-Autoresearch, 5 seeds)`), `planned in <project>, never run`, or empty.
    pub reference: String,
    /// Ours minus the reference mean in reference stds, on the reference's statistic (`+0.4`),
    /// or `—`.
    pub distance: String,
    /// `(experiment, variant)`, to find the row's reference.
    #[serde(skip)]
    pub key: (String, String),
    /// Seed mean, for sorting.
    #[serde(skip)]
    pub mean: f64,
    /// The objective the value is of (`val_acc`, `val_position_rmse`), its direction and unit.
    #[serde(skip)]
    pub objective: MetricSpec,
}

/// One dataset's ranked table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetTable {
    /// Dataset name (with the objective in parentheses when the dataset's runs optimise
    /// several).
    pub name: String,
    /// Header of the value column: the objective, its unit and direction
    /// (`Val Acc (mean ± std)`, `Val Position RMSE (world units; lower is better; mean ± std)`).
    pub header: String,
    /// The objective ranked by, best first in its direction.
    pub objective: MetricSpec,
    /// Rows, best first.
    pub rows: Vec<Row>,
    /// Whether any row has a reference (the table then shows the reference columns).
    pub has_reference: bool,
}

/// The whole leaderboard, ready to render.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leaderboard {
    /// Date of the newest finished run shown (so rerunning on other days changes nothing).
    pub updated: String,
    /// Completed runs counted.
    pub total_runs: u64,
    /// Ranked tables, by dataset name, then objective.
    pub datasets: Vec<DatasetTable>,
    /// Invalid and abandoned entries.
    pub invalid: Vec<Row>,
    /// Header of the invalid table's value column: the rows' common header, else
    /// `Objective (mean ± std)` (each value then names its objective).
    pub invalid_header: String,
    /// Runs root the table was built from (named in the regenerate command it prints).
    pub runs_root: String,
}

impl Leaderboard {
    /// Builds the leaderboard from the `runs` frame of [`crate::runs::scan`], labelled by
    /// `annotations`: one table per dataset (and objective, where a dataset's runs optimise
    /// several), groups ranked by the seed mean of their best objective value
    /// ([`OBJECTIVE_BEST`]; `best_val_acc` for version-1 runs) in the objective's direction.
    pub fn build(runs: &DataFrame, annotations: &Annotations) -> Result<Leaderboard> {
        let outside = outside_studies(runs)?;
        let runs = &outside;
        let summary = summarize(runs, OBJECTIVE_BEST)?;
        let objectives = group_objectives(runs)?;
        let variants = task_variants(runs)?;
        let mut tables: BTreeMap<(String, String), Vec<Row>> = BTreeMap::new();
        let mut invalid = Vec::new();
        let mut total_runs = 0;
        for (mut row, ds, status, group) in summary_rows(&summary, &objectives, annotations)? {
            // a task with several target kinds (path integration: cartesian, polar_bump) gets
            // one table per kind, since their losses are not comparable
            let ds = match variants.get(&group) {
                Some(kind) => format!("{ds} ({kind})"),
                None => ds,
            };
            row.dataset = display_dataset(&ds);
            if status == EntryStatus::Valid {
                total_runs += row.seeds;
                tables
                    .entry((ds, row.objective.name.clone()))
                    .or_default()
                    .push(row);
            } else {
                invalid.push(row);
            }
        }
        invalid.sort_by(|a, b| a.model.cmp(&b.model));
        let invalid_header = invalid_header(&mut invalid);
        Ok(Leaderboard {
            updated: newest_finish(runs)?.unwrap_or_else(|| "—".into()),
            total_runs,
            datasets: ranked_tables(tables),
            invalid,
            invalid_header,
            runs_root: "runs".into(),
        })
    }

    /// Names the runs root the table was built from (default `runs`).
    pub fn with_runs_root(mut self, root: impl Into<String>) -> Leaderboard {
        self.runs_root = root.into();
        self
    }

    /// Fills each ranked row's reference value and our distance from it in reference stds
    /// from `fidelity` (which compares the statistic the reference reported: best epoch, last
    /// epoch or at the lowest validation loss), matched by experiment and variant.
    pub fn with_fidelity(mut self, fidelity: &Fidelity) -> Leaderboard {
        for table in &mut self.datasets {
            for row in &mut table.rows {
                let Some(f) = fidelity.rows.iter().find(|f| {
                    (
                        f.reference.experiment.as_str(),
                        f.reference.variant.as_str(),
                    ) == (row.key.0.as_str(), row.key.1.as_str())
                }) else {
                    continue;
                };
                let r = &f.reference;
                row.reference = match (r.status, r.value()) {
                    (ReferenceStatus::Reported, Some((mean, std))) => format!(
                        "{}, {} ({}{}){}",
                        value_pm(mean, Some(std), f.percent),
                        r.statistic.text(),
                        f.project,
                        r.seeds.map(|n| format!(", {n} seeds")).unwrap_or_default(),
                        same_statistic(f)
                    ),
                    _ => format!("planned in {}, never run", f.project),
                };
                row.distance = f
                    .distance
                    .map_or_else(|| "—".into(), |d| format!("{d:+.1}"));
            }
            table.has_reference = table.rows.iter().any(|r| !r.reference.is_empty());
        }
        self
    }

    /// The leaderboard's markdown (template `leaderboard.md.j2`).
    pub fn render(&self, templates: Option<&Path>) -> Result<String> {
        render("leaderboard.md.j2", templates, self)
    }
}

/// Our value at the reference's statistic where that is not the best epoch the table ranks by
/// (e.g. `; ours at last epoch 97.03% ± 0.28%`), so the row's Δ can be read off the row.
fn same_statistic(f: &FidelityRow) -> String {
    match (f.reference.statistic, f.ours_mean) {
        (Statistic::BestEpoch, _) | (_, None) => String::new(),
        (statistic, Some(mean)) => format!(
            "; ours {} {}",
            statistic.text(),
            value_pm(mean, f.ours_std, f.percent)
        ),
    }
}

/// A table row, its dataset, its annotated status and its `(experiment, variant)`.
type SummaryRow = (Row, String, EntryStatus, (String, String));

/// Every summary row as a table row with its dataset and annotated status.
fn summary_rows(
    summary: &DataFrame,
    objectives: &BTreeMap<(String, String), String>,
    annotations: &Annotations,
) -> Result<Vec<SummaryRow>> {
    let col = |name: &str| str_column(summary, name);
    let (exp, var, model, dataset) = (
        col("experiment")?,
        col("variant")?,
        col("model")?,
        col("dataset")?,
    );
    let (mode, unit) = (col("mode")?, col("unit")?);
    let (mean, std) = (f64_column(summary, "mean")?, f64_column(summary, "std")?);
    let n = f64_column(summary, "n_seeds")?;
    let mut out = Vec::new();
    for i in 0..summary.height() {
        let (Some(e), Some(v), Some(m)) = (&exp[i], &var[i], mean[i]) else {
            continue;
        };
        let objective = MetricSpec::new(
            objectives
                .get(&(e.clone(), v.clone()))
                .map_or(OBJECTIVE_BEST, String::as_str),
            mode[i].as_deref().and_then(Mode::parse).unwrap_or_default(),
            unit[i].as_deref().unwrap_or(""),
        );
        let a = annotations.of(e, v);
        let ds = dataset[i].clone().unwrap_or_default();
        let row = Row {
            rank: 0,
            project: a.project.unwrap_or_else(|| "—".into()),
            iteration: a.iteration.unwrap_or_else(|| "—".into()),
            model: format!(
                "{} ({})",
                Group::label(e, v),
                model[i].as_deref().unwrap_or("?")
            ),
            dataset: display_dataset(&ds),
            value: value_pm(m, std[i], is_percent(&objective.unit)),
            seeds: n[i].unwrap_or(0.0) as u64,
            notes: a.notes.unwrap_or_default(),
            reference: String::new(),
            distance: "—".into(),
            key: (e.clone(), v.clone()),
            status: serde_yaml_ng::to_string(&a.status)
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            mean: m,
            objective,
        };
        out.push((row, ds, a.status, (e.clone(), v.clone())));
    }
    Ok(out)
}

/// The target kind (`config.data.targets`) of each `(experiment, variant)` whose runs record
/// one.
fn task_variants(runs: &DataFrame) -> Result<BTreeMap<(String, String), String>> {
    if runs.column("config.data.targets").is_err() {
        return Ok(BTreeMap::new());
    }
    let col = |name: &str| str_column(runs, name);
    let (exp, var, targets) = (
        col("experiment")?,
        col("variant")?,
        col("config.data.targets")?,
    );
    let mut out = BTreeMap::new();
    for i in 0..runs.height() {
        if let (Some(e), Some(v), Some(t)) = (&exp[i], &var[i], &targets[i]) {
            out.entry((e.clone(), v.clone()))
                .or_insert_with(|| t.clone());
        }
    }
    Ok(out)
}

/// The objective of each `(experiment, variant)` with completed runs (its first run's).
fn group_objectives(runs: &DataFrame) -> Result<BTreeMap<(String, String), String>> {
    let col = |name: &str| str_column(runs, name);
    let (exp, var, status, objective) = (
        col("experiment")?,
        col("variant")?,
        col("status")?,
        col("objective")?,
    );
    let mut out = BTreeMap::new();
    for i in 0..runs.height() {
        if let (Some(e), Some(v), Some("completed"), Some(o)) =
            (&exp[i], &var[i], status[i].as_deref(), &objective[i])
        {
            out.entry((e.clone(), v.clone()))
                .or_insert_with(|| o.clone());
        }
    }
    Ok(out)
}

/// The tables by dataset then objective, each sorted best first in its objective's direction
/// (ties by model name) and ranked.
fn ranked_tables(tables: BTreeMap<(String, String), Vec<Row>>) -> Vec<DatasetTable> {
    let several = |ds: &str| tables.keys().filter(|(d, _)| d == ds).count() > 1;
    let titles: Vec<String> = tables
        .keys()
        .map(|(ds, objective)| {
            if several(ds) {
                format!("{} ({objective})", display_dataset(ds))
            } else {
                display_dataset(ds)
            }
        })
        .collect();
    tables
        .into_values()
        .zip(titles)
        .filter_map(|(mut rows, name)| {
            let objective = rows.first()?.objective.clone();
            rows.sort_by(|a, b| {
                objective
                    .mode
                    .better_first(a.mean, b.mean)
                    .then(a.model.cmp(&b.model))
            });
            for (i, r) in rows.iter_mut().enumerate() {
                r.rank = i + 1;
            }
            Some(DatasetTable {
                name,
                header: metric_header(&objective),
                objective,
                rows,
                has_reference: false,
            })
        })
        .collect()
}

/// The invalid table's value header: the rows' common one, else `Objective (mean ± std)`
/// with each row's value followed by its objective's name.
fn invalid_header(rows: &mut [Row]) -> String {
    let headers: BTreeSet<String> = rows.iter().map(|r| metric_header(&r.objective)).collect();
    match headers.len() {
        0 => metric_header(&MetricSpec::new("val_acc", Mode::Max, "fraction")),
        1 => headers.into_iter().next().unwrap_or_default(),
        _ => {
            for r in rows.iter_mut() {
                r.value = format!("{} ({})", r.value, r.objective.name);
            }
            "Objective (mean ± std)".into()
        }
    }
}

/// The header of a value column: `Val Acc (mean ± std)`, `Val Position RMSE (world units;
/// lower is better; mean ± std)`. A fraction's values are in percent, so it names no unit.
pub fn metric_header(spec: &MetricSpec) -> String {
    let mut notes: Vec<&str> = Vec::new();
    if !spec.unit.is_empty() && !is_percent(&spec.unit) {
        notes.push(&spec.unit);
    }
    if spec.mode == Mode::Min {
        notes.push(direction_text(Mode::Min));
    }
    notes.push("mean ± std");
    format!("{} ({})", metric_label(&spec.name), notes.join("; "))
}

/// `val_acc` -> `Val Acc`, `val_position_rmse` -> `Val Position RMSE`: words capitalised,
/// common acronyms in capitals.
pub fn metric_label(name: &str) -> String {
    const ACRONYMS: &[&str] = &["rmse", "mse", "mae", "nll", "auc", "iou", "mape"];
    name.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            if ACRONYMS.contains(&w) {
                w.to_uppercase()
            } else {
                let mut chars = w.chars();
                chars
                    .next()
                    .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `mnist` -> `MNIST`, `fashion_mnist` -> `Fashion-MNIST`; others unchanged.
fn display_dataset(name: &str) -> String {
    match name {
        "mnist" => "MNIST".into(),
        "fashion_mnist" => "Fashion-MNIST".into(),
        "cifar10" => "CIFAR-10".into(),
        other => other.into(),
    }
}

/// The date (`YYYY-MM-DD`) of the newest `finished_at` among completed runs.
fn newest_finish(runs: &DataFrame) -> Result<Option<String>> {
    let status = str_column(runs, "status")?;
    let finished = str_column(runs, "finished_at")?;
    Ok(status
        .iter()
        .zip(&finished)
        .filter(|(s, _)| s.as_deref() == Some("completed"))
        .filter_map(|(_, f)| f.as_deref())
        .filter_map(|f| chrono::DateTime::parse_from_rfc3339(f).ok())
        .max()
        .map(|t| t.date_naive().format("%Y-%m-%d").to_string()))
}

/// Replaces the leaderboard section of the markdown file at `path` with `section`, writing
/// atomically and only when it changes; returns whether it changed.
pub fn write_section(path: &std::path::Path, section: &str) -> Result<bool> {
    let text = std::fs::read_to_string(path).map_err(Error::io("reading", path))?;
    let updated = replace_section(&text, section)
        .map_err(|e| Error::Analysis(format!("{}: {e}", path.display())))?;
    if updated == text {
        return Ok(false);
    }
    crate::fsutil::write_atomic(path, updated.as_bytes())?;
    Ok(true)
}

/// `readme` with the text between [`BEGIN`] and [`END`] replaced by `section` (the marker
/// lines and everything outside them stay byte for byte). An error when the markers are
/// missing, repeated or out of order.
pub fn replace_section(readme: &str, section: &str) -> Result<String> {
    let count = |m: &str| readme.matches(m).count();
    let (Some(begin), Some(end)) = (readme.find(BEGIN), readme.find(END)) else {
        return Err(Error::Analysis(format!(
            "the README has no leaderboard section: add a line `{BEGIN}` and a line `{END}` where the table goes"
        )));
    };
    if count(BEGIN) != 1 || count(END) != 1 || end < begin {
        return Err(Error::Analysis(format!(
            "the README needs exactly one `{BEGIN}` followed by one `{END}`"
        )));
    }
    let start = begin + BEGIN.len();
    let body = section.trim_matches('\n');
    Ok(format!(
        "{}\n{}\n{}",
        &readme[..start],
        body,
        &readme[end..]
    ))
}

/// `runs` without the runs of hyper-parameter studies (trials on slices, the baseline and
/// re-training inside a study directory): a study's results are in its own report.
fn outside_studies(runs: &DataFrame) -> Result<DataFrame> {
    let mask: Vec<bool> = str_column(runs, "path")?
        .iter()
        .map(|p| {
            !p.as_deref()
                .is_some_and(|p| crate::hpo::files::in_study(Path::new(p)))
        })
        .collect();
    runs.filter(&BooleanChunked::from_slice("outside".into(), &mask))
        .map_err(|e| Error::Analysis(format!("selecting runs: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_name_the_metric_its_unit_and_a_lower_is_better_direction() {
        let header = |name, mode, unit| metric_header(&MetricSpec::new(name, mode, unit));
        assert_eq!(
            header("val_acc", Mode::Max, "fraction"),
            "Val Acc (mean ± std)"
        );
        assert_eq!(header("val_acc", Mode::Max, ""), "Val Acc (mean ± std)");
        assert_eq!(
            header("val_position_rmse", Mode::Min, "world units"),
            "Val Position RMSE (world units; lower is better; mean ± std)"
        );
        assert_eq!(
            header("val_loss", Mode::Min, ""),
            "Val Loss (lower is better; mean ± std)"
        );
    }

    #[test]
    fn replacement_keeps_the_rest_and_is_idempotent() -> Result<()> {
        let readme = format!("# Title\n\nintro\n{BEGIN}\nold table\n{END}\ntail\n");
        let once = replace_section(&readme, "new\ntable\n")?;
        assert_eq!(
            once,
            format!("# Title\n\nintro\n{BEGIN}\nnew\ntable\n{END}\ntail\n")
        );
        assert_eq!(replace_section(&once, "new\ntable\n")?, once);
        assert!(replace_section("no markers", "x").is_err());
        assert!(replace_section(&format!("{END}\n{BEGIN}\n"), "x").is_err());
        Ok(())
    }
}
