//! A study's trials as frames: the trials frame (one row per trial, parameters as typed
//! columns), and hpo_snn's `all_evaluations.csv` (one row per evaluated trial: parameters,
//! model outputs, `objective` = the metric negated when it is maximised, `eval_time,
//! start_time, end_time` in seconds since the study started, `start_date, end_date`, then the
//! optimiser's `iteration, algorithm, length, trestart, model`), and reading that CSV back.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::DataFrame;

use super::journal::{StudyLog, TrialRecord, TrialStatus};
use super::space::{Param, ParamValue};
use super::study::SamplerConfig;
use crate::error::{Error, Result};
use crate::frame::{Frame, Values};
use crate::metric::Mode;

/// Appends one column per parameter of `log`'s space (floats and ints as numbers, choices
/// as text; a parameter inactive for a trial is missing).
fn param_columns(frame: &mut Frame, log: &StudyLog, rows: &[&TrialRecord]) {
    let points: Vec<BTreeMap<String, ParamValue>> = rows
        .iter()
        .map(|t| log.config.space.point(&t.unit))
        .collect();
    for (key, param) in &log.config.space.params {
        let values = match param {
            Param::Categorical { .. } => Values::Str(
                points
                    .iter()
                    .map(|p| p.get(key).map(ParamValue::text))
                    .collect(),
            ),
            _ => Values::F64(
                points
                    .iter()
                    .map(|p| match p.get(key) {
                        Some(ParamValue::Float(x)) => Some(*x),
                        Some(ParamValue::Int(n)) => Some(*n as f64),
                        _ => None,
                    })
                    .collect(),
            ),
        };
        frame.push(key.clone(), values);
    }
}

/// One row per trial: `trial, status, value, best_so_far, feasible, violation, epochs,
/// requeues, worker, asked_s, started_s, ended_s, eval_time_s, run_dir`, then the parameters
/// (times in seconds since the study started).
pub fn trials_frame(log: &StudyLog, mode: Mode) -> Result<DataFrame> {
    let rows: Vec<&TrialRecord> = log.trials.iter().collect();
    let rel = |t: Option<f64>| t.map(|t| t - log.started_s);
    let mut frame = Frame::new()
        .u64s("trial", rows.iter().map(|t| t.id as u64))
        .strs("status", rows.iter().map(|t| t.status.as_str()))
        .with("value", Values::F64(rows.iter().map(|t| t.value).collect()))
        .with("best_so_far", Values::F64(log.best_so_far(mode)))
        .with(
            "feasible",
            Values::Bool(rows.iter().map(|t| t.value.map(|_| t.feasible())).collect()),
        )
        .f64s("violation", rows.iter().map(|t| t.violation()))
        .u64s("epochs", rows.iter().map(|t| t.epochs as u64))
        .u64s("requeues", rows.iter().map(|t| t.requeues as u64))
        .with(
            "worker",
            Values::Str(rows.iter().map(|t| t.worker.clone()).collect()),
        )
        .f64s("asked_s", rows.iter().map(|t| t.asked_s - log.started_s))
        .with(
            "started_s",
            Values::F64(rows.iter().map(|t| rel(t.started_s)).collect()),
        )
        .with(
            "ended_s",
            Values::F64(rows.iter().map(|t| rel(t.ended_s)).collect()),
        )
        .with(
            "eval_time_s",
            Values::F64(
                rows.iter()
                    .map(|t| Some(t.ended_s? - t.started_s?))
                    .collect(),
            ),
        )
        .strs(
            "run_dir",
            rows.iter().map(|t| t.run_dir.display().to_string()),
        );
    param_columns(&mut frame, log, &rows);
    frame.finish()
}

/// The sampler's name in hpo_snn's `algorithm` column (`Init<name>` for the initial design).
fn algorithm(sampler: &SamplerConfig, trial: usize) -> String {
    let (name, initial) = match sampler {
        SamplerConfig::Random => ("Random", 0),
        SamplerConfig::LatinHypercube => ("LHS", 0),
        SamplerConfig::Tpe { startup, .. } => ("TPE", *startup),
        SamplerConfig::Gp { initial, .. } => ("GPBO", *initial),
        SamplerConfig::CmaEs { .. } => ("CMAES", 0),
    };
    if trial < initial {
        format!("Init{name}")
    } else {
        name.to_string()
    }
}

