//! Reading Slurm's job states: `squeue` for live jobs, `sacct` where accounting is enabled, and
//! `scontrol show job --oneliner` for recently finished jobs on clusters without accounting
//! (`scontrol` keeps them for `MinJobAge`, 300 s by default).

use super::ledger::JobState;
use crate::error::{Error, Result};

/// Arguments of `squeue` whose output [`parse_squeue`] reads: id, state, reason.
pub const SQUEUE_ARGS: &[&str] = &["--noheader", "--format=%i|%T|%r"];

/// Arguments of `sacct` whose output [`parse_sacct`] reads: id, state, exit code.
pub const SACCT_ARGS: &[&str] = &[
    "--noheader",
    "--parsable2",
    "--allocations",
    "--format=JobID,State,ExitCode",
];

/// One job (or array task) as Slurm reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmJob {
    /// Job id (`123`, or `123_4` for task 4 of array 123).
    pub id: String,
    /// Slurm's state word (`RUNNING`, `TIMEOUT`, `CANCELLED`, ...).
    pub slurm_state: String,
    /// The state in scheduler-neutral terms.
    pub state: JobState,
    /// `reason` (squeue) or `exit code:signal` (sacct, scontrol).
    pub detail: Option<String>,
}

/// Maps a Slurm state word (`CANCELLED by 0` counts as `CANCELLED`) to a [`JobState`].
pub fn state_of(word: &str) -> JobState {
    match word.split_whitespace().next().unwrap_or("") {
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED"
        | "RESV_DEL_HOLD" | "SUSPENDED" | "STOPPED" | "RESIZING" => JobState::Queued,
        "RUNNING" | "COMPLETING" | "STAGE_OUT" | "SIGNALING" => JobState::Running,
        "COMPLETED" => JobState::Completed,
        "FAILED" | "OUT_OF_MEMORY" | "SPECIAL_EXIT" => JobState::Failed,
        "CANCELLED" | "REVOKED" => JobState::Cancelled,
        "TIMEOUT" | "DEADLINE" => JobState::KilledWalltime,
        "NODE_FAIL" | "BOOT_FAIL" | "PREEMPTED" => JobState::NodeFailed,
        _ => JobState::Unknown,
    }
}

/// Splits `|`-separated lines of three fields.
fn three_fields(text: &str, what: &str) -> Result<Vec<SlurmJob>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split('|').collect();
            match f.as_slice() {
                [id, state, detail] => Ok(SlurmJob {
                    id: id.trim().to_string(),
                    slurm_state: state.trim().to_string(),
                    state: state_of(state),
                    // squeue's reason is `None` while a job runs
                    detail: Some(detail.trim().to_string())
                        .filter(|d| !d.is_empty() && d != "None"),
                }),
                _ => Err(Error::Analysis(format!(
                    "{what} line `{line}` does not have the 3 `|`-separated fields asked for"
                ))),
            }
        })
        .collect()
}

/// Parses `squeue` output produced with [`SQUEUE_ARGS`].
pub fn parse_squeue(text: &str) -> Result<Vec<SlurmJob>> {
    three_fields(text, "squeue")
}

/// Parses `sacct` output produced with [`SACCT_ARGS`].
pub fn parse_sacct(text: &str) -> Result<Vec<SlurmJob>> {
    three_fields(text, "sacct")
}

/// Parses `scontrol show job --oneliner` output: one line per job (array tasks included),
/// `Key=Value` pairs separated by spaces.
pub fn parse_scontrol(text: &str) -> Result<Vec<SlurmJob>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let field = |key: &str| {
                line.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            };
            let (Some(job_id), Some(state)) = (field("JobId"), field("JobState")) else {
                return Err(Error::Analysis(format!(
                    "scontrol line without JobId and JobState: `{}`",
                    line.chars().take(120).collect::<String>()
                )));
            };
            // array tasks: ArrayJobId=100 ArrayTaskId=1 -> 100_1
            let id = match (field("ArrayJobId"), field("ArrayTaskId")) {
                (Some(a), Some(t)) => format!("{a}_{t}"),
                _ => job_id.to_string(),
            };
            Ok(SlurmJob {
                id,
                slurm_state: state.to_string(),
                state: state_of(state),
                detail: field("ExitCode").map(str::to_string),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_and_sacct_lines_parse() -> Result<()> {
        let live = parse_squeue("101_0|RUNNING|None\n101_1|PENDING|Resources\n")?;
        assert_eq!(live[0].state, JobState::Running);
        assert_eq!(live[1].detail.as_deref(), Some("Resources"));
        let done = parse_sacct(
            "101_0|COMPLETED|0:0\n101_1|TIMEOUT|0:0\n102|CANCELLED by 0|0:15\n103|NODE_FAIL|0:0\n104|FAILED|1:0\n",
        )?;
        let states: Vec<JobState> = done.iter().map(|j| j.state).collect();
        assert_eq!(
            states,
            [
                JobState::Completed,
                JobState::KilledWalltime,
                JobState::Cancelled,
                JobState::NodeFailed,
                JobState::Failed
            ]
        );
        assert!(parse_sacct("garbage without fields").is_err());
        Ok(())
    }

    #[test]
    fn scontrol_oneliners_parse_array_tasks() -> Result<()> {
        let text = "JobId=105 ArrayJobId=104 ArrayTaskId=1 JobName=snn UserId=root(0) JobState=COMPLETED Reason=None ExitCode=0:0\n\
                    JobId=106 JobName=x JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15\n";
        let jobs = parse_scontrol(text)?;
        assert_eq!(jobs[0].id, "104_1");
        assert_eq!(jobs[0].state, JobState::Completed);
        assert_eq!(jobs[1].id, "106");
        assert_eq!(jobs[1].state, JobState::KilledWalltime);
        assert_eq!(jobs[1].detail.as_deref(), Some("0:15"));
        assert!(parse_scontrol("slurm_load_jobs error: Invalid job id specified").is_err());
        Ok(())
    }
}
