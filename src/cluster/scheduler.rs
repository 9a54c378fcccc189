//! The scheduler's commands, run through a [`Remote`]: submit a script, ask for job states,
//! cancel. PBS Pro: `qsub`, `qstat -f -F json -x -t`, `qdel`. Slurm: `sbatch --parsable`,
//! `squeue` for live jobs, then `sacct` where accounting is enabled, else
//! `scontrol show job --oneliner` (finished jobs stay there for `MinJobAge`).

use std::collections::BTreeMap;

use super::ledger::JobState;
use super::profile::Scheduler;
use super::remote::Remote;
use super::script::shell_quote;
use super::{pbs, slurm};
use crate::error::{Error, Result};

/// A job state with the scheduler's detail (reason, exit code, comment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The state.
    pub state: JobState,
    /// What the scheduler said about it.
    pub detail: Option<String>,
}

/// Talks to one scheduler through a remote shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerClient {
    scheduler: Scheduler,
}

impl SchedulerClient {
    /// A client for `scheduler`.
    pub fn new(scheduler: Scheduler) -> SchedulerClient {
        SchedulerClient { scheduler }
    }

    /// Submits the script at remote path `script` from directory `work_dir`; returns the job
    /// id (for an array, the array's id: `123` on Slurm, `123[].server` on PBS).
    pub fn submit(&self, remote: &mut dyn Remote, work_dir: &str, script: &str) -> Result<String> {
        let (tool, command) = match self.scheduler {
            Scheduler::Slurm => ("sbatch", "sbatch --parsable"),
            Scheduler::Pbs => ("qsub", "qsub"),
        };
        let line = format!(
            "cd {} && {command} {}",
            shell_quote(work_dir),
            shell_quote(script)
        );
        let host = remote.host().to_string();
        let out = remote.exec(&line)?.checked(&host, tool)?;
        // sbatch --parsable prints `id` or `id;cluster`; qsub prints the id
        let id = out
            .stdout
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .and_then(|l| l.split(';').next())
            .map(str::to_string)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| Error::Cluster {
                host,
                message: format!("{tool} printed no job id (stdout: {:?})", out.stdout),
            })?;
        Ok(id)
    }

    /// The id of task `index` of array job `id`.
    pub fn task_id(&self, id: &str, index: usize) -> String {
        match self.scheduler {
            Scheduler::Slurm => format!("{id}_{index}"),
            Scheduler::Pbs => id.replacen("[]", &format!("[{index}]"), 1),
        }
    }

    /// The states of `ids` (jobs or array tasks); an id the scheduler no longer reports is
    /// absent from the map.
    pub fn states(
        &self,
        remote: &mut dyn Remote,
        ids: &[String],
    ) -> Result<BTreeMap<String, Observed>> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        match self.scheduler {
            Scheduler::Slurm => slurm_states(remote, ids),
            Scheduler::Pbs => pbs_states(remote, ids),
        }
    }

    /// Cancels `ids`.
    pub fn cancel(&self, remote: &mut dyn Remote, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let tool = match self.scheduler {
            Scheduler::Slurm => "scancel",
            Scheduler::Pbs => "qdel",
        };
        let quoted: Vec<String> = ids.iter().map(|i| shell_quote(i)).collect();
        let host = remote.host().to_string();
        remote
            .exec(&format!("{tool} {}", quoted.join(" ")))?
            .checked(&host, tool)
            .map(|_| ())
    }
}

/// The base job id of a Slurm id (`123_4` -> `123`).
fn slurm_base(id: &str) -> &str {
    id.split('_').next().unwrap_or(id)
}

