//! `summary.md` and `sweep_report.md`: what a researcher reads first, every sentence computed
//! from the tables (best row per length and metric, the connectome against each control metric
//! by metric, including the metrics it loses).

use std::fmt::Write as _;

use polars::prelude::DataFrame;

use super::collect::{model_order, Sweep, BASELINE};
use super::paired::PairedRow;
use super::tables::{direction, metric_columns, relative, value};
use crate::error::Result;
use crate::stats::describe;

/// A markdown table.
fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut s = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for r in rows {
        let _ = writeln!(s, "| {} |", r.join(" | "));
    }
    s
}

/// `mean ± std` (4 significant decimals).
fn pm(vals: &[f64]) -> String {
    match describe(vals) {
        Ok(d) => match d.std {
            Some(s) => format!("{:.4} ± {:.4}", d.mean, s),
            None => format!("{:.4}", d.mean),
        },
        Err(_) => "–".into(),
    }
}

/// Values of a metric column for `model` on `split` over seeds (or the reference's one value).
fn values_of(sweep: &Sweep, model: &str, split: &str, c: &super::tables::Column) -> Vec<f64> {
    sweep
        .rows
        .iter()
        .filter(|r| r.model == model && r.split == split)
        .filter_map(|r| value(sweep, r, c))
        .collect()
}

/// `summary.md`.
pub fn summary(sweep: &Sweep, paired: &[PairedRow]) -> Result<String> {
    let mut s = String::from("# Summary\n\n");
    let core = sweep
        .runs
        .iter()
        .find(|r| r.model == BASELINE)
        .or_else(|| sweep.runs.iter().find(|r| r.bpu().is_some()));
    if let Some(run) = core {
        let g = |p: &str| {
            // + 0.0 turns a stored -0 into 0
            run.graph_f64(p).map(|v| v + 0.0).map_or("–".into(), |v| {
                if v.fract() == 0.0 {
                    format!("{v}")
                } else {
                    format!("{v:.4}")
                }
            })
        };
        let _ = writeln!(
            s,
            "A {} connectome core: only the input and output adapters train{}. Connectome: {} neurons, {} edges ({} self-loops, total weight {}), gap junctions `{}`, {} (sign coverage {}). Pools: sensory {}, internal {}, output {}. K = {} ({}; median sensory -> output path {}). Raw spectral radius {}, scaled to {}.\n",
            run.train_mode(),
            if run.train_mode() == "observed" { ", and the observed edge values" } else { "" },
            g("/graph/n"), g("/graph/edges"), g("/graph/self_loops"), g("/graph/total_weight"),
            run.graph_str("/graph/gap_policy").unwrap_or_default(),
            if run.graph.as_ref().and_then(|j| j.pointer("/graph/signed")).and_then(|v| v.as_bool()) == Some(true) { "signed" } else { "unsigned" },
            g("/graph/sign_coverage"),
            g("/pools/sensory"), g("/pools/internal"), g("/pools/output"),
            g("/microsteps"), run.graph_str("/microsteps_source").unwrap_or_default(), g("/k_estimate/median"),
            g("/primary_radius/value"), g("/spectral_radius/value"),
        );
        if let Some(a) = run
            .graph
            .as_ref()
            .and_then(|j| j.get("heuristic_agreement"))
            .filter(|a| !a.is_null())
        {
            let _ = writeln!(
                s,
                "Upstream's degree-imbalance pools agree with the annotations on {:.1}% of neurons; {} annotated sensory/output neurons land in the opposite pool.\n",
                100.0 * a.get("agreement").and_then(|v| v.as_f64()).unwrap_or(f64::NAN),
                a.get("inverted").and_then(|v| v.as_u64()).unwrap_or(0)
            );
        }
    }
    let _ = writeln!(s, "## Best model per test split and metric\n\nMean ± std over seeds; the reference rows (mean predictor, oracle integrator) are not trained and are shown for scale.\n");
    for (split, steps, noise) in sweep.splits() {
        let _ = writeln!(s, "### {split} (T = {steps}, input noise σ = {noise})\n");
        let header: Vec<String> = [
            "metric",
            "direction",
            "best trained model",
            "its value",
            "connectome",
            "mean predictor",
            "oracle integrator",
        ]
        .map(String::from)
        .to_vec();
        let mut rows = Vec::new();
        for c in metric_columns(sweep) {
            let mut best: Option<(String, f64)> = None;
            for m in sweep.models().into_iter().filter(|m| model_order(m) < 4) {
                let v = values_of(sweep, &m, &split, &c);
                let Ok(d) = describe(&v) else { continue };
                let better = best
                    .as_ref()
                    .is_none_or(|(_, b)| c.mode.better_first(d.mean, *b).is_lt());
                if better {
                    best = Some((m, d.mean));
                }
            }
            let Some((bm, _)) = best else { continue };
            rows.push(vec![
                format!(
                    "{} ({})",
                    c.name,
                    if c.unit.is_empty() { "-" } else { c.unit }
                ),
                direction(c.mode).into(),
                bm.clone(),
                pm(&values_of(sweep, &bm, &split, &c)),
                pm(&values_of(sweep, BASELINE, &split, &c)),
                pm(&values_of(sweep, "mean_predictor", &split, &c)),
                pm(&values_of(sweep, "oracle_integrator", &split, &c)),
            ]);
        }
        s.push_str(&table(&header, &rows));
        s.push('\n');
    }
    s.push_str(&verdicts(paired));
    Ok(s)
}

