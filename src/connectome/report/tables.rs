//! The sweep's CSV tables as frames: upstream's columns (renamed from the task's metrics, with
//! unit-suffixed twins), every metric with a declared direction.

use std::collections::BTreeMap;

use polars::prelude::DataFrame;

use super::collect::{RunInfo, SeedRow, Sweep};
use crate::config::PathTargets;
use crate::error::Result;
use crate::frame::{Frame, Values};
use crate::metric::Mode;
use crate::stats::describe;

/// An upstream column: its name, the task metric it comes from, whether it is converted to
/// degrees, and its direction.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Column name.
    pub name: &'static str,
    /// The task's metric (or `drift_slope_vs_T`, computed here).
    pub source: &'static str,
    /// Radians -> degrees.
    pub degrees: bool,
    /// Which way is better.
    pub mode: Mode,
    /// Unit.
    pub unit: &'static str,
}

const fn col(
    name: &'static str,
    source: &'static str,
    degrees: bool,
    mode: Mode,
    unit: &'static str,
) -> Column {
    Column {
        name,
        source,
        degrees,
        mode,
        unit,
    }
}

const COMMON: [Column; 7] = [
    col("mse", "loss", false, Mode::Min, ""),
    col(
        "heading_angular_error",
        "heading_error",
        false,
        Mode::Min,
        "rad",
    ),
    col(
        "heading_error_rad",
        "heading_error",
        false,
        Mode::Min,
        "rad",
    ),
    col("heading_error_deg", "heading_error", true, Mode::Min, "deg"),
    col(
        "position_rmse",
        "position_rmse",
        false,
        Mode::Min,
        "world units",
    ),
    col(
        "final_home_vector_cosine",
        "final_home_vector_cosine",
        false,
        Mode::Max,
        "",
    ),
    col(
        "final_displacement_error",
        "final_displacement_error",
        false,
        Mode::Min,
        "world units",
    ),
];

const POLAR: [Column; 6] = [
    col("bump_mse", "bump_mse", false, Mode::Min, ""),
    col(
        "heading_bump_angular_error",
        "heading_error",
        false,
        Mode::Min,
        "rad",
    ),
    col(
        "home_bearing_angular_error",
        "home_bearing_error",
        false,
        Mode::Min,
        "rad",
    ),
    col(
        "home_bearing_error_deg",
        "home_bearing_error",
        true,
        Mode::Min,
        "deg",
    ),
    col(
        "home_distance_rmse",
        "position_rmse",
        false,
        Mode::Min,
        "world units",
    ),
    col(
        "final_home_distance_error",
        "final_displacement_error",
        false,
        Mode::Min,
        "world units",
    ),
];

/// The slope of the final displacement error against T over the clean tests, per run.
pub const DRIFT: Column = col(
    "drift_slope_vs_T",
    "drift_slope_vs_T",
    false,
    Mode::Min,
    "world units / step",
);

/// The metric columns of `sweep`'s targets, drift last.
pub fn metric_columns(sweep: &Sweep) -> Vec<Column> {
    let mut cols = COMMON.to_vec();
    if sweep.data.targets == PathTargets::PolarBump {
        cols.extend(POLAR);
    }
    cols.push(DRIFT);
    cols
}

/// The value of column `c` in `row` (drift from the row's model and seed).
pub fn value(sweep: &Sweep, row: &SeedRow, c: &Column) -> Option<f64> {
    if c.source == DRIFT.source {
        return drift(sweep, &row.model, row.seed);
    }
    let v = row.values.get(c.source).copied()?;
    Some(if c.degrees { v.to_degrees() } else { v })
}

