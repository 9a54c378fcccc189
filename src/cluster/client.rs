//! [`Cluster`]: a cluster profile, a connection to its login host, and the job ledger; the
//! operations `submit` (a GPU job only with a CUDA build there), `refresh`, `cancel`, `fetch`
//! and the monitor's round (`setup` is in [`super::setup`]).

use std::collections::BTreeMap;

use super::executor::{
    Change, Executor, Failure, MonitorOptions, MonitorReport, Resubmission, Workspace,
};
use super::gpu;
use super::ledger::{now, JobState, Ledger, LedgerJob, Resources};
use super::profile::{ClusterProfile, Scheduler};
use super::remote::{LocalShell, Remote};
use super::scheduler::SchedulerClient;
use super::script::{shell_quote, JobRequest, JobScript};
#[cfg(feature = "ssh")]
use super::ssh::SshRemote;
use super::sweep::Sweep;
use super::sync::{self, FetchReport};
use super::walltime::Walltime;
use crate::error::{Error, Result};
use crate::rundir::{Metrics, RunStatus};

/// Lines of a failed job's log shown in reports.
const LOG_TAIL_LINES: usize = 20;

/// Host value meaning "the scheduler runs on this machine" (no SSH).
pub const LOCAL_HOST: &str = "local";

/// A connected cluster and the ledger of its jobs.
pub struct Cluster {
    profile: ClusterProfile,
    remote: Box<dyn Remote>,
    scheduler: SchedulerClient,
    workspace: Workspace,
    ledger: Ledger,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("profile", &self.profile.name)
            .field("host", &self.remote.host())
            .field("ledger", &self.ledger.path())
            .finish_non_exhaustive()
    }
}

/// The SSH transport to the profile's host.
#[cfg(feature = "ssh")]
fn ssh_remote(profile: &ClusterProfile) -> Result<Box<dyn Remote>> {
    Ok(Box::new(SshRemote::open(profile)?))
}

/// Without the `ssh` feature only `host: local` profiles connect.
#[cfg(not(feature = "ssh"))]
fn ssh_remote(profile: &ClusterProfile) -> Result<Box<dyn Remote>> {
    Err(crate::Error::invalid(
        "host",
        format!(
            "{}: this build has no SSH transport (cargo feature `ssh` is off); enable it, or use host: local on the login node",
            profile.host
        ),
    ))
}

impl Cluster {
    /// Opens the ledger and connects to the profile's host over SSH (or runs commands here
    /// when `host` is `local`). Nothing is changed on the cluster.
    pub fn connect(profile: ClusterProfile, workspace: Workspace) -> Result<Cluster> {
        let ledger = workspace.open_ledger()?;
        let remote: Box<dyn Remote> = if profile.host == LOCAL_HOST {
            Box::new(LocalShell)
        } else {
            ssh_remote(&profile)?
        };
        Ok(Cluster::with_remote(profile, remote, workspace, ledger))
    }

    /// A cluster reached through `remote`.
    pub fn with_remote(
        profile: ClusterProfile,
        remote: Box<dyn Remote>,
        workspace: Workspace,
        ledger: Ledger,
    ) -> Cluster {
        Cluster {
            scheduler: SchedulerClient::new(profile.scheduler),
            profile,
            remote,
            workspace,
            ledger,
        }
    }

    /// The profile.
    pub fn profile(&self) -> &ClusterProfile {
        &self.profile
    }

    /// The job ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The connection, for commands the library does not wrap.
    pub fn remote(&mut self) -> &mut dyn Remote {
        self.remote.as_mut()
    }

    fn host(&self) -> String {
        self.remote.host().to_string()
    }

    /// Creates `runs/`, `logs/` and `jobs/` under `work_dir` on the cluster.
    pub(super) fn make_dirs(&mut self, work_dir: &str) -> Result<()> {
        let host = self.host();
        let dirs: Vec<String> = ["runs", "logs", "jobs"]
            .iter()
            .map(|d| shell_quote(&format!("{work_dir}/{d}")))
            .collect();
        self.remote
            .exec(&format!("mkdir -p {}", dirs.join(" ")))?
            .checked(&host, "mkdir -p")
            .map(|_| ())
    }

