//! Published reference values as data: a YAML file per upstream project (e.g.
//! `reference/chpc_autoresearch.yaml`) naming, for each of our experiments, the value the
//! upstream project reported (mean ± std over its seeds, per-seed values where it published
//! them), its budget and where it comes from. The leaderboard shows them beside our runs and
//! the fidelity report tests ours against them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Whether the upstream project ran the row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceStatus {
    /// Run and reported: `mean` and `std` are required.
    #[default]
    Reported,
    /// Planned upstream and never run: no values; our runs are new rows.
    Planned,
}

/// Which value of a run the reference reported: the statistic differs between upstream rows,
/// and ours is compared on the same one, taken from each run's `history.csv`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Statistic {
    /// The best validation accuracy over the epochs run.
    #[default]
    BestEpoch,
    /// The last epoch's validation accuracy.
    LastEpoch,
    /// The validation accuracy of the epoch with the lowest validation loss.
    AtMinValLoss,
}

impl Statistic {
    /// The statistic of one run from its per-epoch validation accuracies and losses (in
    /// epoch order); `None` without epochs.
    pub fn of_history(self, val_acc: &[f64], val_loss: &[f64]) -> Option<f64> {
        match self {
            Statistic::BestEpoch => val_acc.iter().copied().reduce(f64::max),
            Statistic::LastEpoch => val_acc.last().copied(),
            Statistic::AtMinValLoss => {
                // the first epoch reaching the lowest loss, as a checkpoint kept on `<` would
                let mut best: Option<(usize, f64)> = None;
                for (i, &l) in val_loss.iter().enumerate() {
                    if best.is_none_or(|(_, b)| l < b) {
                        best = Some((i, l));
                    }
                }
                val_acc.get(best?.0).copied()
            }
        }
    }

    /// A few words for tables.
    pub fn text(self) -> &'static str {
        match self {
            Statistic::BestEpoch => "best epoch",
            Statistic::LastEpoch => "last epoch",
            Statistic::AtMinValLoss => "at min val loss",
        }
    }
}

/// One reference row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceRow {
    /// Our experiment that reproduces it.
    pub experiment: String,
    /// Our variant (`default`: the experiment as configured, no overrides).
    #[serde(default = "default_variant")]
    pub variant: String,
    /// The model as the upstream project names it.
    pub model: String,
    /// Input encoding (`pixels`, `rate`, `ttfs`, `rows`).
    pub encoding: String,
    /// Reported or only planned upstream.
    #[serde(default)]
    pub status: ReferenceStatus,
    /// Which value of each run was reported.
    #[serde(default)]
    pub statistic: Statistic,
    /// Reported seed mean of the metric (a fraction for accuracies).
    #[serde(default)]
    pub mean: Option<f64>,
    /// Reported spread across seeds.
    #[serde(default)]
    pub std: Option<f64>,
    /// Delta degrees of freedom of `std` where known (1: sample std, 0: population std).
    #[serde(default)]
    pub ddof: Option<u8>,
    /// Number of seeds behind the value.
    #[serde(default)]
    pub seeds: Option<usize>,
    /// Per-seed values where the upstream project committed them.
    #[serde(default)]
    pub per_seed: Vec<f64>,
    /// The budget of the upstream runs (epochs, early stopping, batch).
    pub budget: String,
    /// Where the value is published (file, row, commit).
    pub source: String,
    /// What differs between the upstream recipe and ours, where something does.
    #[serde(default)]
    pub differences: Option<String>,
    /// The `autoresearch bench` row (`a`..`i`) that times the same network, where one does.
    #[serde(default)]
    pub bench: Option<String>,
}

fn default_variant() -> String {
    "default".into()
}

/// One reference file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceFile {
    /// The upstream project (`CHPC-Autoresearch`).
    pub project: String,
    /// Where its values were read (repository, file, commit, date).
    pub source: String,
    /// The metric the values are of (`val_acc`); each row's statistic says which epoch's.
    pub metric: String,
    /// Its unit (`fraction`: shown in percent).
    #[serde(default)]
    pub unit: String,
    /// The rows.
    pub rows: Vec<ReferenceRow>,
}

/// The file a row came from: its project and the metric's unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The upstream project.
    pub project: String,
    /// The unit of the values (`fraction`).
    pub unit: String,
}

