//! Run directories into polars frames: [`scan`] reads every run under a root into a `runs`
//! frame (one row per run) and a `history` frame (one row per run and epoch), and lists what it
//! could not read in [`RunScan::problems`] instead of stopping.
//!
//! Analysis reads only the files of the run-directory format ([`crate::rundir`]); it never
//! imports model code, so a run copied back from a cluster reads exactly like a local one.

mod flatten;
mod read;
mod spec;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use polars::prelude::DataFrame;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::frame::{Frame, Values};
use crate::metric::Objective;
use crate::rundir::{EpochRecord, Metrics};

pub use flatten::ConfigValue;
use read::{read_run, RunRecord};
pub use spec::{agreed_spec, direction_text, metric_spec, row_specs, OBJECTIVE_BEST};

/// `metrics.json` schema versions [`scan`] reads: 1 (classification only) and 2 (objective,
/// declared metrics, results per split; [`crate::rundir::SCHEMA_VERSION`]). Others are
/// [`Problem`]s naming these.
pub const READ_SCHEMA_VERSIONS: &[u32] = &[1, 2];

/// Columns of the `runs` frame before the flattened `config.*` columns, in order.
pub const RUN_COLUMNS: &[&str] = &[
    "experiment",
    "variant",
    "seed",
    "status",
    "model",
    "dataset",
    "best_val_acc",
    "best_epoch",
    "final_val_acc",
    "test_acc",
    "test_loss",
    "epochs_done",
    "epochs_planned",
    "early_stopped",
    "params",
    "wall_time_s",
    "started_at",
    "finished_at",
    "host",
    "git_commit",
    "resumed",
    "error",
    "config_hash",
    "path",
];

/// Columns of the `runs` frame after [`RUN_COLUMNS`]: the objective's column name (`val_acc`,
/// `val_position_rmse`), its direction (`max` / `min`), unit and best value, and the task's
/// declared metrics as a JSON list of `{name, mode, unit}` (read by [`row_specs`]). A
/// version-1 run reads as `val_acc`, `max`, `fraction`, its `best_val_acc`, and declares `acc`
/// (max, fraction) and `loss` (min). Then come the result columns `<split>_<metric>`
/// ([`Metrics::result_columns`], e.g. `val_acc`, `test_position_rmse`), then `config.*`.
pub const OBJECTIVE_COLUMNS: &[&str] = &[
    "objective",
    "objective_mode",
    "objective_unit",
    OBJECTIVE_BEST,
    "declared",
];

/// A file the scan could not use, and why; the rest of the scan goes on without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file (or directory) at fault.
    pub path: PathBuf,
    /// What is wrong with it and what would be valid.
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// Everything [`scan`] found under a root.
#[derive(Debug, Clone)]
pub struct RunScan {
    /// One row per run: the `metrics.json` fields ([`RUN_COLUMNS`]), the objective
    /// ([`OBJECTIVE_COLUMNS`]), one column per result `<split>_<metric>` any run has, then
    /// `config.<dotted key>` for every scalar of the resolved `config.yaml`.
    pub runs: DataFrame,
    /// One row per run and epoch: `experiment, variant, seed, path`, then the union of the runs'
    /// `history.csv` columns (missing where a run lacks them): `epoch, train_loss, train_*,
    /// val_loss, val_*, lr, epoch_time_s`, then the extra columns.
    pub history: DataFrame,
    /// Files that could not be read, in path order.
    pub problems: Vec<Problem>,
}

/// Reads every run directory under `root` (any directory holding `metrics.json`, at any depth;
/// `runs/<experiment>/<variant>/seed_<n>/` by convention). Running, failed and killed runs are
/// rows with their status; unreadable or foreign-schema files go to [`RunScan::problems`].
/// Errors only when `root` itself cannot be read.
pub fn scan(root: impl AsRef<Path>) -> Result<RunScan> {
    let root = root.as_ref();
    if !root.is_dir() {
        return Err(Error::Analysis(format!(
            "runs root {} is not a directory (pass the folder that holds runs/<experiment>/...)",
            root.display()
        )));
    }
    let (dirs, mut problems) = run_dirs(root);
    let results: Vec<(Option<RunRecord>, Vec<Problem>)> =
        dirs.par_iter().map(|d| read_run(d)).collect();
    let mut records = Vec::with_capacity(results.len());
    for (record, mut found) in results {
        records.extend(record);
        problems.append(&mut found);
    }
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(RunScan {
        runs: runs_frame(&records)?,
        history: history_frame(&records)?,
        problems,
    })
}

/// Every run directory under `root` (holding `metrics.json` or `config.yaml`), sorted, and
/// the folders that could not be listed.
pub fn run_dirs(root: &Path) -> (Vec<PathBuf>, Vec<Problem>) {
    let (mut dirs, mut problems) = (Vec::new(), Vec::new());
    find_run_dirs(root, &mut dirs, &mut problems);
    dirs.sort();
    (dirs, problems)
}

