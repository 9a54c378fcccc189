//! `spectrum.csv` in a run directory: one row per (epoch, exponent), written atomically as
//! epochs complete and read back as a frame.

use std::path::Path;

use polars::prelude::DataFrame;

use super::monitor::SpectrumEstimate;
use crate::error::{Error, Result};
use crate::frame::{read_csv, Frame};

/// The file name, beside `history.csv`.
pub const SPECTRUM_FILE: &str = "spectrum.csv";

const HEADER: &str = "epoch,index,lambda,lambda_std,steps_averaged,sequences";

/// Where `autoresearch dynamics` writes inside a run directory.
pub const ANALYSIS_DIR: &str = "dynamics";

/// Writes `estimate` as epoch `epoch`'s rows of `<dir>/spectrum.csv`, replacing the rows of that
/// epoch and of any later one (left by a run that resumed from an earlier checkpoint).
pub fn record_spectrum(dir: &Path, epoch: usize, estimate: &SpectrumEstimate) -> Result<()> {
    let path = dir.join(SPECTRUM_FILE);
    let mut text = format!("{HEADER}\n");
    if path.exists() {
        let table = read_csv(&path)?;
        for row in &table.rows {
            let earlier = row
                .first()
                .and_then(|e| e.parse::<usize>().ok())
                .is_some_and(|e| e < epoch);
            if earlier {
                text.push_str(&row.join(","));
                text.push('\n');
            }
        }
    }
    for (i, (m, s)) in estimate.mean.iter().zip(&estimate.std).enumerate() {
        text.push_str(&format!(
            "{epoch},{},{m:.9},{s:.9},{},{}\n",
            i + 1,
            estimate.steps_averaged,
            estimate.sequences
        ));
    }
    crate::fsutil::write_atomic(&path, text.as_bytes())
}

/// `<dir>/spectrum.csv` (a run directory's, or its `dynamics/` analysis) as a frame: `epoch`, `index` (1 = largest), `lambda` (per step),
/// `lambda_std` (over input sequences), `steps_averaged`, `sequences`.
pub fn read_spectrum(dir: &Path) -> Result<DataFrame> {
    let path = dir.join(SPECTRUM_FILE);
    if !path.exists() {
        return Err(Error::Analysis(format!(
            "{} does not exist: train with a `dynamics.spectrum` setting or run `autoresearch dynamics {}`",
            path.display(),
            dir.display()
        )));
    }
    let table = read_csv(&path)?;
    let col = |name: &str| -> Result<Vec<&str>> {
        table.column(name).ok_or_else(|| {
            Error::Analysis(format!(
                "{}: no column `{name}` (expected {HEADER})",
                path.display()
            ))
        })
    };
    let num = |name: &str| -> Result<Vec<f64>> {
        col(name)?
            .into_iter()
            .map(|c| {
                c.parse::<f64>().map_err(|_| {
                    Error::Analysis(format!(
                        "{}: `{c}` in column `{name}` is not a number",
                        path.display()
                    ))
                })
            })
            .collect()
    };
    let int =
        |name: &str| -> Result<Vec<u64>> { Ok(num(name)?.into_iter().map(|v| v as u64).collect()) };
    Frame::new()
        .u64s("epoch", int("epoch")?)
        .u64s("index", int("index")?)
        .f64s("lambda", num("lambda")?)
        .f64s("lambda_std", num("lambda_std")?)
        .u64s("steps_averaged", int("steps_averaged")?)
        .u64s("sequences", int("sequences")?)
        .finish()
}
