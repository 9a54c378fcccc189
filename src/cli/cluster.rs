//! The `cluster` commands of the CLI, thin over `autoresearch::cluster`.

use std::path::PathBuf;

use autoresearch::cluster::{
    parse_duration, Cluster, ClusterProfile, Executor, JobScript, MonitorOptions, SetupReport,
    Sweep, Walltime, Workspace,
};
use autoresearch::config::ConfigStore;
use autoresearch::{Error, Result};
use clap::{Args, Subcommand};

/// Where the cluster commands find things.
#[derive(Args)]
pub struct ClusterArgs {
    /// The job ledger (YAML).
    #[arg(long, default_value = autoresearch::cluster::executor::DEFAULT_LEDGER, global = true)]
    ledger: PathBuf,
    /// Local root of the run directories (fetched runs land here).
    #[arg(long, default_value = "runs", global = true)]
    runs: PathBuf,
    /// Your per-cluster values (user, project, email, identity_file, ...); default
    /// ~/.config/autoresearch/clusters.yaml.
    #[arg(long, global = true)]
    user_file: Option<PathBuf>,
    #[command(subcommand)]
    command: ClusterCommand,
}

/// What each run of a sweep needs, and the sweep itself.
#[derive(Args)]
pub struct SweepArgs {
    /// Estimated time of one run, HH:MM:SS (sizes the walltime: runs x this x 1.2).
    #[arg(long, default_value = "01:00:00")]
    per_run: String,
    /// Estimate each run from a measured one instead of --per-run: the median epoch_time_s of
    /// RUN_DIR's history.csv x the sweep's epochs (its source is written in the script). An
    /// epoch time only holds on the same kind of device (a CPU run says nothing about a GPU
    /// epoch; a run recorded on another device than the job's is refused): for a GPU sweep,
    /// submit one short GPU run first (`--gpus 1 --queue gpu_1 experiment=NAME seed=0
    /// epochs=2`), fetch it, then pass its run directory (runs/NAME/epochs=2/seed_0).
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "per_run")]
    epoch_time_from: Option<PathBuf>,
    /// CPU cores per run (default: the queue's cores per GPU x --gpus for a GPU job, else 1).
    #[arg(long)]
    cpus: Option<u32>,
    /// Memory per run in GB (default: the queue's memory per GPU x --gpus for a GPU job, else 4).
    #[arg(long)]
    mem: Option<u32>,
    /// GPUs per run; the runs train on device=cuda, with a CUDA build of the binary there.
    #[arg(long, default_value_t = 0)]
    gpus: u32,
    /// Queue or partition (default: the profile's).
    #[arg(long)]
    queue: Option<String>,
    /// Job name (default: the experiment name).
    #[arg(long)]
    name: Option<String>,
    /// Run all points one after another in one job instead of a job array.
    #[arg(long)]
    no_array: bool,
    /// `experiment=NAME` then overrides, sweeps allowed (`seed=0,1,2`).
    #[arg(required = true)]
    overrides: Vec<String>,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Submit a hyper-parameter study (`configs/hpo/<study>.yaml`, uploaded by `setup`) as a
    /// job array of workers; one of them coordinates. Monitor and fetch it like a sweep.
    Study {
        /// Cluster profile.
        profile: String,
        /// The study's name.
        study: String,
        /// Worker tasks (default: the study's `workers`).
        #[arg(long)]
        workers: Option<usize>,
        /// Walltime of each worker task, HH:MM:SS: the whole study's.
        #[arg(long, default_value = "01:00:00")]
        walltime: String,
        /// CPU cores per worker.
        #[arg(long, default_value_t = 1)]
        cpus: u32,
        /// Memory per worker in GB.
        #[arg(long, default_value_t = 4)]
        mem: u32,
        /// Queue or partition (default: the profile's).
        #[arg(long)]
        queue: Option<String>,
    },
    /// Upload this binary and configs/ to the cluster and check that the binary starts there.
    Setup {
        /// Cluster profile (configs/cluster/<name>.yaml).
        profile: String,
        /// Binary to upload (default: this one).
        #[arg(long)]
        binary: Option<PathBuf>,
    },
    /// Print the job script a submission would send (nothing is sent).
    Script {
        /// Cluster profile.
        profile: String,
        #[command(flatten)]
        sweep: SweepArgs,
    },
    /// Submit a sweep as a job (array) and record it in the ledger.
    Submit {
        /// Cluster profile.
        profile: String,
        #[command(flatten)]
        sweep: SweepArgs,
    },
    /// Poll the scheduler, record changes, and list the ledger's jobs for this cluster.
    Status {
        /// Cluster profile.
        profile: String,
    },
    /// Cancel jobs (an array id cancels its tasks); the monitor never resubmits them.
    Cancel {
        /// Cluster profile.
        profile: String,
        /// Job or array ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Copy run directories back: new or changed files only, never over a newer local file.
    Fetch {
        /// Cluster profile.
        profile: String,
        /// Job ids (default: every job of this cluster in the ledger).
        ids: Vec<String>,
    },
    /// Poll until every job is done: fetch finished runs, resubmit jobs killed by walltime,
    /// node failure or an outside cancel (they resume from their checkpoints).
    Monitor {
        /// Cluster profile.
        profile: String,
        /// Time between polls (e.g. 30s, 10m, 1h).
        #[arg(long, default_value = "10m")]
        every: String,
        /// Resubmissions allowed per run.
        #[arg(long, default_value_t = 3)]
        max_retries: usize,
        /// Do not resubmit jobs cancelled outside autoresearch.
        #[arg(long)]
        no_resubmit_cancelled: bool,
        /// One round, then exit.
        #[arg(long)]
        once: bool,
    },
}