fn slurm_states(remote: &mut dyn Remote, ids: &[String]) -> Result<BTreeMap<String, Observed>> {
    let host = remote.host().to_string();
    let mut bases: Vec<&str> = ids.iter().map(|i| slurm_base(i)).collect();
    bases.sort_unstable();
    bases.dedup();
    let mut found = BTreeMap::new();
    let keep = |jobs: Vec<slurm::SlurmJob>, found: &mut BTreeMap<String, Observed>| {
        for job in jobs {
            found.entry(job.id).or_insert(Observed {
                state: job.state,
                detail: job.detail,
            });
        }
    };
    // every job of the user (an unknown id in --jobs is an error for squeue)
    let squeue = format!(
        "squeue --user=\"$(id -un)\" --array {}",
        slurm::SQUEUE_ARGS
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    );
    keep(
        slurm::parse_squeue(&remote.exec(&squeue)?.checked(&host, "squeue")?.stdout)?,
        &mut found,
    );
    // bases with any id squeue did not report (an array's finished tasks leave squeue while
    // others still run)
    let missing: Vec<&str> = bases
        .iter()
        .copied()
        .filter(|b| {
            ids.iter()
                .any(|i| slurm_base(i) == *b && !found.contains_key(i))
        })
        .collect();
    if missing.is_empty() {
        return Ok(found);
    }
    // sacct only where accounting is on (without it sacct may wait on slurmdbd); bounded by
    // `timeout` in case the database does not answer
    let config =
        remote.exec("scontrol show config 2>/dev/null | grep -i '^AccountingStorageType'")?;
    let accounting = config.stdout.contains("accounting_storage/")
        && !config.stdout.contains("accounting_storage/none");
    let from_sacct = if accounting {
        let out = remote.exec(&format!(
            "timeout 60 sacct {} --jobs={}",
            slurm::SACCT_ARGS.join(" "),
            missing.join(",")
        ))?;
        if out.status == 0 {
            keep(slurm::parse_sacct(&out.stdout)?, &mut found);
        }
        out.status == 0
    } else {
        false
    };
    if !from_sacct {
        // no accounting (slurmdbd): finished jobs are in scontrol for MinJobAge
        for base in missing {
            let out = remote.exec(&format!("scontrol show job --oneliner {base}"))?;
            if out.status == 0 {
                keep(slurm::parse_scontrol(&out.stdout)?, &mut found);
            }
        }
    }
    Ok(found)
}

