//! The aggregate of a connectome sweep (models x seeds, one run directory each): upstream's
//! files as a superset (`metrics_by_seed.csv`, `metrics_summary.csv`, `loss_history.csv`,
//! `leaderboard.csv`, `paired_comparisons.csv`, `matched_topology_comparisons.csv`, the
//! data / BPU / control validation reports, `summary.md`, `sweep_report.md`) and the figures,
//! every metric with its declared direction, every check computed (none written as PASS), and
//! the mean-predictor and oracle-integrator rows scored by the same metrics.

mod collect;
mod figures;
mod markdown;
mod paired;
mod tables;
mod validation;

use std::path::{Path, PathBuf};

use polars::prelude::DataFrame;

pub use collect::{collect, RunInfo, SeedRow, Sweep};

use crate::error::Result;
use crate::fsutil::write_atomic;
use crate::report::NamedFigure;

/// What [`aggregate`] wrote and the frames behind it.
pub struct Aggregate {
    /// The output folder.
    pub out: PathBuf,
    /// One row per (model, seed, test split), reference rows included (seed empty).
    pub metrics_by_seed: DataFrame,
    /// Mean and std per (model, split).
    pub metrics_summary: DataFrame,
    /// One row per (model, seed, epoch).
    pub loss_history: DataFrame,
    /// Ranked models.
    pub leaderboard: DataFrame,
    /// Paired deltas of every model against the connectome, per metric and split.
    pub paired: DataFrame,
    /// Every file written, relative to `out`.
    pub files: Vec<String>,
    /// The figures, by file stem.
    pub figures: Vec<NamedFigure>,
}

impl Aggregate {
    /// The figure saved as `stem` (`error_vs_sequence_length`, `sample_efficiency`, ...).
    pub fn figure(&self, stem: &str) -> Option<&crate::plot::Figure> {
        self.figures
            .iter()
            .find(|f| f.stem == stem)
            .map(|f| &f.figure)
    }
}

/// Reads the runs under `runs_root` and writes the aggregate into `out`.
pub fn aggregate(runs_root: &Path, out: &Path) -> Result<Aggregate> {
    let sweep = collect(runs_root)?;
    std::fs::create_dir_all(out).map_err(crate::Error::io("creating report folder", out))?;
    let files = std::cell::RefCell::new(Vec::new());
    let put_name = |name: String| files.borrow_mut().push(name);
    let put = |name: &str, bytes: Vec<u8>| -> Result<()> {
        write_atomic(&out.join(name), &bytes)?;
        put_name(name.to_string());
        Ok(())
    };
    let by_seed = tables::metrics_by_seed(&sweep)?;
    let summary = tables::metrics_summary(&sweep)?;
    let history = tables::loss_history(&sweep)?;
    let paired_rows = paired::paired_rows(&sweep)?;
    let paired = paired::paired_frame(&paired_rows, false)?;
    let matched = paired::paired_frame(&paired_rows, true)?;
    let leaderboard = tables::leaderboard(&sweep)?;
    for (name, df) in [
        ("metrics_by_seed.csv", &by_seed),
        ("metrics_summary.csv", &summary),
        ("loss_history.csv", &history),
        ("paired_comparisons.csv", &paired),
        ("matched_topology_comparisons.csv", &matched),
        ("leaderboard.csv", &leaderboard),
    ] {
        put(name, crate::frame::to_csv(df)?)?;
    }
    let checks = validation::all(&sweep)?;
    put("data_validation.md", checks.data.into_bytes())?;
    put("bpu_validation.md", checks.bpu.into_bytes())?;
    put("control_validation.md", checks.control.into_bytes())?;
    let figures = figures::all(&sweep)?;
    for fig in &figures {
        let saved = fig.figure.save(out, &fig.stem)?;
        for p in [saved.svg, saved.png] {
            if let Some(name) = p.file_name() {
                put_name(name.to_string_lossy().into_owned());
            }
        }
    }
    put(
        "summary.md",
        markdown::summary(&sweep, &paired_rows)?.into_bytes(),
    )?;
    put(
        "sweep_report.md",
        markdown::sweep_report(&sweep, &leaderboard, &paired_rows, checks.failures)?.into_bytes(),
    )?;
    Ok(Aggregate {
        out: out.to_path_buf(),
        metrics_by_seed: by_seed,
        metrics_summary: summary,
        loss_history: history,
        leaderboard,
        paired,
        files: files.into_inner(),
        figures,
    })
}
