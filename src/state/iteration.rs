//! `iterations/NNN/iteration.yaml`: the goal, the current phase, the phase history and human
//! feedback of one iteration. Both shapes of the reference workbench are read and written back
//! in the shape they came in: a `phases:` map (phase -> started_at, completed_at, notes) and a
//! `phase_history:` list (records with a `phase` key).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::file::{number_or_text, Extra, Timestamp};
use super::phase::Phase;
use crate::error::Result;

/// How the phase history is written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HistoryShape {
    /// `phase_history:` a list of records (the default for new iterations).
    #[default]
    List,
    /// `phases:` a map keyed by phase; a phase entered twice is folded into one entry (first
    /// start, last completion, notes joined).
    Map,
}

/// One stay in a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// The phase.
    pub phase: Phase,
    /// When it was entered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When it was left (none while current).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Timestamp>,
    /// What was done or decided, in a sentence or two.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A map entry of the `phases:` shape (the record without its key).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct PhaseSpan {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    completed_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    notes: String,
    #[serde(flatten)]
    extra: Extra,
}

/// Feedback a human left on the iteration; waiting until marked addressed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// When it was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    /// The feedback.
    pub text: String,
    /// Whether it has been acted on (written only once true).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub addressed: bool,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The file as written: either history shape, aliases of the reference accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IterationFile {
    #[serde(alias = "iteration", alias = "id", deserialize_with = "number_or_text")]
    number: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    goal: String,
    #[serde(
        default,
        alias = "current_phase",
        skip_serializing_if = "Option::is_none"
    )]
    phase: Option<Phase>,
    #[serde(default, alias = "created_at", skip_serializing_if = "Option::is_none")]
    created: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phases: Option<BTreeMap<Phase, Option<PhaseSpan>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phase_history: Option<Vec<PhaseRecord>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    human_feedback: Vec<Feedback>,
    #[serde(flatten)]
    extra: Extra,
}

/// One iteration of a project's research loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "IterationFile", into = "IterationFile")]
pub struct Iteration {
    /// 1-based number (the `NNN` of its folder).
    pub number: u32,
    /// What this iteration sets out to show.
    pub goal: String,
    /// The current phase.
    pub phase: Phase,
    /// When it was created.
    pub created: Option<Timestamp>,
    /// Every stay in a phase, oldest first.
    pub history: Vec<PhaseRecord>,
    /// How the history is written back.
    pub shape: HistoryShape,
    /// Human feedback, oldest first.
    pub human_feedback: Vec<Feedback>,
    /// Unknown fields, kept.
    pub extra: Extra,
}

impl TryFrom<IterationFile> for Iteration {
    type Error = String;

    fn try_from(f: IterationFile) -> std::result::Result<Iteration, String> {
        let (shape, history) = match (f.phases, f.phase_history) {
            (Some(_), Some(_)) => {
                return Err("both `phases` and `phase_history`: keep one of them".into())
            }
            (Some(map), None) => {
                let history = map
                    .into_iter()
                    .map(|(phase, span)| {
                        let s = span.unwrap_or_default();
                        PhaseRecord {
                            phase,
                            started_at: s.started_at,
                            completed_at: s.completed_at,
                            notes: s.notes,
                            extra: s.extra,
                        }
                    })
                    .collect();
                (HistoryShape::Map, history)
            }
            (None, list) => (HistoryShape::List, list.unwrap_or_default()),
        };
        // without a `phase` key: the open record, else the last one, else planned
        let phase = f.phase.unwrap_or_else(|| {
            history
                .iter()
                .rev()
                .find(|r| r.started_at.is_some() && r.completed_at.is_none())
                .or(history.last())
                .map_or(Phase::Planned, |r| r.phase)
        });
        Ok(Iteration {
            number: f.number,
            goal: f.goal,
            phase,
            created: f.created,
            history,
            shape,
            human_feedback: f.human_feedback,
            extra: f.extra,
        })
    }
}

impl From<Iteration> for IterationFile {
    fn from(it: Iteration) -> IterationFile {
        let (phases, phase_history) = match it.shape {
            HistoryShape::List => (None, Some(it.history)),
            HistoryShape::Map => (Some(fold_into_map(it.history)), None),
        };
        IterationFile {
            number: it.number,
            goal: it.goal,
            phase: Some(it.phase),
            created: it.created,
            phases,
            phase_history,
            human_feedback: it.human_feedback,
            extra: it.extra,
        }
    }
}