/// `%Y-%m-%d %H:%M:%S` (UTC) of Unix seconds `t`.
fn date(t: Option<f64>) -> Option<String> {
    let t = t?;
    let dt = chrono::DateTime::from_timestamp(t.floor() as i64, 0)?;
    Some(dt.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// hpo_snn's `all_evaluations.csv` of the evaluated trials (told or failed), in the order
/// they ended: parameters, model outputs (`metric`, `epochs`, `stopped`, `error`,
/// `constraint_<i>`, `run_dir`), `objective`, times, then the optimiser's columns.
pub fn hpo_snn_frame(log: &StudyLog, metric: &str, mode: Mode) -> Result<DataFrame> {
    let mut rows: Vec<&TrialRecord> = log.trials.iter().filter(|t| t.status.finished()).collect();
    rows.sort_by(|a, b| {
        a.ended_s
            .unwrap_or(0.0)
            .total_cmp(&b.ended_s.unwrap_or(0.0))
    });
    let rel = |t: Option<f64>| t.map(|t| t - log.started_s);
    let mut frame = Frame::new();
    param_columns(&mut frame, log, &rows);
    frame.push(metric, Values::F64(rows.iter().map(|t| t.value).collect()));
    frame.push(
        "epochs",
        Values::U64(rows.iter().map(|t| Some(t.epochs as u64)).collect()),
    );
    frame.push(
        "stopped",
        Values::Str(
            rows.iter()
                .map(|t| {
                    Some(
                        if t.status == TrialStatus::Pruned {
                            "True"
                        } else {
                            "False"
                        }
                        .into(),
                    )
                })
                .collect(),
        ),
    );
    frame.push(
        "error",
        Values::U64(
            rows.iter()
                .map(|t| Some(u64::from(t.status == TrialStatus::Failed)))
                .collect(),
        ),
    );
    let n_constraints = rows.iter().map(|t| t.constraints.len()).max().unwrap_or(0);
    for i in 0..n_constraints {
        frame.push(
            format!("constraint_{i}"),
            Values::F64(rows.iter().map(|t| t.constraints.get(i).copied()).collect()),
        );
    }
    let mut frame = frame
        .strs(
            "run_dir",
            rows.iter().map(|t| t.run_dir.display().to_string()),
        )
        .with(
            "objective",
            Values::F64(
                rows.iter()
                    .map(|t| t.value.map(|v| if mode == Mode::Max { -v } else { v }))
                    .collect(),
            ),
        )
        .with(
            "eval_time",
            Values::F64(
                rows.iter()
                    .map(|t| Some(t.ended_s? - t.started_s?))
                    .collect(),
            ),
        )
        .with(
            "start_time",
            Values::F64(rows.iter().map(|t| rel(t.started_s)).collect()),
        )
        .with(
            "end_time",
            Values::F64(rows.iter().map(|t| rel(t.ended_s)).collect()),
        )
        .with(
            "start_date",
            Values::Str(rows.iter().map(|t| date(t.started_s)).collect()),
        )
        .with(
            "end_date",
            Values::Str(rows.iter().map(|t| date(t.ended_s)).collect()),
        )
        .u64s("iteration", rows.iter().map(|t| t.id as u64))
        .strs(
            "algorithm",
            rows.iter().map(|t| algorithm(&log.config.sampler, t.id)),
        );
    for name in ["length", "trestart", "model"] {
        frame.push(name, Values::Str(vec![None; rows.len()]));
    }
    frame.finish()
}

pub use crate::frame::{read_csv, CsvTable};

impl super::Study {
    /// One row per trial (see [`trials_frame`]).
    pub fn trials(&self) -> Result<DataFrame> {
        trials_frame(&self.status()?, self.mode()?)
    }

    /// Writes the trials as CSV in `format` (`hpo_snn`: `outputs/all_evaluations.csv` of the
    /// study directory; `trials`: `trials.csv`), or to `out`; returns the path.
    pub fn export(&self, format: &str, out: Option<&Path>) -> Result<std::path::PathBuf> {
        let log = self.status()?;
        let (metric, mode) = self.config.check(self.store())?;
        let (df, default) = match format {
            "hpo_snn" => (
                hpo_snn_frame(&log, &metric, mode)?,
                self.dir()
                    .path()
                    .join("outputs")
                    .join("all_evaluations.csv"),
            ),
            "trials" => (
                trials_frame(&log, mode)?,
                self.dir().path().join("trials.csv"),
            ),
            other => {
                return Err(Error::invalid(
                    "--format",
                    format!("`{other}`; use hpo_snn or trials"),
                ))
            }
        };
        let path = out.map_or(default, Path::to_path_buf);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io("creating", parent))?;
        }
        crate::fsutil::write_atomic(&path, &crate::frame::to_csv(&df)?)?;
        Ok(path)
    }
}
