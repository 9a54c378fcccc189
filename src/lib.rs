//! autoresearch: compose brain-inspired ML experiments in YAML, train them with candle, and keep
//! every run in a versioned run directory that all analysis reads.
//!
//! Data flow (one direction): `configs/*.yaml` + overrides -> [`ExperimentConfig`] -> training ->
//! `runs/<experiment>/<variant>/seed_<n>/` ([`rundir`]) -> polars frames ([`runs`]) -> statistics
//! ([`stats`]) -> figures ([`plot`]) and markdown ([`report`]), shown inline in notebooks
//! ([`display`]).

pub mod alloc;
pub mod bench;
pub mod build_info;
pub mod cluster;
pub mod config;
pub mod connectome;
pub mod data;
pub mod display;
pub mod dynamics;
mod error;
mod experiment;
pub mod frame;
pub mod fsutil;
pub mod hpo;
pub mod metric;
pub mod nn;
pub mod notebooks;
pub mod plot;
pub mod prelude;
pub mod report;
pub mod rundir;
pub mod runs;
pub mod state;
pub mod stats;
pub mod train;

/// The tensor library, re-exported so notebooks use the exact version the models use.
pub use candle_core;
/// The layer library the models are built with (`VarBuilder`, `Init`, losses, ops).
pub use candle_nn;
/// The frame library, re-exported so notebooks use the exact version the frames use.
pub use polars;

pub use config::ExperimentConfig;
pub use error::{Error, Result};
pub use experiment::Experiment;
pub use rundir::{Metrics, RunDir, RunStatus};
pub use train::{RunOutcome, TrainOptions};
