//! `iterations/NNN/experiments.yaml` (the experiments an iteration runs, named by config id and
//! variant, with results computed from run directories) and `literature.yaml` (what was read).

use serde::{Deserialize, Serialize};

use super::file::{Extra, Timestamp};
use crate::metric::Mode;

/// A result marked invalid, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invalidation {
    /// The variant marked (none: every variant of the experiment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Why the result cannot be trusted (a leak, a bug, a wrong split...).
    pub reason: String,
    /// When it was marked.
    pub at: Timestamp,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One variant's result, computed from its completed run directories (never typed in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantResult {
    /// Variant (run-directory name of the overrides).
    pub variant: String,
    /// Metric summarised.
    pub metric: String,
    /// Whether higher or lower values of the metric are better (written only when lower).
    #[serde(default, skip_serializing_if = "is_max")]
    pub mode: Mode,
    /// Completed seeds.
    pub n_seeds: u64,
    /// Mean over the seeds.
    pub mean: f64,
    /// Sample standard deviation (none for one seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// Seed with the best value (the highest, or the lowest when `mode` is `min`).
    pub best_seed: u64,
    /// Its value.
    pub best_value: f64,
    /// The run directories summarised.
    pub runs: Vec<String>,
    /// Why it is invalid, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
}

impl std::fmt::Display for VariantResult {
    /// `best_val_acc 97.60% ± 0.14% over 2 seed(s)`, or for a lower-is-better metric
    /// `val_position_rmse 0.1200 ± 0.0100 (lower is better) over 3 seed(s)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let percent = self.metric.ends_with("_acc");
        write!(
            f,
            "{} {}{} over {} seed(s)",
            self.metric,
            crate::report::value_pm(self.mean, self.std, percent),
            if self.mode == Mode::Min {
                " (lower is better)"
            } else {
                ""
            },
            self.n_seeds
        )
    }
}

/// Whether `mode` is the default, higher-is-better (then it is not written).
fn is_max(mode: &Mode) -> bool {
    *mode == Mode::Max
}

/// An experiment of an iteration: which runs belong to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedExperiment {
    /// Experiment config id (`configs/experiment/<config>.yaml`; the runs' `experiment`).
    pub config: String,
    /// Variants that belong to this iteration (run-directory names, e.g. `default` or
    /// `lr=0.003`); empty: every variant of the config.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<String>,
    /// Seeds that belong to this iteration; empty: every seed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<u64>,
    /// What the experiment should show.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hypothesis: String,
    /// Shown in the leaderboard's Notes column.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
    /// Results marked invalid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invalid: Vec<Invalidation>,
    /// Computed by `state refresh` from the run directories; rewritten on every refresh.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<VariantResult>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

impl PlannedExperiment {
    /// An experiment of config `config` over `variants` (empty: all).
    pub fn new(config: &str, variants: &[&str]) -> PlannedExperiment {
        PlannedExperiment {
            config: config.to_string(),
            variants: variants.iter().map(|v| v.to_string()).collect(),
            seeds: Vec::new(),
            hypothesis: String::new(),
            notes: String::new(),
            invalid: Vec::new(),
            results: Vec::new(),
            extra: Extra::new(),
        }
    }

    /// Whether a run of `experiment` / `variant` / `seed` belongs here.
    pub fn matches(&self, experiment: &str, variant: &str, seed: Option<u64>) -> bool {
        experiment == self.config
            && (self.variants.is_empty() || self.variants.iter().any(|v| v == variant))
            && (self.seeds.is_empty() || seed.is_some_and(|s| self.seeds.contains(&s)))
    }

    /// Whether a run directory path relative to the runs root (`<experiment>/<variant>/seed_<n>`,
    /// as the job ledger records it) belongs here.
    pub fn matches_run_dir(&self, run_dir: &str) -> bool {
        let parts: Vec<&str> = run_dir.trim_matches('/').split('/').collect();
        let [experiment, variant, seed] = parts[..] else {
            return false;
        };
        let seed = seed.strip_prefix("seed_").and_then(|s| s.parse().ok());
        self.matches(experiment, variant, seed)
    }

    /// Why the whole experiment (every variant) is invalid, if it is.
    pub fn experiment_invalid_reason(&self) -> Option<&str> {
        self.invalid
            .iter()
            .rev()
            .find(|i| i.variant.is_none())
            .map(|i| i.reason.as_str())
    }

    /// Why `variant` is invalid, if it is.
    pub fn invalid_reason(&self, variant: &str) -> Option<&str> {
        self.invalid
            .iter()
            .rev()
            .find(|i| i.variant.as_deref().is_none_or(|v| v == variant))
            .map(|i| i.reason.as_str())
    }
}

/// A hyper-parameter study that belongs to an iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyLink {
    /// The study's name (`configs/hpo/<name>.yaml`).
    pub name: String,
    /// Its directory (`runs/hpo/<name>`), where its journal and trials are.
    pub dir: String,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `experiments.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExperimentsFile {
    /// The iteration's experiments.
    #[serde(default)]
    pub experiments: Vec<PlannedExperiment>,
    /// The hyper-parameter studies it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub studies: Vec<StudyLink>,
    /// When the results were last computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_computed_at: Option<Timestamp>,
    /// The runs root they were computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_from: Option<String>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One paper or source read in the survey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paper {
    /// Title.
    pub title: String,
    /// Publication year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<u32>,
    /// Where to find it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// What it means for this iteration.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
    /// Unknown fields (authors, venue, relevance...), kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `literature.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiteratureFile {
    /// What was read.
    #[serde(default, alias = "references", alias = "entries")]
    pub papers: Vec<Paper>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}
