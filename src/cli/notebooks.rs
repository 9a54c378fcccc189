//! `autoresearch notebooks run|render`: execute every notebook headless and check it.

use std::path::PathBuf;

use autoresearch::notebooks::{execute, jupyter, list, render_markdown, Kernel};
use autoresearch::{Error, Result};
use clap::Subcommand;

/// What to do with the notebooks.
#[derive(Subcommand)]
pub enum NotebooksCommand {
    /// Execute the notebooks (all, or those named) and check for errors and figures.
    Run(Selection),
    /// Like `run`, then write executed markdown copies to reports/notebooks/.
    Render(Selection),
}

/// Which notebooks, from where.
#[derive(clap::Args)]
pub struct Selection {
    /// Repository root (default: the folder above the configs directory).
    #[arg(long)]
    root: Option<PathBuf>,
    /// evcxr's optimisation level for the kernels (default: evcxr's own, 2). The test run
    /// uses 1: the dependencies compile in less time and the notebooks still train quickly.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=3))]
    opt_level: Option<u8>,
    /// Notebook names without `.ipynb` (default: every notebook in notebooks/).
    names: Vec<String>,
}

/// Runs the command; fails when any notebook failed.
pub fn run(configs: &Option<PathBuf>, command: NotebooksCommand) -> Result<()> {
    let (selection, render) = match command {
        NotebooksCommand::Run(s) => (s, false),
        NotebooksCommand::Render(s) => (s, true),
    };
    let root = match selection.root {
        Some(r) => r,
        None => {
            let store = match configs {
                Some(dir) => autoresearch::config::ConfigStore::new(dir)?,
                None => autoresearch::config::ConfigStore::discover()?,
            };
            store
                .root()
                .parent()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."))
        }
    };
    let jupyter = jupyter(&root)?;
    let mut notebooks = list(&root.join("notebooks"))?;
    if !selection.names.is_empty() {
        notebooks.retain(|p| {
            p.file_stem()
                .is_some_and(|s| selection.names.iter().any(|n| s.to_string_lossy() == *n))
        });
    }
    let executed_dir = root.join("target/notebooks");
    let kernel = Kernel {
        opt_level: selection.opt_level,
        ..Kernel::new()?
    };
    let mut failed = Vec::new();
    for nb in &notebooks {
        let checked = execute(&jupyter, nb, &executed_dir, &kernel)?;
        println!("{checked}");
        if !checked.passed() {
            failed.push(checked.name.clone());
        } else if render {
            let md = render_markdown(&jupyter, &checked.executed, &root.join("reports/notebooks"))?;
            println!("    wrote {}", md.display());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(
            "notebooks",
            format!("{} failed: {}", failed.len(), failed.join(", ")),
        ))
    }
}
