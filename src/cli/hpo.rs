//! `autoresearch hpo run|resume|status|export|report|baseline|retrain|worker`: hyper-parameter
//! studies.

use std::path::PathBuf;

use autoresearch::cluster::Workspace;
use autoresearch::config::ConfigStore;
use autoresearch::hpo::files::StudyDir;
use autoresearch::hpo::{best_trial, Study, StudyLog, TrialStatus};
use autoresearch::Result;
use clap::{Args, Subcommand};

/// The study subcommands.
#[derive(Args)]
pub struct HpoArgs {
    /// Root of the run directories (studies live in `<runs>/hpo/<study>/`).
    #[arg(long, global = true, default_value = "runs")]
    runs: PathBuf,
    #[command(subcommand)]
    command: HpoCommand,
}

/// What to do with a study.
#[derive(Subcommand)]
pub enum HpoCommand {
    /// Start `configs/hpo/<study>.yaml` on local worker processes and run it to the end.
    Run {
        /// The study's name.
        study: String,
    },
    /// Carry on a stopped or killed study: stale trials are queued again, finished ones kept.
    Resume {
        /// The study's name.
        study: String,
    },
    /// Trials per status, the best trial, and every trial's value and parameters.
    Status {
        /// The study's name.
        study: String,
    },
    /// Write the trials as CSV: `hpo_snn` (its `all_evaluations.csv` columns) or `trials`.
    Export {
        /// The study's name.
        study: String,
        /// `hpo_snn` or `trials`.
        #[arg(long, default_value = "hpo_snn")]
        format: String,
        /// Output file (default: `<study dir>/outputs/all_evaluations.csv` or `trials.csv`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write the study's evidence report (report.md, trials.csv, figures).
    Report {
        /// The study's name.
        study: String,
        /// Output folder (default: `<study dir>/report`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Train the default config on the study's data (its overrides, nothing sampled): the
    /// baseline the report compares the best trial with.
    Baseline {
        /// The study's name.
        study: String,
    },
    /// Re-train the best trial's parameters as a normal run (test pass included) on the
    /// experiment with these overrides (none: full data and epochs).
    Retrain {
        /// The study's name.
        study: String,
        /// `key=value` overrides.
        overrides: Vec<String>,
    },
    /// Claim and train trials of the study in this directory until it is over (what `run`
    /// starts locally).
    Worker {
        /// The study directory (`runs/hpo/<study>`).
        dir: PathBuf,
    },
    /// A job-array task of `autoresearch cluster study`: claim and train trials of the study,
    /// and coordinate it whenever its coordinator lock is free.
    Work {
        /// The study's name.
        study: String,
    },
}

fn workspace(store: ConfigStore, runs: PathBuf) -> Workspace {
    Workspace {
        configs: store,
        runs,
        ledger: PathBuf::from("jobs/ledger.yaml"),
    }
}

/// Runs the command.
pub fn run(store: ConfigStore, args: HpoArgs) -> Result<()> {
    let ws = |store| workspace(store, args.runs.clone());
    match args.command {
        HpoCommand::Run { study } => {
            let study = Study::load_in(ws(store), &study)?;
            print_status(&study, &study.run()?)
        }
        HpoCommand::Resume { study } => {
            let study = Study::load_in(ws(store), &study)?;
            print_status(&study, &study.resume()?)
        }
        HpoCommand::Status { study } => {
            let study = Study::load_in(ws(store), &study)?;
            print_status(&study, &study.status()?)
        }
        HpoCommand::Export { study, format, out } => {
            let study = Study::load_in(ws(store), &study)?;
            let path = study.export(&format, out.as_deref())?;
            println!("{}", path.display());
            Ok(())
        }
        HpoCommand::Report { study, out } => {
            let study = Study::load_in(ws(store), &study)?;
            let path = study.report(out.as_deref())?;
            println!("{}", path.display());
            Ok(())
        }
        HpoCommand::Baseline { study } => {
            let study = Study::load_in(ws(store), &study)?;
            let run = study.run_baseline()?;
            let best = run.metrics.objective.as_ref().and_then(|o| o.best);
            println!("{}  best {:?}", run.dir.path().display(), best);
            Ok(())
        }
        HpoCommand::Retrain { study, overrides } => {
            let study = Study::load_in(ws(store), &study)?;
            let run = study.retrain_best(&overrides)?;
            println!(
                "{}  {}  {:?}",
                run.dir.path().display(),
                run.metrics.status.as_str(),
                run.metrics.results
            );
            Ok(())
        }
        HpoCommand::Work { study } => {
            let dir = StudyDir::new(&args.runs, &study);
            worker_done(autoresearch::hpo::worker::work_coordinating(
                &store,
                &dir,
                &study,
                autoresearch::hpo::runner::POLL_S,
            ))
        }
        HpoCommand::Worker { dir } => worker_done(autoresearch::hpo::worker::work(
            &store,
            &StudyDir::at(dir),
            autoresearch::hpo::runner::POLL_S,
        )),
    }
}

/// Says how many trials this worker ran (in its log).
fn worker_done(ran: Result<usize>) -> Result<()> {
    eprintln!(
        "worker {}: {} trials",
        autoresearch::hpo::files::worker_name(),
        ran?
    );
    Ok(())
}

/// Prints trials per status, the best trial, and one line per trial.
fn print_status(study: &Study, log: &StudyLog) -> Result<()> {
    let counts: Vec<String> = [
        TrialStatus::Completed,
        TrialStatus::Pruned,
        TrialStatus::Failed,
        TrialStatus::Running,
        TrialStatus::Queued,
    ]
    .iter()
    .map(|s| format!("{} {}", log.count(*s), s.as_str()))
    .collect();
    println!(
        "study {}: {} of {} trials ({}){}",
        study.name,
        log.trials.len(),
        study.config.budget.trials,
        counts.join(", "),
        log.finished
            .as_ref()
            .map_or(String::new(), |r| format!("; finished: {r}"))
    );
    for t in &log.trials {
        println!(
            "  {:>4}  {:<9}  {:>8}  epochs {}  {}",
            t.id,
            t.status.as_str(),
            t.value.map_or("-".into(), |v| format!("{v:.4}")),
            t.epochs,
            t.overrides.join(" ")
        );
    }
    if let Some(best) = best_trial(log, study.mode()?) {
        println!(
            "best: trial {} {:.4}  {}  ({})",
            best.id,
            best.value.unwrap_or(f64::NAN),
            best.overrides.join(" "),
            best.run_dir.display()
        );
    }
    Ok(())
}
