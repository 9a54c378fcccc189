//! What a study leaves for the record: the default config trained on the same data (the
//! baseline a search must beat), the best point re-trained as a normal run (hpo_snn's
//! `launch_fixed_*`), the figures, and the evidence report (`report.md`, `trials.csv`,
//! `all_evaluations.csv`, figures).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::export::{hpo_snn_frame, trials_frame};
use super::figures::{History, Importance, Intermediate, ParallelCoordinates, Timeline};
use super::files::{read_json, write_json};
use super::journal::{StudyLog, TrialStatus};
use super::runner::best_trial;
use super::space::Param;
use super::Study;
use crate::error::{Error, Result};
use crate::experiment::Experiment;
use crate::frame::to_csv;
use crate::fsutil::write_atomic;
use crate::metric::Mode;
use crate::plot::Figure;
use crate::train::{RunOutcome, TrainOptions};

/// The best point's re-training, as `retrain.json` of the study directory records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retrain {
    /// The trial whose parameters were re-trained.
    pub trial: usize,
    /// Every override of the run.
    pub overrides: Vec<String>,
    /// Its run directory.
    pub run_dir: PathBuf,
}

/// A figure of the study with its file stem and caption.
pub struct StudyFigure {
    /// File stem (`history` writes `history.svg` and `history.png`).
    pub stem: &'static str,
    /// Caption in the report.
    pub caption: String,
    /// The drawing.
    pub figure: Figure,
}

impl Study {
    /// The experiment with the study's overrides and nothing sampled: the default config on
    /// the same data, under `<study>/baseline`.
    pub fn baseline_experiment(&self) -> Result<Experiment> {
        let mut all = self.config.overrides.clone();
        all.push(format!(
            "runs_dir={}",
            self.dir().path().join("baseline").display()
        ));
        Experiment::compose_in(self.store(), &self.config.experiment, &all)
    }

    /// Trains [`Study::baseline_experiment`] (validation only, like the trials).
    pub fn run_baseline(&self) -> Result<RunOutcome> {
        let opts = TrainOptions {
            quiet: true,
            skip_test: true,
            ..TrainOptions::default()
        };
        self.baseline_experiment()?.train_with(&opts)
    }

    /// Re-trains the best trial's sampled parameters as a normal run (test pass included)
    /// on the experiment with `overrides` (not the study's: `[]` is the full data and
    /// epochs), under `<study>/retrain`; records it in `retrain.json`.
    pub fn retrain_best(&self, overrides: &[String]) -> Result<RunOutcome> {
        let log = self.status()?;
        let best = best_trial(&log, self.mode()?)
            .ok_or_else(|| Error::Analysis(format!("study {} has no finished trial", self.name)))?;
        let mut all = best.overrides.clone();
        all.extend(overrides.iter().cloned());
        all.push(format!(
            "runs_dir={}",
            self.dir().path().join("retrain").display()
        ));
        let exp = Experiment::compose_in(self.store(), &self.config.experiment, &all)?;
        let record = Retrain {
            trial: best.id,
            overrides: all,
            run_dir: exp.run_dir().path().to_path_buf(),
        };
        write_json(&self.dir().path().join("retrain.json"), &record)?;
        exp.train_with(&TrainOptions::default().with_quiet(true))
    }

    /// The figures of the study so far.
    pub fn figures(&self) -> Result<Vec<StudyFigure>> {
        let log = self.status()?;
        let (metric, mode) = self.config.check(self.store())?;
        figures(&log, &metric, mode)
    }

    /// Writes the study's evidence report into `out` (default `<study>/report`); returns
    /// the path of `report.md`.
    pub fn report(&self, out: Option<&Path>) -> Result<PathBuf> {
        let log = self.status()?;
        let (metric, mode) = self.config.check(self.store())?;
        let dir = out.map_or_else(|| self.dir().path().join("report"), Path::to_path_buf);
        std::fs::create_dir_all(&dir).map_err(Error::io("creating", &dir))?;
        let mut shown = Vec::new();
        for f in figures(&log, &metric, mode)? {
            f.figure.save(&dir, f.stem)?;
            shown
                .push(serde_json::json!({"file": format!("{}.svg", f.stem), "caption": f.caption}));
        }
        write_atomic(
            &dir.join("trials.csv"),
            &to_csv(&trials_frame(&log, mode)?)?,
        )?;
        write_atomic(
            &dir.join("all_evaluations.csv"),
            &to_csv(&hpo_snn_frame(&log, &metric, mode)?)?,
        )?;
        let context = self.context(&log, &metric, mode, shown)?;
        let text = crate::report::render("hpo_report.md.j2", None, context)?;
        let path = dir.join("report.md");
        write_atomic(&path, text.as_bytes())?;
        Ok(path)
    }

    /// The baseline's row: its value of `metric` and how far `best` is above it (none
    /// before `hpo baseline` ran).
    fn baseline_row(&self, metric: &str, best: Option<f64>) -> Result<Option<serde_json::Value>> {
        let exp = self.baseline_experiment()?;
        let dir = exp.run_dir();
        Ok(dir.read_metrics()?.and_then(|m| {
            let value = m
                .objective
                .filter(|o| o.metric == metric)
                .and_then(|o| o.best)?;
            Some(serde_json::json!({
                "value": format!("{value:.4}"),
                "run_dir": dir.path().display().to_string(),
                "delta": best.map_or("-".to_string(), |b| format!("{:.4}", b - value)),
            }))
        }))
    }

