//! The sweep's figures: error against walk length and against input noise (mean ± SEM over
//! seeds, reference rows included), loss curves per seed for each model, and sample efficiency
//! (validation loss against training walks seen).

use std::collections::BTreeMap;

use super::collect::{model_order, Sweep};
use super::tables::{metric_columns, value, Column};
use crate::error::Result;
use crate::plot::{Figure, Lines};
use crate::report::NamedFigure;
use crate::stats::describe;

/// Every figure of the report.
pub fn all(sweep: &Sweep) -> Result<Vec<NamedFigure>> {
    let cols = metric_columns(sweep);
    let pick = |name: &str| cols.iter().find(|c| c.name == name).copied();
    let mut out = Vec::new();
    for (stem, col) in [
        (
            "error_vs_sequence_length",
            pick("home_distance_rmse").or(pick("position_rmse")),
        ),
        (
            "heading_error_vs_sequence_length",
            pick("heading_error_deg"),
        ),
    ] {
        if let Some(c) = col {
            out.push(named(stem, &versus(sweep, &c, Axis::Length)?)?);
        }
    }
    if sweep.splits().iter().any(|s| s.2 > 0.0) {
        if let Some(c) = pick("home_distance_rmse").or(pick("position_rmse")) {
            out.push(named("error_vs_noise", &versus(sweep, &c, Axis::Noise)?)?);
        }
    }
    for model in sweep.models().into_iter().filter(|m| model_order(m) < 4) {
        out.push(named(
            &format!("loss_curve_{model}"),
            &loss_curves(sweep, &model),
        )?);
    }
    out.push(named("sample_efficiency", &sample_efficiency(sweep))?);
    Ok(out)
}

fn named(stem: &str, chart: &Lines) -> Result<NamedFigure> {
    Ok(NamedFigure {
        stem: stem.to_string(),
        figure: Figure::render(chart)?,
    })
}

/// What the x axis sweeps.
#[derive(Clone, Copy, PartialEq)]
enum Axis {
    Length,
    Noise,
}

/// Metric `c` against walk length (clean splits) or input noise (at the longest length, the
/// clean split as σ = 0), one series per model, mean ± SEM over seeds.
fn versus(sweep: &Sweep, c: &Column, axis: Axis) -> Result<Lines> {
    let longest = sweep.splits().iter().map(|s| s.1).max().unwrap_or(0);
    let unit = if c.unit.is_empty() {
        String::new()
    } else {
        format!(" ({})", c.unit)
    };
    let (title, x_label) = match axis {
        Axis::Length => (
            format!("{} vs walk length (clean inputs)", c.name),
            "T (steps)".to_string(),
        ),
        Axis::Noise => (
            format!("{} vs input noise at T = {longest}", c.name),
            "input noise σ".to_string(),
        ),
    };
    let mut chart = Lines::new(&title, &x_label, &format!("{}{unit}, mean ± SEM", c.name));
    for model in sweep.models() {
        let mut by_x: BTreeMap<u64, (f64, Vec<f64>)> = BTreeMap::new();
        for r in sweep.rows.iter().filter(|r| r.model == model) {
            let x = match axis {
                Axis::Length if r.noise == 0.0 => r.steps as f64,
                Axis::Noise if r.steps == longest => r.noise,
                _ => continue,
            };
            if let Some(v) = value(sweep, r, c) {
                by_x.entry(x.to_bits()).or_insert((x, Vec::new())).1.push(v);
            }
        }
        let mut pts: Vec<(f64, f64, f64)> = by_x
            .values()
            .filter_map(|(x, v)| {
                let d = describe(v).ok()?;
                Some((*x, d.mean, d.std.map_or(0.0, |s| s / (d.n as f64).sqrt())))
            })
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if pts.is_empty() {
            continue;
        }
        let (x, y, e): (Vec<f64>, Vec<f64>, Vec<f64>) = (
            pts.iter().map(|p| p.0).collect(),
            pts.iter().map(|p| p.1).collect(),
            pts.iter().map(|p| p.2).collect(),
        );
        chart = chart.with_errors(&model, &x, &y, &e);
    }
    Ok(chart)
}

/// Training and validation loss per epoch, one pair of lines per seed.
fn loss_curves(sweep: &Sweep, model: &str) -> Lines {
    let mut chart = Lines::new(
        &format!("{model}: loss per epoch, each seed"),
        "epoch",
        "task loss",
    );
    for run in sweep.runs.iter().filter(|r| r.model == model) {
        let x: Vec<f64> = run.history.iter().map(|h| h.epoch as f64).collect();
        let tr: Vec<f64> = run.history.iter().map(|h| h.train_loss).collect();
        let va: Vec<f64> = run.history.iter().map(|h| h.val_loss).collect();
        chart = chart
            .with(&format!("seed {} train", run.seed), &x, &tr)
            .with(&format!("seed {} val", run.seed), &x, &va);
    }
    chart
}

/// Mean validation loss over seeds against training walks seen (epochs x training walks).
fn sample_efficiency(sweep: &Sweep) -> Lines {
    let per_epoch = sweep.data.train_sequences as f64;
    let mut chart = Lines::new(
        "sample efficiency: validation loss vs training walks seen",
        "training walks seen",
        "validation loss (mean over seeds)",
    );
    for model in sweep.models().into_iter().filter(|m| model_order(m) < 4) {
        let mut by_epoch: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for run in sweep.runs.iter().filter(|r| r.model == model) {
            for h in &run.history {
                by_epoch.entry(h.epoch).or_default().push(h.val_loss);
            }
        }
        let x: Vec<f64> = by_epoch.keys().map(|&e| e as f64 * per_epoch).collect();
        let y: Vec<f64> = by_epoch
            .values()
            .map(|v| v.iter().sum::<f64>() / v.len() as f64)
            .collect();
        chart = chart.with(&model, &x, &y);
    }
    chart
}