    /// Renders the job script of `points` (checking queue, resources and walltime before
    /// anything is sent), uploads it, submits it and records every run in the ledger.
    pub(super) fn submit_commands(
        &mut self,
        resources: &Resources,
        queue: Option<String>,
        array: bool,
        points: Vec<(String, String, String)>,
        resubmits: &[String],
    ) -> Result<Vec<String>> {
        let per_run: Walltime = resources
            .per_run
            .parse()
            .map_err(|m: String| Error::invalid("per_run", m))?;
        let request = JobRequest {
            name: resources.name.clone(),
            queue,
            cpus: resources.cpus,
            mem_gb: resources.mem_gb,
            gpus: resources.gpus,
            per_run,
            per_run_source: resources.per_run_source.clone(),
            commands: points.iter().map(|(c, _, _)| c.clone()).collect(),
            array,
        };
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3f").to_string();
        let script = JobScript::render_tagged(&self.profile, &request, Some(&stamp))?;
        if request.gpus > 0 {
            gpu::require_cuda_build(self.remote.as_mut(), &self.profile.remote_binary()?)?;
        }
        let work_dir = self.profile.remote_work_dir()?;
        self.make_dirs(&work_dir)?;
        let script_path = format!("{work_dir}/jobs/{}-{stamp}.sh", request.name);
        self.remote
            .write_file(&script_path, script.text.as_bytes(), 0o755)?;
        let id = self
            .scheduler
            .submit(self.remote.as_mut(), &work_dir, &script_path)?;
        let logs = script.log_stem.clone();
        let base = LedgerJob {
            id: id.clone(),
            cluster: self.profile.name.clone(),
            queue: script.queue.clone(),
            script: script_path,
            commands: Vec::new(),
            sweep_points: Vec::new(),
            resubmits: None,
            transitions: Vec::new(),
            array: None,
            run_dirs: Vec::new(),
            log: None,
            resources: Some(resources.clone()),
            resubmitted_as: None,
            fetched: false,
            cancelled_by_user: false,
        };
        let jobs: Vec<LedgerJob> = match script.array_len {
            Some(_) => points
                .into_iter()
                .enumerate()
                .map(|(i, (command, label, run_dir))| LedgerJob {
                    id: self.scheduler.task_id(&id, i),
                    commands: vec![command],
                    sweep_points: vec![label],
                    run_dirs: vec![run_dir],
                    array: Some(id.clone()),
                    log: Some(match self.profile.scheduler {
                        Scheduler::Slurm => format!("{logs}_{id}_{i}.out"),
                        Scheduler::Pbs => format!("{logs}.{i}.out"),
                    }),
                    resubmits: resubmits.get(i).cloned(),
                    ..base.clone()
                })
                .collect(),
            None => {
                let (commands, rest): (Vec<String>, Vec<(String, String)>) =
                    points.into_iter().map(|(c, l, r)| (c, (l, r))).unzip();
                let (labels, run_dirs) = rest.into_iter().unzip();
                vec![LedgerJob {
                    commands,
                    sweep_points: labels,
                    run_dirs,
                    log: Some(match self.profile.scheduler {
                        Scheduler::Slurm => format!("{logs}_{id}.out"),
                        Scheduler::Pbs => format!("{logs}.out"),
                    }),
                    resubmits: resubmits.first().cloned(),
                    ..base
                }]
            }
        };
        let ids = jobs.iter().map(|j| j.id.clone()).collect();
        self.ledger.record_submissions(jobs, &now())?;
        Ok(ids)
    }

    /// Polls the scheduler for every unfinished job of this cluster and records changes.
    /// A job the scheduler no longer reports is settled by its runs' metrics.json there:
    /// all completed -> `completed`, else `lost` (resubmittable).
    pub fn refresh(&mut self) -> Result<Vec<Change>> {
        let open: Vec<String> = self
            .ledger
            .jobs()
            .iter()
            .filter(|j| j.cluster == self.profile.name && !j.state().is_final())
            .map(|j| j.id.clone())
            .collect();
        let seen = self.scheduler.states(self.remote.as_mut(), &open)?;
        let at = now();
        let mut changes = Vec::new();
        for id in open {
            let Some(job) = self.ledger.job(&id) else {
                continue;
            };
            let from = job.state();
            let (to, detail) = match seen.get(&id) {
                Some(o) => (o.state, o.detail.clone()),
                None => {
                    let run_dirs = job.run_dirs.clone();
                    if self.remote_runs_completed(&run_dirs)? {
                        (
                            JobState::Completed,
                            Some("no longer reported; its runs completed".to_string()),
                        )
                    } else {
                        (
                            JobState::Lost,
                            Some("no longer reported; its runs did not finish".to_string()),
                        )
                    }
                }
            };
            if self.ledger.record_state(&id, to, detail.clone(), &at)? {
                changes.push(Change {
                    id,
                    from,
                    to,
                    detail,
                });
            }
        }
        Ok(changes)
    }

