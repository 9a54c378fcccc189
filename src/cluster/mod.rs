//! Running sweeps on HPC clusters: cluster profiles ([`profile`]), walltime sizing
//! ([`walltime`]), job scripts from templates ([`script`]), PBS and Slurm status parsing
//! ([`pbs`], [`slurm`]) and the job ledger ([`ledger`]).
//!
//! Built so far: everything that does not talk to a cluster. The SSH transport, submit /
//! status / cancel / fetch / monitor and the local executor come next.

pub mod ledger;
pub mod pbs;
pub mod profile;
pub mod script;
pub mod slurm;
pub mod walltime;

pub use ledger::{JobState, Ledger, LedgerJob, Transition};
pub use profile::{ClusterProfile, QueueLimits, Scheduler};
pub use script::{shell_quote, JobRequest, JobScript};
pub use walltime::{size_walltime, Walltime};
