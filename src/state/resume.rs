//! "Where did we stop, and what next?": for every active project, the iteration, phase and
//! goal, pending jobs (from the job ledger), runs finished since the last look, human direction
//! and feedback waiting, and the next action with its reason. Also the project's log.

use std::fmt::{self, Write as _};

use polars::prelude::DataFrame;
use serde::Serialize;

use super::file::Timestamp;
use super::phase::Phase;
use super::plan::PlannedExperiment;
use super::project::{BestResult, Project, ProjectStatus};
use super::results::RunRow;
use super::{Iteration, ProjectStore};
use crate::cluster::LedgerJob;
use crate::error::Result;

/// A job of the ledger, queued or running, that belongs to the current iteration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingJob {
    /// Scheduler id.
    pub id: String,
    /// Cluster profile (`local` for the local executor).
    pub cluster: String,
    /// Last state seen.
    pub state: String,
    /// Its sweep points.
    pub sweep_points: Vec<String>,
}

/// A run of the current iteration that finished since the last look.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinishedRun {
    /// Run directory.
    pub path: String,
    /// `completed`, `failed` or `killed`.
    pub status: String,
    /// The project's metric, if recorded.
    pub value: Option<f64>,
    /// When it finished.
    pub finished_at: String,
}

/// What to do next and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NextAction {
    /// The action, imperative.
    pub action: String,
    /// Why, from the state.
    pub reason: String,
    /// A command that does (or starts) it.
    pub command: Option<String>,
}

/// Where one active project stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectResume {
    /// Project slug.
    pub slug: String,
    /// Project name.
    pub name: String,
    /// Current iteration (none before the first).
    pub iteration: Option<u32>,
    /// Its phase.
    pub phase: Option<Phase>,
    /// Since when.
    pub phase_since: Option<String>,
    /// Its goal.
    pub goal: String,
    /// Jobs of this iteration still queued or running.
    pub pending_jobs: Vec<PendingJob>,
    /// Runs of this iteration finished since the last look (all, before the first look).
    pub finished_runs: Vec<FinishedRun>,
    /// The last look.
    pub since: Option<String>,
    /// A human's standing direction.
    pub human_direction: Option<String>,
    /// Feedback not yet addressed.
    pub feedback_waiting: Vec<String>,
    /// Best valid result so far.
    pub best_result: Option<BestResult>,
    /// What next.
    pub next: NextAction,
}

/// Every active project's standing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resume {
    /// Active projects, in registry order.
    pub projects: Vec<ProjectResume>,
}

/// What the next-action rules look at for the current iteration.
struct Situation<'a> {
    slug: &'a str,
    iteration: &'a Iteration,
    plans: &'a [PlannedExperiment],
    papers: usize,
    has_conclusions: bool,
    runs: Vec<&'a RunRow>,
    pending: usize,
}

impl ProjectStore {
    /// Where every active project (or only `slug`) stands, from its files, the `runs` frame
    /// of the runs root ([`crate::runs::scan`]; each project reads its own metric from it) and
    /// the ledger's `jobs`. Reads only; see [`ProjectStore::mark_resumed`].
    pub fn resume(
        &self,
        slug: Option<&str>,
        runs: &DataFrame,
        jobs: &[LedgerJob],
    ) -> Result<Resume> {
        let slugs: Vec<String> = match slug {
            Some(s) => vec![s.to_string()],
            None => self
                .registry()?
                .projects
                .into_iter()
                .map(|e| e.slug)
                .collect(),
        };
        let mut projects = Vec::new();
        for name in slugs {
            let project = self.project(&name)?;
            // a project asked for by name is reported whatever its status
            if slug.is_some() || project.status == ProjectStatus::Active {
                let rows = RunRow::from_frame(runs, &project.metric)?;
                projects.push(self.resume_project(&project, &rows, jobs)?);
            }
        }
        Ok(Resume { projects })
    }

    /// Records `now` as the last look at `slug`: the next resume counts finished runs from here.
    pub fn mark_resumed(&self, slug: &str, now: &Timestamp) -> Result<()> {
        let mut project = self.project(slug)?;
        project.last_resumed_at = Some(now.clone());
        self.save_project(&project)
    }