    /// Whether every run directory's metrics.json on the cluster says `completed`.
    fn remote_runs_completed(&mut self, run_dirs: &[String]) -> Result<bool> {
        let work_dir = self.profile.remote_work_dir()?;
        for dir in run_dirs {
            let path = format!("{work_dir}/runs/{dir}/metrics.json");
            let Ok(bytes) = self.remote.read_file(&path) else {
                return Ok(false);
            };
            let done = serde_json::from_slice::<Metrics>(&bytes)
                .is_ok_and(|m| m.status == RunStatus::Completed);
            if !done {
                return Ok(false);
            }
        }
        Ok(!run_dirs.is_empty())
    }

    /// Copies the run directories of `ids` (all of this cluster's jobs when empty) into the
    /// local runs root: new or changed files only, never over a newer local file.
    pub fn fetch(&mut self, ids: &[String]) -> Result<FetchReport> {
        let work_dir = self.profile.remote_work_dir()?;
        let chosen = self.select(ids);
        let jobs: Vec<&LedgerJob> = chosen.iter().filter_map(|id| self.ledger.job(id)).collect();
        // finished jobs are marked fetched; running ones may still write
        let selected: Vec<String> = jobs
            .iter()
            .filter(|j| j.state().is_final())
            .map(|j| j.id.clone())
            .collect();
        let mut run_dirs: Vec<String> = jobs
            .iter()
            .flat_map(|j| j.run_dirs.iter().cloned())
            .collect();
        run_dirs.sort();
        run_dirs.dedup();
        let mut report = FetchReport::default();
        for dir in run_dirs {
            report.merge(sync::pull(
                self.remote.as_mut(),
                &format!("{work_dir}/runs/{dir}"),
                &self.workspace.runs.join(&dir),
            )?);
        }
        for id in selected {
            self.ledger.update(&id, |j| j.fetched = true)?;
        }
        Ok(report)
    }

    /// The last lines of job `id`'s log on the cluster (empty when unreadable).
    pub fn log_tail(&mut self, id: &str) -> String {
        let Some(log) = self.ledger.job(id).and_then(|j| j.log.clone()) else {
            return String::new();
        };
        self.remote
            .exec(&format!("tail -n {LOG_TAIL_LINES} {}", shell_quote(&log)))
            .map(|o| o.stdout)
            .unwrap_or_default()
    }

    /// Ledger jobs of this cluster matching `ids` (an array id selects its tasks; no ids
    /// select all).
    fn select(&self, ids: &[String]) -> Vec<String> {
        self.ledger
            .jobs()
            .iter()
            .filter(|j| j.cluster == self.profile.name)
            .filter(|j| {
                ids.is_empty()
                    || ids.contains(&j.id)
                    || j.array.as_ref().is_some_and(|a| ids.contains(a))
            })
            .map(|j| j.id.clone())
            .collect()
    }

    /// Whether `job` needs another submission: interrupted, not cancelled by the user, not
    /// already resubmitted.
    fn interrupted(job: &LedgerJob, options: &MonitorOptions) -> bool {
        let state = job.state();
        job.resubmitted_as.is_none()
            && !job.cancelled_by_user
            && (state.is_resubmittable()
                || (state == JobState::Cancelled && options.resubmit_external_cancel))
    }

    /// Whether every run directory of `job` is completed in the local runs root.
    fn local_runs_completed(&self, job: &LedgerJob) -> bool {
        !job.run_dirs.is_empty()
            && job.run_dirs.iter().all(|d| {
                let path = self.workspace.runs.join(d).join("metrics.json");
                std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Metrics>(&b).ok())
                    .is_some_and(|m| m.status == RunStatus::Completed)
            })
    }
}

