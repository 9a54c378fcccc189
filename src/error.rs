//! The one library error type: every variant names the file, key or value at fault.

use std::path::PathBuf;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in autoresearch, with enough context to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A YAML file could not be parsed.
    #[error("config file {path}: {message}")]
    ConfigParse { path: PathBuf, message: String },

    /// A composed config has a key or value that the typed config rejects.
    #[error("invalid config at `{key}`: {message}")]
    InvalidConfig { key: String, message: String },

    /// A config group (e.g. `model`) was asked for an option that has no YAML file.
    #[error("unknown option `{option}` for config group `{group}` (valid: {valid})")]
    UnknownGroupOption {
        group: String,
        option: String,
        valid: String,
    },

    /// A command-line or Rust override could not be applied.
    #[error("override `{text}`: {message}")]
    Override { text: String, message: String },

    /// The configs directory could not be found.
    #[error("configs directory not found (looked in: {looked}); set AUTORESEARCH_CONFIGS or pass --configs")]
    ConfigsNotFound { looked: String },

    /// A data file is missing, truncated or malformed.
    #[error("data file {path}: {message}")]
    Data { path: PathBuf, message: String },

    /// A dataset was found in none of the places searched.
    #[error("dataset `{dataset}` not found; looked in: {looked}")]
    DataNotFound { dataset: String, looked: String },

    /// A download failed or its checksum did not match.
    #[error("download {url}: {message}")]
    Download { url: String, message: String },

    /// A checkpoint is missing, corrupt, or does not match the model.
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },

    /// A run directory is in a state that does not allow the requested action.
    #[error("run directory {path}: {message}")]
    RunDir { path: PathBuf, message: String },

    /// A file-system operation failed.
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Run analysis (frames, statistics, figures, reports) was given data it cannot use.
    #[error("analysis: {0}")]
    Analysis(String),

    /// A cluster could not be reached, refused a command, or reported a failure.
    #[error("cluster {host}: {message}")]
    Cluster { host: String, message: String },

    /// A template failed to load or render.
    #[error("template {name}: {message}")]
    Template { name: String, message: String },

    /// The tensor backend (candle) reported a failure.
    #[error("tensor backend")]
    Tensor(#[from] candle_core::Error),
}

impl Error {
    /// Wraps an `io::Error` with the action and the path it concerned.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    /// Builds an `InvalidConfig` error.
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidConfig {
            key: key.into(),
            message: message.into(),
        }
    }
}