/// Every reference row, in the order of their files and of the rows in each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct References {
    rows: Vec<(ReferenceRow, Origin)>,
}

impl References {
    /// Reads `path`: one reference file, or a directory of them (`*.yaml`, read in name
    /// order); a missing path means no references.
    pub fn load(path: &Path) -> Result<References> {
        let mut out = References::default();
        if !path.exists() {
            return Ok(out);
        }
        let files: Vec<PathBuf> = if path.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(Error::io("listing", path))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            v.sort();
            v
        } else {
            vec![path.to_path_buf()]
        };
        for file in files {
            out.add(&file, ReferenceFile::load(&file)?)?;
        }
        Ok(out)
    }

    /// Adds a file's rows; an error when a row's key is already taken.
    pub fn add(&mut self, path: &Path, file: ReferenceFile) -> Result<()> {
        for row in file.rows {
            if self.of(&row.experiment, &row.variant).is_some() {
                return Err(parse_error(
                    path,
                    format!(
                        "{}/{} has two reference rows; keep one per experiment and variant",
                        row.experiment, row.variant
                    ),
                ));
            }
            let origin = Origin {
                project: file.project.clone(),
                unit: file.unit.clone(),
            };
            self.rows.push((row, origin));
        }
        Ok(())
    }

    /// The reference row of `experiment/variant` and where it came from, if any.
    pub fn of(&self, experiment: &str, variant: &str) -> Option<(&ReferenceRow, &Origin)> {
        self.rows
            .iter()
            .find(|(r, _)| r.experiment == experiment && r.variant == variant)
            .map(|(r, o)| (r, o))
    }

    /// Every row with its origin, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&ReferenceRow, &Origin)> {
        self.rows.iter().map(|(r, o)| (r, o))
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl ReferenceFile {
    /// Reads and checks one reference file.
    pub fn load(path: &Path) -> Result<ReferenceFile> {
        let text = std::fs::read_to_string(path).map_err(Error::io("reading", path))?;
        let file: ReferenceFile = serde_yaml_ng::from_str(&text).map_err(|e| {
            parse_error(
                path,
                format!(
                    "{e} (expected `project`, `source`, `metric`, `unit` and `rows: [{{experiment, variant, model, encoding, status: reported|planned, statistic: best_epoch|last_epoch|at_min_val_loss, mean, std, ddof, seeds, per_seed, budget, source, differences}}]`)"
                ),
            )
        })?;
        for row in &file.rows {
            row.check().map_err(|m| {
                parse_error(path, format!("row {}/{}: {m}", row.experiment, row.variant))
            })?;
        }
        Ok(file)
    }
}

impl ReferenceRow {
    /// The reported value as `(mean, std)`, for a reported row.
    pub fn value(&self) -> Option<(f64, f64)> {
        Some((self.mean?, self.std?))
    }

    /// Our seed mean's distance from the reference mean in units of the reference std
    /// (`None` for a planned row or a zero std).
    pub fn distance_in_std(&self, ours: f64) -> Option<f64> {
        let (mean, std) = self.value()?;
        (std > 0.0).then(|| (ours - mean) / std)
    }

    /// Checks the values are present and agree with each other (the published mean is
    /// rounded, so the per-seed mean may differ from it by half a unit of its last digit).
    fn check(&self) -> std::result::Result<(), String> {
        match self.status {
            ReferenceStatus::Planned => {
                if self.mean.is_some() || self.std.is_some() || !self.per_seed.is_empty() {
                    return Err("a planned row has no values; give `status: reported`".into());
                }
                return Ok(());
            }
            ReferenceStatus::Reported => {}
        }
        let (Some(mean), Some(std)) = (self.mean, self.std) else {
            return Err("a reported row needs `mean` and `std`".into());
        };
        if !(mean.is_finite() && std.is_finite() && std >= 0.0) {
            return Err(format!(
                "mean {mean} and std {std} must be finite, std >= 0"
            ));
        }
        if let Some(d) = self.ddof.filter(|d| *d > 1) {
            return Err(format!("ddof {d}: 0 (population std) or 1 (sample std)"));
        }
        if self.per_seed.is_empty() {
            return Ok(());
        }
        if let Some(n) = self.seeds.filter(|n| *n != self.per_seed.len()) {
            return Err(format!(
                "seeds {n} but {} per-seed values",
                self.per_seed.len()
            ));
        }
        let n = self.per_seed.len() as f64;
        let m = self.per_seed.iter().sum::<f64>() / n;
        if (m - mean).abs() > 5e-4 {
            return Err(format!(
                "the per-seed values average {m:.5}, not the reported mean {mean}"
            ));
        }
        Ok(())
    }
}

