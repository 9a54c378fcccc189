//! Research state in YAML: projects, their iterations and phases, the experiments each
//! iteration runs (results computed from run directories), conclusions, and the "what next"
//! of [`ProjectStore::resume`], so that any later session, human or agent, picks up where the
//! last one stopped.
//!
//! ```text
//! projects/registry.yaml
//! projects/<slug>/project.yaml
//! projects/<slug>/iterations/NNN/{iteration,experiments,literature}.yaml, conclusions.md
//! ```

mod conclusions;
mod file;
mod iteration;
mod phase;
mod plan;
mod project;
mod results;
mod resume;

use std::path::{Path, PathBuf};

pub use conclusions::{Conclusions, Decision, FrontMatter};
pub use file::{read_yaml, write_yaml, Extra, Timestamp};
pub use iteration::{Feedback, HistoryShape, Iteration, PhaseRecord};
pub use phase::Phase;
pub use plan::{
    ExperimentsFile, Invalidation, LiteratureFile, Paper, PlannedExperiment, VariantResult,
};
pub use project::{check_slug, BestResult, Project, ProjectStatus, Registry, RegistryEntry};
pub use results::{compute, RunRow};
pub use resume::{FinishedRun, NextAction, PendingJob, ProjectResume, Resume};

use crate::error::{Error, Result};
use crate::report::{Annotation, Annotations, EntryStatus};

/// The `projects/` folder: every read and write of the research state goes through it.
#[derive(Debug, Clone)]
pub struct ProjectStore {
    root: PathBuf,
}

/// One planned experiment's results, as [`ProjectStore::refresh`] computed them.
#[derive(Debug, Clone, PartialEq)]
pub struct IterationResults {
    /// The iteration's number.
    pub iteration: u32,
    /// The experiment config the plan names.
    pub config: String,
    /// One result per variant.
    pub variants: Vec<VariantResult>,
}

/// What [`ProjectStore::refresh`] computed.
#[derive(Debug, Clone, PartialEq)]
pub struct Refreshed {
    /// Per iteration and experiment, the results computed.
    pub results: Vec<IterationResults>,
    /// The project's best valid result after the refresh.
    pub best: Option<BestResult>,
}

