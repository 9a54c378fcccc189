//! A sweep as an executor receives it: an experiment, overrides in sweep syntax, and what each
//! run needs; expanded into points, each with its `autoresearch train` arguments and its run
//! directory.

use std::path::Path;

use super::estimate::{EpochTime, PerRunEstimate};
use super::ledger::Resources;
use super::profile::ClusterProfile;
use super::script::{shell_quote, JobRequest};
use super::walltime::Walltime;
use crate::config::ConfigStore;
use crate::error::{Error, Result};
use crate::Experiment;

/// What to run and what each run needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sweep {
    /// Experiment name (`configs/experiment/<name>.yaml`).
    pub experiment: String,
    /// Overrides, sweep syntax allowed (`seed=0,1`, `optimizer.lr=1e-3,3e-4`); keys not given
    /// sweep as the experiment's `sweep:` block says.
    pub overrides: Vec<String>,
    /// Estimated time of one run.
    pub per_run: Walltime,
    /// Where [`Sweep::per_run`] came from when measured ([`Sweep::size_from_epoch_time`]);
    /// `None` for an estimate given by hand.
    pub per_run_source: Option<String>,
    /// CPU cores per run (`None`: the queue's per-GPU default for a GPU job, else 1).
    pub cpus: Option<u32>,
    /// Memory per run in GB (`None`: the queue's per-GPU default for a GPU job, else 4).
    pub mem_gb: Option<u32>,
    /// GPUs per run; on a scheduler, runs of a sweep with GPUs train on `device=cuda`.
    pub gpus: u32,
    /// Queue or partition (`None`: the profile's default).
    pub queue: Option<String>,
    /// Job name (`None`: the experiment name).
    pub name: Option<String>,
    /// One array task per run where the scheduler supports arrays (else all runs in one job).
    pub array: bool,
}

impl Sweep {
    /// A sweep of `experiment` with `overrides`: the queue's default cores and memory, no GPU,
    /// 1 hour per run, as an array.
    pub fn new<I, S>(experiment: &str, overrides: I) -> Sweep
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Sweep {
            experiment: experiment.to_string(),
            overrides: overrides
                .into_iter()
                .map(|s| s.as_ref().to_string())
                .collect(),
            per_run: Walltime::hms(1, 0, 0),
            per_run_source: None,
            cpus: None,
            mem_gb: None,
            gpus: 0,
            queue: None,
            name: None,
            array: true,
        }
    }

    /// The job name: [`Sweep::name`] or the experiment name (at most 64 characters; `qstat`
    /// shows the first 15, `squeue` the first 8).
    pub fn job_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.experiment.chars().take(64).collect())
    }

    /// What each job of the sweep asks `profile`'s scheduler for: cores and memory as given,
    /// else the queue's defaults ([`crate::cluster::QueueLimits::default_resources`]).
    pub fn resources(&self, profile: &ClusterProfile) -> Result<Resources> {
        let queue = self.queue.as_deref().unwrap_or(&profile.default_queue);
        let (cpus, mem_gb) = profile.queue(queue)?.default_resources(self.gpus);
        Ok(Resources {
            name: self.job_name(),
            cpus: self.cpus.unwrap_or(cpus),
            mem_gb: self.mem_gb.unwrap_or(mem_gb),
            gpus: self.gpus,
            per_run: self.per_run.to_string(),
            per_run_source: self.per_run_source.clone(),
        })
    }

    /// The points a scheduler job runs: [`Sweep::points`], with `device=cuda` when the job
    /// holds GPUs and a contradicting device refused ([`super::gpu::device_overrides`]).
    pub fn job_points(&self, store: &ConfigStore) -> Result<Vec<SweepPoint>> {
        let overrides =
            super::gpu::device_overrides(store, &self.experiment, &self.overrides, self.gpus)?;
        Sweep {
            overrides,
            ..self.clone()
        }
        .points(store)
    }

    /// The job request running every point with `profile`'s binary on its scheduler (one
    /// array task each when [`Sweep::array`]).
    pub fn job_request(&self, profile: &ClusterProfile, store: &ConfigStore) -> Result<JobRequest> {
        let binary = profile.remote_binary()?;
        let resources = self.resources(profile)?;
        Ok(JobRequest {
            name: resources.name,
            queue: self.queue.clone(),
            cpus: resources.cpus,
            mem_gb: resources.mem_gb,
            gpus: resources.gpus,
            per_run: self.per_run,
            per_run_source: self.per_run_source.clone(),
            commands: self
                .job_points(store)?
                .iter()
                .map(|p| p.command(&binary))
                .collect(),
            array: self.array,
        })
    }

    /// Sets [`Sweep::per_run`] from the run measured in `run_dir`: its median epoch time x the
    /// epochs of the sweep's runs (the largest where points differ), refused when that run
    /// trained on another kind of device than this sweep's jobs ([`EpochTime::check_device`]).
    pub fn size_from_epoch_time(
        &mut self,
        store: &ConfigStore,
        run_dir: &Path,
    ) -> Result<PerRunEstimate> {
        let measured = EpochTime::measure(run_dir)?;
        measured.check_device(self.gpus)?;
        let epochs = Experiment::points_in(store, &self.experiment, &self.overrides)?
            .iter()
            .map(|(_, exp)| exp.config().epochs)
            .max()
            .ok_or_else(|| {
                Error::invalid(
                    "sweep",
                    format!("experiment `{}` expands to no run", self.experiment),
                )
            })?;
        let estimate = measured.for_epochs(epochs);
        self.per_run = estimate.per_run();
        self.per_run_source = Some(estimate.source());
        Ok(estimate)
    }

    /// Expands the sweep against the configs in `store` (every point is composed, so a bad
    /// override fails here, before anything is submitted).
    pub fn points(&self, store: &ConfigStore) -> Result<Vec<SweepPoint>> {
        if let Some(bad) = self
            .overrides
            .iter()
            .find(|o| o.trim_start().starts_with("runs_dir="))
        {
            return Err(Error::Override {
                text: bad.clone(),
                message: "runs go under the work directory's runs/ (locally: the runs root given to the executor)".into(),
            });
        }
        Experiment::points_in(store, &self.experiment, &self.overrides)?
            .into_iter()
            .map(|(overrides, exp)| {
                let cfg = exp.config();
                let run_dir = Path::new(&cfg.name)
                    .join(&cfg.variant)
                    .join(format!("seed_{}", cfg.seed));
                Ok(SweepPoint {
                    experiment: self.experiment.clone(),
                    overrides: overrides
                        .iter()
                        .map(|o| format!("{}={}", o.key, o.value))
                        .collect(),
                    run_dir: run_dir.to_string_lossy().replace('\\', "/"),
                })
            })
            .collect()
    }
}

