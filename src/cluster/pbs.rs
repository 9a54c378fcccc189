//! Reading PBS Professional's `qstat -f -F json` (and `qstat -xf -F json` for finished jobs).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ledger::JobState;
use crate::error::{Error, Result};

/// PBS Pro's exit status of a job killed for exceeding its walltime (`JOB_EXEC_KILL_WALLTIME`).
const EXIT_KILL_WALLTIME: i64 = -29;

/// One job's state as `qstat` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbsJob {
    /// Full job id (`1234.server`, or `1234[].server` for an array).
    pub id: String,
    /// `job_state` letter (Q, H, W, T, S, R, E, B, X, F, M).
    pub letter: String,
    /// The state in scheduler-neutral terms.
    pub state: JobState,
    /// `Exit_status`, once finished.
    pub exit_status: Option<i64>,
    /// Queue.
    pub queue: Option<String>,
    /// The scheduler's comment (why it runs, waits or ended).
    pub comment: Option<String>,
}

#[derive(Deserialize)]
struct Report {
    #[serde(rename = "Jobs", default)]
    jobs: BTreeMap<String, RawJob>,
}

#[derive(Deserialize)]
struct RawJob {
    job_state: String,
    #[serde(rename = "Exit_status")]
    exit_status: Option<i64>,
    queue: Option<String>,
    comment: Option<String>,
}

/// Parses `qstat -f -F json` output (no `Jobs` key means no jobs).
pub fn parse_qstat_json(text: &str) -> Result<Vec<PbsJob>> {
    let report: Report = serde_json::from_str(text).map_err(|e| {
        Error::Analysis(format!(
            "qstat -F json output is not the expected JSON ({e}); first bytes: {:?}",
            text.chars().take(80).collect::<String>()
        ))
    })?;
    Ok(report
        .jobs
        .into_iter()
        .map(|(id, raw)| PbsJob {
            state: state_of(&raw.job_state, raw.exit_status, raw.comment.as_deref()),
            id,
            letter: raw.job_state,
            exit_status: raw.exit_status,
            queue: raw.queue,
            comment: raw.comment,
        })
        .collect())
}

/// Maps a PBS state letter (and, when finished, the exit status) to a [`JobState`].
pub fn state_of(letter: &str, exit_status: Option<i64>, comment: Option<&str>) -> JobState {
    match letter {
        "Q" | "H" | "W" | "T" | "S" | "U" => JobState::Queued,
        "R" | "E" | "B" => JobState::Running,
        "F" | "X" => match exit_status {
            Some(0) => JobState::Completed,
            Some(EXIT_KILL_WALLTIME) => JobState::KilledWalltime,
            _ if comment.is_some_and(|c| c.contains("walltime") && c.contains("exceeded")) => {
                JobState::KilledWalltime
            }
            // PBS exec codes (< 0): the job could not run to the end for the scheduler's
            // reasons (node failure, a failed prologue); it may be retried
            Some(code) if code < 0 => JobState::NodeFailed,
            // 256 + signal: killed by a signal (qdel sends SIGTERM, then SIGKILL)
            Some(code) if code > 256 => JobState::Cancelled,
            Some(_) => JobState::Failed,
            None => JobState::Unknown,
        },
        _ => JobState::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pbs")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_default()
    }

    #[test]
    fn real_qstat_outputs_parse() -> Result<()> {
        let running = parse_qstat_json(&fixture("qstat_xf_metacentrum.json"))?;
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].id, "12860476.meta-pbs.metacentrum.cz");
        assert_eq!(running[0].state, JobState::Running);
        assert_eq!(running[0].queue.as_deref(), Some("charon_2h"));
        assert_eq!(running[0].exit_status, None);
        let finished = parse_qstat_json(&fixture("qstat_f_psij_alcf.json"))?;
        assert_eq!(finished[0].id, "2154.edtb-01.mcp.alcf.anl.gov");
        assert_eq!(finished[0].state, JobState::Completed);
        assert_eq!(finished[0].exit_status, Some(0));
        Ok(())
    }

    #[test]
    fn finished_states_follow_the_exit_status() {
        assert_eq!(state_of("F", Some(-29), None), JobState::KilledWalltime);
        assert_eq!(state_of("F", Some(271), None), JobState::Cancelled);
        assert_eq!(state_of("F", Some(1), None), JobState::Failed);
        assert_eq!(state_of("F", Some(-1), None), JobState::NodeFailed);
        assert_eq!(state_of("Q", None, None), JobState::Queued);
        assert_eq!(
            state_of(
                "F",
                Some(271),
                Some("job killed: walltime 3610 exceeded limit 3600")
            ),
            JobState::KilledWalltime
        );
    }

    #[test]
    fn no_jobs_and_garbage() -> Result<()> {
        assert!(parse_qstat_json(r#"{"pbs_version":"2024.1.2"}"#)?.is_empty());
        let err = parse_qstat_json("qstat: Unknown Job Id 1.x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Unknown Job Id"), "{err}");
        Ok(())
    }
}