/// The connectome against each other model: metrics won and lost, per split.
fn verdicts(paired: &[PairedRow]) -> String {
    let mut s = String::from("## The connectome against each model\n\nPaired over seeds (connectome minus the other model, each metric in its own direction). `p` is the paired t-test; with 2-3 seeds read the sign and size of the deltas, not the p-values.\n\n");
    let mut others: Vec<&str> = paired.iter().map(|p| p.baseline.as_str()).collect();
    others.sort_by_key(|m| (model_order(m), m.to_string()));
    others.dedup();
    for other in others {
        let rows: Vec<&PairedRow> = paired.iter().filter(|p| p.baseline == other).collect();
        let wins = rows.iter().filter(|p| p.connectome_better).count();
        let _ = writeln!(s, "### vs {other} ({})\n\nThe connectome is better on {wins} of {} (split, metric) pairs.\n", rows.first().map_or("", |r| r.kind), rows.len());
        let listed = |better: bool| -> Vec<String> {
            rows.iter()
                .filter(|p| p.connectome_better == better)
                .map(|p| {
                    format!(
                        "{} on {} (Δ {:+.4}{})",
                        p.metric.name,
                        p.split,
                        p.mean_delta,
                        p.t_pvalue.map_or(String::new(), |v| format!(", p {v:.3}"))
                    )
                })
                .collect()
        };
        let (won, lost) = (listed(true), listed(false));
        let _ = writeln!(
            s,
            "- better: {}\n- worse or equal: {}\n",
            if won.is_empty() {
                "none".into()
            } else {
                won.join("; ")
            },
            if lost.is_empty() {
                "none".into()
            } else {
                lost.join("; ")
            }
        );
    }
    s
}

/// `sweep_report.md`.
pub fn sweep_report(
    sweep: &Sweep,
    leaderboard: &DataFrame,
    paired: &[PairedRow],
    failures: usize,
) -> Result<String> {
    let mut s = format!(
        "# Sweep report\n\n- runs: {}\n- completed runs: {}\n- unfinished runs: {}\n- metric rows: {}\n- primary metric: best validation loss (the task loss, lower is better)\n- failed validation checks: {failures} (see data_validation.md, bpu_validation.md, control_validation.md)\n\n## Leaderboard\n\n",
        sweep.root.display(),
        sweep.runs.len(),
        sweep.unfinished.len(),
        sweep.rows.len(),
    );
    let names: Vec<String> = leaderboard
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .filter(|c| !c.ends_with("_std") && !c.starts_with("delta_vs_"))
        .collect();
    let rows: Vec<Vec<String>> = (0..leaderboard.height())
        .map(|i| {
            names
                .iter()
                .map(|n| {
                    leaderboard
                        .column(n)
                        .ok()
                        .and_then(|c| crate::frame::cell_text(c, i))
                        .map(|t| {
                            t.parse::<f64>().map_or(t.clone(), |v| {
                                if v.fract() == 0.0 {
                                    format!("{v}")
                                } else {
                                    format!("{v:.4}")
                                }
                            })
                        })
                        .unwrap_or_else(|| "–".into())
                })
                .collect()
        })
        .collect();
    s.push_str(&table(&names, &rows));
    s.push_str("\n## Matched-topology comparisons on the training-length test\n\n");
    let header: Vec<String> = [
        "control",
        "metric",
        "direction",
        "seeds",
        "mean Δ (connectome − control)",
        "se",
        "t p",
        "connectome better",
    ]
    .map(String::from)
    .to_vec();
    let rows: Vec<Vec<String>> = paired
        .iter()
        .filter(|p| p.kind == "matched_topology_control" && p.split == "test")
        .map(|p| {
            vec![
                p.baseline.clone(),
                p.metric.name.into(),
                direction(p.metric.mode).into(),
                p.n.to_string(),
                format!("{:+.4}", p.mean_delta),
                p.se_delta.map_or("–".into(), |v| format!("{v:.4}")),
                p.t_pvalue.map_or("–".into(), |v| format!("{v:.3}")),
                if p.connectome_better {
                    "yes".into()
                } else {
                    "no".into()
                },
            ]
        })
        .collect();
    s.push_str(&table(&header, &rows));
    s.push_str("\n## Runs that did not complete\n\n");
    if sweep.unfinished.is_empty() {
        s.push_str("None.\n");
    } else {
        let rows: Vec<Vec<String>> = sweep
            .unfinished
            .iter()
            .map(|(p, st, e)| vec![relative(p, sweep), st.clone(), e.clone()])
            .collect();
        s.push_str(&table(
            &["run".into(), "status".into(), "error".into()],
            &rows,
        ));
    }
    s.push_str("\n## Run directories\n\n");
    for r in &sweep.runs {
        let _ = writeln!(
            s,
            "- `{}` ({} seed {}, commit {})",
            relative(&r.path, sweep),
            r.model,
            r.seed,
            r.metrics
                .git_commit
                .as_deref()
                .map_or("unknown", |c| c.get(..10).unwrap_or(c))
        );
    }
    Ok(s)
}