/// One run of a sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepPoint {
    /// Experiment name.
    pub experiment: String,
    /// The point's overrides, `key=value`.
    pub overrides: Vec<String>,
    /// Its run directory relative to the runs root (`<experiment>/<variant>/seed_<n>`).
    pub run_dir: String,
}

impl SweepPoint {
    /// Arguments after the binary: `train --quiet experiment=<name> <overrides>`.
    pub fn train_args(&self) -> Vec<String> {
        let mut args = vec![
            "train".to_string(),
            "--quiet".to_string(),
            format!("experiment={}", self.experiment),
        ];
        args.extend(self.overrides.iter().cloned());
        args
    }

    /// The shell command running this point with `binary`, every word quoted.
    pub fn command(&self, binary: &str) -> String {
        std::iter::once(binary.to_string())
            .chain(self.train_args())
            .map(|w| shell_quote(&w))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The overrides as one line (the ledger's sweep point).
    pub fn label(&self) -> String {
        if self.overrides.is_empty() {
            "default".to_string()
        } else {
            self.overrides.join(" ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_sweep_expands_to_quoted_commands_and_run_dirs() -> Result<()> {
        let store = ConfigStore::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs"))?;
        let sweep = Sweep::new("mnist_ffnn_adam", ["seed=0,1", "epochs=1"]);
        let points = sweep.points(&store)?;
        assert_eq!(points.len(), 2);
        assert_eq!(points[1].run_dir, "mnist_ffnn_adam/epochs=1/seed_1");
        assert_eq!(
            points[1].command("/opt/ar bin/autoresearch"),
            "'/opt/ar bin/autoresearch' train --quiet experiment=mnist_ffnn_adam seed=1 epochs=1"
        );
        let bad = Sweep::new("mnist_ffnn_adam", ["runs_dir=/x"]).points(&store);
        assert!(bad.is_err());
        let unknown = Sweep::new("mnist_ffnn_adam", ["optimizer.lrr=1"]).points(&store);
        assert!(unknown.is_err());
        Ok(())
    }

    #[test]
    fn a_measured_epoch_time_sizes_the_longest_point() -> Result<()> {
        let store = ConfigStore::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs"))?;
        let tmp = tempfile::tempdir().map_err(Error::io("creating", "a temporary directory"))?;
        let run = crate::RunDir::at(tmp.path());
        let rows: Vec<crate::rundir::EpochRecord> = [12.0, 10.0, 9.0]
            .iter()
            .enumerate()
            .map(|(i, t)| crate::rundir::EpochRecord {
                epoch: i + 1,
                train_loss: 1.0,
                train: Vec::new(),
                val_loss: 1.0,
                val: Vec::new(),
                lr: 1e-3,
                epoch_time_s: *t,
                extra: Vec::new(),
            })
            .collect();
        run.write_history(&rows)?;
        let mut sweep = Sweep::new("mnist_ffnn_adam", ["seed=0", "epochs=2,5"]);
        let estimate = sweep.size_from_epoch_time(&store, tmp.path())?;
        assert_eq!(estimate.epochs, 5, "the longest point");
        assert_eq!(sweep.per_run, Walltime(50), "5 epochs x the 10 s median");
        let source = sweep.per_run_source.clone().unwrap_or_default();
        assert!(
            source.starts_with("5 epochs x 10 s (median epoch of "),
            "{source}"
        );
        assert_eq!(
            sweep
                .resources(&ClusterProfile::load(store.root(), "slurm", None)?)?
                .per_run_source,
            Some(source)
        );
        Ok(())
    }
}
