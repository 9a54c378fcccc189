//! A run's time estimated from a measured one: the median `epoch_time_s` of a finished run
//! directory's `history.csv` x the epochs of each run of the sweep. A time measured on one kind
//! of device only sizes jobs on the same kind (a CPU epoch says nothing about a GPU epoch), so a
//! run that recorded another device than the job's is refused.

use std::path::{Path, PathBuf};

use super::gpu::{DEVICE_KEY, GPU_DEVICE};
use super::walltime::Walltime;
use crate::error::{Error, Result};
use crate::rundir::{parse_history_csv, RunDir};

/// The command-line option that names the measured run directory.
pub const OPTION: &str = "--epoch-time-from";

/// The `history.csv` column holding each epoch's wall time in seconds.
pub const EPOCH_TIME_COLUMN: &str = "epoch_time_s";

/// What to do when there is no measured run to read.
pub const HINT: &str = "train one short run on the target queue first, e.g. `autoresearch cluster submit <profile> --gpus 1 --queue gpu_1 experiment=<name> seed=0 epochs=2`, fetch it (`autoresearch cluster fetch <profile>`), then pass its run directory (runs/<name>/epochs=2/seed_0)";

/// The epoch time measured in one run directory.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochTime {
    /// The run directory read.
    pub run_dir: PathBuf,
    /// Median `epoch_time_s` over its epochs, in seconds.
    pub median_s: f64,
    /// Number of epochs measured.
    pub epochs: usize,
    /// The host that last ran it (`metrics.json`'s `host`), when recorded.
    pub host: Option<String>,
    /// The device it trained on (`config.yaml`'s `device`), when recorded.
    pub device: Option<String>,
}

/// The error of a run directory that cannot give an epoch time, naming the file and the way out.
fn unusable(path: &Path, what: &str) -> Error {
    Error::invalid(OPTION, format!("{}: {what}; {HINT}", path.display()))
}

/// `value` without line breaks, so that it stays within one comment line of a job script.
fn one_line(value: &str) -> String {
    value.replace(['\n', '\r'], " ")
}

