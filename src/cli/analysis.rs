//! The analysis commands of the CLI: `runs`, `leaderboard`, `fidelity` and `report`, thin over
//! the library.

use std::path::{Path, PathBuf};

use autoresearch::report::{
    write_section, Annotations, BenchRates, EvidenceReport, Fidelity, Leaderboard, References,
    ReportOptions,
};
use autoresearch::runs::{scan, status_counts, RunScan};
use autoresearch::stats::{summarize, Group};
use autoresearch::Result;

/// Scans `root`, printing unreadable files to stderr (they never stop the command).
fn scan_reporting(root: &Path) -> Result<RunScan> {
    let found = scan(root)?;
    for p in &found.problems {
        eprintln!("skipped {p}");
    }
    Ok(found)
}

/// `autoresearch runs`.
pub fn runs(root: &Path, metric: &str, csv: Option<&Path>) -> Result<()> {
    let found = scan_reporting(root)?;
    let counts = status_counts(&found)?;
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    println!(
        "{} runs under {} ({}); {} unreadable",
        found.runs.height(),
        root.display(),
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        },
        found.problems.len()
    );
    if found.runs.height() > 0 {
        println!("{}", summarize(&found.runs, metric)?);
    }
    if let Some(path) = csv {
        let bytes = autoresearch::frame::to_csv(&found.runs)?;
        autoresearch::fsutil::write_atomic(path, &bytes)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// What `autoresearch leaderboard` was asked for.
#[derive(clap::Args)]
pub struct LeaderboardArgs {
    /// Root of the run directories.
    #[arg(long, default_value = "runs")]
    runs: PathBuf,
    /// Labels per experiment: project, iteration, notes, status (valid|invalid|abandoned).
    #[arg(long, default_value = "leaderboard.yaml")]
    annotations: PathBuf,
    /// Research state whose iterations label their experiments (and mark invalid ones);
    /// its labels win over the annotations file's. Skipped when the folder does not exist.
    #[arg(long, default_value = "projects")]
    projects: PathBuf,
    /// Upstream projects' published values (a reference YAML file or a folder of them),
    /// shown beside ours with the distance in reference stds. Skipped when missing.
    #[arg(long, default_value = "reference")]
    references: PathBuf,
    /// Directory whose leaderboard.md.j2 overrides the shipped template.
    #[arg(long, default_value = "templates")]
    templates: PathBuf,
    /// Markdown file to update in place (e.g. README.md); else print the section.
    #[arg(long)]
    write: Option<PathBuf>,
}

/// The leaderboard's labels: the annotations file, then the research state's (which win).
fn labels(annotations: &Path, projects: &Path) -> Result<Annotations> {
    let mut labels = Annotations::load(annotations)?;
    if projects.is_dir() {
        labels.merge(autoresearch::state::ProjectStore::new(projects).annotations()?);
    }
    Ok(labels)
}

/// `autoresearch leaderboard`.
pub fn leaderboard(args: LeaderboardArgs) -> Result<()> {
    let found = scan_reporting(&args.runs)?;
    let labels = labels(&args.annotations, &args.projects)?;
    let references = References::load(&args.references)?;
    let fidelity = Fidelity::build(&found.runs, &references, &labels)?;
    let board = Leaderboard::build(&found.runs, &labels)?
        .with_runs_root(args.runs.display().to_string())
        .with_fidelity(&fidelity);
    let section = board.render(Some(&args.templates))?;
    match args.write {
        None => print!("{section}"),
        Some(path) => {
            if write_section(&path, &section)? {
                println!("updated the leaderboard in {}", path.display());
            } else {
                println!("{} is up to date", path.display());
            }
        }
    }
    Ok(())
}

/// What `autoresearch fidelity` was asked for.
#[derive(clap::Args)]
pub struct FidelityArgs {
    /// Root of the run directories.
    #[arg(long, default_value = "runs")]
    runs: PathBuf,
    /// The upstream projects' published values: a reference YAML file or a folder of them.
    #[arg(long, default_value = "reference")]
    references: PathBuf,
    /// Labels per experiment, whose notes explain a row's difference.
    #[arg(long, default_value = "leaderboard.yaml")]
    annotations: PathBuf,
    /// Research state whose iterations label their experiments.
    #[arg(long, default_value = "projects")]
    projects: PathBuf,
    /// Output directory, e.g. reports/fidelity/.
    #[arg(long)]
    out: PathBuf,
    /// Directory whose fidelity.md.j2 overrides the shipped template.
    #[arg(long, default_value = "templates")]
    templates: PathBuf,
    /// `autoresearch bench --json` results (repeatable): each row's bench samples/s beside the
    /// samples/s its full training runs reached.
    #[arg(long)]
    bench: Vec<PathBuf>,
    /// Runs of the same experiments on an idle machine (e.g. `benches/e2e_speed.py`'s
    /// one-epoch runs): the speed table's Train / bench comes from them instead of the
    /// compared runs, which may have shared their machine.
    #[arg(long)]
    idle_runs: Option<PathBuf>,
}

/// `autoresearch fidelity`.
pub fn fidelity(args: FidelityArgs) -> Result<()> {
    let references = References::load(&args.references)?;
    if references.is_empty() {
        return Err(autoresearch::Error::Analysis(format!(
            "no reference rows in {}: give a reference YAML file or a folder of them (see reference/chpc_autoresearch.yaml)",
            args.references.display()
        )));
    }
    let found = scan_reporting(&args.runs)?;
    let labels = labels(&args.annotations, &args.projects)?;
    let mut fidelity = Fidelity::build(&found.runs, &references, &labels)?
        .with_bench(&BenchRates::read(&args.bench)?);
    if let Some(root) = &args.idle_runs {
        let idle = scan_reporting(root)?;
        fidelity = fidelity.with_idle(&idle.runs, &root.display().to_string())?;
    }
    for path in fidelity.write(&args.out, Some(&args.templates))? {
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// What `autoresearch report` was asked for.
#[derive(clap::Args)]
pub struct ReportArgs {
    /// Groups to report: `experiment` (all its variants) or `experiment/variant`.
    #[arg(required = true)]
    groups: Vec<String>,
    /// Output directory, e.g. reports/<name>/.
    #[arg(long)]
    out: PathBuf,
    /// Group the others are compared with, seed by seed (default: the first group).
    #[arg(long)]
    baseline: Option<String>,
    /// Root of the run directories.
    #[arg(long, default_value = "runs")]
    runs: PathBuf,
    /// Run metric summarised and compared: any numeric column of the runs frame
    /// (`best_val_acc`, `objective_best`, `test_position_rmse`); ranked in its direction.
    #[arg(long, default_value = "best_val_acc")]
    metric: String,
    /// History column of the learning curves (default: the runs' objective, e.g. `val_acc`).
    #[arg(long)]
    curves: Option<String>,
    /// Title (default: the output directory's name).
    #[arg(long)]
    title: Option<String>,
    /// Directory whose report.md.j2 overrides the shipped template.
    #[arg(long, default_value = "templates")]
    templates: PathBuf,
}

/// `autoresearch report`.
pub fn report(args: ReportArgs) -> Result<()> {
    let groups = args
        .groups
        .iter()
        .flat_map(|g| g.split(','))
        .filter(|g| !g.trim().is_empty())
        .map(|g| Group::parse(g.trim()))
        .collect::<Result<Vec<_>>>()?;
    let found = scan_reporting(&args.runs)?;
    let title = args.title.clone().unwrap_or_else(|| {
        args.out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "report".into())
    });
    let mut options = ReportOptions::new(title, groups, args.runs.display().to_string());
    if let Some(b) = &args.baseline {
        options.baseline = Some(Group::parse(b)?);
    }
    options.metric = args.metric;
    options.curve_metric = args.curves;
    options.templates = Some(args.templates);
    let report = EvidenceReport::build(&found, &options)?;
    let written = report.write(&args.out)?;
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}