/// The `phases:` map of a history: per phase the first start, the last completion, the notes
/// of every stay joined by newlines.
fn fold_into_map(history: Vec<PhaseRecord>) -> BTreeMap<Phase, Option<PhaseSpan>> {
    let mut map: BTreeMap<Phase, Option<PhaseSpan>> = BTreeMap::new();
    for r in history {
        let entry = map.entry(r.phase).or_insert(None);
        match entry {
            None => {
                *entry = Some(PhaseSpan {
                    started_at: r.started_at,
                    completed_at: r.completed_at,
                    notes: r.notes,
                    extra: r.extra,
                })
            }
            Some(span) => {
                span.started_at = span.started_at.take().or(r.started_at);
                span.completed_at = r.completed_at;
                if !r.notes.is_empty() {
                    if !span.notes.is_empty() {
                        span.notes.push('\n');
                    }
                    span.notes.push_str(&r.notes);
                }
                span.extra.extend(r.extra);
            }
        }
    }
    map
}

impl Iteration {
    /// A new iteration in phase `planned`, created `now`.
    pub fn new(number: u32, goal: impl Into<String>, now: &Timestamp) -> Iteration {
        Iteration {
            number,
            goal: goal.into(),
            phase: Phase::Planned,
            created: Some(now.clone()),
            history: vec![PhaseRecord {
                phase: Phase::Planned,
                started_at: Some(now.clone()),
                completed_at: None,
                notes: String::new(),
                extra: Extra::new(),
            }],
            shape: HistoryShape::List,
            human_feedback: Vec::new(),
            extra: Extra::new(),
        }
    }

    /// The folder name of iteration `number`: `001`, `002`, ...
    pub fn dir_name(number: u32) -> String {
        format!("{number:03}")
    }

    /// Moves to phase `to` at `now`: closes the current stay, opens one for `to` carrying
    /// `note`. An illegal transition is refused and nothing changes.
    pub fn advance(&mut self, to: Phase, note: &str, now: &Timestamp) -> Result<()> {
        self.phase.check_transition(to)?;
        if let Some(open) = self
            .history
            .iter_mut()
            .rev()
            .find(|r| r.phase == self.phase && r.completed_at.is_none())
        {
            open.completed_at = Some(now.clone());
        }
        self.history.push(PhaseRecord {
            phase: to,
            started_at: Some(now.clone()),
            completed_at: (to == Phase::Completed).then(|| now.clone()),
            notes: note.trim().to_string(),
            extra: Extra::new(),
        });
        self.phase = to;
        Ok(())
    }

    /// When the current phase was entered, if recorded.
    pub fn phase_since(&self) -> Option<&Timestamp> {
        self.history
            .iter()
            .rev()
            .find(|r| r.phase == self.phase)
            .and_then(|r| r.started_at.as_ref())
    }

