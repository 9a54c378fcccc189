//! Run directories into polars frames: [`scan`] reads every run under a root into a `runs`
//! frame (one row per run) and a `history` frame (one row per run and epoch), and lists what it
//! could not read in [`RunScan::problems`] instead of stopping.
//!
//! Analysis reads only the files of the run-directory format ([`crate::rundir`]); it never
//! imports model code, so a run copied back from a cluster reads exactly like a local one.

mod flatten;
mod read;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use polars::prelude::DataFrame;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::frame::{Frame, Values};
use crate::rundir::{EpochRecord, Metrics, HISTORY_COLUMNS};

pub use flatten::ConfigValue;
use read::{read_run, RunRecord};

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
    /// One row per run: the `metrics.json` fields ([`RUN_COLUMNS`]) then `config.<dotted key>`
    /// for every scalar of the resolved `config.yaml`.
    pub runs: DataFrame,
    /// One row per run and epoch: `experiment, variant, seed, path`, the `history.csv` columns,
    /// then the extra columns any run has (missing where a run lacks them).
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
    let mut problems = Vec::new();
    let mut dirs = Vec::new();
    find_run_dirs(root, &mut dirs, &mut problems);
    dirs.sort();
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

/// The `runs` frame of `records`.
fn runs_frame(records: &[RunRecord]) -> Result<DataFrame> {
    let m = |f: &dyn Fn(&Metrics) -> Option<f64>| -> Values {
        Values::F64(records.iter().map(|r| f(&r.metrics)).collect())
    };
    let u = |f: &dyn Fn(&Metrics) -> Option<u64>| -> Values {
        Values::U64(records.iter().map(|r| f(&r.metrics)).collect())
    };
    let s = |f: &dyn Fn(&RunRecord) -> Option<String>| -> Values {
        Values::Str(records.iter().map(f).collect())
    };
    let mut frame = Frame::new()
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
        .with("test_acc", m(&|m| m.test_acc))
        .with("test_loss", m(&|m| m.test_loss))
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
        .with("path", s(&|r| Some(r.path.display().to_string())));
    let keys: BTreeSet<&String> = records.iter().flat_map(|r| r.config.keys()).collect();
    for key in keys {
        let values: Vec<Option<&ConfigValue>> = records.iter().map(|r| r.config.get(key)).collect();
        frame.push(format!("config.{key}"), ConfigValue::column(&values));
    }
    frame.finish()
}

/// The `history` frame of `records`.
fn history_frame(records: &[RunRecord]) -> Result<DataFrame> {
    let extras: BTreeSet<&str> = records
        .iter()
        .flat_map(|r| {
            r.history
                .iter()
                .flat_map(|e| e.extra.iter().map(|(k, _)| k.as_str()))
        })
        .collect();
    let rows: Vec<(&RunRecord, &EpochRecord)> = records
        .iter()
        .flat_map(|r| r.history.iter().map(move |e| (r, e)))
        .collect();
    let f = |get: &dyn Fn(&EpochRecord) -> f64| -> Values {
        Values::F64(rows.iter().map(|(_, e)| Some(get(e))).collect())
    };
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
    debug_assert_eq!(HISTORY_COLUMNS[0], "epoch");
    type Getter<'a> = &'a dyn Fn(&EpochRecord) -> f64;
    let fixed: [(&str, Getter); 6] = [
        ("train_loss", &|e| e.train_loss),
        ("train_acc", &|e| e.train_acc),
        ("val_loss", &|e| e.val_loss),
        ("val_acc", &|e| e.val_acc),
        ("lr", &|e| e.lr),
        ("epoch_time_s", &|e| e.epoch_time_s),
    ];
    for (name, get) in fixed {
        frame.push(name, f(get));
    }
    for name in extras {
        let values = rows
            .iter()
            .map(|(_, e)| e.extra.iter().find(|(k, _)| k == name).map(|(_, v)| *v))
            .collect();
        frame.push(name, Values::F64(values));
    }
    frame.finish()
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
