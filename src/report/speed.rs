//! End-to-end speed of the reference rows: the training samples/s a full `train` run reached
//! (batching, encoding, validation and probes included: the training set over the median
//! epoch time) beside the samples/s `autoresearch bench` measured for the same network.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::DataFrame;

use super::fidelity::{validation_history, Fidelity};
use crate::bench::Baseline;
use crate::error::Result;
use crate::frame::str_column;
use crate::stats::median;

/// Training samples/s per `autoresearch bench` row (`a`..`i`): the median over the given
/// result files of each file's median.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BenchRates {
    /// Samples/s by bench row key.
    pub train_samples_s: BTreeMap<String, f64>,
    /// The files read, as given.
    pub files: Vec<String>,
}

impl BenchRates {
    /// Reads the JSON files written by `autoresearch bench --json` (rows missing from a file
    /// are taken from the others).
    pub fn read(paths: &[impl AsRef<Path>]) -> Result<BenchRates> {
        let mut by_row: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut files = Vec::new();
        for path in paths {
            let path = path.as_ref();
            for (row, rates) in Baseline::read(path)?.train {
                by_row.entry(row).or_default().push(rates.median);
            }
            files.push(path.display().to_string());
        }
        let train_samples_s = by_row
            .into_iter()
            .filter_map(|(row, v)| Some((row, median(&v)?)))
            .collect();
        Ok(BenchRates {
            train_samples_s,
            files,
        })
    }

    /// The bench's training samples/s of row `key`, if measured.
    pub fn train(&self, key: &str) -> Option<f64> {
        self.train_samples_s.get(key).copied()
    }
}

impl Fidelity {
    /// Each row's bench samples/s from `rates`: its own network's training step where
    /// `bench --experiment` timed it, else the reference script's row its `bench` key names.
    pub fn with_bench(mut self, rates: &BenchRates) -> Fidelity {
        for row in &mut self.rows {
            let own = rates.train(&row.reference.experiment);
            let script = || {
                let key = row.reference.bench.as_deref()?;
                Some((key.to_string(), rates.train(key)?))
            };
            let found = match own {
                Some(v) => Some(("own".to_string(), v)),
                None => script(),
            };
            row.bench_row = found.as_ref().map(|(k, _)| k.clone());
            row.bench_samples_s = found.map(|(_, v)| v);
        }
        self.bench_files = rates.files.clone();
        self
    }

    /// Each row's speed on an idle machine: the median epoch time and training samples/s of
    /// the completed runs of its experiment (any variant) in `runs` (a [`crate::runs::scan`]
    /// frame, e.g. of `benches/e2e_speed.py`'s one-epoch runs, found under `root`), which
    /// Train / bench then uses; the compared runs may have shared their machine.
    pub fn with_idle(mut self, runs: &DataFrame, root: &str) -> Result<Fidelity> {
        let (exp, status, path) = (
            str_column(runs, "experiment")?,
            str_column(runs, "status")?,
            str_column(runs, "path")?,
        );
        for row in &mut self.rows {
            let (mut epochs, mut rates) = (Vec::new(), Vec::new());
            for i in 0..runs.height() {
                let mine = exp[i].as_deref() == Some(row.reference.experiment.as_str())
                    && status[i].as_deref() == Some("completed");
                let (true, Some(dir)) = (mine, &path[i]) else {
                    continue;
                };
                let times = validation_history(Path::new(dir))?.epoch_s;
                let Some((epoch_s, rate)) = run_speed(Path::new(dir), &times) else {
                    continue;
                };
                epochs.push(epoch_s);
                rates.extend(rate);
            }
            row.idle = median(&epochs).map(|e| (e, median(&rates)));
        }
        self.idle_runs = Some(root.to_string());
        Ok(self)
    }
}

/// A run's median epoch time (s, of its `epoch_time_s` values `epoch_times`) and its training
/// samples/s over it, where its log gives the training set's size; `None` without epochs.
pub fn run_speed(run_dir: &Path, epoch_times: &[f64]) -> Option<(f64, Option<f64>)> {
    let epoch_s = median(epoch_times)?;
    let rate = train_samples(run_dir).map(|n| n as f64 / epoch_s);
    Some((epoch_s, rate.filter(|v| v.is_finite())))
}

/// The number of training samples of a run, from the first line of its `log.txt`
/// (`started ... (54000 train, 6000 val, ...)`); `None` when the log says nothing of it.
pub fn train_samples(run_dir: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(run_dir.join("log.txt")).ok()?;
    let line = text.lines().find(|l| l.contains(" started "))?;
    let inside = &line[line.find('(')? + 1..];
    let (count, rest) = inside.split_once(' ')?;
    rest.starts_with("train,").then(|| count.parse().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_training_set_size_is_read_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(train_samples(dir.path()), None, "no log");
        std::fs::write(
            dir.path().join("log.txt"),
            "2026-12-07T19:49:21Z started mnist_ffnn_adam / default seed 0 (54000 train, 6000 val, 10000 test samples of mnist, 235146 parameters)\n2026-12-07T19:49:22Z epoch 1/50: ...\n",
        )
        .unwrap();
        assert_eq!(train_samples(dir.path()), Some(54000));
        std::fs::write(dir.path().join("log.txt"), "started x (y z)\n").unwrap();
        assert_eq!(train_samples(dir.path()), None, "not a count");
    }

    #[test]
    fn bench_rates_take_the_median_over_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, a: f64, b: Option<f64>| {
            let mut train = format!(
                "\"a\": {{\"median\": {a}, \"min\": 0, \"max\": 0, \"runs\": [], \"ms_per_batch\": 0}}"
            );
            if let Some(b) = b {
                train += &format!(
                    ", \"b\": {{\"median\": {b}, \"min\": 0, \"max\": 0, \"runs\": [], \"ms_per_batch\": 0}}"
                );
            }
            let path = dir.path().join(name);
            std::fs::write(&path, format!("{{\"train\": {{{train}}}}}")).unwrap();
            path
        };
        let paths = [
            file("1.json", 100.0, Some(7.0)),
            file("2.json", 300.0, None),
            file("3.json", 200.0, None),
        ];
        let rates = BenchRates::read(&paths).unwrap();
        assert_eq!(rates.train("a"), Some(200.0));
        assert_eq!(rates.train("b"), Some(7.0));
        assert_eq!(rates.train("c"), None);
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{").unwrap();
        let err = BenchRates::read(&[bad]).unwrap_err().to_string();
        assert!(err.contains("bad.json"), "{err}");
    }
}
