//! A hyper-parameter study on a cluster: one job array whose tasks are the study's workers
//! (`autoresearch hpo work <study>`); the task holding the study's coordinator
//! lock also coordinates, so no process has to stay on the login node. Fetching the array
//! copies the whole study directory (journal, trials' run directories) back.

use super::client::Cluster;
use super::ledger::Resources;
use super::script::shell_quote;
use super::Walltime;
use crate::error::{Error, Result};

/// What each worker task of a study requests.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyJob {
    /// The study (`configs/hpo/<name>.yaml`, uploaded by [`Cluster::setup`]).
    pub study: String,
    /// Array tasks, each a worker.
    pub workers: usize,
    /// Walltime of each task: the whole study's.
    pub walltime: Walltime,
    /// CPU cores per task.
    pub cpus: u32,
    /// Memory per task, GB.
    pub mem_gb: u32,
    /// Queue or partition (`None`: the profile's default).
    pub queue: Option<String>,
}

impl Cluster {
    /// Submits `job` as an array of worker tasks; returns their ledger ids.
    pub fn submit_study(&mut self, job: &StudyJob) -> Result<Vec<String>> {
        if job.workers == 0 {
            return Err(Error::invalid("workers", "0; use 1 or more"));
        }
        let work_dir = self.profile().remote_work_dir()?;
        let binary = self.profile().remote_binary()?;
        let command = [
            binary,
            "--configs".into(),
            format!("{work_dir}/configs"),
            "hpo".into(),
            "--runs".into(),
            format!("{work_dir}/runs"),
            "work".into(),
            job.study.clone(),
        ]
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ");
        let resources = Resources {
            name: format!("hpo_{}", job.study),
            cpus: job.cpus,
            mem_gb: job.mem_gb,
            gpus: 0,
            per_run: job.walltime.to_string(),
            per_run_source: None,
        };
        let points = (0..job.workers)
            .map(|i| {
                (
                    command.clone(),
                    format!("study {} worker {i}", job.study),
                    format!("hpo/{}", job.study),
                )
            })
            .collect();
        self.submit_commands(&resources, job.queue.clone(), true, points, &[])
    }
}
