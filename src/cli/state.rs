//! `autoresearch state ...`: the research state (projects, iterations, phases) from the
//! command line.

use std::path::{Path, PathBuf};

use autoresearch::cluster::Ledger;
use autoresearch::runs::scan;
use autoresearch::state::{IterationResults, Phase, ProjectStore, RunRow, Timestamp};
use autoresearch::{Error, Result};
use clap::{Args, Subcommand};
use polars::prelude::DataFrame;

/// `autoresearch state [--projects DIR] <command>`.
#[derive(Args)]
pub struct StateArgs {
    /// The projects folder (registry.yaml, <slug>/project.yaml, <slug>/iterations/NNN/).
    #[arg(long, default_value = "projects", global = true)]
    projects: PathBuf,
    #[command(subcommand)]
    command: StateCommand,
}

/// Where runs and jobs are read from.
#[derive(Args)]
struct Sources {
    /// Root of the run directories the results are computed from.
    #[arg(long, default_value = "runs")]
    runs: PathBuf,
}

#[derive(Subcommand)]
enum StateCommand {
    /// Create a project: projects/<slug>/project.yaml and its registry line.
    Init {
        /// Folder name: lowercase letters, digits and `-`.
        slug: String,
        /// Human-readable name (default: the slug).
        #[arg(long, default_value = "")]
        name: String,
        /// The research question.
        #[arg(long, default_value = "")]
        description: String,
        /// A human's standing direction for the work.
        #[arg(long)]
        direction: Option<String>,
    },
    /// Iterations: `iteration new <slug> --goal TEXT` starts the next one.
    #[command(subcommand)]
    Iteration(IterationCommand),
    /// Move the current iteration to another phase (legal moves only), with a note.
    Advance {
        /// Project slug.
        slug: String,
        /// planned, survey, implement, experiment, analyze, conclude or completed.
        phase: String,
        /// Why it moves on / what was done.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Mark an experiment's result (`config` or `config/variant`) invalid; a reason is required.
    Invalidate {
        /// Project slug.
        slug: String,
        /// `config` or `config/variant` as named in experiments.yaml.
        group: String,
        /// What is wrong with the result.
        #[arg(long)]
        reason: String,
        /// Iteration (default: the current one).
        #[arg(long)]
        iteration: Option<u32>,
        #[command(flatten)]
        sources: Sources,
    },
    /// Add human feedback to the current iteration, or mark the waiting feedback addressed.
    Feedback {
        /// Project slug.
        slug: String,
        /// The feedback.
        text: Option<String>,
        /// Mark every waiting feedback addressed.
        #[arg(long)]
        addressed: bool,
    },
    /// Recompute every iteration's results and the best result from the run directories.
    Refresh {
        /// Project slug.
        slug: String,
        #[command(flatten)]
        sources: Sources,
    },
    /// Where every active project stands and what to do next.
    Resume {
        /// Only this project (reported whatever its status).
        slug: Option<String>,
        #[command(flatten)]
        sources: Sources,
        /// The job ledger pending jobs are read from.
        #[arg(long, default_value = autoresearch::cluster::executor::DEFAULT_LEDGER)]
        ledger: PathBuf,
        /// Do not record this look (the next resume counts finished runs from the last one).
        #[arg(long)]
        peek: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// A project's history: phases with times and notes, results, invalidations, decisions.
    Log {
        /// Project slug.
        slug: String,
    },
}

#[derive(Subcommand)]
enum IterationCommand {
    /// Start the next iteration (the current one must be completed).
    New {
        /// Project slug.
        slug: String,
        /// What the iteration sets out to show.
        #[arg(long)]
        goal: String,
    },
}

/// Runs one `state` command.
pub fn run(args: StateArgs) -> Result<()> {
    let store = ProjectStore::new(&args.projects);
    let now = Timestamp::now();
    match args.command {
        StateCommand::Init {
            slug,
            name,
            description,
            direction,
        } => {
            let mut project = store.init(&slug, &name, &description, &now)?;
            if direction.is_some() {
                project.human_direction = direction;
                store.save_project(&project)?;
            }
            println!(
                "created {}",
                store.project_dir(&slug).join("project.yaml").display()
            );
        }
        StateCommand::Iteration(IterationCommand::New { slug, goal }) => {
            let it = store.new_iteration(&slug, &goal, &now)?;
            println!(
                "started iteration {:03} of {slug}: {}",
                it.number,
                store.iteration_dir(&slug, it.number).display()
            );
        }
        StateCommand::Advance { slug, phase, note } => {
            let to: Phase = phase.parse()?;
            let it = store.advance(&slug, to, &note, &now)?;
            println!(
                "{slug} iteration {:03} is now in phase {}",
                it.number, it.phase
            );
        }
        StateCommand::Invalidate {
            slug,
            group,
            reason,
            iteration,
            sources,
        } => {
            store.invalidate(&slug, iteration, &group, &reason, &now)?;
            println!("marked {group} invalid: {reason}");
            if sources.runs.is_dir() {
                refresh(&store, &slug, &sources.runs, &now)?;
            }
        }
        StateCommand::Feedback {
            slug,
            text,
            addressed,
        } => match (text, addressed) {
            (Some(text), false) => {
                store.add_feedback(&slug, &text, &now)?;
                println!("feedback added to {slug}");
            }
            (None, true) => {
                let n = store.address_feedback(&slug)?;
                println!("{n} feedback note(s) marked addressed");
            }
            _ => {
                return Err(Error::invalid(
                    "feedback",
                    "give either the feedback text or --addressed",
                ))
            }
        },
        StateCommand::Refresh { slug, sources } => refresh(&store, &slug, &sources.runs, &now)?,
        StateCommand::Resume {
            slug,
            sources,
            ledger,
            peek,
            json,
        } => {
            let runs = runs_frame(&sources.runs)?;
            let jobs = if ledger.exists() {
                Ledger::open(&ledger)?.jobs().to_vec()
            } else {
                Vec::new()
            };
            let resume = store.resume(slug.as_deref(), &runs, &jobs)?;
            if json {
                let text = serde_json::to_string_pretty(&resume)
                    .map_err(|e| Error::invalid("resume", e.to_string()))?;
                println!("{text}");
            } else {
                print!("{resume}");
            }
            if !peek {
                for p in &resume.projects {
                    store.mark_resumed(&p.slug, &now)?;
                }
            }
        }
        StateCommand::Log { slug } => print!("{}", store.log(&slug)?),
    }
    Ok(())
}

/// The `runs` frame of `root` (empty when the root does not exist), naming skipped
/// directories on stderr.
fn runs_frame(root: &Path) -> Result<DataFrame> {
    if !root.is_dir() {
        eprintln!(
            "note: no runs root {}; runs are not counted",
            root.display()
        );
        return Ok(DataFrame::empty());
    }
    let found = scan(root)?;
    for p in &found.problems {
        eprintln!("skipped {p}");
    }
    Ok(found.runs)
}

/// `state refresh`: recompute and print every result.
fn refresh(store: &ProjectStore, slug: &str, root: &Path, now: &Timestamp) -> Result<()> {
    let runs = RunRow::from_frame(&runs_frame(root)?, &store.project(slug)?.metric)?;
    let done = store.refresh(slug, &runs, &root.display().to_string(), now)?;
    for IterationResults {
        iteration: number,
        config,
        variants: results,
    } in &done.results
    {
        if results.is_empty() {
            let mut found: Vec<&str> = runs
                .iter()
                .filter(|r| r.experiment == *config)
                .map(|r| r.variant.as_str())
                .collect();
            found.sort_unstable();
            found.dedup();
            println!(
                "iteration {number:03} {config}: no completed run matches (variants of {config} under {}: {})",
                root.display(),
                if found.is_empty() { "none".to_string() } else { found.join(", ") }
            );
        }
        for r in results {
            let invalid = r
                .invalid
                .as_deref()
                .map_or(String::new(), |w| format!(" (invalid: {w})"));
            println!("iteration {number:03} {config}/{}: {r}{invalid}", r.variant);
        }
    }
    match &done.best {
        Some(b) => println!(
            "best: {}/{} (iteration {:03}) {:.2}%",
            b.experiment,
            b.variant,
            b.iteration,
            100.0 * b.mean
        ),
        None => println!("best: none yet"),
    }
    Ok(())
}
