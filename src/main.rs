//! The `autoresearch` command: a thin layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use autoresearch::config::{ConfigStore, Override, GROUPS};
use autoresearch::{Experiment, TrainOptions};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "autoresearch",
    version,
    about = "Compose, train and track brain-inspired ML experiments"
)]
struct Cli {
    /// The configs directory (default: $AUTORESEARCH_CONFIGS, else ./configs or the nearest ancestor's).
    #[arg(long, global = true)]
    configs: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train an experiment: `autoresearch train experiment=mnist_ffnn_adam seed=0 epochs=2`.
    Train {
        /// Expand sweeps (`seed=0,1,2`, `range(0,5)`, the experiment's `sweep:` block) and run each point.
        #[arg(long, short = 'm')]
        multirun: bool,
        /// Retrain from scratch even if the run completed or has a checkpoint.
        #[arg(long)]
        force: bool,
        /// No progress output (batch jobs).
        #[arg(long, short = 'q')]
        quiet: bool,
        /// Stop after this many epochs, leaving the run resumable (for wall-time-limited jobs).
        #[arg(long)]
        stop_after_epochs: Option<usize>,
        /// `experiment=NAME` followed by `key=value` overrides and `group=option` selections.
        #[arg(required = true)]
        overrides: Vec<String>,
    },
    /// Print the resolved config of an experiment (or of each sweep point with --multirun).
    Config {
        /// Expand sweeps.
        #[arg(long, short = 'm')]
        multirun: bool,
        /// `experiment=NAME` followed by overrides.
        #[arg(required = true)]
        overrides: Vec<String>,
    },
    /// List the experiments and the options of each config group.
    List,
}

fn store(configs: &Option<PathBuf>) -> autoresearch::Result<ConfigStore> {
    match configs {
        Some(dir) => ConfigStore::new(dir),
        None => ConfigStore::discover(),
    }
}

/// Splits `experiment=NAME` from the other overrides.
fn experiment_of(
    store: &ConfigStore,
    overrides: &[String],
) -> autoresearch::Result<(String, Vec<String>)> {
    let mut name = None;
    let mut rest = Vec::new();
    for text in overrides {
        let o = Override::parse(text)?;
        if o.key == "experiment" {
            name = Some(o.value);
        } else {
            rest.push(text.clone());
        }
    }
    match name {
        Some(n) => Ok((n, rest)),
        None => Err(autoresearch::Error::Override {
            text: overrides.join(" "),
            message: format!(
                "no experiment=NAME given (available: {})",
                store.options("experiment")?.join(", ")
            ),
        }),
    }
}

fn experiments(
    store: &ConfigStore,
    overrides: &[String],
    multirun: bool,
) -> autoresearch::Result<Vec<Experiment>> {
    let (name, rest) = experiment_of(store, overrides)?;
    if multirun {
        Experiment::multirun_in(store, &name, &rest)
    } else {
        Ok(vec![Experiment::compose_in(store, &name, &rest)?])
    }
}

fn run(cli: Cli) -> autoresearch::Result<()> {
    let store = store(&cli.configs)?;
    match cli.command {
        Command::Train {
            multirun,
            force,
            quiet,
            stop_after_epochs,
            overrides,
        } => {
            let exps = experiments(&store, &overrides, multirun)?;
            let options = TrainOptions {
                force,
                quiet,
                stop_after_epochs,
            };
            let total = exps.len();
            for (i, exp) in exps.iter().enumerate() {
                let dir = exp.run_dir();
                if !quiet && total > 1 {
                    eprintln!("[{}/{total}] {}", i + 1, dir.path().display());
                }
                let outcome = exp.train_with(&options)?;
                let m = &outcome.metrics;
                let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
                let what = if outcome.skipped {
                    "skipped (completed; --force to retrain)"
                } else {
                    status_word(m.status)
                };
                println!(
                    "{}  {what}  epochs {}/{}  best_val_acc {}  test_acc {}  wall {:.1}s",
                    outcome.dir.path().display(),
                    m.epochs_done,
                    m.epochs_planned,
                    fmt(m.best_val_acc),
                    fmt(m.test_acc),
                    m.wall_time_s
                );
            }
            Ok(())
        }
        Command::Config {
            multirun,
            overrides,
        } => {
            for exp in experiments(&store, &overrides, multirun)? {
                println!("# {}\n{}", exp.run_dir().path().display(), exp.to_yaml()?);
            }
            Ok(())
        }
        Command::List => {
            println!("configs: {}", store.root().display());
            println!("experiment: {}", store.options("experiment")?.join(", "));
            for (group, key) in GROUPS {
                println!("{group} (-> {key}): {}", store.options(group)?.join(", "));
            }
            Ok(())
        }
    }
}

fn status_word(status: autoresearch::RunStatus) -> &'static str {
    match status {
        autoresearch::RunStatus::Running => "running",
        autoresearch::RunStatus::Completed => "completed",
        autoresearch::RunStatus::Failed => "failed",
        autoresearch::RunStatus::Killed => "stopped (resumable)",
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}