impl EpochTime {
    /// Reads `run_dir`: the median epoch time of its `history.csv` (read by
    /// [`parse_history_csv`]), the host of its `metrics.json` and the device of its
    /// `config.yaml` where present. Refuses, naming the file and [`HINT`], a run without
    /// `history.csv`, without the `epoch_time_s` column or without a measured epoch.
    pub fn measure(run_dir: &Path) -> Result<EpochTime> {
        let dir = RunDir::at(run_dir);
        let path = dir.history_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(unusable(
                    &path,
                    "no history.csv, so no measured epoch time (is it a run directory, runs/<experiment>/<variant>/seed_<n>?)",
                ))
            }
            Err(e) => return Err(Error::io("reading", &path)(e)),
        };
        let header = text.lines().next().unwrap_or_default();
        if !header.split(',').any(|c| c.trim() == EPOCH_TIME_COLUMN) {
            let what = format!(
                "no `{EPOCH_TIME_COLUMN}` column (header `{header}`), so no measured epoch time"
            );
            return Err(unusable(&path, &what));
        }
        let rows = parse_history_csv(&text)
            .map_err(|m| unusable(&path, &format!("not a history.csv ({m})")))?;
        let times: Vec<f64> = rows
            .iter()
            .map(|r| r.epoch_time_s)
            .filter(|t| t.is_finite() && *t > 0.0)
            .collect();
        if times.is_empty() {
            return Err(unusable(
                &path,
                "no epoch with a measured time (the run has not finished an epoch)",
            ));
        }
        let host = dir
            .read_metrics()
            .ok()
            .flatten()
            .map(|m| m.host)
            .filter(|h| !h.trim().is_empty());
        Ok(EpochTime {
            run_dir: run_dir.to_path_buf(),
            epochs: times.len(),
            median_s: crate::stats::median(&times).unwrap_or(f64::NAN),
            host,
            device: recorded_device(&dir)?,
        })
    }

    /// Refuses a measurement made on another kind of device than the job's (`cuda` with
    /// `gpus` > 0, else `cpu`), naming [`OPTION`]; passes when the run recorded no device.
    pub fn check_device(&self, gpus: u32) -> Result<()> {
        let job = if gpus > 0 { GPU_DEVICE } else { "cpu" };
        match self.device.as_deref() {
            Some(run) if run != job => Err(Error::invalid(
                OPTION,
                format!(
                    "{} trained on `{run}` but this job trains on `{job}` ({}): an epoch time measured on one kind of device does not size a job on another; {HINT}",
                    self.run_dir.display(),
                    if gpus > 0 { format!("--gpus {gpus}") } else { "no --gpus".to_string() },
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The estimate of a run of `epochs` epochs at this epoch time.
    pub fn for_epochs(&self, epochs: usize) -> PerRunEstimate {
        PerRunEstimate {
            epoch_time: self.clone(),
            epochs,
        }
    }
}

/// The `device` key of the run's `config.yaml`, when the file exists and names one.
fn recorded_device(dir: &RunDir) -> Result<Option<String>> {
    let path = dir.config_path();
    if !path.is_file() {
        return Ok(None);
    }
    let tree = crate::config::load_yaml(&path)?;
    Ok(tree
        .get(DEVICE_KEY)
        .and_then(|v| v.as_str())
        .map(str::to_string))
}

/// A run's estimated time: a measured epoch time x the epochs of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct PerRunEstimate {
    /// The measured epoch time.
    pub epoch_time: EpochTime,
    /// Epochs of one run (the largest over the sweep's points).
    pub epochs: usize,
}

impl PerRunEstimate {
    /// The estimate: median epoch time x epochs, rounded up to the second.
    pub fn per_run(&self) -> Walltime {
        Walltime((self.epoch_time.median_s * self.epochs as f64).ceil() as u64)
    }

    /// Where the estimate comes from, for the job script:
    /// `200 epochs x 17.2 s (median epoch of <dir>, 12 epochs measured on <host>, cuda)`.
    pub fn source(&self) -> String {
        let t = &self.epoch_time;
        let seconds = if (t.median_s - t.median_s.round()).abs() < 0.05 {
            format!("{:.0}", t.median_s)
        } else {
            format!("{:.1}", t.median_s)
        };
        let mut measured = format!(
            "median epoch of {}, {} epoch{} measured",
            t.run_dir.display(),
            t.epochs,
            if t.epochs == 1 { "" } else { "s" }
        );
        if let Some(host) = &t.host {
            measured.push_str(&format!(" on {host}"));
        }
        if let Some(device) = &t.device {
            measured.push_str(&format!(", {device}"));
        }
        one_line(&format!(
            "{} epochs x {seconds} s ({measured})",
            self.epochs
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rundir::{EpochRecord, Metrics, RunStatus};

    fn epoch(epoch: usize, epoch_time_s: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            train_loss: 1.0,
            train: Vec::new(),
            val_loss: 1.0,
            val: Vec::new(),
            lr: 0.1,
            epoch_time_s,
            extra: Vec::new(),
        }
    }

    fn metrics(host: &str) -> Metrics {
        Metrics {
            schema_version: crate::rundir::SCHEMA_VERSION,
            experiment: "x".into(),
            variant: "epochs=2".into(),
            model: "resnet".into(),
            dataset: "cifar10".into(),
            seed: 0,
            status: RunStatus::Completed,
            best_val_acc: None,
            best_epoch: None,
            final_val_acc: None,
            test_acc: None,
            test_loss: None,
            epochs_done: 2,
            epochs_planned: 2,
            early_stopped: false,
            params: 1,
            wall_time_s: 1.0,
            started_at: String::new(),
            finished_at: None,
            host: host.into(),
            git_commit: None,
            resumed: 0,
            error: None,
            objective: None,
            declared: Vec::new(),
            results: Default::default(),
        }
    }

    /// A run directory with `history.csv` of `times` (written by the run directory's own
    /// writer), `metrics.json` of `host` and a `config.yaml` naming `device`.
    fn run_dir(times: &[f64], host: &str, device: &str) -> Result<tempfile::TempDir> {
        let tmp = tempfile::tempdir().map_err(Error::io("creating", "a temporary directory"))?;
        let dir = RunDir::at(tmp.path());
        let rows: Vec<EpochRecord> = times
            .iter()
            .enumerate()
            .map(|(i, t)| epoch(i + 1, *t))
            .collect();
        dir.write_history(&rows)?;
        dir.write_metrics(&metrics(host))?;
        let config =
            format!("name: x\nvariant: epochs=2\nseed: 0\nepochs: 2\n{DEVICE_KEY}: {device}\n");
        std::fs::write(dir.config_path(), config)
            .map_err(Error::io("writing", dir.config_path()))?;
        Ok(tmp)
    }

    #[test]
    fn the_estimate_is_the_median_epoch_times_the_epochs() -> Result<()> {
        // the first epoch's warm-up does not move the median
        let tmp = run_dir(&[95.0, 17.0, 17.4, 17.2, 90.0], "gpu4001", "cuda")?;
        let t = EpochTime::measure(tmp.path())?;
        assert_eq!((t.median_s, t.epochs), (17.4, 5));
        assert_eq!(t.host.as_deref(), Some("gpu4001"));
        assert_eq!(t.device.as_deref(), Some("cuda"));
        let estimate = t.for_epochs(200);
        assert_eq!(estimate.per_run(), Walltime(3480), "200 x 17.4 s");
        let source = estimate.source();
        assert!(
            source.starts_with("200 epochs x 17.4 s (median epoch of ")
                && source.ends_with(", 5 epochs measured on gpu4001, cuda)"),
            "{source}"
        );
        // an even count: the mean of the middle two
        let tmp = run_dir(&[20.0, 21.0], "", "cuda")?;
        let t = EpochTime::measure(tmp.path())?;
        assert_eq!(t.median_s, 20.5);
        assert_eq!(t.host, None, "an empty host is left out");
        assert_eq!(t.for_epochs(200).per_run(), Walltime(4100));
        assert!(!t.for_epochs(3).source().contains(" on "));
        Ok(())
    }

    #[test]
    fn a_run_on_another_device_is_refused() -> Result<()> {
        let tmp = run_dir(&[30.0, 30.0], "laptop", "cpu")?;
        let t = EpochTime::measure(tmp.path())?;
        t.check_device(0)?;
        let err = t.check_device(1).unwrap_err().to_string();
        assert!(
            err.contains(OPTION)
                && err.contains("trained on `cpu`")
                && err.contains("trains on `cuda`")
                && err.contains("epochs=2"),
            "{err}"
        );
        let tmp = run_dir(&[10.0], "gpu4001", "cuda")?;
        let err = EpochTime::measure(tmp.path())?
            .check_device(0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("trained on `cuda`") && err.contains("no --gpus"),
            "{err}"
        );
        // no config.yaml: nothing recorded, nothing refused
        std::fs::remove_file(tmp.path().join("config.yaml"))
            .map_err(Error::io("removing", tmp.path()))?;
        EpochTime::measure(tmp.path())?.check_device(1)?;
        Ok(())
    }

    #[test]
    fn a_run_without_times_is_one_clear_error() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(Error::io("creating", "a temporary directory"))?;
        let history = tmp.path().join("history.csv");
        let err = EpochTime::measure(tmp.path()).unwrap_err().to_string();
        let named = history.display().to_string();
        assert!(
            err.contains(OPTION) && err.contains(&named) && err.contains("no history.csv"),
            "{err}"
        );
        assert!(
            err.contains("train one short run") && err.contains("epochs=2"),
            "{err}"
        );
        std::fs::write(&history, "epoch,train_loss,val_loss,lr\n1,1,1,0.1\n")
            .map_err(Error::io("writing", &history))?;
        let err = EpochTime::measure(tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains(&named) && err.contains("no `epoch_time_s` column"),
            "{err}"
        );
        std::fs::write(&history, "epoch,train_loss,val_loss,lr,epoch_time_s\n")
            .map_err(Error::io("writing", &history))?;
        let err = EpochTime::measure(tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains(&named) && err.contains("no epoch with a measured time"),
            "{err}"
        );
        Ok(())
    }
}
