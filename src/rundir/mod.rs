//! The run directory: the only contract between running and analysis.
//!
//! ```text
//! runs/<experiment>/<variant>/seed_<n>/
//!   config.yaml  metrics.json  history.csv  log.txt
//!   checkpoint/last.safetensors  checkpoint/last.json  checkpoint/best.safetensors
//! ```

mod history;
mod metrics;

pub use history::{parse_history_csv, EpochRecord, HISTORY_COLUMNS};
pub use metrics::{Metrics, RunStatus, SCHEMA_VERSION};

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::ExperimentConfig;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// Paths inside one run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run directory of `cfg`: `<runs_dir>/<name>/<variant>/seed_<seed>`.
    pub fn for_config(cfg: &ExperimentConfig) -> Self {
        RunDir {
            root: cfg
                .runs_dir
                .join(&cfg.name)
                .join(&cfg.variant)
                .join(format!("seed_{}", cfg.seed)),
        }
    }

    /// Wraps an existing directory path.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        RunDir { root: root.into() }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }
    /// `config.yaml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.yaml")
    }
    /// `metrics.json`.
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.json")
    }
    /// `history.csv`.
    pub fn history_path(&self) -> PathBuf {
        self.root.join("history.csv")
    }
    /// `log.txt`.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("log.txt")
    }
    /// `checkpoint/`.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.root.join("checkpoint")
    }
    /// `checkpoint/last.safetensors`: weights, optimizer state and training state.
    pub fn last_checkpoint(&self) -> PathBuf {
        self.checkpoint_dir().join("last.safetensors")
    }
    /// `checkpoint/last.json`: the training state of the last checkpoint, readable by people.
    pub fn last_state_json(&self) -> PathBuf {
        self.checkpoint_dir().join("last.json")
    }
    /// `checkpoint/best.safetensors`: weights of the best validation epoch.
    pub fn best_checkpoint(&self) -> PathBuf {
        self.checkpoint_dir().join("best.safetensors")
    }

    /// Reads `metrics.json`, if the run has one.
    pub fn read_metrics(&self) -> Result<Option<Metrics>> {
        let path = self.metrics_path();
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(Error::io("reading", &path))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::RunDir {
                path: path.clone(),
                message: format!(
                    "metrics.json is not valid ({e}); fix or delete it, or rerun with --force"
                ),
            })
    }

    /// Writes `metrics.json` atomically.
    pub fn write_metrics(&self, metrics: &Metrics) -> Result<()> {
        let json = serde_json::to_string_pretty(metrics).map_err(|e| Error::RunDir {
            path: self.metrics_path(),
            message: e.to_string(),
        })?;
        write_atomic(&self.metrics_path(), json.as_bytes())
    }

    /// Writes `config.yaml` atomically.
    pub fn write_config(&self, cfg: &ExperimentConfig) -> Result<()> {
        let yaml = serde_yaml_ng::to_string(cfg).map_err(|e| Error::RunDir {
            path: self.config_path(),
            message: e.to_string(),
        })?;
        write_atomic(&self.config_path(), yaml.as_bytes())
    }

    /// Reads `config.yaml` back into a typed config.
    pub fn read_config(&self) -> Result<ExperimentConfig> {
        let tree = crate::config::load_yaml(&self.config_path())?;
        crate::config::typed_unchecked(&tree)
    }

    /// Writes `history.csv` atomically from all epochs so far.
    pub fn write_history(&self, rows: &[EpochRecord]) -> Result<()> {
        write_atomic(&self.history_path(), history::to_csv(rows).as_bytes())
    }

    /// Appends a time-stamped line to `log.txt` (a log, so appended rather than replaced).
    pub fn log(&self, line: &str) -> Result<()> {
        let path = self.log_path();
        std::fs::create_dir_all(&self.root)
            .map_err(Error::io("creating run directory", &self.root))?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(Error::io("opening", &path))?;
        let stamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        writeln!(file, "{stamp} {line}").map_err(Error::io("appending to", &path))
    }
}
