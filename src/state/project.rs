//! `projects/registry.yaml` (every project, one line each) and `projects/<slug>/project.yaml`
//! (what the project is, where it stands, its best result so far).

use serde::{Deserialize, Serialize};

use super::file::{Extra, Timestamp};
use crate::error::{Error, Result};

/// Whether a project is being worked on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectStatus {
    /// Being worked on: `state resume` reports it.
    #[default]
    #[serde(alias = "in_progress")]
    Active,
    /// Waiting (for a human, compute, a dependency).
    #[serde(alias = "on_hold")]
    Paused,
    /// Its question is answered.
    #[serde(alias = "done")]
    Completed,
    /// Dropped; its results stay for the record.
    Abandoned,
}

/// One line of the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryEntry {
    /// Folder name under `projects/`.
    pub slug: String,
    /// Human-readable name.
    #[serde(default)]
    pub name: String,
    /// Mirrors `project.yaml`'s status.
    #[serde(default)]
    pub status: ProjectStatus,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `projects/registry.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    /// Every project, in the order added.
    #[serde(default)]
    pub projects: Vec<RegistryEntry>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The best valid result of a project, computed from its iterations' run directories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestResult {
    /// Metric compared (e.g. `best_val_acc`).
    pub metric: String,
    /// Mean of the metric over the seeds.
    pub mean: f64,
    /// Sample standard deviation over the seeds (none for one seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// Number of completed seeds.
    pub n_seeds: u64,
    /// Experiment config id.
    pub experiment: String,
    /// Variant (run-directory name of its overrides).
    pub variant: String,
    /// Iteration the result belongs to.
    pub iteration: u32,
    /// The run directories it was computed from.
    #[serde(default)]
    pub runs: Vec<String>,
    /// When it was computed.
    pub computed_at: Timestamp,
}

/// `projects/<slug>/project.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    /// Human-readable name.
    pub name: String,
    /// Folder name under `projects/`.
    pub slug: String,
    /// Whether it is being worked on.
    #[serde(default)]
    pub status: ProjectStatus,
    /// When it was started.
    #[serde(default, alias = "created_at", skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    /// The research question, in a paragraph.
    #[serde(default)]
    pub description: String,
    /// A human's standing direction for the work (shown by every resume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human_direction: Option<String>,
    /// Number of the iteration being worked on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_iteration: Option<u32>,
    /// Metric the project is judged by.
    #[serde(default = "default_metric")]
    pub metric: String,
    /// Best valid result so far (written by `state refresh`, never by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_result: Option<BestResult>,
    /// When `state resume` last reported the project ("runs finished since" counts from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_resumed_at: Option<Timestamp>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

fn default_metric() -> String {
    "best_val_acc".into()
}

impl Project {
    /// A new active project.
    pub fn new(slug: &str, name: &str, description: &str, now: &Timestamp) -> Project {
        Project {
            name: name.to_string(),
            slug: slug.to_string(),
            status: ProjectStatus::Active,
            created: Some(now.clone()),
            description: description.to_string(),
            human_direction: None,
            current_iteration: None,
            metric: default_metric(),
            best_result: None,
            last_resumed_at: None,
            extra: Extra::new(),
        }
    }
}

/// Checks that `slug` can name a folder and a leaderboard label: lowercase letters, digits and
/// `-`, starting with a letter.
pub fn check_slug(slug: &str) -> Result<()> {
    let ok = slug.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "slug",
            format!("`{slug}`: use lowercase letters, digits and `-`, starting with a letter (e.g. snn-baselines)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_files_keep_unknown_fields() {
        let text = "name: SNN baselines\nslug: snn-baselines\nstatus: in_progress\ncreated: 2026-11-01\ndescription: d\nhuman_direction: keep it small\ncurrent_iteration: 2\nbest_result: null\ntags: [snn, mnist]\n";
        let p: Project = serde_yaml_ng::from_str(text).unwrap();
        assert_eq!(p.status, ProjectStatus::Active);
        assert_eq!(p.current_iteration, Some(2));
        let back: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&serde_yaml_ng::to_string(&p).unwrap()).unwrap();
        assert_eq!(back["tags"][1], "mnist");
        assert_eq!(back["human_direction"], "keep it small");
    }

    #[test]
    fn slugs_are_checked() {
        assert!(check_slug("snn-baselines2").is_ok());
        for bad in ["", "SNN", "2snn", "snn baselines", "../x"] {
            let e = check_slug(bad).unwrap_err().to_string();
            assert!(e.contains("lowercase"), "{e}");
        }
    }
}