fn pbs_states(remote: &mut dyn Remote, ids: &[String]) -> Result<BTreeMap<String, Observed>> {
    let host = remote.host().to_string();
    let quoted: Vec<String> = ids.iter().map(|i| shell_quote(i)).collect();
    // -x includes finished jobs, -t array subjobs; unknown ids make qstat exit non-zero but it
    // still prints the known ones
    let out = remote.exec(&format!("qstat -f -F json -x -t {}", quoted.join(" ")))?;
    if out.stdout.trim().is_empty() {
        return if out.status == 0 || out.stderr.contains("Unknown Job Id") {
            Ok(BTreeMap::new())
        } else {
            out.checked(&host, "qstat").map(|_| BTreeMap::new())
        };
    }
    Ok(pbs::parse_qstat_json(&out.stdout)?
        .into_iter()
        .map(|job| {
            let detail = job
                .exit_status
                .map(|e| format!("exit status {e}"))
                .into_iter()
                .chain(job.comment)
                .collect::<Vec<_>>()
                .join("; ");
            (
                job.id,
                Observed {
                    state: job.state,
                    detail: Some(detail).filter(|d| !d.is_empty()),
                },
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::remote::{Output, RemoteFile};
    use super::*;

    /// Answers each command with the output of the first rule whose prefix it starts with,
    /// and records the commands.
    struct Canned {
        rules: Vec<(&'static str, Output)>,
        seen: Vec<String>,
    }

    impl Remote for Canned {
        fn host(&self) -> &str {
            "canned"
        }
        fn exec(&mut self, command: &str) -> Result<Output> {
            self.seen.push(command.to_string());
            let rule = self.rules.iter().find(|(p, _)| command.starts_with(p));
            Ok(rule.map_or(
                Output {
                    status: 127,
                    stdout: String::new(),
                    stderr: format!("{command}: not found"),
                },
                |(_, o)| o.clone(),
            ))
        }
        fn list_files(&mut self, _dir: &str) -> Result<Vec<RemoteFile>> {
            Ok(Vec::new())
        }
        fn write_file(&mut self, _path: &str, _bytes: &[u8], _mode: i32) -> Result<()> {
            Ok(())
        }
        fn read_file(&mut self, path: &str) -> Result<Vec<u8>> {
            Err(Error::invalid("path", path))
        }
    }

    fn ok(stdout: &str) -> Output {
        Output {
            status: 0,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    #[test]
    fn pbs_submit_and_states_read_real_qstat_output() -> Result<()> {
        let fixture = |name: &str| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/pbs")
                .join(name);
            std::fs::read_to_string(&path).map_err(Error::io("reading", path))
        };
        let mut remote = Canned {
            rules: vec![
                ("cd /w && qsub", ok("2154.edtb-01.mcp.alcf.anl.gov\n")),
                (
                    "qstat -f -F json -x -t 2154",
                    ok(&fixture("qstat_f_psij_alcf.json")?),
                ),
                (
                    "qstat -f -F json -x -t 1286",
                    ok(&fixture("qstat_xf_metacentrum.json")?),
                ),
                ("qdel", ok("")),
            ],
            seen: Vec::new(),
        };
        let pbs = SchedulerClient::new(Scheduler::Pbs);
        let id = pbs.submit(&mut remote, "/w", "/w/jobs/a b.sh")?;
        assert_eq!(id, "2154.edtb-01.mcp.alcf.anl.gov");
        assert_eq!(remote.seen[0], "cd /w && qsub '/w/jobs/a b.sh'");
        let done = pbs.states(&mut remote, std::slice::from_ref(&id))?;
        assert_eq!(done[&id].state, JobState::Completed);
        assert_eq!(
            done[&id]
                .detail
                .as_deref()
                .map(|d| d.starts_with("exit status 0")),
            Some(true)
        );
        let running_id = "12860476.meta-pbs.metacentrum.cz".to_string();
        let running = pbs.states(&mut remote, std::slice::from_ref(&running_id))?;
        assert_eq!(running[&running_id].state, JobState::Running);
        pbs.cancel(&mut remote, &["1[0].x".to_string(), "1[1].x".to_string()])?;
        assert_eq!(
            remote.seen.last().map(String::as_str),
            Some("qdel '1[0].x' '1[1].x'")
        );
        Ok(())
    }

    #[test]
    fn slurm_falls_back_to_scontrol_without_accounting() -> Result<()> {
        let mut remote = Canned {
            rules: vec![
                ("squeue", ok("41_1|RUNNING|None\n")),
                (
                    "scontrol show config",
                    ok("AccountingStorageType   = accounting_storage/slurmdbd\n"),
                ),
                (
                    "sacct",
                    Output {
                        status: 1,
                        stdout: String::new(),
                        stderr: "Slurm accounting storage is disabled".into(),
                    },
                ),
                (
                    "scontrol show job --oneliner 41",
                    ok("JobId=42 ArrayJobId=41 ArrayTaskId=0 JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15\nJobId=41 ArrayJobId=41 ArrayTaskId=1 JobState=RUNNING ExitCode=0:0\n"),
                ),
            ],
            seen: Vec::new(),
        };
        let slurm = SchedulerClient::new(Scheduler::Slurm);
        let ids = vec!["41_0".to_string(), "41_1".to_string(), "99".to_string()];
        let states = slurm.states(&mut remote, &ids)?;
        assert_eq!(states["41_0"].state, JobState::KilledWalltime);
        assert_eq!(states["41_1"].state, JobState::Running);
        assert_eq!(
            states["41_1"].detail, None,
            "squeue's `None` reason is no detail"
        );
        assert!(!states.contains_key("99"), "unknown to every tool");
        assert!(remote
            .seen
            .iter()
            .any(|c| c.starts_with("timeout 60 sacct") && c.contains("--jobs=41,99")));
        Ok(())
    }

    #[test]
    fn array_task_ids_follow_each_scheduler() {
        let slurm = SchedulerClient::new(Scheduler::Slurm);
        assert_eq!(slurm.task_id("123", 1), "123_1");
        let pbs = SchedulerClient::new(Scheduler::Pbs);
        assert_eq!(pbs.task_id("4567[].sched01", 0), "4567[0].sched01");
        assert_eq!(slurm_base("123_4"), "123");
    }
}
