//! A sweep as an executor receives it: an experiment, overrides in sweep syntax, and what each
//! run needs; expanded into points, each with its `autoresearch train` arguments and its run
//! directory.

use std::path::Path;

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
    /// CPU cores per run.
    pub cpus: u32,
    /// Memory per run in GB.
    pub mem_gb: u32,
    /// GPUs per run.
    pub gpus: u32,
    /// Queue or partition (`None`: the profile's default).
    pub queue: Option<String>,
    /// Job name (`None`: the experiment name).
    pub name: Option<String>,
    /// One array task per run where the scheduler supports arrays (else all runs in one job).
    pub array: bool,
}

impl Sweep {
    /// A sweep of `experiment` with `overrides`: 1 CPU, 4 GB, no GPU, 1 hour per run, as an
    /// array.
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
            cpus: 1,
            mem_gb: 4,
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

    /// The job request running every point with `binary` (one array task each when
    /// [`Sweep::array`]).
    pub fn job_request(&self, binary: &str, store: &ConfigStore) -> Result<JobRequest> {
        Ok(JobRequest {
            name: self.job_name(),
            queue: self.queue.clone(),
            cpus: self.cpus,
            mem_gb: self.mem_gb,
            gpus: self.gpus,
            per_run: self.per_run,
            commands: self
                .points(store)?
                .iter()
                .map(|p| p.command(binary))
                .collect(),
            array: self.array,
        })
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
}
