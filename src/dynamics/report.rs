//! The evidence of a delayed-XOR flossing sweep: final test accuracy against delay with and
//! without flossing (median and interquartile range over seeds), `λ_1` and `‖dL/dh_0‖` over
//! training at the critical delay, the verdict of issue 19's criteria, and the spectra of the
//! sweep's network before and after flossing `k` exponents from initialisation.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::from_init::floss_from_init;
use crate::config::{DataConfig, ExperimentConfig, SpectrumConfig};
use crate::error::{Error, Result};
use crate::frame::read_csv;
use crate::plot::{Figure, Lines};
use crate::rundir::RunDir;

/// One finished run of the sweep.
#[derive(Debug, Clone)]
struct Run {
    flossing: bool,
    delay: usize,
    test_acc: f64,
    /// Per epoch: `(epoch, lambda_1, grad_norm_h0)`.
    curve: Vec<(f64, f64, f64)>,
    config: ExperimentConfig,
}

fn arm(flossing: bool) -> &'static str {
    if flossing {
        "flossing"
    } else {
        "none"
    }
}

/// Reads every completed run under `roots`.
fn collect(roots: &[PathBuf]) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    for root in roots {
        let (dirs, _) = crate::runs::run_dirs(root);
        for dir in dirs {
            let rd = RunDir::at(&dir);
            let (Some(metrics), Ok(config)) = (rd.read_metrics()?, rd.read_config()) else {
                continue;
            };
            let Some(test_acc) = metrics.results.get("test").and_then(|t| t.get("acc")) else {
                continue;
            };
            let delay = match &config.data {
                DataConfig::DelayedXor(b) | DataConfig::Copy(b) | DataConfig::Parity(b) => b.delay,
                _ => continue,
            };
            let history = read_csv(&dir.join("history.csv"))?;
            let col = |name: &str| -> Vec<f64> {
                history
                    .column(name)
                    .map(|c| c.iter().map(|v| v.parse().unwrap_or(f64::NAN)).collect())
                    .unwrap_or_default()
            };
            let (epochs, l1, g) = (col("epoch"), col("lambda_1"), col("grad_norm_h0"));
            let curve = epochs
                .iter()
                .enumerate()
                .map(|(i, &e)| {
                    (
                        e,
                        l1.get(i).copied().unwrap_or(f64::NAN),
                        g.get(i).copied().unwrap_or(f64::NAN),
                    )
                })
                .collect();
            runs.push(Run {
                flossing: config
                    .dynamics
                    .as_ref()
                    .is_some_and(|d| d.flossing.is_some()),
                delay,
                test_acc: *test_acc,
                curve,
                config,
            });
        }
    }
    if runs.is_empty() {
        return Err(Error::Analysis(format!(
            "no completed delayed-XOR runs with a test accuracy under {}",
            roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(runs)
}

/// The `tau` quantile of `values` (statrs' definition), NaN when empty.
fn quantile(values: &[f64], tau: f64) -> f64 {
    use statrs::statistics::{Data, OrderStatistics};
    if values.is_empty() {
        return f64::NAN;
    }
    Data::new(values.to_vec()).quantile(tau)
}

/// `(q25, median, q75)` of `values`.
fn quartiles(values: &[f64]) -> (f64, f64, f64) {
    (
        quantile(values, 0.25),
        quantile(values, 0.5),
        quantile(values, 0.75),
    )
}

/// The mean over epochs of `log10 ‖dL/dh_0‖` of a run.
fn log_grad(run: &Run) -> f64 {
    let logs: Vec<f64> = run
        .curve
        .iter()
        .map(|c| c.2.log10())
        .filter(|v| v.is_finite())
        .collect();
    logs.iter().sum::<f64>() / logs.len().max(1) as f64
}

/// Writes `report.md`, `accuracy_by_delay.csv` and the figures into `out`; returns the report.
pub fn write_report(roots: &[PathBuf], out: &Path) -> Result<PathBuf> {
    let runs = collect(roots)?;
    std::fs::create_dir_all(out).map_err(Error::io("creating", out))?;
    let mut groups: BTreeMap<(bool, usize), Vec<&Run>> = BTreeMap::new();
    for r in &runs {
        groups.entry((r.flossing, r.delay)).or_default().push(r);
    }
    let mut csv = String::from("arm,delay,seeds,acc_q25,acc_median,acc_q75,log10_grad_h0_median\n");
    let mut md = String::from("| arm | delay | seeds | test acc median | IQR | mean log10 ‖dL/dh0‖ (median) |\n|---|---|---|---|---|---|\n");
    let mut medians: BTreeMap<(bool, usize), (f64, f64)> = BTreeMap::new();
    for (&(floss, delay), rs) in &groups {
        let accs: Vec<f64> = rs.iter().map(|r| r.test_acc).collect();
        let grads: Vec<f64> = rs.iter().map(|r| log_grad(r)).collect();
        let (q25, med, q75) = quartiles(&accs);
        let g = quantile(&grads, 0.5);
        medians.insert((floss, delay), (med, g));
        writeln!(
            csv,
            "{},{delay},{},{q25:.4},{med:.4},{q75:.4},{g:.3}",
            arm(floss),
            rs.len()
        )
        .ok();
        writeln!(
            md,
            "| {} | {delay} | {} | {:.1}% | {:.1}-{:.1}% | {g:.2} |",
            arm(floss),
            rs.len(),
            100.0 * med,
            100.0 * q25,
            100.0 * q75
        )
        .ok();
    }
    crate::fsutil::write_atomic(&out.join("accuracy_by_delay.csv"), csv.as_bytes())?;
    let verdict = verdict(&medians);
    let mut figures = vec![accuracy_figure(&groups)?.save(out, "accuracy_by_delay")?];
    if let Some(d) = critical_delay(&medians) {
        figures.push(
            curve_figure(&groups, d, "lambda_1", |c| c.1)?.save(out, "lambda1_over_training")?,
        );
        figures.push(
            curve_figure(&groups, d, "log10 |dL/dh0|", |c| c.2.log10())?
                .save(out, "grad_h0_over_training")?,
        );
    }
    let spectra = match runs.iter().find(|r| r.flossing) {
        Some(r) => spectra_section(&r.config, out, &mut figures)?,
        None => String::new(),
    };
    let mut text = format!("# Delayed XOR with and without gradient flossing\n\nRuns: {} ({} seeds per cell at most), read from {}.\nTest accuracy is the best checkpoint's on the fixed-seed test split; the gradient column is the mean over epochs of log10 ‖dL/dh_0‖ on a fixed validation batch.\n\n{md}\n{verdict}\n", runs.len(), groups.values().map(Vec::len).max().unwrap_or(0), roots.iter().map(|r| format!("`{}`", r.display())).collect::<Vec<_>>().join(", "));
    text.push_str(&spectra);
    text.push_str("\n## Figures\n\n");
    for f in &figures {
        let name = f
            .svg
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        writeln!(text, "![{name}]({name})").ok();
    }
    let path = out.join("report.md");
    crate::fsutil::write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// The smallest delay whose no-flossing median accuracy is at most 60%.
fn critical_delay(medians: &BTreeMap<(bool, usize), (f64, f64)>) -> Option<usize> {
    medians
        .iter()
        .find(|((floss, _), (acc, _))| !floss && *acc <= 0.6)
        .map(|((_, d), _)| *d)
}

/// Issue 19's criteria at the critical delay and the next one swept.
fn verdict(medians: &BTreeMap<(bool, usize), (f64, f64)>) -> String {
    let Some(d) = critical_delay(medians) else {
        return "No delay swept makes training without flossing fail (median <= 60%): sweep longer delays.\n".into();
    };
    let next = medians
        .keys()
        .filter(|(f, k)| !f && *k > d)
        .map(|(_, k)| *k)
        .min();
    let mut text =
        format!("Critical delay (smallest with no-flossing median <= 60%): **{d}**.\n\n");
    for delay in std::iter::once(d).chain(next) {
        match (medians.get(&(true, delay)), medians.get(&(false, delay))) {
            (Some(f), Some(n)) => {
                let gain = 100.0 * (f.0 - n.0);
                let orders = f.1 - n.1;
                writeln!(text, "- delay {delay}: flossing median {:.1}% vs none {:.1}% ({gain:+.1} points, needs >= +20: {}); gradient at h0 {orders:+.2} orders of magnitude (needs >= 3: {})", 100.0 * f.0, 100.0 * n.0, if gain >= 20.0 { "pass" } else { "FAIL" }, if orders >= 3.0 { "pass" } else { "FAIL" }).ok();
            }
            _ => {
                writeln!(text, "- delay {delay}: one arm has no runs").ok();
            }
        }
    }
    text
}

fn accuracy_figure(groups: &BTreeMap<(bool, usize), Vec<&Run>>) -> Result<Figure> {
    let mut chart = Lines::new(
        "Final test accuracy against delay (median, IQR)",
        "delay d (steps)",
        "test accuracy",
    );
    for floss in [false, true] {
        let cells: Vec<(f64, (f64, f64, f64))> = groups
            .iter()
            .filter(|((f, _), _)| *f == floss)
            .map(|((_, d), rs)| {
                (
                    *d as f64,
                    quartiles(&rs.iter().map(|r| r.test_acc).collect::<Vec<_>>()),
                )
            })
            .collect();
        let x: Vec<f64> = cells.iter().map(|c| c.0).collect();
        let mid: Vec<f64> = cells.iter().map(|c| (c.1 .0 + c.1 .2) / 2.0).collect();
        let half: Vec<f64> = cells.iter().map(|c| (c.1 .2 - c.1 .0) / 2.0).collect();
        let med: Vec<f64> = cells.iter().map(|c| c.1 .1).collect();
        chart = chart
            .with(&format!("{} median", arm(floss)), &x, &med)
            .with_errors(&format!("{} IQR", arm(floss)), &x, &mid, &half);
    }
    Figure::render(&chart)
}

fn curve_figure(
    groups: &BTreeMap<(bool, usize), Vec<&Run>>,
    delay: usize,
    label: &str,
    pick: impl Fn(&(f64, f64, f64)) -> f64,
) -> Result<Figure> {
    let mut chart = Lines::new(
        &format!("{label} over training, delay {delay} (median over seeds)"),
        "epoch",
        label,
    );
    for floss in [false, true] {
        let Some(rs) = groups.get(&(floss, delay)) else {
            continue;
        };
        let epochs = rs.iter().map(|r| r.curve.len()).min().unwrap_or(0);
        let x: Vec<f64> = (0..epochs).map(|i| rs[0].curve[i].0).collect();
        let y: Vec<f64> = (0..epochs)
            .map(|i| {
                quantile(
                    &rs.iter().map(|r| pick(&r.curve[i])).collect::<Vec<_>>(),
                    0.5,
                )
            })
            .collect();
        chart = chart.with(arm(floss), &x, &y);
    }
    Figure::render(&chart)
}

/// Flosses the sweep's network from initialisation for k in {1, 16, 32} and plots the spectra.
fn spectra_section(
    cfg: &ExperimentConfig,
    out: &Path,
    figures: &mut Vec<crate::plot::SavedFigure>,
) -> Result<String> {
    let Some(floss) = cfg.dynamics.as_ref().and_then(|d| d.flossing.as_ref()) else {
        return Ok(String::new());
    };
    let measure = SpectrumConfig {
        exponents: 50,
        sequences: 8,
        ..floss.spectrum.clone()
    };
    let mut text = String::from("\n## Spectra before and after flossing from initialisation (500 steps)\n\n| k | lambda_1 before | lambda_1 after | lambda_k after | lambda_k+1 after |\n|---|---|---|---|---|\n");
    let mut chart = Lines::new(
        "Lyapunov spectrum before and after flossing k exponents",
        "index i",
        "lambda_i (per step)",
    );
    let x: Vec<f64> = (1..=measure.exponents).map(|i| i as f64).collect();
    for (i, k) in [1usize, 16, 32].into_iter().enumerate() {
        let mut c = cfg.clone();
        if let Some(f) = c.dynamics.as_mut().and_then(|d| d.flossing.as_mut()) {
            f.spectrum.exponents = k;
        }
        let r = floss_from_init(&c, 500, &measure)?;
        if i == 0 {
            chart = chart.with("before", &x, &r.before.mean);
        }
        chart = chart.with(&format!("after, k = {k}"), &x, &r.after.mean);
        writeln!(
            text,
            "| {k} | {:.3} | {:.3} | {:.3} | {:.3} |",
            r.before.mean[0],
            r.after.mean[0],
            r.after.mean[k - 1],
            r.after.mean[k]
        )
        .ok();
    }
    figures.push(Figure::render(&chart)?.save(out, "spectrum_before_after")?);
    Ok(text)
}
