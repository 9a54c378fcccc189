//! Running the notebooks headless and checking what they printed: `jupyter nbconvert --execute`
//! with the evcxr kernel (`rust`), then a look at every output of the executed copy: an error
//! output fails the notebook, and a notebook must show at least the figures its metadata
//! (`autoresearch.min_figures`) promises.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::Deserialize;

use crate::error::{Error, Result};

/// Seconds one cell may run before nbconvert gives up (the first cell compiles the library).
pub const CELL_TIMEOUT_S: u64 = 2400;

/// The Jupyter launcher: `<root>/.venv/bin/jupyter` (what `scripts/setup-notebooks.sh`
/// installs), else `jupyter` on the `PATH`.
pub fn jupyter(root: &Path) -> Result<PathBuf> {
    let venv = root.join(".venv/bin/jupyter");
    if venv.is_file() {
        return Ok(venv);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("jupyter"))
            .find(|p| p.is_file())
    });
    on_path.ok_or_else(|| {
        Error::invalid(
            "jupyter",
            format!(
                "not found in {} nor on PATH; run `bash scripts/setup-notebooks.sh`",
                venv.display()
            ),
        )
    })
}

/// The build folder the notebooks' kernels share: `<temp dir>/autoresearch-evcxr-<user>`.
/// It must lie outside the repository (cargo would take evcxr's generated crate for a member
/// of our workspace), and evcxr 0.22 fails to load its code when it builds under the home
/// directory (the relative rpath to the Rust standard library does not resolve there).
pub fn build_dir() -> PathBuf {
    let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
    std::env::temp_dir().join(format!("autoresearch-evcxr-{user}"))
}

/// The notebooks (`*.ipynb`) in `dir`, sorted by name.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(Error::io("listing", dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ipynb"))
        .collect();
    found.sort();
    Ok(found)
}

/// What an executed notebook showed.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The notebook's name (file stem).
    pub name: String,
    /// The executed copy.
    pub executed: PathBuf,
    /// Wall time of the execution in seconds (0 when only checked).
    pub seconds: f64,
    /// Outputs that are figures (`image/svg+xml` or `image/png`).
    pub figures: usize,
    /// Figures the notebook's metadata asks for.
    pub min_figures: usize,
    /// Error outputs (`ename: evalue`) and nbconvert's own failure, if any.
    pub errors: Vec<String>,
}

impl Checked {
    /// Whether the notebook ran without an error and showed its figures.
    pub fn passed(&self) -> bool {
        self.errors.is_empty() && self.figures >= self.min_figures
    }
}

impl std::fmt::Display for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} in {:.0} s, {} figure(s) (at least {} expected)",
            self.name,
            if self.passed() { "ok" } else { "FAILED" },
            self.seconds,
            self.figures,
            self.min_figures
        )?;
        for e in &self.errors {
            write!(f, "\n    {e}")?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct Notebook {
    #[serde(default)]
    cells: Vec<Cell>,
    #[serde(default)]
    metadata: serde_json::Value,
}

#[derive(Deserialize)]
struct Cell {
    #[serde(default)]
    outputs: Vec<serde_json::Value>,
}

/// Reads an executed notebook and counts its figures and errors.
pub fn check(executed: &Path) -> Result<Checked> {
    let text = std::fs::read_to_string(executed).map_err(Error::io("reading", executed))?;
    let nb: Notebook = serde_json::from_str(&text).map_err(|e| Error::Data {
        path: executed.to_path_buf(),
        message: format!("not a notebook: {e}"),
    })?;
    let mut figures = 0;
    let mut errors = Vec::new();
    for (i, cell) in nb.cells.iter().enumerate() {
        for out in &cell.outputs {
            let data = &out["data"];
            if data.get("image/svg+xml").is_some() || data.get("image/png").is_some() {
                figures += 1;
            }
            // evcxr reports a failed `?` on stderr, not as an error output
            if out["output_type"] == "stream" && out["name"] == "stderr" {
                let text = match &out["text"] {
                    serde_json::Value::Array(lines) => {
                        lines.iter().filter_map(|l| l.as_str()).collect::<String>()
                    }
                    other => other.as_str().unwrap_or("").to_string(),
                };
                errors.push(format!("cell {}: stderr: {}", i + 1, text.trim()));
            }
            if out["output_type"] == "error" {
                errors.push(format!(
                    "cell {}: {}: {}",
                    i + 1,
                    out["ename"].as_str().unwrap_or("error"),
                    out["evalue"].as_str().unwrap_or("").trim()
                ));
            }
        }
    }
    Ok(Checked {
        name: executed
            .file_stem()
            .map(|s| {
                s.to_string_lossy()
                    .trim_end_matches(".nbconvert")
                    .to_string()
            })
            .unwrap_or_default(),
        executed: executed.to_path_buf(),
        seconds: 0.0,
        figures,
        min_figures: nb.metadata["autoresearch"]["min_figures"]
            .as_u64()
            .unwrap_or(0) as usize,
        errors,
    })
}

/// How the evcxr kernels are run: where they build, and at which optimisation level.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// evcxr's build folder (`EVCXR_TMPDIR`, unless set already; see [`build_dir`]). evcxr's
    /// `:cache` keeps only registry crates, so without one shared build folder each notebook
    /// would compile the library again (minutes each).
    pub build_dir: PathBuf,
    /// evcxr's `opt_level` for every crate it compiles (its default is 2). A lower level
    /// compiles the dependencies faster (a test run) and runs them slower.
    pub opt_level: Option<u8>,
}

