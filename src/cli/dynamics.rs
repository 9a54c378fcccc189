//! `autoresearch dynamics <run-dir>`: the Lyapunov spectrum of a trained run; `dynamics report`:
//! the figures and tables of a flossing sweep.

use std::path::PathBuf;

use autoresearch::config::{ConfigStore, SpectrumConfig};
use autoresearch::dynamics;
use autoresearch::{Experiment, Result};
use clap::{Args, Subcommand};

/// The spectrum of a run directory, or a subcommand.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DynamicsArgs {
    /// What else to do.
    #[command(subcommand)]
    pub command: Option<DynamicsCommand>,
    /// A trained run directory (its best checkpoint is analysed).
    pub run: Option<PathBuf>,
    /// The exponents computed (the largest first).
    #[arg(long, default_value_t = 16)]
    pub exponents: usize,
    /// Trajectory steps (at most the input sequence's length; default: all of it).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Steps discarded before averaging (default 10 + steps/10).
    #[arg(long)]
    pub transient: Option<usize>,
    /// Re-orthonormalise every this many steps.
    #[arg(long, default_value_t = 1)]
    pub every: usize,
    /// Validation sequences averaged over (their spread is the estimator error).
    #[arg(long, default_value_t = 4)]
    pub sequences: usize,
    /// Seed of the initial frame.
    #[arg(long, default_value_t = 1)]
    pub frame_seed: u64,
    /// Include the reset's surrogate derivative in spiking Jacobians.
    #[arg(long)]
    pub reset_in_jacobian: bool,
}

/// Subcommands.
#[derive(Subcommand)]
pub enum DynamicsCommand {
    /// Aggregate a delayed-XOR flossing sweep (accuracy against delay, λ_1 and `‖dL/dh_0‖`
    /// over training) and the spectra before and after flossing into a report.
    Report {
        /// Folders holding the sweeps' runs (e.g. `runs/delayed_xor_floss runs/delayed_xor_plain`).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Where to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Time one flossing step and one training step of an experiment (default
    /// `delayed_xor_floss`: N = 80, k = 75, 55 steps; B = 16, T = 300) and print JSON.
    Bench {
        /// `experiment=NAME` and overrides.
        #[arg(default_value = "experiment=delayed_xor_floss")]
        overrides: Vec<String>,
        /// Timed repeats (median reported).
        #[arg(long, default_value_t = 20)]
        repeats: usize,
        /// Write the JSON here too.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

/// Runs the command.
pub fn run(store: Result<ConfigStore>, args: DynamicsArgs) -> Result<()> {
    match args.command {
        Some(DynamicsCommand::Report { runs, out }) => {
            let written = dynamics::report::write_report(&runs, &out)?;
            println!("wrote {}", written.display());
            return Ok(());
        }
        Some(DynamicsCommand::Bench {
            overrides,
            repeats,
            json,
        }) => {
            let store = store?;
            let (name, rest) = crate::experiment_of(&store, &overrides)?;
            let exp = Experiment::compose_in(&store, &name, &rest)?;
            let result = dynamics::bench::time_steps(exp.config(), 3, repeats.max(1))?;
            let text = serde_json::to_string_pretty(&result)
                .map_err(|e| autoresearch::Error::Analysis(e.to_string()))?;
            println!("{text}");
            if let Some(path) = json {
                autoresearch::fsutil::write_atomic(&path, text.as_bytes())?;
            }
            return Ok(());
        }
        None => {}
    }
    let Some(run) = args.run else {
        return Err(autoresearch::Error::invalid(
            "dynamics",
            "give a run directory (`autoresearch dynamics runs/<name>/<variant>/seed_0`) or `report`",
        ));
    };
    let cfg = SpectrumConfig {
        exponents: args.exponents,
        steps: args.steps.unwrap_or(0),
        transient_steps: args.transient,
        reorthonormalise_every: args.every,
        frame_seed: args.frame_seed,
        sequences: args.sequences,
        reset_in_jacobian: args.reset_in_jacobian,
    };
    let frame = dynamics::analyse_run(&run, &cfg)?;
    println!("{frame}");
    println!(
        "wrote {}",
        run.join(dynamics::ANALYSIS_DIR)
            .join(dynamics::SPECTRUM_FILE)
            .display()
    );
    Ok(())
}