fn parse_error(path: &Path, message: String) -> Error {
    Error::ConfigParse {
        path: path.to_path_buf(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rows: &str) -> String {
        format!("project: P\nsource: s\nmetric: val_acc\nunit: fraction\nrows:\n{rows}")
    }

    fn load(text: &str) -> Result<References> {
        let dir = tempfile::tempdir().map_err(Error::io("creating", Path::new("tmp")))?;
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, text).map_err(Error::io("writing", &path))?;
        References::load(dir.path())
    }

    #[test]
    fn rows_load_by_experiment_and_variant_with_distances_in_reference_stds() -> Result<()> {
        let refs = load(&file(
            "  - {experiment: a, model: A, encoding: pixels, mean: 0.98, std: 0.002, seeds: 2,\n     per_seed: [0.979, 0.981], budget: 5 epochs, source: README}\n  - {experiment: b, model: B, encoding: rate, status: planned, budget: never run, source: README}\n",
        ))?;
        let (a, origin) = refs
            .of("a", "default")
            .ok_or_else(|| Error::Analysis("missing".into()))?;
        assert_eq!(
            (origin.project.as_str(), a.statistic),
            ("P", Statistic::BestEpoch)
        );
        let d = a.distance_in_std(0.981).unwrap_or(f64::NAN);
        assert!((d - 0.5).abs() < 1e-9, "{d}");
        let (b, _) = refs
            .of("b", "default")
            .ok_or_else(|| Error::Analysis("missing".into()))?;
        assert_eq!(
            (b.status, b.distance_in_std(0.5)),
            (ReferenceStatus::Planned, None)
        );
        assert!(refs.of("a", "epochs=2").is_none());
        assert!(References::load(Path::new("/nonexistent/reference"))?.is_empty());
        Ok(())
    }

    #[test]
    fn statistics_pick_the_best_the_last_or_the_min_loss_epoch() {
        let (acc, loss) = ([0.90, 0.95, 0.94, 0.93], [0.30, 0.20, 0.20, 0.25]);
        assert_eq!(Statistic::BestEpoch.of_history(&acc, &loss), Some(0.95));
        assert_eq!(Statistic::LastEpoch.of_history(&acc, &loss), Some(0.93));
        // the tie at 0.20 keeps the first epoch reaching it
        assert_eq!(Statistic::AtMinValLoss.of_history(&acc, &loss), Some(0.95));
        assert_eq!(Statistic::AtMinValLoss.of_history(&acc, &[]), None);
        assert_eq!(Statistic::LastEpoch.of_history(&[], &[]), None);
    }

    #[test]
    fn bad_rows_name_the_file_the_row_and_what_is_valid() {
        for (rows, want) in [
            (
                "  - {experiment: a, model: A, encoding: x, budget: b, source: s}\n",
                "needs `mean` and `std`",
            ),
            (
                "  - {experiment: a, model: A, encoding: x, mean: 0.9, std: 0.1, per_seed: [0.5, 0.6], budget: b, source: s}\n",
                "average 0.55000",
            ),
            (
                "  - {experiment: a, model: A, encoding: x, mean: 0.9, std: 0.1, budget: b, source: s, colour: red}\n",
                "unknown field `colour`",
            ),
            (
                "  - {experiment: a, model: A, encoding: x, status: planned, mean: 0.9, budget: b, source: s}\n",
                "a planned row has no values",
            ),
            (
                "  - {experiment: a, model: A, encoding: x, mean: 0.9, std: 0.1, budget: b, source: s}\n  - {experiment: a, model: A, encoding: x, mean: 0.9, std: 0.1, budget: b, source: s}\n",
                "two reference rows",
            ),
        ] {
            let err = load(&file(rows)).map(|_| ()).map_err(|e| e.to_string());
            let text = err.err().unwrap_or_default();
            assert!(text.contains(want) && text.contains("p.yaml"), "{text}");
        }
    }
}
