//! One run directory into a [`RunRecord`], with every unreadable file as a [`Problem`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::flatten::{flatten, ConfigValue};
use super::{Problem, READ_SCHEMA_VERSIONS};
use crate::rundir::{parse_history_csv, EpochRecord, Metrics, RunDir};

/// What the scan keeps of one run.
#[derive(Debug, Clone)]
pub(super) struct RunRecord {
    pub path: PathBuf,
    pub metrics: Metrics,
    /// Scalars of `config.yaml` by dotted key (empty when it is missing or unreadable).
    pub config: BTreeMap<String, ConfigValue>,
    /// First 12 hex digits of the SHA-256 of `config.yaml`'s bytes.
    pub config_hash: Option<String>,
    pub history: Vec<EpochRecord>,
}

/// Reads the run at `dir`; `None` when its `metrics.json` is missing or unusable (then the
/// problems say why).
pub(super) fn read_run(dir: &Path) -> (Option<RunRecord>, Vec<Problem>) {
    let run = RunDir::at(dir);
    let mut problems = Vec::new();
    let mut problem = |path: PathBuf, reason: String| problems.push(Problem { path, reason });
    let metrics = match read_metrics(&run.metrics_path()) {
        Ok(m) => m,
        Err(reason) => {
            problem(run.metrics_path(), reason);
            return (None, problems);
        }
    };
    let (config, config_hash) = match std::fs::read(run.config_path()) {
        Ok(bytes) => {
            let hash = hex12(&Sha256::digest(&bytes));
            match serde_yaml_ng::from_slice::<serde_yaml_ng::Value>(&bytes) {
                Ok(tree) => (flatten(&tree), Some(hash)),
                Err(e) => {
                    problem(run.config_path(), format!("not valid YAML: {e}"));
                    (BTreeMap::new(), Some(hash))
                }
            }
        }
        Err(e) => {
            problem(run.config_path(), format!("cannot read: {e}"));
            (BTreeMap::new(), None)
        }
    };
    let history = match std::fs::read_to_string(run.history_path()) {
        Ok(text) => parse_history_csv(&text).unwrap_or_else(|e| {
            problem(run.history_path(), format!("not a history.csv: {e}"));
            Vec::new()
        }),
        // a run that has not finished an epoch yet has no history
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && metrics.epochs_done == 0 => {
            Vec::new()
        }
        Err(e) => {
            problem(run.history_path(), format!("cannot read: {e}"));
            Vec::new()
        }
    };
    let record = RunRecord {
        path: dir.to_path_buf(),
        metrics,
        config,
        config_hash,
        history,
    };
    (Some(record), problems)
}

/// Parses `metrics.json`, refusing other schema versions with a reason that names them.
fn read_metrics(path: &Path) -> Result<Metrics, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(
                "missing: the directory has a config.yaml but the run never wrote its metrics"
                    .into(),
            )
        }
        Err(e) => return Err(format!("cannot read: {e}")),
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("not valid JSON ({e})"))?;
    let readable = versions_text();
    match value.get("schema_version").and_then(serde_json::Value::as_u64) {
        Some(v) if READ_SCHEMA_VERSIONS.iter().any(|r| u64::from(*r) == v) => {
            serde_json::from_value(value)
                .map_err(|e| format!("does not match schema version {v}: {e}"))
        }
        Some(v) => Err(format!(
            "schema_version {v}, this build reads versions {readable}"
        )),
        None => Err(format!(
            "no schema_version: not an autoresearch metrics.json (expected one of versions {readable})"
        )),
    }
}

/// The readable versions as text (`1, 2`).
fn versions_text() -> String {
    READ_SCHEMA_VERSIONS
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first 12 hex digits of a digest.
fn hex12(digest: &[u8]) -> String {
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}