/// Collects directories holding `metrics.json` (or a `config.yaml` with no metrics yet, which
/// is reported), not descending into run directories.
fn find_run_dirs(dir: &Path, out: &mut Vec<PathBuf>, problems: &mut Vec<Problem>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push(Problem {
                path: dir.to_path_buf(),
                reason: format!("cannot list directory: {e}"),
            });
            return;
        }
    };
    let mut subdirs = Vec::new();
    let (mut has_metrics, mut has_config) = (false, false);
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        match name.to_str() {
            Some("metrics.json") if !is_dir => has_metrics = true,
            Some("config.yaml") if !is_dir => has_config = true,
            Some(n) if is_dir && !n.starts_with('.') => subdirs.push(entry.path()),
            _ => {}
        }
    }
    if has_metrics || has_config {
        out.push(dir.to_path_buf());
        return;
    }
    for sub in subdirs {
        find_run_dirs(&sub, out, problems);
    }
}

/// The `runs` frame of `records`: [`RUN_COLUMNS`], [`OBJECTIVE_COLUMNS`], the result columns,
/// then the `config.*` columns.
fn runs_frame(records: &[RunRecord]) -> Result<DataFrame> {
    let results: Vec<BTreeMap<String, f64>> = records
        .iter()
        .map(|r| {
            r.metrics
                .result_columns()
                .into_iter()
                .map(|c| (c.name, c.value))
                .collect()
        })
        .collect();
    let mut frame = metrics_columns(records, &results);
    objective_columns(&mut frame, records)?;
    result_columns(&mut frame, &results);
    let keys: BTreeSet<&String> = records.iter().flat_map(|r| r.config.keys()).collect();
    for key in keys {
        let values: Vec<Option<&ConfigValue>> = records.iter().map(|r| r.config.get(key)).collect();
        frame.push(format!("config.{key}"), ConfigValue::column(&values));
    }
    frame.finish()
}

/// The [`RUN_COLUMNS`] of `records`; `test_acc` and `test_loss` fall back to the results of the
/// same name (a regression task's `test_loss`) where the version-1 field is empty.
fn metrics_columns(records: &[RunRecord], results: &[BTreeMap<String, f64>]) -> Frame {
    let m = |f: &dyn Fn(&Metrics) -> Option<f64>| -> Values {
        Values::F64(records.iter().map(|r| f(&r.metrics)).collect())
    };
    let u = |f: &dyn Fn(&Metrics) -> Option<u64>| -> Values {
        Values::U64(records.iter().map(|r| f(&r.metrics)).collect())
    };
    let s = |f: &dyn Fn(&RunRecord) -> Option<String>| -> Values {
        Values::Str(records.iter().map(f).collect())
    };
    let or_result = |name: &str, f: &dyn Fn(&Metrics) -> Option<f64>| -> Values {
        Values::F64(
            records
                .iter()
                .zip(results)
                .map(|(r, res)| f(&r.metrics).or_else(|| res.get(name).copied()))
                .collect(),
        )
    };
    Frame::new()
        .with("experiment", s(&|r| Some(r.metrics.experiment.clone())))
        .with("variant", s(&|r| Some(r.metrics.variant.clone())))
        .with("seed", u(&|m| Some(m.seed)))
        .with(
            "status",
            s(&|r| Some(r.metrics.status.as_str().to_string())),
        )
        .with("model", s(&|r| Some(r.metrics.model.clone())))
        .with("dataset", s(&|r| Some(r.metrics.dataset.clone())))
        .with("best_val_acc", m(&|m| m.best_val_acc))
        .with("best_epoch", u(&|m| m.best_epoch.map(|e| e as u64)))
        .with("final_val_acc", m(&|m| m.final_val_acc))
        .with("test_acc", or_result("test_acc", &|m| m.test_acc))
        .with("test_loss", or_result("test_loss", &|m| m.test_loss))
        .with("epochs_done", u(&|m| Some(m.epochs_done as u64)))
        .with("epochs_planned", u(&|m| Some(m.epochs_planned as u64)))
        .with(
            "early_stopped",
            Values::Bool(
                records
                    .iter()
                    .map(|r| Some(r.metrics.early_stopped))
                    .collect(),
            ),
        )
        .with("params", u(&|m| Some(m.params as u64)))
        .with("wall_time_s", m(&|m| Some(m.wall_time_s)))
        .with("started_at", s(&|r| Some(r.metrics.started_at.clone())))
        .with("finished_at", s(&|r| r.metrics.finished_at.clone()))
        .with("host", s(&|r| Some(r.metrics.host.clone())))
        .with("git_commit", s(&|r| r.metrics.git_commit.clone()))
        .with("resumed", u(&|m| Some(m.resumed as u64)))
        .with("error", s(&|r| r.metrics.error.clone()))
        .with("config_hash", s(&|r| r.config_hash.clone()))
        .with("path", s(&|r| Some(r.path.display().to_string())))
}

