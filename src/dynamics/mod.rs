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

/// Checks a run's `dynamics` settings against its network before anything trains: a dynamics
/// view exists, every spectrum fits the state size and the `steps` the encoded input has, and
/// the flossing schedule and parameter names are valid (`params`: the network's, by name).
pub fn validate(
    cfg: &crate::config::DynamicsConfig,
    net: &dyn Network,
    steps: usize,
    params: &[(String, candle_core::Var)],
) -> Result<()> {
    let system = system_of(net, &DynamicsOptions::f64())?;
    let n = system.state_size();
    if let Some(s) = &cfg.spectrum {
        lyapunov::check(s, n, steps, "dynamics.spectrum")?;
        if cfg.gradient_batch == 0 {
            return Err(Error::invalid(
                "dynamics.gradient_batch",
                "0; use at least 1",
            ));
        }
    }
    if let Some(f) = &cfg.flossing {
        lyapunov::check(&f.spectrum, n, steps, "dynamics.flossing.spectrum")?;
        Flosser::new(f, params)?;
    }
    Ok(())
}