    fn resume_project(
        &self,
        project: &Project,
        runs: &[RunRow],
        jobs: &[LedgerJob],
    ) -> Result<ProjectResume> {
        let mut out = ProjectResume {
            slug: project.slug.clone(),
            name: project.name.clone(),
            iteration: None,
            phase: None,
            phase_since: None,
            goal: String::new(),
            pending_jobs: Vec::new(),
            finished_runs: Vec::new(),
            since: project.last_resumed_at.as_ref().map(|t| t.to_string()),
            human_direction: project.human_direction.clone(),
            feedback_waiting: Vec::new(),
            best_result: project.best_result.clone(),
            next: NextAction {
                action: "start the first iteration".into(),
                reason: "the project has no iteration yet".into(),
                command: Some(format!(
                    "autoresearch state iteration new {} --goal \"...\"",
                    project.slug
                )),
            },
        };
        if project.current_iteration.is_none() {
            return Ok(out);
        }
        let iteration = self.current(project)?;
        let plans = self
            .experiments(&project.slug, iteration.number)?
            .experiments;
        let belongs = |r: &RunRow| {
            plans
                .iter()
                .any(|p| p.matches(&r.experiment, &r.variant, r.seed))
        };
        let mine: Vec<&RunRow> = runs.iter().filter(|r| belongs(r)).collect();
        out.pending_jobs = jobs
            .iter()
            .filter(|j| !j.state().is_final())
            .filter(|j| {
                j.run_dirs
                    .iter()
                    .any(|d| plans.iter().any(|p| p.matches_run_dir(d)))
            })
            .map(|j| PendingJob {
                id: j.id.clone(),
                cluster: j.cluster.clone(),
                state: j.state().as_str().to_string(),
                sweep_points: j.sweep_points.clone(),
            })
            .collect();
        let since = project.last_resumed_at.as_ref().map(|t| t.at());
        out.finished_runs = mine
            .iter()
            .filter(|r| r.status != "running")
            .filter_map(|r| {
                let at = r.finished_at.as_deref()?;
                let finished = Timestamp::parse(at).ok()?;
                since
                    .is_none_or(|s| finished.at() > s)
                    .then(|| FinishedRun {
                        path: r.path.clone(),
                        status: r.status.clone(),
                        value: r.value,
                        finished_at: at.to_string(),
                    })
            })
            .collect();
        out.feedback_waiting = iteration
            .feedback_waiting()
            .map(|f| f.text.clone())
            .collect();
        let situation = Situation {
            slug: &project.slug,
            iteration: &iteration,
            plans: &plans,
            papers: self
                .literature(&project.slug, iteration.number)?
                .papers
                .len(),
            has_conclusions: self.conclusions(&project.slug, iteration.number)?.is_some(),
            runs: mine,
            pending: out.pending_jobs.len(),
        };
        out.next = next_action(&situation, &out.feedback_waiting);
        out.iteration = Some(iteration.number);
        out.phase = Some(iteration.phase);
        out.phase_since = iteration.phase_since().map(|t| t.to_string());
        out.goal = iteration.goal.clone();
        Ok(out)
    }