/// Appends [`OBJECTIVE_COLUMNS`]: a version-1 run reads as objective `val_acc`, `max`, with the
/// unit of its declared accuracy (`fraction`).
fn objective_columns(frame: &mut Frame, records: &[RunRecord]) -> Result<()> {
    let objectives: Vec<Objective> = records
        .iter()
        .map(|r| r.metrics.objective_or_legacy())
        .collect();
    let text = |f: &dyn Fn(&Objective) -> String| {
        Values::Str(objectives.iter().map(|o| Some(f(o))).collect())
    };
    frame.push("objective", text(&|o| o.metric.clone()));
    frame.push("objective_mode", text(&|o| o.mode.as_str().to_string()));
    let units = records
        .iter()
        .zip(&objectives)
        .map(|(r, o)| match &r.metrics.objective {
            Some(recorded) => Some(recorded.unit.clone()),
            None => Some(
                r.metrics
                    .column_spec(&o.metric)
                    .map(|s| s.unit)
                    .unwrap_or_default(),
            ),
        })
        .collect();
    frame.push("objective_unit", Values::Str(units));
    frame.push(
        OBJECTIVE_BEST,
        Values::F64(objectives.iter().map(|o| o.best).collect()),
    );
    let declared = records
        .iter()
        .map(|r| {
            serde_json::to_string(&r.metrics.declared_or_legacy())
                .map(Some)
                .map_err(|e| {
                    Error::Analysis(format!("{}: declared metrics: {e}", r.path.display()))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    frame.push("declared", Values::Str(declared));
    Ok(())
}

/// Appends one float column per result column `<split>_<metric>` any run has (null where a
/// run lacks it), in name order; names already taken by [`RUN_COLUMNS`] (`test_acc`,
/// `test_loss`) or [`OBJECTIVE_COLUMNS`] are not repeated.
fn result_columns(frame: &mut Frame, results: &[BTreeMap<String, f64>]) {
    let names: BTreeSet<&String> = results.iter().flat_map(|r| r.keys()).collect();
    for name in names {
        if RUN_COLUMNS.contains(&name.as_str()) || OBJECTIVE_COLUMNS.contains(&name.as_str()) {
            continue;
        }
        let values = results.iter().map(|r| r.get(name).copied()).collect();
        frame.push(name.clone(), Values::F64(values));
    }
}

/// The `history` frame of `records`: `experiment, variant, seed, path`, then the union of the
/// runs' `history.csv` columns in file order (`epoch, train_loss, train_*, val_loss, val_*,
/// lr, epoch_time_s`, then the extra columns by name), null where a run lacks one.
fn history_frame(records: &[RunRecord]) -> Result<DataFrame> {
    let rows: Vec<(&RunRecord, &EpochRecord)> = records
        .iter()
        .flat_map(|r| r.history.iter().map(move |e| (r, e)))
        .collect();
    let mut frame = Frame::new()
        .strs(
            "experiment",
            rows.iter().map(|(r, _)| r.metrics.experiment.clone()),
        )
        .strs(
            "variant",
            rows.iter().map(|(r, _)| r.metrics.variant.clone()),
        )
        .u64s("seed", rows.iter().map(|(r, _)| r.metrics.seed))
        .strs(
            "path",
            rows.iter().map(|(r, _)| r.path.display().to_string()),
        )
        .u64s("epoch", rows.iter().map(|(_, e)| e.epoch as u64));
    for name in history_columns(records) {
        let values = rows.iter().map(|(_, e)| e.value(&name)).collect();
        frame.push(name, Values::F64(values));
    }
    frame.finish()
}

/// The float columns of the `history` frame after `epoch`, in order: `train_loss`, the
/// `train_*` columns in order of first appearance, `val_loss`, the `val_*` columns likewise,
/// `lr`, `epoch_time_s`, then the extra columns by name. A version-1 history gives
/// [`crate::rundir::HISTORY_COLUMNS`] then its extra columns.
fn history_columns(records: &[RunRecord]) -> Vec<String> {
    let epochs = || records.iter().flat_map(|r| r.history.iter());
    let mut names: Vec<String> = vec!["train_loss".into()];
    let add = |names: &mut Vec<String>, name: &str| {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    };
    for c in epochs().flat_map(|e| e.train.iter()) {
        add(&mut names, &c.name);
    }
    add(&mut names, "val_loss");
    for c in epochs().flat_map(|e| e.val.iter()) {
        add(&mut names, &c.name);
    }
    add(&mut names, "lr");
    add(&mut names, "epoch_time_s");
    let extras: BTreeSet<&str> = epochs()
        .flat_map(|e| e.extra.iter().map(|c| c.name.as_str()))
        .collect();
    for name in extras {
        add(&mut names, name);
    }
    names
}

/// The columns of a `runs` frame other than `config.*`: every `metrics.json` field, the
/// objective and result columns, `config_hash` and `path`.
pub fn metrics_column_names(runs: &DataFrame) -> Vec<String> {
    runs.get_column_names()
        .iter()
        .map(|n| n.to_string())
        .filter(|n| !n.starts_with("config."))
        .collect()
}

/// Counts of runs per status, for a one-line summary of a scan.
pub fn status_counts(scan: &RunScan) -> Result<BTreeMap<String, usize>> {
    let mut counts = BTreeMap::new();
    for s in crate::frame::str_column(&scan.runs, "status")?
        .into_iter()
        .flatten()
    {
        *counts.entry(s).or_insert(0) += 1;
    }
    Ok(counts)
}