impl Executor for Cluster {
    fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    fn submit(&mut self, sweep: &Sweep) -> Result<Vec<String>> {
        let points = sweep.job_points(&self.workspace.configs)?;
        let binary = self.profile.remote_binary()?;
        let resources = sweep.resources(&self.profile)?;
        let points = points
            .into_iter()
            .map(|p| (p.command(&binary), p.label(), p.run_dir))
            .collect();
        self.submit_commands(&resources, sweep.queue.clone(), sweep.array, points, &[])
    }

    fn cancel(&mut self, ids: &[String]) -> Result<()> {
        let selected = if ids.is_empty() {
            Vec::new()
        } else {
            self.select(ids)
        };
        if selected.is_empty() {
            return Err(Error::invalid(
                "job id",
                format!(
                    "{} not in the ledger {} for cluster {}",
                    ids.join(", "),
                    self.ledger.path().display(),
                    self.profile.name
                ),
            ));
        }
        let open: Vec<String> = selected
            .into_iter()
            .filter(|id| self.ledger.job(id).is_some_and(|j| !j.state().is_final()))
            .collect();
        self.scheduler.cancel(self.remote.as_mut(), &open)?;
        for id in &open {
            self.ledger.update(id, |j| j.cancelled_by_user = true)?;
        }
        Ok(())
    }

    fn monitor_once(&mut self, options: &MonitorOptions) -> Result<MonitorReport> {
        let changes = self.refresh()?;
        let mut report = MonitorReport {
            changes,
            ..MonitorReport::default()
        };
        // fetch every finished job not fetched yet (whoever saw it finish)
        let finished: Vec<String> = self
            .ledger
            .jobs()
            .iter()
            .filter(|j| j.cluster == self.profile.name && j.state().is_final() && !j.fetched)
            .map(|j| j.id.clone())
            .collect();
        if !finished.is_empty() {
            report.fetched = self.fetch(&finished)?;
        }
        for id in &finished {
            let Some(job) = self.ledger.job(id).cloned() else {
                continue;
            };
            if job.state() == JobState::Failed {
                report.failures.push(Failure {
                    id: id.clone(),
                    sweep_point: job.sweep_points.join("; "),
                    detail: job.transitions.last().and_then(|t| t.detail.clone()),
                    log_tail: self.log_tail(id),
                });
            }
        }
        // resubmit interrupted jobs whose runs are unfinished, grouped by what they asked for
        let mut groups: BTreeMap<(String, String), Vec<LedgerJob>> = BTreeMap::new();
        for job in self.ledger.jobs() {
            if job.cluster != self.profile.name || !Self::interrupted(job, options) {
                continue;
            }
            if self.local_runs_completed(job) {
                continue;
            }
            if self.ledger.retries_of(&job.id) >= options.max_retries {
                if !job.cancelled_by_user {
                    report.gave_up.push(job.id.clone());
                }
                continue;
            }
            let key = (
                job.queue.clone(),
                serde_yaml_ng::to_string(&job.resources).unwrap_or_default(),
            );
            groups.entry(key).or_default().push(job.clone());
        }
        for ((queue, _), jobs) in groups {
            let Some(resources) = jobs[0].resources.clone() else {
                continue;
            };
            // one command per resubmitted job keeps the ledger's chain one-to-one
            let single = jobs.iter().all(|j| j.commands.len() == 1);
            let olds: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
            let points: Vec<(String, String, String)> = jobs
                .iter()
                .flat_map(|j| {
                    j.commands
                        .iter()
                        .zip(&j.sweep_points)
                        .zip(&j.run_dirs)
                        .map(|((c, l), r)| (c.clone(), l.clone(), r.clone()))
                        .collect::<Vec<_>>()
                })
                .collect();
            let new_ids = self.submit_commands(&resources, Some(queue), single, points, &olds)?;
            for (i, old) in olds.iter().enumerate() {
                let new = new_ids
                    .get(i)
                    .or(new_ids.first())
                    .cloned()
                    .unwrap_or_default();
                self.ledger
                    .update(old, |j| j.resubmitted_as = Some(new.clone()))?;
                report.resubmitted.push(Resubmission {
                    old: old.clone(),
                    new,
                });
            }
        }
        report.active = self
            .ledger
            .jobs()
            .iter()
            .filter(|j| j.cluster == self.profile.name && !j.state().is_final())
            .count();
        Ok(report)
    }
}