    /// The project's history as text: iterations, phase stays with times and notes, results,
    /// invalidations, feedback and decisions.
    pub fn log(&self, slug: &str) -> Result<String> {
        let project = self.project(slug)?;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} ({}), {:?}",
            project.name, project.slug, project.status
        );
        if let Some(d) = &project.human_direction {
            let _ = writeln!(out, "human direction: {d}");
        }
        for number in self.iteration_numbers(slug)? {
            let it = self.iteration(slug, number)?;
            let _ = writeln!(
                out,
                "\niteration {:03}: {} [{}]",
                it.number, it.goal, it.phase
            );
            for r in &it.history {
                let when = r.started_at.as_ref().map_or("?".into(), |t| t.to_string());
                let _ = write!(out, "  {when:<25} {:<10}", r.phase.as_str());
                if !r.notes.is_empty() {
                    let _ = write!(out, " {}", r.notes.replace('\n', " / "));
                }
                out.push('\n');
            }
            for f in &it.human_feedback {
                let at = f.at.as_ref().map_or("?".into(), |t| t.to_string());
                let state = if f.addressed { "addressed" } else { "waiting" };
                let _ = writeln!(out, "  {at:<25} feedback ({state}): {}", f.text);
            }
            for plan in self.experiments(slug, number)?.experiments {
                for r in &plan.results {
                    let _ = write!(out, "  result {}/{}: {r}", plan.config, r.variant);
                    if let Some(why) = &r.invalid {
                        let _ = write!(out, " INVALID: {why}");
                    }
                    out.push('\n');
                }
                for i in &plan.invalid {
                    let what = i
                        .variant
                        .as_ref()
                        .map_or(plan.config.clone(), |v| format!("{}/{v}", plan.config));
                    let _ = writeln!(
                        out,
                        "  {:<25} invalidated {what}: {}",
                        i.at.to_string(),
                        i.reason
                    );
                }
            }
            if let Some(c) = self.conclusions(slug, number)? {
                let decision = c
                    .front
                    .decision
                    .map_or("none".into(), |d| format!("{d:?}").to_lowercase());
                let _ = writeln!(out, "  conclusions.md, decision: {decision}");
            }
        }
        if let Some(b) = &project.best_result {
            let _ = writeln!(
                out,
                "\nbest: {}/{} (iteration {}) {} {} over {} seed(s), computed {}",
                b.experiment,
                b.variant,
                b.iteration,
                b.metric,
                crate::report::value_text(b.mean, b.metric.ends_with("_acc")),
                b.n_seeds,
                b.computed_at
            );
        }
        Ok(out)
    }
}

