//! The spectrum of a trained run directory (its best checkpoint), written to
//! `<run>/dynamics/spectrum.csv` with the settings beside it in `spectrum.yaml`.

use std::path::Path;

use polars::prelude::DataFrame;

use super::files::{read_spectrum, record_spectrum, ANALYSIS_DIR};
use super::monitor::spectrum;
use crate::config::SpectrumConfig;
use crate::data::encode::batch_seed;
use crate::error::{Error, Result};
use crate::train::{load_run, VAL_STREAM};

/// Computes the spectrum of the run in `dir` under `cfg` (`steps: 0`: the whole input
/// sequence) on its first validation sequences, records it (and the settings) under
/// `<dir>/dynamics/`, and returns it as a frame.
pub fn analyse_run(dir: &Path, cfg: &SpectrumConfig) -> Result<DataFrame> {
    let (exp, trained) = load_run(dir)?;
    let seed = batch_seed(exp.seed, VAL_STREAM, 0);
    let mut cfg = cfg.clone();
    if cfg.steps == 0 {
        let first = trained.data.val.batch(&[0], &trained.device)?;
        cfg.steps = trained.model.encode(&first.input, seed)?.dim(0)?;
    }
    let cfg = &cfg;
    let estimate = spectrum(
        &*trained.model,
        &*trained.data.val,
        cfg,
        seed,
        &trained.device,
        "dynamics",
    )?;
    let out = dir.join(ANALYSIS_DIR);
    std::fs::create_dir_all(&out).map_err(Error::io("creating", &out))?;
    let best = crate::rundir::RunDir::at(dir)
        .read_metrics()?
        .and_then(|m| m.best_epoch)
        .unwrap_or(0);
    record_spectrum(&out, best, &estimate)?;
    let yaml = serde_yaml_ng::to_string(cfg)
        .map_err(|e| Error::Analysis(format!("writing the spectrum settings: {e}")))?;
    let settings = format!(
        "# the settings of spectrum.csv: epoch = the best checkpoint's epoch; transient used {}\n{yaml}",
        cfg.transient()
    );
    crate::fsutil::write_atomic(&out.join("spectrum.yaml"), settings.as_bytes())?;
    read_spectrum(&out)
}
