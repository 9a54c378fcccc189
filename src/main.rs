//! The `autoresearch` command: a thin layer over the library.

#[path = "cli/analysis.rs"]
mod analysis;
#[path = "cli/cluster.rs"]
mod cluster;
#[path = "cli/connectome.rs"]
mod connectome;
#[path = "cli/dynamics.rs"]
mod dynamics;
#[path = "cli/hpo.rs"]
mod hpo;
#[path = "cli/notebooks.rs"]
mod notebooks;
#[path = "cli/state.rs"]
mod state;

use std::path::PathBuf;
use std::process::ExitCode;

use autoresearch::bench::{self, Baseline, BenchModel, BenchOptions};
use autoresearch::config::{ConfigStore, Kernels, Override, GROUPS};
use autoresearch::{Experiment, TrainOptions};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "autoresearch",
    version = autoresearch::build_info::VERSION,
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
        /// Run the points on this many local worker processes (the local executor, with a job
        /// ledger: an interrupted sweep resumes its runs from their checkpoints when rerun).
        #[arg(long, requires = "multirun")]
        workers: Option<usize>,
        /// The job ledger of `--workers`.
        #[arg(long, default_value = "jobs/ledger.yaml")]
        ledger: PathBuf,
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
    /// Measure training and inference samples/s against the PyTorch/snnTorch reference script
    /// (build with --release: `cargo run --release -- bench --json out.json`).
    Bench {
        /// Models timed for training (comma-separated): a|ffnn, b|cnn, c|snn_ffnn, d|snn_cnn, the
        /// row-wise e|lstm, f|gru, g|rnn (2 x 256), h|srnn, i|slstm, and r|resnet18 (ResNet-18
        /// with the CIFAR stem on random 3x32x32 batches).
        #[arg(long, default_value = "a,b,c,d")]
        train: String,
        /// Models timed for inference.
        #[arg(long, default_value = "a,c")]
        infer: String,
        /// Batch size.
        #[arg(long, default_value_t = 128)]
        batch: usize,
        /// Untimed batches first.
        #[arg(long, default_value_t = 20)]
        warmup: usize,
        /// Batches per timing.
        #[arg(long, default_value_t = 100)]
        iters: usize,
        /// Timings per model (median reported).
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Time steps of the spiking models.
        #[arg(long, default_value_t = 25)]
        steps: usize,
        /// Channels of ResNet-18's first stage in row r (64: the real network).
        #[arg(long, default_value_t = 64)]
        resnet_width: usize,
        /// `fused` CPU kernels or `plain` tensor ops.
        #[arg(long, default_value = "fused")]
        kernels: String,
        /// MNIST folder (default: searched like a run's data).
        #[arg(long)]
        data: Option<PathBuf>,
        /// The reference script's JSON (`snntorch_baseline.py --json`), to print and store ratios.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Also time the training step of these experiments' own networks (comma-separated or
        /// repeated names), as `train` takes it (data, encoder, batch size, dropout, clipping,
        /// optimizer); keyed by name in the JSON. `--train "" --infer ""` times only these.
        #[arg(long = "experiment", value_delimiter = ',')]
        experiments: Vec<String>,
        /// Write the result here as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Scan run directories: runs per status, the summary per experiment, and unreadable files.
    Runs {
        /// Root of the run directories.
        #[arg(long, default_value = "runs")]
        runs: PathBuf,
        /// Metric summarised per experiment and variant.
        #[arg(long, default_value = "best_val_acc")]
        metric: String,
        /// Also write the runs frame here as CSV.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// Render the leaderboard from the run directories; with --write, replace the section between
    /// `<!-- leaderboard:begin -->` and `<!-- leaderboard:end -->` of that file.
    Leaderboard(analysis::LeaderboardArgs),
    /// Compare our runs with the upstream projects' published values (`reference/*.yaml`):
    /// report.md, fidelity.csv, seeds.csv and a figure, row by row within or outside one
    /// reference std, with Welch's test.
    Fidelity(analysis::FidelityArgs),
    /// Write an evidence report (report.md, CSVs, figures) for experiments or experiment/variants.
    Report(analysis::ReportArgs),
    /// Run sweeps on a PBS or Slurm cluster over SSH: setup, script, submit, status, cancel,
    /// fetch, monitor.
    Cluster(cluster::ClusterArgs),
    /// Execute the notebooks headless with the Rust kernel (`run`), or also write markdown
    /// copies to reports/notebooks/ (`render`).
    #[command(subcommand)]
    Notebooks(notebooks::NotebooksCommand),
    /// Research state in projects/: init, iteration new, advance, invalidate, feedback,
    /// refresh, resume, log.
    State(state::StateArgs),
    /// Hyper-parameter studies (`configs/hpo/<study>.yaml`): run, resume, status, export,
    /// report, worker.
    Hpo(hpo::HpoArgs),
    /// Connectome cores: `info` (graph, pools, K, radius of an experiment's core), `report`
    /// (aggregate a sweep), `scale` (time a training step at FlyWire's size).
    #[command(subcommand)]
    Connectome(connectome::ConnectomeCommand),
    /// Lyapunov spectra: `dynamics <run-dir>` (the spectrum of a trained run, written to
    /// `<run-dir>/dynamics/`), `dynamics report` (a flossing sweep's figures).
    Dynamics(dynamics::DynamicsArgs),
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

/// Runs a sweep on local worker processes and waits for it, printing each round's report.
fn run_local(
    store: ConfigStore,
    overrides: &[String],
    workers: usize,
    ledger: &std::path::Path,
) -> autoresearch::Result<()> {
    use autoresearch::cluster::{Executor, LocalExecutor, MonitorOptions, Sweep, Workspace};
    let (name, rest) = experiment_of(&store, overrides)?;
    // `runs_dir=` names the executor's runs root; the sweep's points go under it
    let (dirs, rest): (Vec<String>, Vec<String>) =
        rest.into_iter().partition(|o| o.starts_with("runs_dir="));
    let runs = dirs
        .last()
        .and_then(|o| o.strip_prefix("runs_dir="))
        .map_or_else(|| PathBuf::from("runs"), PathBuf::from);
    let workspace = Workspace {
        configs: store,
        runs,
        ledger: ledger.to_path_buf(),
    };
    let mut exec = LocalExecutor::new(workspace, workers)?;
    let ids = exec.submit(&Sweep::new(&name, &rest))?;
    eprintln!("submitted {} runs to {workers} local workers", ids.len());
    let report = exec.wait(
        std::time::Duration::from_secs(5),
        &MonitorOptions::default(),
        &mut |r| eprintln!("{r}"),
    )?;
    println!("{report}");
    Ok(())
}

fn run(cli: Cli) -> autoresearch::Result<()> {
    let configs = &cli.configs;
    match cli.command {
        Command::Train {
            multirun,
            force,
            quiet,
            stop_after_epochs,
            workers,
            ledger,
            overrides,
        } => {
            if let Some(workers) = workers {
                return run_local(store(configs)?, &overrides, workers, &ledger);
            }
            let exps = experiments(&store(configs)?, &overrides, multirun)?;
            let options = TrainOptions {
                force,
                quiet,
                stop_after_epochs,
                ..TrainOptions::default()
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
                let scores = match (&m.objective, m.best_val_acc) {
                    (Some(o), None) => {
                        let metric = o.metric.trim_start_matches("val_");
                        let test = m.results.get("test").and_then(|t| t.get(metric).copied());
                        format!(
                            "best {} {}  test_{metric} {}",
                            o.metric,
                            fmt(o.best),
                            fmt(test)
                        )
                    }
                    _ => format!(
                        "best_val_acc {}  test_acc {}",
                        fmt(m.best_val_acc),
                        fmt(m.test_acc)
                    ),
                };
                println!(
                    "{}  {what}  epochs {}/{}  {scores}  wall {:.1}s",
                    outcome.dir.path().display(),
                    m.epochs_done,
                    m.epochs_planned,
                    m.wall_time_s
                );
            }
            Ok(())
        }
        Command::Config {
            multirun,
            overrides,
        } => {
            for exp in experiments(&store(configs)?, &overrides, multirun)? {
                println!("# {}\n{}", exp.run_dir().path().display(), exp.to_yaml()?);
            }
            Ok(())
        }
        Command::Bench {
            train,
            infer,
            batch,
            warmup,
            iters,
            repeats,
            steps,
            resnet_width,
            kernels,
            data,
            baseline,
            experiments,
            json,
        } => {
            let models = |list: &str| -> autoresearch::Result<Vec<BenchModel>> {
                list.split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(BenchModel::parse)
                    .collect()
            };
            let kernels = match kernels.as_str() {
                "fused" => Kernels::Fused,
                "plain" => Kernels::Plain,
                other => {
                    return Err(autoresearch::Error::invalid(
                        "--kernels",
                        format!("`{other}` is not fused or plain"),
                    ))
                }
            };
            let opts = BenchOptions {
                train: models(&train)?,
                infer: models(&infer)?,
                batch,
                warmup,
                iters,
                repeats,
                steps,
                kernels,
                resnet_width,
                experiments: experiments.clone(),
                ..BenchOptions::default()
            };
            // composed first, so a misspelt name fails before minutes of timing
            let composed = if experiments.is_empty() {
                Vec::new()
            } else {
                let store = store(configs)?;
                experiments
                    .iter()
                    .map(|name| Experiment::compose_in(&store, name, Vec::<String>::new()))
                    .collect::<autoresearch::Result<Vec<_>>>()?
            };
            let mut result = bench::run(&opts, data.as_deref())?;
            for (name, exp) in experiments.iter().zip(&composed) {
                let rates = bench::experiment::train(exp.config(), &opts)?;
                result.train.insert(name.clone(), rates);
            }
            let base = baseline.as_deref().map(Baseline::read).transpose()?;
            if let Some(b) = &base {
                result.compare(b);
            }
            print_bench(&result, base.as_ref());
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&result)
                    .map_err(|e| autoresearch::Error::invalid("bench result", e.to_string()))?;
                autoresearch::fsutil::write_atomic(&path, text.as_bytes())?;
                println!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Runs { runs, metric, csv } => analysis::runs(&runs, &metric, csv.as_deref()),
        Command::Leaderboard(args) => analysis::leaderboard(args),
        Command::Fidelity(args) => analysis::fidelity(args),
        Command::Report(args) => analysis::report(args),
        Command::Cluster(args) => cluster::run(configs, args),
        Command::Notebooks(command) => notebooks::run(configs, command),
        Command::State(args) => state::run(args),
        Command::Hpo(args) => hpo::run(store(configs)?, args),
        Command::Connectome(command) => connectome::run(store(configs), command),
        Command::Dynamics(args) => dynamics::run(store(configs), args),
        Command::List => {
            let store = store(configs)?;
            println!("configs: {}", store.root().display());
            println!("experiment: {}", store.options("experiment")?.join(", "));
            for (group, key) in GROUPS {
                println!("{group} (-> {key}): {}", store.options(group)?.join(", "));
            }
            Ok(())
        }
    }
}

fn print_bench(result: &bench::BenchResult, baseline: Option<&Baseline>) {
    println!(
        "{} ({} threads, {} build); rate encoding alone {:.2} ms/batch",
        result.env.cpu, result.env.threads, result.env.profile, result.rate_encode_ms_per_batch
    );
    for (mode, ours, theirs) in [
        ("train", &result.train, baseline.map(|b| &b.train)),
        ("infer", &result.infer, baseline.map(|b| &b.infer)),
    ] {
        for (key, r) in ours {
            let reference = theirs.and_then(|t| t.get(key));
            let compared = reference.map_or(String::new(), |b| {
                format!(
                    "  baseline {:10.1}  ratio {:.2}x",
                    b.median,
                    r.median / b.median
                )
            });
            println!(
                "{mode} {key}  median {:10.1} samples/s (min {:.1}, max {:.1}; {:.2} ms/batch){compared}",
                r.median, r.min, r.max, r.ms_per_batch
            );
        }
    }
}

fn status_word(status: autoresearch::RunStatus) -> &'static str {
    match status {
        autoresearch::RunStatus::Running => "running",
        autoresearch::RunStatus::Completed => "completed",
        autoresearch::RunStatus::Failed => "failed",
        autoresearch::RunStatus::Killed => "stopped (resumable)",
        autoresearch::RunStatus::Pruned => "pruned by a study (final)",
    }
}

/// Shortens how long candle's CPU worker threads spin after each op (25,000 rounds by default)
/// unless the user set `CANDLE_BARRIER_POOL_SPIN_LIMIT`: our fused kernels run on rayon's
/// threads, and on a 2-core machine candle's spinning workers steal their cores (FFNN inference
/// ran about 20% slower). Called before any thread exists, as `set_var` requires.
fn calm_candle_workers() {
    const KEY: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(KEY).is_none() {
        std::env::set_var(KEY, "100");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    autoresearch::alloc::keep_freed_memory();
    calm_candle_workers();
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
