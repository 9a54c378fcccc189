//! Dynamics of recurrent networks: Lyapunov spectra by QR re-orthonormalisation along
//! task-driven trajectories, and gradient flossing (Engelken 2023) as a training option.
//!
//! A model family opts in by returning a [`Dynamics`] from `Network::dynamics`; spectra,
//! flossing, the per-epoch logs and `autoresearch dynamics <run-dir>` then work for it.

mod analyse;
pub mod bench;
mod files;
pub mod floss;
#[cfg(test)]
mod floss_tests;
mod from_init;
pub mod lyapunov;
#[cfg(test)]
mod lyapunov_tests;
pub mod monitor;
pub mod qr;
pub mod report;
mod system;
pub mod training;

pub use analyse::analyse_run;
pub use files::{read_spectrum, record_spectrum, ANALYSIS_DIR, SPECTRUM_FILE};
pub use floss::{FlossCounters, FlossStep, Flosser};
pub use from_init::{floss_from_init, FlossedFromInit};
pub use lyapunov::{exponents, flossing_loss, initial_frame, Exponents};
pub use monitor::{spectrum, SpectrumEstimate};
pub use system::{trajectory, Dynamics, DynamicsOptions};

use crate::error::{Error, Result};
use crate::nn::Network;

/// `net`'s dynamics view under `opts`, or an error saying which models have one.
pub fn system_of<'a>(
    net: &'a dyn Network,
    opts: &DynamicsOptions,
) -> Result<Box<dyn Dynamics + 'a>> {
    net.dynamics(opts).unwrap_or_else(|| {
        Err(Error::invalid(
            "dynamics",
            "this model has no recurrent state to analyse; use a recurrent model (rate_rnn, sequence_rnn, rnn, srnn)",
        ))
    })
}
