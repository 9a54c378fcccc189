//! Job scripts rendered from `templates/pbs.sh.j2` and `templates/slurm.sh.j2`: resources,
//! walltime by the sizing rule, logs, `set -euo pipefail`, a GPU job's check that its binary is
//! a CUDA build, and the `autoresearch train` commands, one per array task when the scheduler
//! runs them as a job array.

use serde::Serialize;

use super::profile::{ClusterProfile, QueueLimits, Scheduler};
use super::walltime::{size_walltime, Walltime, MARGIN};
use crate::error::{Error, Result};

/// What one submission asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRequest {
    /// Job name (letters, digits, `_`, `-`, `.`; PBS allows 15 characters shown, 236 stored).
    pub name: String,
    /// Queue (PBS) or partition (Slurm); `None` for the profile's default.
    pub queue: Option<String>,
    /// CPU cores.
    pub cpus: u32,
    /// Memory in GB.
    pub mem_gb: u32,
    /// GPUs.
    pub gpus: u32,
    /// Estimated time of one run (seed).
    pub per_run: Walltime,
    /// Where `per_run` came from when measured (`200 epochs x 20 s (median epoch of ...)`),
    /// written in the script; `None` for an estimate given by hand.
    pub per_run_source: Option<String>,
    /// One shell command per run (sweep point), e.g. `autoresearch train experiment=x seed=0`.
    pub commands: Vec<String>,
    /// Run the commands as a job array, one task each (else one after another in one job).
    pub array: bool,
}

/// A rendered script with what it requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobScript {
    /// The script text.
    pub text: String,
    /// The queue it goes to.
    pub queue: String,
    /// The walltime it requests (per task for an array).
    pub walltime: Walltime,
    /// Number of array tasks (`None` for a single job).
    pub array_len: Option<usize>,
    /// Remote path of the logs without the scheduler's suffix (`_<id>.out` on Slurm,
    /// `.out` or `.<index>.out` on PBS).
    pub log_stem: String,
}

/// What the templates see.
#[derive(Serialize)]
struct Context<'a> {
    name: &'a str,
    queue: &'a str,
    cpus: u32,
    mem_gb: u32,
    gpus: u32,
    walltime: String,
    sizing: String,
    /// How a measured estimate sized the walltime (the script's `# walltime:` line).
    measured: Option<String>,
    array: bool,
    commands: Vec<String>,
    modules: &'a [String],
    /// `NAME='value'` pairs, value already quoted.
    env: Vec<String>,
    work_dir: &'a str,
    log_stem: String,
    project: Option<&'a str>,
    account: Option<&'a str>,
    qos: Option<&'a str>,
    gres: Option<String>,
    email: Option<&'a str>,
    version: &'static str,
    /// Lines that stop a GPU job whose binary is not a CUDA build.
    guard: Option<String>,
}

/// `text` as one shell word: as it is when it holds only characters the shell takes
/// literally, else single-quoted (so job scripts stay readable).
pub fn shell_quote(text: &str) -> String {
    let literal = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./=,:@%+-".contains(c));
    if literal {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

impl JobRequest {
    /// Refuses what `queue` of `profile` (with `limits`) cannot run: cores or GPUs beyond its
    /// limits, no command, a name PBS rejects.
    fn check(&self, profile: &ClusterProfile, queue: &str, limits: &QueueLimits) -> Result<()> {
        let bad = |what: &str, asked: u32, max: u32, hint: String| {
            Error::invalid(
                what,
                format!(
                    "{asked} requested, queue `{queue}` of {} allows at most {max}{hint}",
                    profile.name
                ),
            )
        };
        if self.cpus == 0 || self.cpus > limits.max_cpus {
            return Err(bad("cpus", self.cpus, limits.max_cpus, String::new()));
        }
        if self.gpus > limits.max_gpus {
            let hint = format!(" (GPU queues: {})", profile.gpu_queues().join(", "));
            return Err(bad("gpus", self.gpus, limits.max_gpus, hint));
        }
        if self.commands.is_empty() {
            return Err(Error::invalid(
                "commands",
                "a job needs at least one command",
            ));
        }
        let starts_with_letter = self
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic());
        if !starts_with_letter
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            return Err(Error::invalid(
                "name",
                format!(
                    "`{}`: start with a letter, then letters, digits, `_`, `-` and `.` (PBS's rule)",
                    self.name
                ),
            ));
        }
        Ok(())
    }
}