/// The reference's mapping from phase to next action; waiting human feedback comes first.
fn next_action(s: &Situation, feedback: &[String]) -> NextAction {
    let slug = s.slug;
    let advance = |to: Phase| {
        Some(format!(
            "autoresearch state advance {slug} {to} --note \"...\""
        ))
    };
    if let Some(first) = feedback.first() {
        return NextAction {
            action: "address the human feedback".into(),
            reason: format!(
                "{} feedback note(s) waiting, first: \"{first}\"",
                feedback.len()
            ),
            command: Some(format!("autoresearch state feedback {slug} --addressed")),
        };
    }
    let n = s.iteration.number;
    let (action, reason, command) = match s.iteration.phase {
        Phase::Planned => (
            "start the survey".to_string(),
            format!("iteration {n} is planned and nothing is surveyed yet"),
            advance(Phase::Survey),
        ),
        Phase::Survey => (
            "survey the literature, then advance to implement".into(),
            format!("literature.yaml lists {} paper(s)", s.papers),
            advance(Phase::Implement),
        ),
        Phase::Implement => (
            "implement the models and configs, name the experiments, then advance to experiment"
                .into(),
            if s.plans.is_empty() {
                "experiments.yaml names no experiment yet".into()
            } else {
                format!("experiments.yaml names {} experiment(s)", s.plans.len())
            },
            advance(Phase::Experiment),
        ),
        Phase::Experiment => experiment_action(s),
        Phase::Analyze => (
            "analyse the results (statistics, figures, report), then advance to conclude".into(),
            format!(
                "{} completed run(s) of {} experiment(s) to compare",
                s.runs.iter().filter(|r| r.status == "completed").count(),
                s.plans.len()
            ),
            Some(format!(
                "autoresearch report {} --out reports/{slug}-{n:03}",
                s.plans
                    .iter()
                    .map(|p| p.config.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
        ),
        Phase::Conclude => {
            if s.has_conclusions {
                (
                    "complete the iteration".into(),
                    "conclusions.md is written".into(),
                    advance(Phase::Completed),
                )
            } else {
                (
                    "write conclusions.md (front matter: iteration, decision), then complete the iteration".into(),
                    "conclusions.md does not exist yet".into(),
                    None,
                )
            }
        }
        Phase::Completed => (
            "start the next iteration".into(),
            format!("iteration {n} is completed"),
            Some(format!(
                "autoresearch state iteration new {slug} --goal \"...\""
            )),
        ),
    };
    NextAction {
        action,
        reason,
        command,
    }
}

/// The experiment phase: check jobs, submit missing runs, look at failures, or move on.
fn experiment_action(s: &Situation) -> (String, String, Option<String>) {
    let slug = s.slug;
    if s.pending > 0 {
        return (
            "check the jobs".into(),
            format!("{} job(s) of this iteration queued or running", s.pending),
            Some("autoresearch cluster monitor <profile> --every 10m".into()),
        );
    }
    if s.plans.is_empty() {
        return (
            "name the experiments in experiments.yaml, then submit them".into(),
            "experiments.yaml names no experiment".into(),
            None,
        );
    }
    let failed: Vec<&str> = s
        .runs
        .iter()
        .filter(|r| r.status == "failed" || r.status == "killed")
        .map(|r| r.path.as_str())
        .collect();
    if !failed.is_empty() {
        return (
            "look at the failed runs (log.txt), fix and resubmit them or note why not".into(),
            format!("{} run(s) failed: {}", failed.len(), failed.join(", ")),
            None,
        );
    }
    let missing: Vec<&PlannedExperiment> = s
        .plans
        .iter()
        .filter(|p| {
            !s.runs
                .iter()
                .any(|r| r.status == "completed" && p.matches(&r.experiment, &r.variant, r.seed))
        })
        .collect();
    if let Some(first) = missing.first() {
        let seeds = if first.seeds.is_empty() {
            String::new()
        } else {
            format!(
                " seed={}",
                first
                    .seeds
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        return (
            "submit the runs".into(),
            format!(
                "no completed run and no pending job for: {}",
                missing
                    .iter()
                    .map(|p| p.config.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(format!(
                "autoresearch cluster submit <profile> experiment={}{seeds}",
                first.config
            )),
        );
    }
    (
        "advance to analyze".into(),
        format!(
            "every experiment has completed runs ({}) and no job is pending",
            s.runs.iter().filter(|r| r.status == "completed").count()
        ),
        Some(format!(
            "autoresearch state advance {slug} analyze --note \"...\""
        )),
    )
}

impl fmt::Display for Resume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.projects.is_empty() {
            return writeln!(
                f,
                "no active project (start one with `autoresearch state init <slug>`)"
            );
        }
        for p in &self.projects {
            writeln!(f, "{} ({})", p.name, p.slug)?;
            match (p.iteration, p.phase) {
                (Some(n), Some(phase)) => {
                    let since = p
                        .phase_since
                        .as_deref()
                        .map_or(String::new(), |s| format!(" since {s}"));
                    writeln!(f, "  iteration {n:03}, phase {phase}{since}")?;
                    writeln!(f, "  goal: {}", p.goal)?;
                }
                _ => writeln!(f, "  no iteration yet")?,
            }
            if let Some(d) = &p.human_direction {
                writeln!(f, "  human direction: {d}")?;
            }
            for fb in &p.feedback_waiting {
                writeln!(f, "  feedback waiting: {fb}")?;
            }
            writeln!(f, "  pending jobs: {}", p.pending_jobs.len())?;
            for j in &p.pending_jobs {
                writeln!(
                    f,
                    "    {} on {} ({}): {}",
                    j.id,
                    j.cluster,
                    j.state,
                    j.sweep_points.join("; ")
                )?;
            }
            let since = p
                .since
                .as_deref()
                .map_or("(first look)".to_string(), |s| format!("since {s}"));
            writeln!(f, "  runs finished {since}: {}", p.finished_runs.len())?;
            for r in &p.finished_runs {
                let value = r.value.map_or("-".into(), |v| format!("{:.2}%", 100.0 * v));
                writeln!(f, "    {} {} {value} ({})", r.path, r.status, r.finished_at)?;
            }
            if let Some(b) = &p.best_result {
                writeln!(
                    f,
                    "  best: {}/{} (iteration {}) {:.2}% over {} seed(s)",
                    b.experiment,
                    b.variant,
                    b.iteration,
                    100.0 * b.mean,
                    b.n_seeds
                )?;
            }
            writeln!(f, "  next: {}", p.next.action)?;
            writeln!(f, "    because {}", p.next.reason)?;
            if let Some(c) = &p.next.command {
                writeln!(f, "    $ {c}")?;
            }
        }
        Ok(())
    }
}