fn load_profile(
    store: &ConfigStore,
    name: &str,
    user_file: &Option<PathBuf>,
) -> Result<ClusterProfile> {
    let user = user_file.clone().or_else(ClusterProfile::user_file);
    ClusterProfile::load(store.root(), name, user.as_deref())
}

fn sweep_of(store: &ConfigStore, args: &SweepArgs) -> Result<Sweep> {
    let (experiment, rest) = crate::experiment_of(store, &args.overrides)?;
    let mut sweep = Sweep::new(&experiment, rest);
    sweep.per_run = args
        .per_run
        .parse::<Walltime>()
        .map_err(|m| Error::invalid("--per-run", m))?;
    sweep.cpus = args.cpus;
    sweep.mem_gb = args.mem;
    sweep.gpus = args.gpus;
    sweep.queue = args.queue.clone();
    sweep.name = args.name.clone();
    sweep.array = !args.no_array;
    if let Some(run_dir) = &args.epoch_time_from {
        sweep.size_from_epoch_time(store, run_dir)?;
    }
    Ok(sweep)
}

fn print_setup(cluster: &Cluster, report: &SetupReport) {
    let binary = match (report.binary_uploaded, report.kept_cuda_build) {
        (true, _) => "uploaded",
        (false, true) => "kept (the one there is a CUDA build, this one is not)",
        (false, false) => "unchanged",
    };
    println!(
        "{}: {} ({}); binary {binary}; configs: {} uploaded, {} unchanged",
        cluster.profile().name,
        report.platform,
        report.remote_version,
        report.configs.uploaded.len(),
        report.configs.unchanged
    );
    if !report.cuda && !cluster.profile().gpu_queues().is_empty() {
        println!(
            "note: the binary there is a CPU build, so GPU jobs (--gpus) are refused; {}",
            autoresearch::cluster::gpu::BUILD_HINT
        );
    }
}

fn print_jobs(cluster: &Cluster) -> Result<()> {
    let name = &cluster.profile().name;
    let jobs: Vec<_> = cluster
        .ledger()
        .jobs()
        .iter()
        .filter(|j| &j.cluster == name)
        .collect();
    if jobs.is_empty() {
        println!(
            "no jobs for {name} in {}",
            cluster.ledger().path().display()
        );
        return Ok(());
    }
    for j in jobs {
        let since = j.transitions.last().map_or("", |t| t.at.as_str());
        let mut line = format!(
            "{:<20} {:<16} {since}  {}",
            j.id,
            j.state().as_str(),
            j.sweep_points.join("; ")
        );
        if let Some(new) = &j.resubmitted_as {
            line.push_str(&format!("  (resubmitted as {new})"));
        }
        println!("{line}");
    }
    Ok(())
}

