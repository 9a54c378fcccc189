//! The phase machine of an iteration: planned -> survey -> implement -> experiment -> analyze ->
//! conclude -> completed, with the two loops research needs (back to implement from experiment
//! when a run shows a bug, back to experiment from analyze when more runs are needed).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where an iteration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Created, goal set, nothing started.
    Planned,
    /// Reading what is known (literature.yaml).
    #[serde(alias = "literature", alias = "literature_survey")]
    Survey,
    /// Writing the model, configs and experiments.yaml.
    #[serde(alias = "implementation")]
    Implement,
    /// Runs submitted and running.
    #[serde(alias = "experiments", alias = "experimenting")]
    Experiment,
    /// Reading the results: statistics, figures, reports.
    #[serde(alias = "analysis", alias = "analyse")]
    Analyze,
    /// Writing conclusions.md: what was learned, what next.
    #[serde(alias = "conclusion", alias = "conclusions")]
    Conclude,
    /// Done; the next iteration builds on it.
    #[serde(alias = "complete", alias = "done")]
    Completed,
}

impl Phase {
    /// Every phase in lifecycle order.
    pub const ALL: [Phase; 7] = [
        Phase::Planned,
        Phase::Survey,
        Phase::Implement,
        Phase::Experiment,
        Phase::Analyze,
        Phase::Conclude,
        Phase::Completed,
    ];

    /// The name written in YAML and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Planned => "planned",
            Phase::Survey => "survey",
            Phase::Implement => "implement",
            Phase::Experiment => "experiment",
            Phase::Analyze => "analyze",
            Phase::Conclude => "conclude",
            Phase::Completed => "completed",
        }
    }

    /// The phase after this one in lifecycle order (`None` for completed).
    pub fn next(self) -> Option<Phase> {
        let i = Phase::ALL.iter().position(|p| *p == self)?;
        Phase::ALL.get(i + 1).copied()
    }

    /// The phases this one may move to: the next, plus experiment -> implement (a run showed a
    /// bug) and analyze -> experiment (more runs needed).
    pub fn legal_next(self) -> Vec<Phase> {
        let mut legal: Vec<Phase> = self.next().into_iter().collect();
        match self {
            Phase::Experiment => legal.push(Phase::Implement),
            Phase::Analyze => legal.push(Phase::Experiment),
            _ => {}
        }
        legal
    }

    /// `Ok` when `self -> to` is legal, else an error naming the current phase and the legal
    /// next ones.
    pub fn check_transition(self, to: Phase) -> Result<()> {
        let legal = self.legal_next();
        if legal.contains(&to) {
            return Ok(());
        }
        let names: Vec<&str> = legal.iter().map(|p| p.as_str()).collect();
        Err(Error::invalid(
            "phase",
            format!(
                "cannot go from {self} to {to}; from {self} the legal next phases are: {}",
                if names.is_empty() {
                    "none (the iteration is completed; start a new one)".to_string()
                } else {
                    names.join(", ")
                }
            ),
        ))
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Phase {
    type Err = Error;

    fn from_str(text: &str) -> Result<Phase> {
        serde_yaml_ng::from_str::<Phase>(text.trim()).map_err(|_| {
            let names: Vec<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
            Error::invalid(
                "phase",
                format!("unknown phase `{text}` (valid: {})", names.join(", ")),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_illegal_transition_is_refused_with_the_legal_ones() {
        let legal = [
            ("planned", "survey"),
            ("survey", "implement"),
            ("implement", "experiment"),
            ("experiment", "analyze"),
            ("experiment", "implement"),
            ("analyze", "conclude"),
            ("analyze", "experiment"),
            ("conclude", "completed"),
        ];
        let mut refused = 0;
        for from in Phase::ALL {
            for to in Phase::ALL {
                let ok = legal.contains(&(from.as_str(), to.as_str()));
                match from.check_transition(to) {
                    Ok(()) => assert!(ok, "{from} -> {to} accepted"),
                    Err(e) => {
                        assert!(!ok, "{from} -> {to} refused: {e}");
                        refused += 1;
                        let text = e.to_string();
                        assert!(text.contains(&format!("from {from} to {to}")), "{text}");
                        for next in from.legal_next() {
                            assert!(text.contains(next.as_str()), "{text}");
                        }
                    }
                }
            }
        }
        assert_eq!(refused, 49 - legal.len());
        let done = Phase::Completed
            .check_transition(Phase::Planned)
            .unwrap_err();
        assert!(done.to_string().contains("start a new one"), "{done}");
    }

    #[test]
    fn names_and_aliases_parse() {
        assert_eq!("analysis".parse::<Phase>().unwrap(), Phase::Analyze);
        assert_eq!("experiment".parse::<Phase>().unwrap(), Phase::Experiment);
        let e = "testing".parse::<Phase>().unwrap_err().to_string();
        assert!(e.contains("testing") && e.contains("survey"), "{e}");
    }
}