/// The `# walltime:` line of a request whose per-run time was measured: runs per job x the
/// measured estimate x the margin, and the cap of the queue where it applies.
fn measured_line(
    request: &JobRequest,
    runs_per_job: usize,
    walltime: Walltime,
    limits: &QueueLimits,
    array: bool,
) -> Option<String> {
    let source = request.per_run_source.as_ref()?.replace(['\n', '\r'], " ");
    let runs = match (runs_per_job, array) {
        (_, true) => "1 run per array task".to_string(),
        (1, false) => "1 run".to_string(),
        (n, false) => format!("{n} runs"),
    };
    let uncapped = size_walltime(runs_per_job, request.per_run, Walltime(u64::MAX), "").ok()?;
    let capped = if walltime < uncapped {
        format!(
            " (capped at the queue maximum {}; runs resume from their checkpoints in a resubmitted job)",
            limits.max_walltime
        )
    } else {
        String::new()
    };
    Some(format!("{runs} x {source} x {MARGIN} = {walltime}{capped}"))
}

impl JobScript {
    /// Renders the script of `request` for `profile`, checking the queue and its limits.
    pub fn render(profile: &ClusterProfile, request: &JobRequest) -> Result<JobScript> {
        JobScript::render_tagged(profile, request, None)
    }

    /// Like [`JobScript::render`], with `tag` in the log names so that submissions of the same
    /// name never share a log (PBS names logs before it knows the job id).
    pub fn render_tagged(
        profile: &ClusterProfile,
        request: &JobRequest,
        tag: Option<&str>,
    ) -> Result<JobScript> {
        let queue = request.queue.as_deref().unwrap_or(&profile.default_queue);
        let limits = profile.queue(queue)?;
        request.check(profile, queue, limits)?;
        // PBS Pro needs at least two indices in `-J`
        let array = request.array && request.commands.len() > 1;
        let runs_per_job = if array { 1 } else { request.commands.len() };
        let walltime = size_walltime(runs_per_job, request.per_run, limits.max_walltime, queue)?;
        let work_dir = profile.remote_work_dir()?;
        let gres = match (profile.scheduler, &profile.gres, request.gpus) {
            (Scheduler::Slurm, Some(g), _) => Some(g.clone()),
            (Scheduler::Slurm, None, n) if n > 0 => Some(format!("gpu:{n}")),
            _ => None,
        };
        let log_stem = match tag {
            Some(t) => format!("{work_dir}/logs/{}-{t}", request.name),
            None => format!("{work_dir}/logs/{}", request.name),
        };
        let context = Context {
            name: &request.name,
            queue: profile
                .partition
                .as_deref()
                .filter(|_| request.queue.is_none())
                .unwrap_or(queue),
            cpus: request.cpus,
            mem_gb: request.mem_gb,
            gpus: request.gpus,
            walltime: walltime.to_string(),
            sizing: format!(
                "{runs_per_job} x {} x {MARGIN}, queue max {}",
                request.per_run, limits.max_walltime
            ),
            measured: measured_line(request, runs_per_job, walltime, limits, array),
            array,
            commands: request.commands.iter().map(|c| shell_quote(c)).collect(),
            modules: &profile.modules,
            env: profile
                .env
                .iter()
                .map(|(k, v)| format!("{k}={}", shell_quote(v)))
                .collect(),
            work_dir: &work_dir,
            log_stem: log_stem.clone(),
            project: profile.project.as_deref(),
            account: profile.account.as_deref(),
            qos: profile.qos.as_deref(),
            gres,
            email: profile.email.as_deref(),
            version: env!("CARGO_PKG_VERSION"),
            guard: match request.gpus {
                0 => None,
                _ => Some(super::gpu::guard(&profile.remote_binary()?)),
            },
        };
        let template = match profile.scheduler {
            Scheduler::Pbs => "pbs.sh.j2",
            Scheduler::Slurm => "slurm.sh.j2",
        };
        let text = crate::report::render(template, None, context)?;
        Ok(JobScript {
            text,
            queue: queue.to_string(),
            walltime,
            array_len: array.then_some(request.commands.len()),
            log_stem,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("seed=0"), "seed=0");
        assert_eq!(
            shell_quote("model.hidden=[512,256]"),
            "'model.hidden=[512,256]'"
        );
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(shell_quote(""), "''");
    }
}