/// `autoresearch cluster ...`.
pub fn run(configs: &Option<PathBuf>, args: ClusterArgs) -> Result<()> {
    let store = match configs {
        Some(dir) => ConfigStore::new(dir)?,
        None => ConfigStore::discover()?,
    };
    let workspace = Workspace {
        configs: store.clone(),
        runs: args.runs.clone(),
        ledger: args.ledger.clone(),
    };
    let connect = |name: &str| -> Result<Cluster> {
        let profile = load_profile(&store, name, &args.user_file)?;
        Cluster::connect(profile, workspace.clone())
    };
    match args.command {
        ClusterCommand::Study {
            profile,
            study,
            workers,
            walltime,
            cpus,
            mem,
            queue,
        } => {
            let config = autoresearch::hpo::StudyConfig::load(&store, &study)?;
            let job = autoresearch::cluster::StudyJob {
                workers: workers.unwrap_or(config.workers),
                study,
                walltime: walltime
                    .parse::<Walltime>()
                    .map_err(|m| Error::invalid("--walltime", m))?,
                cpus,
                mem_gb: mem,
                queue,
            };
            let mut cluster = connect(&profile)?;
            let ids = cluster.submit_study(&job)?;
            println!(
                "submitted study {} as {} worker task(s) to {}: {}",
                job.study,
                ids.len(),
                cluster.profile().name,
                ids.join(" ")
            );
            Ok(())
        }
        ClusterCommand::Setup { profile, binary } => {
            let binary = match binary {
                Some(b) => b,
                None => std::env::current_exe().map_err(Error::io("locating", "this binary"))?,
            };
            let mut cluster = connect(&profile)?;
            let report = cluster.setup(&binary)?;
            print_setup(&cluster, &report);
            Ok(())
        }
        ClusterCommand::Script { profile, sweep } => {
            let profile = load_profile(&store, &profile, &args.user_file)?;
            let sweep = sweep_of(&store, &sweep)?;
            let request = sweep.job_request(&profile, &store)?;
            print!("{}", JobScript::render(&profile, &request)?.text);
            Ok(())
        }
        ClusterCommand::Submit { profile, sweep } => {
            let sweep = sweep_of(&store, &sweep)?;
            // check the sweep and the script before connecting
            let checked = load_profile(&store, &profile, &args.user_file)?;
            let request = sweep.job_request(&checked, &store)?;
            JobScript::render(&checked, &request)?;
            let mut cluster = connect(&profile)?;
            let ids = cluster.submit(&sweep)?;
            println!(
                "submitted {} run(s) to {}: {}",
                request.commands.len(),
                cluster.profile().name,
                ids.join(" ")
            );
            println!("ledger: {}", cluster.ledger().path().display());
            Ok(())
        }
        ClusterCommand::Status { profile } => {
            let mut cluster = connect(&profile)?;
            for c in cluster.refresh()? {
                println!("{}: {} -> {}", c.id, c.from.as_str(), c.to.as_str());
            }
            print_jobs(&cluster)
        }
        ClusterCommand::Cancel { profile, ids } => {
            let mut cluster = connect(&profile)?;
            cluster.cancel(&ids)?;
            println!("cancelled {}", ids.join(" "));
            Ok(())
        }
        ClusterCommand::Fetch { profile, ids } => {
            let mut cluster = connect(&profile)?;
            let report = cluster.fetch(&ids)?;
            println!("{report} into {}", args.runs.display());
            Ok(())
        }
        ClusterCommand::Monitor {
            profile,
            every,
            max_retries,
            no_resubmit_cancelled,
            once,
        } => {
            let every = parse_duration(&every)?;
            let options = MonitorOptions {
                max_retries,
                resubmit_external_cancel: !no_resubmit_cancelled,
            };
            let mut cluster = connect(&profile)?;
            let (mut failed, mut gave_up) = (0, 0);
            let mut print = |r: &autoresearch::cluster::MonitorReport| {
                failed += r.failures.len();
                gave_up += r.gave_up.len();
                println!(
                    "[{}] {r}",
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
            };
            if once {
                let r = cluster.monitor_once(&options)?;
                print(&r);
            } else {
                cluster.wait(every, &options, &mut print)?;
            }
            if failed + gave_up == 0 {
                Ok(())
            } else {
                Err(Error::Cluster {
                    host: profile,
                    message: format!(
                        "{failed} job(s) failed, {gave_up} gave up after retries (see above)"
                    ),
                })
            }
        }
    }
}