impl Kernel {
    /// The shared build folder ([`build_dir`]) at evcxr's default optimisation level.
    pub fn new() -> Result<Kernel> {
        Ok(Kernel {
            build_dir: build_dir(),
            opt_level: None,
        })
    }

    /// Sets up `command`'s environment: `EVCXR_TMPDIR`, and with an optimisation level an
    /// `evcxr.toml` of our own in `EVCXR_CONFIG_DIR` (so a user's evcxr configuration, prelude
    /// or init script does not change a test run either).
    fn configure(&self, command: &mut Command) -> Result<()> {
        std::fs::create_dir_all(&self.build_dir).map_err(Error::io("creating", &self.build_dir))?;
        let build_dir = std::path::absolute(&self.build_dir)
            .map_err(Error::io("resolving", &self.build_dir))?;
        if std::env::var_os("EVCXR_TMPDIR").is_none() {
            command.env("EVCXR_TMPDIR", &build_dir);
        }
        if let Some(level) = self.opt_level {
            if level > 3 {
                return Err(Error::invalid(
                    "opt level",
                    format!("{level}: evcxr takes 0, 1, 2 or 3"),
                ));
            }
            let config_dir = build_dir.join("config");
            crate::fsutil::write_atomic(
                &config_dir.join("evcxr.toml"),
                format!("[evcxr]\nopt_level = \"{level}\"\n").as_bytes(),
            )?;
            command.env("EVCXR_CONFIG_DIR", &config_dir);
        }
        Ok(())
    }
}

/// Executes `notebook` with the `rust` kernel into `out_dir` (same file name) and checks it.
/// nbconvert runs it from the notebook's folder, as a person would.
pub fn execute(
    jupyter: &Path,
    notebook: &Path,
    out_dir: &Path,
    kernel: &Kernel,
) -> Result<Checked> {
    std::fs::create_dir_all(out_dir).map_err(Error::io("creating", out_dir))?;
    // a copy left by an earlier run must not stand in for this one
    let executed = out_dir.join(notebook.file_name().unwrap_or_default());
    if executed.exists() {
        std::fs::remove_file(&executed).map_err(Error::io("removing", &executed))?;
    }
    let start = Instant::now();
    let mut command = Command::new(jupyter);
    kernel.configure(&mut command)?;
    let output = command
        .args(["nbconvert", "--to", "notebook", "--execute"])
        .arg("--ExecutePreprocessor.kernel_name=rust")
        // write the executed copy even when a cell fails, so the check reports the cell's
        // error message (nbconvert alone prints only the failing cell's source)
        .arg("--ExecutePreprocessor.allow_errors=True")
        .arg(format!("--ExecutePreprocessor.timeout={CELL_TIMEOUT_S}"))
        .arg("--output-dir")
        .arg(out_dir)
        .arg(notebook)
        .output()
        .map_err(Error::io("running", jupyter))?;
    let mut checked = if executed.is_file() {
        check(&executed)?
    } else {
        check(notebook)?
    };
    checked.seconds = start.elapsed().as_secs_f64();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(25).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        checked.errors.push(format!(
            "nbconvert exited with {}:\n      {}",
            output.status,
            tail.join("\n      ")
        ));
    }
    Ok(checked)
}

/// Writes a markdown copy of the executed notebook (figures as files beside it) into `out_dir`.
pub fn render_markdown(jupyter: &Path, executed: &Path, out_dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out_dir).map_err(Error::io("creating", out_dir))?;
    let output = Command::new(jupyter)
        .args(["nbconvert", "--to", "markdown", "--output-dir"])
        .arg(out_dir)
        .arg(executed)
        .output()
        .map_err(Error::io("running", jupyter))?;
    if !output.status.success() {
        return Err(Error::invalid(
            "nbconvert --to markdown",
            format!(
                "{}: {}",
                executed.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ));
    }
    let stem = executed.file_stem().unwrap_or_default().to_string_lossy();
    Ok(out_dir.join(format!("{stem}.md")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_figures_are_counted() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(Error::io("tempdir", "."))?;
        let path = tmp.path().join("x.ipynb");
        let nb = serde_json::json!({
            "cells": [
                {"cell_type": "code", "outputs": [
                    {"output_type": "display_data", "data": {"image/svg+xml": "<svg/>"}},
                    {"output_type": "stream", "name": "stdout", "text": "hi"},
                    {"output_type": "stream", "name": "stderr", "text": ["analysis: ", "no column\n"]}]},
                {"cell_type": "code", "outputs": [
                    {"output_type": "error", "ename": "Error", "evalue": "boom\n", "traceback": []}]},
                {"cell_type": "markdown", "source": "text"}
            ],
            "metadata": {"autoresearch": {"min_figures": 2}}
        });
        std::fs::write(&path, nb.to_string()).map_err(Error::io("writing", &path))?;
        let c = check(&path)?;
        assert_eq!((c.figures, c.min_figures), (1, 2));
        assert_eq!(
            c.errors,
            ["cell 1: stderr: analysis: no column", "cell 2: Error: boom"]
        );
        assert!(!c.passed());
        Ok(())
    }
}