/// Least-squares slope of `final_displacement_error` against T over the clean test splits.
pub fn drift(sweep: &Sweep, model: &str, seed: Option<u64>) -> Option<f64> {
    let pts: Vec<(f64, f64)> = sweep
        .rows
        .iter()
        .filter(|r| r.model == model && r.seed == seed && r.noise == 0.0)
        .filter_map(|r| Some((r.steps as f64, *r.values.get("final_displacement_error")?)))
        .collect();
    if pts.len() < 2 {
        return None;
    }
    let n = pts.len() as f64;
    let (mx, my) = (
        pts.iter().map(|p| p.0).sum::<f64>() / n,
        pts.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// Run-level numbers of the row's run (empty for reference rows).
fn run_fields(run: Option<&RunInfo>) -> [Option<f64>; 9] {
    let Some(r) = run else { return [None; 9] };
    let best_val = r.metrics.objective.as_ref().and_then(|o| o.best);
    let edges = r.graph_f64("/trained_edges");
    let observed = r.train_mode() == "observed";
    [
        Some(r.metrics.epochs_done as f64),
        r.history.last().map(|h| h.train_loss),
        best_val,
        Some(r.metrics.params as f64),
        edges,
        edges,
        edges.map(|e| if observed { e } else { 0.0 }),
        r.graph_f64("/microsteps"),
        r.graph_f64("/spectral_radius/value"),
    ]
}

const RUN_COLUMNS: [&str; 9] = [
    "epochs_ran",
    "final_train_loss",
    "best_val_loss",
    "trainable_parameter_count",
    "frozen_edge_count",
    "recurrent_parameter_count",
    "trainable_recurrent_parameter_count",
    "K",
    "spectral_radius",
];

/// `metrics_by_seed.csv`: one row per (model, seed, split), reference models with no seed.
pub fn metrics_by_seed(sweep: &Sweep) -> Result<DataFrame> {
    let rows = &sweep.rows;
    let run = |r: &SeedRow| r.run.map(|i| &sweep.runs[i]);
    let mut f = Frame::new()
        .with("seed", Values::U64(rows.iter().map(|r| r.seed).collect()))
        .strs("model", rows.iter().map(|r| r.model.clone()))
        .strs(
            "task",
            rows.iter()
                .map(|_| format!("path_integration_{}", targets_name(sweep))),
        )
        .strs("split", rows.iter().map(|r| r.split.clone()))
        .u64s("T", rows.iter().map(|r| r.steps as u64))
        .f64s("noise_std", rows.iter().map(|r| r.noise));
    for (i, name) in RUN_COLUMNS.iter().enumerate() {
        f.push(
            *name,
            Values::F64(rows.iter().map(|r| run_fields(run(r))[i]).collect()),
        );
    }
    f.push(
        "recurrent_train_mode",
        Values::Str(
            rows.iter()
                .map(|r| run(r).map(|x| x.train_mode().to_string()))
                .collect(),
        ),
    );
    f.push(
        "control_hash",
        Values::Str(
            rows.iter()
                .map(|r| run(r).and_then(|x| x.graph_str("/trained_matrix_hash")))
                .collect(),
        ),
    );
    f.push(
        "train_ms_per_sequence",
        Values::F64(
            rows.iter()
                .map(|r| run(r).map(|x| train_ms_per_sequence(x, sweep)))
                .collect(),
        ),
    );
    for c in metric_columns(sweep) {
        f.push(
            c.name,
            Values::F64(rows.iter().map(|r| value(sweep, r, &c)).collect()),
        );
    }
    f.push(
        "run_dir",
        Values::Str(
            rows.iter()
                .map(|r| run(r).map(|x| relative(&x.path, sweep)))
                .collect(),
        ),
    );
    f.finish()
}

fn targets_name(sweep: &Sweep) -> &'static str {
    match sweep.data.targets {
        PathTargets::Cartesian => "cartesian",
        PathTargets::PolarBump => "polar_bump",
    }
}

/// Mean training-epoch wall time per training walk, in ms.
fn train_ms_per_sequence(run: &RunInfo, sweep: &Sweep) -> f64 {
    let n = run.history.len().max(1) as f64;
    let secs: f64 = run.history.iter().map(|h| h.epoch_time_s).sum::<f64>() / n;
    1000.0 * secs / sweep.data.train_sequences.max(1) as f64
}

/// A run directory relative to the sweep root.
pub fn relative(path: &std::path::Path, sweep: &Sweep) -> String {
    path.strip_prefix(&sweep.root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// `metrics_summary.csv`: mean and sample std (ddof 1) over seeds per (model, split).
pub fn metrics_summary(sweep: &Sweep) -> Result<DataFrame> {
    let cols = metric_columns(sweep);
    let (mut model, mut split, mut t, mut noise, mut n) = (vec![], vec![], vec![], vec![], vec![]);
    let mut stats: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    let mut order = Vec::new();
    for m in sweep.models() {
        for (s, steps, sigma) in sweep.splits() {
            let rows: Vec<&SeedRow> = sweep
                .rows
                .iter()
                .filter(|r| r.model == m && r.split == s)
                .collect();
            if rows.is_empty() {
                continue;
            }
            model.push(m.clone());
            split.push(s.clone());
            t.push(steps as u64);
            noise.push(sigma);
            n.push(rows.len() as u64);
            let mut push = |name: String, vals: Vec<f64>| {
                if !order.contains(&name) {
                    order.push(name.clone());
                }
                let d = describe(&vals).ok();
                stats
                    .entry(format!("{name}_mean"))
                    .or_default()
                    .push(d.as_ref().map(|d| d.mean));
                stats
                    .entry(format!("{name}_std"))
                    .or_default()
                    .push(d.and_then(|d| d.std));
            };
            for c in &cols {
                push(
                    c.name.to_string(),
                    rows.iter().filter_map(|r| value(sweep, r, c)).collect(),
                );
            }
            for (i, name) in RUN_COLUMNS.iter().enumerate().take(3) {
                push(
                    name.to_string(),
                    rows.iter()
                        .filter_map(|r| run_fields(r.run.map(|k| &sweep.runs[k]))[i])
                        .collect(),
                );
            }
        }
    }
    let mut f = Frame::new()
        .strs("model", model)
        .strs("split", split)
        .u64s("T", t)
        .f64s("noise_std", noise)
        .u64s("n_seeds", n);
    for name in order {
        for suffix in ["mean", "std"] {
            let key = format!("{name}_{suffix}");
            let v = stats.remove(&key).unwrap_or_default();
            f.push(key, Values::F64(v));
        }
    }
    f.finish()
}

/// `loss_history.csv`: seed, model, epoch, train_mse, val_mse (the task loss, upstream's
/// names), best_val_mse so far, patience_wait (epochs since it last improved), epoch time.
pub fn loss_history(sweep: &Sweep) -> Result<DataFrame> {
    let (mut seed, mut model, mut epoch, mut train, mut val, mut best, mut wait, mut time) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    for run in &sweep.runs {
        let mut b = f64::INFINITY;
        let mut since = 0u64;
        for h in &run.history {
            if h.val_loss < b - 1e-7 {
                b = h.val_loss;
                since = 0;
            } else {
                since += 1;
            }
            seed.push(run.seed);
            model.push(run.model.clone());
            epoch.push(h.epoch as u64);
            train.push(h.train_loss);
            val.push(h.val_loss);
            best.push(b);
            wait.push(since);
            time.push(h.epoch_time_s);
        }
    }
    Frame::new()
        .u64s("seed", seed)
        .strs("model", model)
        .u64s("epoch", epoch)
        .f64s("train_mse", train)
        .f64s("val_mse", val)
        .f64s("best_val_mse", best)
        .u64s("patience_wait", wait)
        .f64s("epoch_time_s", time)
        .finish()
}

/// `lower is better` / `higher is better`.
pub fn direction(mode: Mode) -> &'static str {
    match mode {
        Mode::Min => "lower is better",
        Mode::Max => "higher is better",
    }
}

/// `leaderboard.csv`: trained models ranked by mean best validation loss; mean and std of
/// every metric on the training-length test split; `delta_vs_<model>` of that loss for every
/// other model, signed so that positive means better.
pub fn leaderboard(sweep: &Sweep) -> Result<DataFrame> {
    let models: Vec<String> = sweep
        .models()
        .into_iter()
        .filter(|m| sweep.runs.iter().any(|r| &r.model == m))
        .collect();
    let best_val = |m: &str| -> Vec<f64> {
        sweep
            .runs
            .iter()
            .filter(|r| r.model == m)
            .filter_map(|r| r.metrics.objective.as_ref().and_then(|o| o.best))
            .collect()
    };
    let mut ranked: Vec<(String, f64)> = models
        .iter()
        .map(|m| {
            (
                m.clone(),
                describe(&best_val(m)).map_or(f64::INFINITY, |d| d.mean),
            )
        })
        .collect();
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut f = Frame::new()
        .u64s("rank", (1..=ranked.len() as u64).collect::<Vec<_>>())
        .strs("model", ranked.iter().map(|r| r.0.clone()))
        .u64s(
            "n_seeds",
            ranked.iter().map(|r| best_val(&r.0).len() as u64),
        )
        .f64s("best_val_loss_mean", ranked.iter().map(|r| r.1));
    f.push(
        "best_val_loss_std",
        Values::F64(
            ranked
                .iter()
                .map(|r| describe(&best_val(&r.0)).ok().and_then(|d| d.std))
                .collect(),
        ),
    );
    for c in metric_columns(sweep) {
        let stat = |m: &str| -> Option<crate::stats::Describe> {
            let vals: Vec<f64> = sweep
                .seeds_of(m, "test")
                .values()
                .filter_map(|r| value(sweep, r, &c))
                .collect();
            describe(&vals).ok()
        };
        f.push(
            format!("test_{}_mean", c.name),
            Values::F64(ranked.iter().map(|r| stat(&r.0).map(|d| d.mean)).collect()),
        );
        f.push(
            format!("test_{}_std", c.name),
            Values::F64(
                ranked
                    .iter()
                    .map(|r| stat(&r.0).and_then(|d| d.std))
                    .collect(),
            ),
        );
    }
    let first = |m: &str, pick: fn(&RunInfo) -> Option<f64>| {
        sweep.runs.iter().find(|r| r.model == m).and_then(pick)
    };
    f.push(
        "trainable_params",
        Values::F64(
            ranked
                .iter()
                .map(|r| first(&r.0, |x| Some(x.metrics.params as f64)))
                .collect(),
        ),
    );
    f.push(
        "recurrent_edges",
        Values::F64(
            ranked
                .iter()
                .map(|r| first(&r.0, |x| x.graph_f64("/trained_edges")))
                .collect(),
        ),
    );
    f.push(
        "connectome_N",
        Values::F64(
            ranked
                .iter()
                .map(|r| first(&r.0, |x| x.graph_f64("/graph/n")))
                .collect(),
        ),
    );
    f.push(
        "K",
        Values::F64(
            ranked
                .iter()
                .map(|r| first(&r.0, |x| x.graph_f64("/microsteps")))
                .collect(),
        ),
    );
    for (other, other_mean) in &ranked {
        f.push(
            format!("delta_vs_{other}"),
            Values::F64(
                ranked
                    .iter()
                    .map(|(m, mean)| (m != other).then(|| other_mean - mean))
                    .collect(),
            ),
        );
    }
    f.finish()
}
