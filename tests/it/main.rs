//! Integration tests: one binary, a temp directory per test, real MNIST slices from shared/data.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod analysis;
mod cifar;
mod cli;
mod cluster;
mod cluster_e2e;
mod compose;
mod connectome;
mod data;
mod dynamics;
mod fidelity;
mod grad;
mod grid;
mod hpo;
mod local_executor;
mod pc;
mod recurrent;
mod snn;
mod state;
mod tasks;
mod train;

use std::path::PathBuf;

use autoresearch::config::ConfigStore;
use autoresearch::{Experiment, Result};

/// The repository's configs directory.
pub fn store() -> ConfigStore {
    match ConfigStore::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs")) {
        Ok(s) => s,
        Err(e) => panic!("repository configs: {e}"),
    }
}

/// Composes `experiment` with overrides, writing runs under `runs`.
pub fn compose(experiment: &str, runs: &std::path::Path, overrides: &[&str]) -> Result<Experiment> {
    let mut all: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    all.push(format!("runs_dir={}", runs.display()));
    Experiment::compose_in(&store(), experiment, all)
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    }
}

/// The shared MNIST folder (found like the library finds it: from the crate's ancestors).
pub fn shared_mnist() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    root.ancestors()
        .map(|a| a.join("shared/data/mnist"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("shared/data/mnist not found beside {}", root.display()))
}