    /// Feedback not yet addressed.
    pub fn feedback_waiting(&self) -> impl Iterator<Item = &Feedback> {
        self.human_feedback.iter().filter(|f| !f.addressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `phases:` shape of the reference, with fields this build does not know.
    const MAP_SHAPE: &str = "\
number: 2
goal: Does a learnable beta beat a fixed one?
phase: experiment
created: 2026-11-02
phases:
  survey:
    started_at: 2026-11-02T09:00:00Z
    completed_at: 2026-11-03T17:30:00Z
    notes: Three papers on learnable time constants
    papers_read: 3
  implement:
    started_at: 2026-11-03T17:30:00Z
    completed_at: 2026-11-05 12:00
    notes: beta_learnable in configs/model/snn_ffnn.yaml
  experiment:
    started_at: 2026-11-05 12:00
owner: agent-7
budget:
  gpu_hours: 12
";

    /// The `phase_history:` shape of the reference.
    const LIST_SHAPE: &str = "\
iteration: '003'
goal: Rate vs latency coding at equal spike budgets
current_phase: analyze
phase_history:
- phase: survey
  started_at: 2026-11-10T08:00:00Z
  completed_at: 2026-11-10T12:00:00Z
  notes: TTFS papers
- phase: implement
  started_at: 2026-11-10T12:00:00Z
  completed_at: 2026-11-11T09:00:00Z
- phase: experiment
  started_at: 2026-11-11T09:00:00Z
  completed_at: 2026-11-12T09:00:00Z
  cluster: lengau
- phase: analysis
  started_at: 2026-11-12T09:00:00Z
human_feedback:
- at: 2026-11-12T10:00:00Z
  text: Report spike counts too
reviewer: sam
";

    fn round_trip(text: &str) -> (Iteration, serde_yaml_ng::Value, serde_yaml_ng::Value) {
        let it: Iteration = serde_yaml_ng::from_str(text).unwrap();
        let written = serde_yaml_ng::to_string(&it).unwrap();
        let again: Iteration = serde_yaml_ng::from_str(&written).unwrap();
        assert_eq!(again, it, "{written}");
        (
            it,
            serde_yaml_ng::from_str(text).unwrap(),
            serde_yaml_ng::from_str(&written).unwrap(),
        )
    }

    #[test]
    fn the_phases_map_shape_round_trips_with_unknown_fields() {
        let (it, before, after) = round_trip(MAP_SHAPE);
        assert_eq!(it.shape, HistoryShape::Map);
        assert_eq!((it.number, it.phase), (2, Phase::Experiment));
        assert_eq!(it.history.len(), 3);
        assert_eq!(it.history[0].extra["papers_read"], 3);
        assert_eq!(it.phase_since().unwrap().as_str(), "2026-11-05 12:00");
        // everything read is written back: same keys, same values
        assert_eq!(after, before);
    }

    #[test]
    fn the_phase_history_shape_round_trips_with_unknown_fields() {
        let (it, before, after) = round_trip(LIST_SHAPE);
        assert_eq!(it.shape, HistoryShape::List);
        assert_eq!((it.number, it.phase), (3, Phase::Analyze));
        assert_eq!(it.history[2].extra["cluster"], "lengau");
        assert_eq!(it.feedback_waiting().count(), 1);
        assert_eq!(after["reviewer"], "sam");
        assert_eq!(after["phase_history"][2]["cluster"], "lengau");
        assert_eq!(after["human_feedback"], before["human_feedback"]);
        // aliases are written under their canonical names, values unchanged
        assert_eq!(after["number"], 3);
        assert_eq!(after["phase"], "analyze");
        assert_eq!(after["phase_history"][3]["phase"], "analyze");
        assert_eq!(after["phase_history"][0], before["phase_history"][0]);
    }

    #[test]
    fn advancing_records_times_and_refuses_illegal_moves() {
        let t0 = Timestamp::parse("2026-11-30T08:00:00Z").unwrap();
        let t1 = Timestamp::parse("2026-11-30T09:00:00Z").unwrap();
        let mut it = Iteration::new(1, "goal", &t0);
        let before = it.clone();
        let e = it
            .advance(Phase::Experiment, "", &t1)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("from planned to experiment") && e.contains("survey"),
            "{e}"
        );
        assert_eq!(it, before, "a refused move changes nothing");
        it.advance(Phase::Survey, "reading", &t1).unwrap();
        assert_eq!(it.history[0].completed_at.as_ref(), Some(&t1));
        assert_eq!(it.history[1].started_at.as_ref(), Some(&t1));
        assert_eq!(it.history[1].notes, "reading");
        assert_eq!(it.phase, Phase::Survey);
    }

    #[test]
    fn a_loop_in_the_map_shape_folds_into_one_entry() {
        let mut it: Iteration = serde_yaml_ng::from_str(MAP_SHAPE).unwrap();
        let t = |s| Timestamp::parse(s).unwrap();
        it.advance(Phase::Analyze, "first look", &t("2026-11-06"))
            .unwrap();
        it.advance(Phase::Experiment, "two more seeds", &t("2026-11-07"))
            .unwrap();
        let v: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&serde_yaml_ng::to_string(&it).unwrap()).unwrap();
        assert_eq!(v["phases"]["experiment"]["started_at"], "2026-11-05 12:00");
        assert_eq!(v["phases"]["experiment"]["notes"], "two more seeds");
        assert!(v["phases"]["experiment"]["completed_at"].is_null());
        assert_eq!(v["phases"]["analyze"]["completed_at"], "2026-11-07");
    }

    #[test]
    fn both_shapes_at_once_is_an_error() {
        let text = "number: 1\nphases: {}\nphase_history: []\n";
        let e = serde_yaml_ng::from_str::<Iteration>(text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("keep one"), "{e}");
    }
}