impl ProjectStore {
    /// The store at `root` (usually `projects/`; it need not exist before `init`).
    pub fn new(root: impl Into<PathBuf>) -> ProjectStore {
        ProjectStore { root: root.into() }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn registry_path(&self) -> PathBuf {
        self.root.join("registry.yaml")
    }

    /// `projects/<slug>/`.
    pub fn project_dir(&self, slug: &str) -> PathBuf {
        self.root.join(slug)
    }

    /// `projects/<slug>/iterations/NNN/`.
    pub fn iteration_dir(&self, slug: &str, number: u32) -> PathBuf {
        self.project_dir(slug)
            .join("iterations")
            .join(Iteration::dir_name(number))
    }

    /// The registry (empty when the file does not exist yet).
    pub fn registry(&self) -> Result<Registry> {
        let path = self.registry_path();
        if !path.exists() {
            return Ok(Registry::default());
        }
        read_yaml(&path, "`projects: [{slug, name, status}]`")
    }

    /// The project `slug`; an unknown slug is an error listing the known ones.
    pub fn project(&self, slug: &str) -> Result<Project> {
        check_slug(slug)?;
        let path = self.project_dir(slug).join("project.yaml");
        if !path.is_file() {
            let known: Vec<String> = self
                .registry()?
                .projects
                .into_iter()
                .map(|p| p.slug)
                .collect();
            return Err(Error::invalid(
                "project",
                format!(
                    "`{slug}` has no {} (known projects: {}; create one with `autoresearch state init {slug}`)",
                    path.display(),
                    if known.is_empty() { "none".into() } else { known.join(", ") }
                ),
            ));
        }
        read_yaml(&path, "a project: name, slug, status, created, description, human_direction, current_iteration, best_result")
    }

    /// Writes `project` (and its registry line) atomically.
    pub fn save_project(&self, project: &Project) -> Result<()> {
        write_yaml(
            &self.project_dir(&project.slug).join("project.yaml"),
            project,
        )?;
        let mut registry = self.registry()?;
        match registry
            .projects
            .iter_mut()
            .find(|e| e.slug == project.slug)
        {
            Some(e) => {
                if e.name == project.name && e.status == project.status {
                    return Ok(());
                }
                e.name = project.name.clone();
                e.status = project.status;
            }
            None => registry.projects.push(RegistryEntry {
                slug: project.slug.clone(),
                name: project.name.clone(),
                status: project.status,
                extra: Extra::new(),
            }),
        }
        write_yaml(&self.registry_path(), &registry)
    }

    /// Iteration `number` of `slug`.
    pub fn iteration(&self, slug: &str, number: u32) -> Result<Iteration> {
        let path = self.iteration_dir(slug, number).join("iteration.yaml");
        if !path.is_file() {
            return Err(Error::invalid(
                "iteration",
                format!(
                    "{slug} has no iteration {number} ({} is missing)",
                    path.display()
                ),
            ));
        }
        read_yaml(
            &path,
            "an iteration: number, goal, phase, and `phases:` or `phase_history:`",
        )
    }

    /// Writes an iteration atomically.
    pub fn save_iteration(&self, slug: &str, iteration: &Iteration) -> Result<()> {
        write_yaml(
            &self
                .iteration_dir(slug, iteration.number)
                .join("iteration.yaml"),
            iteration,
        )
    }

    /// The numbers of `slug`'s iterations, ascending (from the folders `iterations/NNN`).
    pub fn iteration_numbers(&self, slug: &str) -> Result<Vec<u32>> {
        let dir = self.project_dir(slug).join("iterations");
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut numbers: Vec<u32> = std::fs::read_dir(&dir)
            .map_err(Error::io("listing", &dir))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("iteration.yaml").is_file())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// The experiments of an iteration (none when the file does not exist).
    pub fn experiments(&self, slug: &str, number: u32) -> Result<ExperimentsFile> {
        let path = self.iteration_dir(slug, number).join("experiments.yaml");
        if !path.exists() {
            return Ok(ExperimentsFile::default());
        }
        read_yaml(
            &path,
            "`experiments: [{config, variants, seeds, hypothesis, notes, invalid}]`",
        )
    }

    /// Writes an iteration's experiments atomically.
    pub fn save_experiments(&self, slug: &str, number: u32, file: &ExperimentsFile) -> Result<()> {
        write_yaml(
            &self.iteration_dir(slug, number).join("experiments.yaml"),
            file,
        )
    }

    /// Records study `name` (directory `dir`) as part of iteration `number` of `slug` (once);
    /// the iteration must exist.
    pub fn link_study(&self, slug: &str, number: u32, name: &str, dir: &str) -> Result<()> {
        self.iteration(slug, number)?;
        let mut file = self.experiments(slug, number)?;
        if file.studies.iter().any(|s| s.name == name) {
            return Ok(());
        }
        file.studies.push(plan::StudyLink {
            name: name.to_string(),
            dir: dir.to_string(),
            extra: Default::default(),
        });
        self.save_experiments(slug, number, &file)
    }

    /// The literature of an iteration (none when the file does not exist).
    pub fn literature(&self, slug: &str, number: u32) -> Result<LiteratureFile> {
        let path = self.iteration_dir(slug, number).join("literature.yaml");
        if !path.exists() {
            return Ok(LiteratureFile::default());
        }
        read_yaml(&path, "`papers: [{title, year, url, notes}]`")
    }

    /// The conclusions of an iteration, if written.
    pub fn conclusions(&self, slug: &str, number: u32) -> Result<Option<Conclusions>> {
        let path = self.iteration_dir(slug, number).join("conclusions.md");
        if !path.exists() {
            return Ok(None);
        }
        Conclusions::read(&path).map(Some)
    }

    /// Creates project `slug` (its folder, project.yaml, its registry line); refuses an
    /// existing one.
    pub fn init(
        &self,
        slug: &str,
        name: &str,
        description: &str,
        now: &Timestamp,
    ) -> Result<Project> {
        check_slug(slug)?;
        let path = self.project_dir(slug).join("project.yaml");
        if path.exists() {
            return Err(Error::invalid(
                "project",
                format!("`{slug}` exists already ({})", path.display()),
            ));
        }
        let name = if name.is_empty() { slug } else { name };
        let project = Project::new(slug, name, description, now);
        self.save_project(&project)?;
        Ok(project)
    }

    /// The current iteration of `project`, or an error saying how to start one.
    pub fn current(&self, project: &Project) -> Result<Iteration> {
        let number = project.current_iteration.ok_or_else(|| {
            Error::invalid(
                "iteration",
                format!(
                    "{} has no iteration yet; start one with `autoresearch state iteration new {} --goal ...`",
                    project.slug, project.slug
                ),
            )
        })?;
        self.iteration(&project.slug, number)
    }

    /// Starts the next iteration of `slug` with `goal` (phase planned, empty experiments and
    /// literature). Refused while the current one is not completed.
    pub fn new_iteration(&self, slug: &str, goal: &str, now: &Timestamp) -> Result<Iteration> {
        let mut project = self.project(slug)?;
        if project.current_iteration.is_some() {
            let current = self.current(&project)?;
            if current.phase != Phase::Completed {
                return Err(Error::invalid(
                    "iteration",
                    format!(
                        "iteration {} of {slug} is in phase {}; advance it to completed first (`autoresearch state advance {slug} ...`)",
                        current.number, current.phase
                    ),
                ));
            }
        }
        let number = self.iteration_numbers(slug)?.last().map_or(1, |n| n + 1);
        let iteration = Iteration::new(number, goal, now);
        self.save_iteration(slug, &iteration)?;
        let dir = self.iteration_dir(slug, number);
        if !dir.join("experiments.yaml").exists() {
            self.save_experiments(slug, number, &ExperimentsFile::default())?;
        }
        if !dir.join("literature.yaml").exists() {
            write_yaml(&dir.join("literature.yaml"), &LiteratureFile::default())?;
        }
        project.current_iteration = Some(number);
        self.save_project(&project)?;
        Ok(iteration)
    }

    /// Moves the current iteration of `slug` to `to` with `note`. Completing needs a readable
    /// conclusions.md.
    pub fn advance(&self, slug: &str, to: Phase, note: &str, now: &Timestamp) -> Result<Iteration> {
        let project = self.project(slug)?;
        let mut iteration = self.current(&project)?;
        iteration.phase.check_transition(to)?;
        if to == Phase::Completed && self.conclusions(slug, iteration.number)?.is_none() {
            return Err(Error::invalid(
                "phase",
                format!(
                    "iteration {} cannot be completed without {} (front matter `iteration`, `decision: continue|pivot|stop`, then what was learned)",
                    iteration.number,
                    self.iteration_dir(slug, iteration.number).join("conclusions.md").display()
                ),
            ));
        }
        iteration.advance(to, note, now)?;
        self.save_iteration(slug, &iteration)?;
        Ok(iteration)
    }

    /// Marks `config` (or `config/variant`) of iteration `number` (default: the current one)
    /// invalid with `reason` (required); a best result it provided is withdrawn.
    pub fn invalidate(
        &self,
        slug: &str,
        number: Option<u32>,
        group: &str,
        reason: &str,
        now: &Timestamp,
    ) -> Result<()> {
        if reason.trim().is_empty() {
            return Err(Error::invalid(
                "reason",
                "marking a result invalid needs a reason (what is wrong with it)",
            ));
        }
        let mut project = self.project(slug)?;
        let number = match number {
            Some(n) => n,
            None => self.current(&project)?.number,
        };
        let (config, variant) = match group.split_once('/') {
            Some((c, v)) => (c, Some(v)),
            None => (group, None),
        };
        let mut file = self.experiments(slug, number)?;
        let configs: Vec<String> = file.experiments.iter().map(|e| e.config.clone()).collect();
        let plan =
            file.experiments
                .iter_mut()
                .find(|e| e.config == config)
                .ok_or_else(|| {
                    Error::invalid(
                        "experiment",
                        format!(
                        "iteration {number} of {slug} has no experiment `{config}` (it has: {})",
                        if configs.is_empty() { "none".into() } else { configs.join(", ") }
                    ),
                    )
                })?;
        if let Some(v) = variant {
            let mut known = plan
                .variants
                .iter()
                .chain(plan.results.iter().map(|r| &r.variant));
            if !plan.variants.is_empty() && !known.any(|k| k == v) {
                return Err(Error::invalid(
                    "variant",
                    format!(
                        "`{config}` of iteration {number} has no variant `{v}` (it has: {})",
                        plan.variants.join(", ")
                    ),
                ));
            }
        }
        plan.invalid.push(Invalidation {
            variant: variant.map(str::to_string),
            reason: reason.trim().to_string(),
            at: now.clone(),
            extra: Extra::new(),
        });
        for r in &mut plan.results {
            if variant.is_none_or(|v| v == r.variant) {
                r.invalid = Some(reason.trim().to_string());
            }
        }
        self.save_experiments(slug, number, &file)?;
        let withdrawn = project.best_result.as_ref().is_some_and(|b| {
            b.iteration == number
                && b.experiment == config
                && variant.is_none_or(|v| v == b.variant)
        });
        if withdrawn {
            project.best_result = None;
            self.save_project(&project)?;
        }
        Ok(())
    }

    /// Recomputes every iteration's results from `runs` (see [`RunRow::from_frame`]), writes
    /// them into experiments.yaml, and sets the project's best valid result: the best mean in
    /// the metric's direction (the lowest for a lower-is-better metric).
    pub fn refresh(
        &self,
        slug: &str,
        runs: &[RunRow],
        runs_root: &str,
        now: &Timestamp,
    ) -> Result<Refreshed> {
        let mut project = self.project(slug)?;
        let mut all = Vec::new();
        let mut best: Option<BestResult> = None;
        for number in self.iteration_numbers(slug)? {
            let mut file = self.experiments(slug, number)?;
            for plan in &mut file.experiments {
                plan.results = compute(plan, runs, &project.metric)?;
                for r in plan.results.iter().filter(|r| r.invalid.is_none()) {
                    if best
                        .as_ref()
                        .is_none_or(|b| r.mode.improves(r.mean, Some(b.mean), 0.0))
                    {
                        best = Some(BestResult {
                            metric: r.metric.clone(),
                            mean: r.mean,
                            std: r.std,
                            n_seeds: r.n_seeds,
                            experiment: plan.config.clone(),
                            variant: r.variant.clone(),
                            iteration: number,
                            runs: r.runs.clone(),
                            computed_at: now.clone(),
                        });
                    }
                }
                all.push(IterationResults {
                    iteration: number,
                    config: plan.config.clone(),
                    variants: plan.results.clone(),
                });
            }
            if !file.experiments.is_empty() {
                file.results_computed_at = Some(now.clone());
                file.results_from = Some(runs_root.to_string());
                self.save_experiments(slug, number, &file)?;
            }
        }
        project.best_result = best.clone();
        self.save_project(&project)?;
        Ok(Refreshed { results: all, best })
    }

    /// Adds human feedback to the current iteration of `slug`.
    pub fn add_feedback(&self, slug: &str, text: &str, now: &Timestamp) -> Result<()> {
        let project = self.project(slug)?;
        let mut iteration = self.current(&project)?;
        iteration.human_feedback.push(Feedback {
            at: Some(now.clone()),
            text: text.trim().to_string(),
            addressed: false,
            extra: Extra::new(),
        });
        self.save_iteration(slug, &iteration)
    }

    /// Marks every waiting feedback of the current iteration of `slug` addressed; returns how
    /// many.
    pub fn address_feedback(&self, slug: &str) -> Result<usize> {
        let project = self.project(slug)?;
        let mut iteration = self.current(&project)?;
        let mut n = 0;
        for f in iteration.human_feedback.iter_mut().filter(|f| !f.addressed) {
            f.addressed = true;
            n += 1;
        }
        self.save_iteration(slug, &iteration)?;
        Ok(n)
    }

    /// Leaderboard labels from every project's iterations: `config/variant` (or `config`) ->
    /// project, iteration, notes, and `invalid` with its reason where marked.
    pub fn annotations(&self) -> Result<Annotations> {
        let mut out = Annotations::default();
        for entry in self.registry()?.projects {
            let slug = entry.slug;
            for number in self.iteration_numbers(&slug)? {
                for plan in self.experiments(&slug, number)?.experiments {
                    let mut variants: Vec<String> = plan.variants.clone();
                    for r in &plan.results {
                        if !variants.contains(&r.variant) {
                            variants.push(r.variant.clone());
                        }
                    }
                    let keys: Vec<(String, Option<&str>)> = if variants.is_empty() {
                        vec![(plan.config.clone(), plan.experiment_invalid_reason())]
                    } else {
                        variants
                            .iter()
                            .map(|v| (format!("{}/{v}", plan.config), plan.invalid_reason(v)))
                            .collect()
                    };
                    for (key, invalid) in keys {
                        out.entries.insert(
                            key,
                            Annotation {
                                project: Some(slug.clone()),
                                iteration: Some(number.to_string()),
                                notes: Some(invalid.map_or(plan.notes.clone(), str::to_string))
                                    .filter(|n| !n.is_empty()),
                                status: if invalid.is_some() {
                                    EntryStatus::Invalid
                                } else {
                                    EntryStatus::Valid
                                },
                            },
                        );
                    }
                }
            }
        }
        Ok(out)
    }
}
