//! `autoresearch connectome info|report|scale`: a connectome core's graph, pools, K and
//! radius; the aggregate of a sweep; the one-step timing at a given graph size.

use std::path::PathBuf;

use autoresearch::config::{ConfigStore, ModelConfig};
use autoresearch::connectome::bench::{time_step, ScaleSpec};
use autoresearch::connectome::{prepare, report};
use autoresearch::{Error, Experiment, Result};
use clap::Subcommand;

/// What to do.
#[derive(Subcommand)]
pub enum ConnectomeCommand {
    /// The core of an experiment (`experiment=NAME` and overrides) for a seed: graph, pools,
    /// K, control and spectral radius, as written to a run's `graph.json`.
    Info {
        /// `experiment=NAME` followed by overrides.
        #[arg(required = true)]
        overrides: Vec<String>,
    },
    /// Aggregate a sweep's run directories into upstream's tables, validation reports,
    /// summary and figures.
    Report {
        /// The folder holding the sweep's runs (e.g. `runs/connectome_celegans_polar`).
        runs: PathBuf,
        /// Where to write (default `<runs>/report`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Time one training step on a random graph (default: FlyWire 783's size, batch 16,
    /// T = 50, K = 3) and print JSON with the wall times and peak memory.
    Scale {
        /// Neurons.
        #[arg(long, default_value_t = 139_255)]
        neurons: usize,
        /// Edges.
        #[arg(long, default_value_t = 15_091_983)]
        edges: usize,
        /// Batch size.
        #[arg(long, default_value_t = 16)]
        batch: usize,
        /// Time steps.
        #[arg(long, default_value_t = 50)]
        steps: usize,
        /// Write the JSON here too.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

/// Runs a connectome subcommand.
pub fn run(store: Result<ConfigStore>, command: ConnectomeCommand) -> Result<()> {
    match command {
        ConnectomeCommand::Info { overrides } => {
            let store = store?;
            let (name, rest) = crate::experiment_of(&store, &overrides)?;
            let exp = Experiment::compose_in(&store, &name, &rest)?;
            let cfg = exp.config();
            let ModelConfig::Bpu(bpu) = &cfg.model else {
                return Err(Error::invalid(
                    "model.kind",
                    format!("{} is not a connectome core (kind: bpu)", cfg.model.kind()),
                ));
            };
            let core = prepare(bpu, cfg.seed)?;
            let meta = core.meta("auto");
            println!(
                "{}",
                serde_json::to_string_pretty(&meta).map_err(|e| Error::Analysis(e.to_string()))?
            );
            Ok(())
        }
        ConnectomeCommand::Report { runs, out } => {
            let out = out.unwrap_or_else(|| runs.join("report"));
            let agg = report::aggregate(&runs, &out)?;
            println!("wrote {} files to {}", agg.files.len(), agg.out.display());
            println!("{}", agg.leaderboard);
            Ok(())
        }
        ConnectomeCommand::Scale {
            neurons,
            edges,
            batch,
            steps,
            json,
        } => {
            let spec = ScaleSpec {
                neurons,
                edges,
                batch,
                steps,
                ..ScaleSpec::flywire()
            };
            let result = time_step(&spec)?;
            let text = serde_json::to_string_pretty(&result)
                .map_err(|e| Error::Analysis(e.to_string()))?;
            if let Some(path) = json {
                autoresearch::fsutil::write_atomic(&path, text.as_bytes())?;
            }
            println!("{text}");
            Ok(())
        }
    }
}