    /// The re-trained best point's row: its overrides and every split's metrics (none before
    /// `hpo retrain` ran).
    fn retrain_row(&self) -> Option<serde_json::Value> {
        let r = read_json::<Retrain>(&self.dir().path().join("retrain.json")).ok()?;
        let m = crate::rundir::RunDir::at(&r.run_dir)
            .read_metrics()
            .ok()??;
        let results: Vec<String> = m
            .results
            .iter()
            .flat_map(|(split, values)| {
                values
                    .iter()
                    .filter(|(k, _)| *k != "loss")
                    .map(move |(k, v)| format!("{split}_{k} {v:.4}"))
            })
            .collect();
        let overrides: Vec<&str> = r
            .overrides
            .iter()
            .filter(|o| !o.starts_with("runs_dir="))
            .map(String::as_str)
            .collect();
        Some(serde_json::json!({
            "overrides": overrides.join(" "),
            "results": results,
            "run_dir": r.run_dir.display().to_string(),
        }))
    }

    /// The report's template context.
    fn context(
        &self,
        log: &StudyLog,
        metric: &str,
        mode: Mode,
        figures: Vec<serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let c = &self.config;
        let planned = self.baseline_experiment()?.config().epochs;
        let told: Vec<_> = log.trials.iter().filter(|t| t.status.finished()).collect();
        let run: usize = told.iter().map(|t| t.epochs).sum();
        let all = planned * told.len();
        let best = best_trial(log, mode);
        let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
        let params = |overrides: &[String]| overrides.join(" ");
        let baseline = self.baseline_row(metric, best.and_then(|b| b.value))?;
        let retrain = self.retrain_row();
        let counts: Vec<String> = [
            TrialStatus::Completed,
            TrialStatus::Pruned,
            TrialStatus::Failed,
        ]
        .iter()
        .map(|s| format!("{} {}", log.count(*s), s.as_str()))
        .collect();
        let wall = told
            .iter()
            .filter_map(|t| t.ended_s)
            .fold(log.started_s, f64::max)
            - log.started_s;
        Ok(serde_json::json!({
            "name": self.name,
            "generated": chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            "version": env!("CARGO_PKG_VERSION"),
            "journal": self.dir().journal_path().display().to_string(),
            "study_dir": self.dir().path().display().to_string(),
            "experiment": c.experiment,
            "overrides": c.overrides.join(" "),
            "metric": metric,
            "direction": crate::runs::direction_text(mode),
            "sampler": flow(&c.sampler),
            "pruner": flow(&c.pruner),
            "activity": c.activity.as_ref().map(flow),
            "dispatch": flow(&c.dispatch),
            "workers": c.workers,
            "seed": c.seed,
            "n_trials": log.trials.len(),
            "budget": c.budget.trials,
            "counts": counts.join(", "),
            "finished": log.finished.clone().unwrap_or_else(|| "no (still running or stopped)".into()),
            "wall": format!("{:.0} s", wall),
            "best": best.map(|b| serde_json::json!({
                "id": b.id, "value": fmt(b.value), "run_dir": b.run_dir.display().to_string(),
                "params": params(&b.overrides),
            })),
            "baseline": baseline,
            "retrain": retrain,
            "epochs_run": run,
            "epochs_planned": all,
            "epochs_saved": all.saturating_sub(run),
            "saved_pct": if all > 0 { format!("{:.0}%", 100.0 * (all.saturating_sub(run)) as f64 / all as f64) } else { "-".into() },
            "space": space_rows(c),
            "figures": figures,
            "trials": log.trials.iter().map(|t| serde_json::json!({
                "id": t.id, "status": t.status.as_str(), "value": fmt(t.value), "epochs": t.epochs,
                "requeues": t.requeues, "params": params(&t.overrides),
                "run_dir": t.run_dir.display().to_string(),
            })).collect::<Vec<_>>(),
        }))
    }
}

/// One row per parameter of the space: key, kind, range or choices.
fn space_rows(config: &super::StudyConfig) -> Vec<serde_json::Value> {
    config
        .space
        .params
        .iter()
        .map(|(k, p)| {
            let (kind, range) = match p {
                Param::Float { low, high, log, .. } => (
                    if *log { "float, log" } else { "float" },
                    format!("[{low}, {high}]"),
                ),
                Param::Int { low, high, log, .. } => (
                    if *log { "int, log" } else { "int" },
                    format!("[{low}, {high}]"),
                ),
                Param::Categorical { choices, .. } => ("categorical", choices.join(", ")),
            };
            serde_json::json!({"key": k, "kind": kind, "range": range})
        })
        .collect()
}

/// A config block as one line of JSON, for the report's header.
fn flow<T: Serialize>(block: &T) -> String {
    serde_json::to_string(block).unwrap_or_default()
}

/// The five figures of `log`.
fn figures(log: &StudyLog, metric: &str, mode: Mode) -> Result<Vec<StudyFigure>> {
    Ok(vec![
        StudyFigure {
            stem: "history",
            caption: format!("{metric} of each trial and the best feasible so far"),
            figure: Figure::render(&History::new(log, metric, mode))?,
        },
        StudyFigure {
            stem: "parallel_coordinates",
            caption: "each trial's parameters (unit scale) and objective; darker is better".into(),
            figure: Figure::render(&ParallelCoordinates::new(log, metric, mode))?,
        },
        StudyFigure {
            stem: "importance",
            caption: "share of the objective's variance explained by each parameter alone (4 quantile bins)".into(),
            figure: Figure::render(&Importance::new(log, 4))?,
        },
        StudyFigure {
            stem: "timeline",
            caption: "which worker ran which trial when (orange: pruned)".into(),
            figure: Figure::render(&Timeline::new(log))?,
        },
        StudyFigure {
            stem: "intermediate",
            caption: format!("{metric} after each epoch of every trial"),
            figure: Figure::render(&Intermediate::new(log, metric))?,
        },
    ])
}
