//! Running sweeps on HPC clusters and locally, through one [`Executor`] interface.
//!
//! - [`profile`]: cluster profiles (YAML plus the user's values), [`walltime`]: sizing,
//!   [`estimate`]: a run's time from a measured run's epochs;
//! - [`script`]: job scripts from templates; [`sweep`]: a sweep's points and commands;
//! - [`gpu`]: GPU jobs train on `device=cuda` with a CUDA build (checked before submitting and
//!   in the job); [`setup`]: the binary and configs put on the cluster;
//! - [`ssh`] and [`remote`]: the transport (ssh2 exec + SFTP, or this machine's shell);
//! - [`scheduler`], [`pbs`], [`slurm`]: submit, states, cancel per scheduler;
//! - [`ledger`]: every submission and state change, in YAML; [`sync`]: fetching run
//!   directories; [`client`]: [`Cluster`], the operations and the monitor;
//! - [`local`]: [`LocalExecutor`], worker processes here.

pub mod client;
pub mod estimate;
pub mod executor;
pub mod gpu;
pub mod ledger;
pub mod local;
pub mod pbs;
pub mod profile;
pub mod remote;
pub mod scheduler;
pub mod script;
pub mod setup;
pub mod slurm;
#[cfg(feature = "ssh")]
pub mod ssh;
pub mod study;
pub mod sweep;
pub mod sync;
pub mod walltime;

pub use client::Cluster;
pub use estimate::{EpochTime, PerRunEstimate};
pub use executor::{
    parse_duration, Change, Executor, Failure, MonitorOptions, MonitorReport, Resubmission,
    Workspace,
};
pub use ledger::{JobState, Ledger, LedgerJob, Resources, Transition};
pub use local::LocalExecutor;
pub use profile::{ClusterProfile, QueueLimits, Scheduler};
pub use remote::{LocalShell, Output, Remote};
pub use script::{shell_quote, JobRequest, JobScript};
pub use setup::SetupReport;
#[cfg(feature = "ssh")]
pub use ssh::{SshRemote, SshTarget};
pub use study::StudyJob;
pub use sweep::{Sweep, SweepPoint};
pub use sync::FetchReport;
pub use walltime::{size_walltime, Walltime};
