//! Analysis end to end on synthetic run directories: scan, statistics against an independent
//! computation, leaderboard and report against golden files, figures rendered headless.

use std::path::{Path, PathBuf};

use autoresearch::frame::{f64_column, str_column};
use autoresearch::plot::{Figure, LearningCurves, MembraneTrace, SpikeRaster};
use autoresearch::report::{
    replace_section, Annotations, EvidenceReport, Fidelity, Leaderboard, References, ReportOptions,
};
use autoresearch::runs::scan;
use autoresearch::stats::{paired_comparisons, summarize, Group, Pair, PAIRED_COLUMNS};

/// Best validation accuracy of seeds 0-4 of the three synthetic experiments.
const A: [f64; 5] = [0.9712, 0.9698, 0.9731, 0.9705, 0.9720];
const B: [f64; 5] = [0.9755, 0.9746, 0.9762, 0.9739, 0.9771];
const C: [f64; 5] = [0.9650, 0.9702, 0.9688, 0.9641, 0.9679];

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `metrics.json` of a run.
fn metrics(exp: &str, seed: u64, status: &str, best: Option<f64>, epochs: usize) -> String {
    let finished = if status == "running" {
        "null".to_string()
    } else {
        format!("\"2026-11-{:02}T10:00:00Z\"", 20 + seed)
    };
    let best = best.map_or("null".into(), |b| b.to_string());
    format!(
        r#"{{"schema_version": 1, "experiment": "{exp}", "variant": "default", "model": "snn_ffnn",
"dataset": "mnist", "seed": {seed}, "status": "{status}", "best_val_acc": {best},
"best_epoch": {epochs}, "final_val_acc": {best}, "test_acc": {best}, "test_loss": 0.1,
"epochs_done": {epochs}, "epochs_planned": 3, "early_stopped": false, "params": 535818,
"wall_time_s": 12.5, "started_at": "2026-11-19T09:00:00Z", "finished_at": {finished},
"host": "node1", "git_commit": "0123456789abcdef0123", "resumed": 0, "error": null}}"#
    )
}

/// Three experiments x five seeds, one corrupt run and one running run under `root/runs`.
pub(crate) fn synthetic_runs(root: &Path) -> PathBuf {
    let runs = root.join("runs");
    for (exp, values, lr) in [
        ("exp_a", A, 0.001),
        ("exp_b", B, 0.002),
        ("exp_c", C, 0.003),
    ] {
        for (seed, best) in values.iter().enumerate() {
            let dir = runs.join(exp).join("default").join(format!("seed_{seed}"));
            write(
                &dir.join("metrics.json"),
                &metrics(exp, seed as u64, "completed", Some(*best), 3),
            );
            write(
                &dir.join("config.yaml"),
                &format!(
                    "name: {exp}\nseed: {seed}\noptimizer:\n  kind: adam\n  lr: {lr}\nepochs: 3\n"
                ),
            );
            let mut csv = String::from(
                "epoch,train_loss,train_acc,val_loss,val_acc,lr,epoch_time_s,rate_lif1\n",
            );
            for epoch in 1..=3 {
                let acc = best - 0.01 * (3 - epoch) as f64;
                csv += &format!("{epoch},0.5,{acc},0.3,{acc},{lr},4.0,0.12\n");
            }
            write(&dir.join("history.csv"), &csv);
        }
    }
    let broken = runs.join("exp_a").join("broken").join("seed_0");
    write(
        &broken.join("metrics.json"),
        "{\"schema_version\": 1, \"experiment\": ",
    );
    let running = runs.join("exp_b").join("default").join("seed_5");
    write(
        &running.join("metrics.json"),
        &metrics("exp_b", 5, "running", Some(0.95), 1),
    );
    write(&running.join("config.yaml"), "name: exp_b\nseed: 5\n");
    write(
        &running.join("history.csv"),
        "epoch,train_loss,train_acc,val_loss,val_acc,lr,epoch_time_s\n1,0.5,0.9,0.3,0.95,0.002,4.0\n",
    );
    runs
}

fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= 1e-9, "{what}: {got} vs {want}");
}

#[test]
fn scan_lists_every_run_with_status_and_the_corrupt_file_as_a_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = synthetic_runs(tmp.path());
    let found = scan(&runs).unwrap();
    assert_eq!(found.runs.height(), 16);
    let status = str_column(&found.runs, "status").unwrap();
    assert_eq!(
        status
            .iter()
            .filter(|s| s.as_deref() == Some("running"))
            .count(),
        1
    );
    assert_eq!(
        status
            .iter()
            .filter(|s| s.as_deref() == Some("completed"))
            .count(),
        15
    );
    assert_eq!(found.problems.len(), 1, "{:?}", found.problems);
    assert!(found.problems[0]
        .path
        .ends_with("exp_a/broken/seed_0/metrics.json"));
    assert!(
        found.problems[0].reason.contains("not valid JSON"),
        "{}",
        found.problems[0].reason
    );
    // config scalars are flattened into typed columns
    let lr = f64_column(&found.runs, "config.optimizer.lr").unwrap();
    assert_eq!(lr.iter().flatten().filter(|v| **v == 0.002).count(), 5);
    assert_eq!(
        str_column(&found.runs, "config.optimizer.kind").unwrap()[0].as_deref(),
        Some("adam")
    );
    // history: 15 runs x 3 epochs + the running run's one epoch; the extra column is null there
    assert_eq!(found.history.height(), 46);
    let rate = f64_column(&found.history, "rate_lif1").unwrap();
    assert_eq!(rate.iter().filter(|v| v.is_none()).count(), 1);
    // a foreign schema and a missing root
    let foreign = runs.join("exp_c").join("old").join("seed_0");
    write(&foreign.join("metrics.json"), "{\"schema_version\": 7}");
    let again = scan(&runs).unwrap();
    assert_eq!(again.problems.len(), 2);
    assert!(again
        .problems
        .iter()
        .any(|p| p.reason.contains("schema_version 7")));
    assert!(scan(tmp.path().join("nowhere")).is_err());
}

// Expected values computed independently with NumPy 2 / SciPy 1.16 from A, B and C (see the
// comments at each use), printed with repr() so every digit is kept.
const MEAN_A: f64 = 0.9713200000000001;
const STD_A: f64 = 0.0012872451204024643;
const LO_A: f64 = 0.9697216740771328;
const HI_A: f64 = 0.9729183259228673;
const MEAN_B: f64 = 0.97546;
const STD_B: f64 = 0.001266096362841296;
const LO_B: f64 = 0.9738879337280032;
const HI_B: f64 = 0.9770320662719968;
const MEAN_C: f64 = 0.9672000000000001;
const STD_C: f64 = 0.0025739075352467534;
const LO_C: f64 = 0.9640040716787788;
const HI_C: f64 = 0.9703959283212213;
const PAIRED: [[f64; 10]; 2] = [
    [
        0.00414000000000001,
        0.0008677557259966838,
        0.00038807215823865324,
        0.0030625389557947576,
        0.005217461044205262,
        10.668119091022316,
        0.00043729917131682817,
        0.0,
        0.0625,
        4.770927895917833,
    ],
    [
        -0.0041200000000000125,
        0.002738065010185106,
        0.00122449989791751,
        -0.0075197567478882815,
        -0.000720243252111744,
        -3.3646389085101918,
        0.02818335696264321,
        1.0,
        0.125,
        -1.504712263833897,
    ],
];

/// Summary statistics of A, B and C computed independently (NumPy/SciPy 1.16: `mean`,
/// `std(ddof=1)`, `scipy.stats.t.interval(0.95, n-1, mean, sem)`).
const SUMMARY: [(&str, f64, f64, f64, f64); 3] = [
    ("exp_a", MEAN_A, STD_A, LO_A, HI_A),
    ("exp_b", MEAN_B, STD_B, LO_B, HI_B),
    ("exp_c", MEAN_C, STD_C, LO_C, HI_C),
];

#[test]
fn summary_matches_an_independent_computation() {
    let tmp = tempfile::tempdir().unwrap();
    let found = scan(synthetic_runs(tmp.path())).unwrap();
    let s = summarize(&found.runs, "best_val_acc").unwrap();
    assert_eq!(
        s.height(),
        3,
        "the running run and the corrupt one are not summarised"
    );
    let exp = str_column(&s, "experiment").unwrap();
    let n = f64_column(&s, "n_seeds").unwrap();
    let (mean, std) = (
        f64_column(&s, "mean").unwrap(),
        f64_column(&s, "std").unwrap(),
    );
    let (lo, hi) = (
        f64_column(&s, "ci95_low").unwrap(),
        f64_column(&s, "ci95_high").unwrap(),
    );
    let best_seed = f64_column(&s, "best_seed").unwrap();
    for (i, (name, m, sd, l, h)) in SUMMARY.iter().enumerate() {
        assert_eq!(exp[i].as_deref(), Some(*name));
        assert_eq!(n[i], Some(5.0));
        close(mean[i].unwrap(), *m, "mean");
        close(std[i].unwrap(), *sd, "std");
        close(lo[i].unwrap(), *l, "ci95_low");
        close(hi[i].unwrap(), *h, "ci95_high");
    }
    assert_eq!(best_seed, vec![Some(2.0), Some(4.0), Some(1.0)]);
}

#[test]
fn paired_comparisons_match_an_independent_computation() {
    let tmp = tempfile::tempdir().unwrap();
    let found = scan(synthetic_runs(tmp.path())).unwrap();
    let g = |s: &str| Group::parse(s).unwrap();
    let p = paired_comparisons(
        &found.runs,
        "best_val_acc",
        &[
            Pair::new(g("exp_b"), g("exp_a")),
            Pair::new(g("exp_c"), g("exp_a")),
        ],
    )
    .unwrap();
    let names: Vec<String> = p.get_column_names().iter().map(|c| c.to_string()).collect();
    assert_eq!(names, PAIRED_COLUMNS);
    // NumPy/SciPy 1.16: deltas d = model - baseline; mean, std(ddof=1), sem, t.interval,
    // ttest_rel, wilcoxon (exact: no ties, no zeros), mean/std(ddof=1) for Cohen's d
    for (i, want) in PAIRED.iter().enumerate() {
        // every numeric column after paired_seed_count, in PAIRED_COLUMNS order
        for (col, w) in PAIRED_COLUMNS[5..].iter().zip(want) {
            close(f64_column(&p, col).unwrap()[i].unwrap(), *w, col);
        }
    }
    assert_eq!(
        f64_column(&p, "paired_seed_count").unwrap(),
        vec![Some(5.0), Some(5.0)]
    );
    // a group with no completed runs is named in the error
    let err = paired_comparisons(
        &found.runs,
        "best_val_acc",
        &[Pair::new(g("nope"), g("exp_a"))],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("nope") && err.contains("exp_a"), "{err}");
}

/// Compares `got` with the golden file `tests/golden/<name>`; `UPDATE_GOLDEN=1` rewrites it.
pub fn golden(name: &str, got: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        write(&path, got);
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert_eq!(got, want, "{} differs from the rendering", path.display());
}

pub(crate) fn annotations() -> Annotations {
    serde_yaml_ng::from_str(
        "entries:\n  exp_b: {project: snn-baselines, iteration: '2', notes: wider hidden layer}\n  exp_a: {project: snn-baselines, iteration: '1'}\n  exp_c: {project: snn-baselines, iteration: '3', status: invalid, notes: 'label leak in the encoder'}\n",
    )
    .unwrap()
}

#[test]
fn leaderboard_matches_its_golden_file_and_readme_replacement_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let found = scan(synthetic_runs(tmp.path())).unwrap();
    let board = Leaderboard::build(&found.runs, &annotations()).unwrap();
    let section = board.render(None).unwrap();
    golden("leaderboard.md", &section);
    let readme = "# Project\n\nText before.\n<!-- leaderboard:begin -->\nstale\n<!-- leaderboard:end -->\n\nText after.\n";
    let once = replace_section(readme, &section).unwrap();
    assert!(once.starts_with("# Project\n\nText before.\n<!-- leaderboard:begin -->\n"));
    assert!(once.ends_with("<!-- leaderboard:end -->\n\nText after.\n"));
    assert_eq!(replace_section(&once, &section).unwrap(), once);
}

#[test]
fn report_writes_markdown_csvs_and_figures_that_trace_to_run_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = synthetic_runs(tmp.path());
    let found = scan(&runs).unwrap();
    let mut options = ReportOptions::new(
        "exp_b against exp_a",
        vec![
            Group::parse("exp_a").unwrap(),
            Group::parse("exp_b").unwrap(),
        ],
        "runs",
    );
    options.generated = "2026-11-30 12:00 UTC".into();
    let report = EvidenceReport::build(&found, &options).unwrap();
    let out = tmp.path().join("reports").join("b_vs_a");
    let written = report.write(&out).unwrap();
    for name in [
        "report.md",
        "metrics_by_seed.csv",
        "metrics_summary.csv",
        "paired_comparisons.csv",
        "learning_curves.svg",
        "learning_curves.png",
        "final_metric.svg",
        "final_metric.png",
    ] {
        assert!(written.contains(&out.join(name)), "{name} not written");
    }
    let markdown = std::fs::read_to_string(out.join("report.md"))
        .unwrap()
        .replace(&tmp.path().display().to_string(), "<tmp>");
    golden("report.md", &markdown);
    // every run used is listed with its directory; the running run is listed as running
    assert_eq!(markdown.matches("| `<tmp>/runs/exp_").count(), 11);
    assert!(markdown.contains("| `<tmp>/runs/exp_b/default/seed_5` | running | no | 5 |"));
    let paired = std::fs::read_to_string(out.join("paired_comparisons.csv")).unwrap();
    assert!(paired.starts_with("model,baseline_model,comparison_type,metric,paired_seed_count,mean_delta,std_delta,se_delta,ci95_low,ci95_high,"));
    assert!(paired.contains("\nexp_b,exp_a,paired_by_seed,best_val_acc,5,"));
}

fn assert_png_and_svg(figure: &Figure, what: &str) {
    assert!(
        figure.png().starts_with(b"\x89PNG\r\n\x1a\n"),
        "{what}: not a PNG"
    );
    assert!(
        figure.png().len() > 5_000,
        "{what}: PNG of {} bytes",
        figure.png().len()
    );
    assert!(figure.svg().starts_with("<svg"), "{what}: not an SVG");
    assert!(figure.svg().contains("<text"), "{what}: SVG without text");
    assert!(
        figure.svg().len() > 2_000,
        "{what}: SVG of {} bytes",
        figure.svg().len()
    );
}

#[test]
fn figures_render_headless_with_the_bundled_font() {
    let tmp = tempfile::tempdir().unwrap();
    let found = scan(synthetic_runs(tmp.path())).unwrap();
    let curves = LearningCurves::from_history(&found.history, "val_acc").unwrap();
    assert_eq!(curves.curves.len(), 3);
    assert_eq!(
        curves.curves[1].seeds, 6,
        "exp_b: five completed seeds and the running one"
    );
    assert_png_and_svg(&Figure::render(&curves).unwrap(), "learning curves");
    let steps = 25;
    let raster = SpikeRaster {
        title: "lif1 spikes".into(),
        spikes: (0..steps)
            .map(|t| {
                (0..40)
                    .map(|n| f32::from(u8::from((t * 7 + n * 3) % 11 == 0)))
                    .collect()
            })
            .collect(),
    };
    assert_png_and_svg(&Figure::render(&raster).unwrap(), "raster");
    let trace = MembraneTrace {
        title: "lif1 membrane".into(),
        membrane: (0..steps)
            .map(|t| (0..3).map(|n| ((t + n) % 8) as f32 * 0.15).collect())
            .collect(),
        threshold: Some(1.0),
    };
    let fig = Figure::render(&trace).unwrap();
    assert_png_and_svg(&fig, "membrane");
    let saved = fig.save(tmp.path().join("figs"), "membrane").unwrap();
    assert!(std::fs::metadata(saved.svg).unwrap().len() > 2_000);
    assert!(std::fs::metadata(saved.png).unwrap().len() > 5_000);
}

#[test]
fn figures_show_inline_as_svg_or_base64_png() {
    use autoresearch::display::{NotebookDisplay, Png};
    use base64::Engine;
    let raster = SpikeRaster {
        title: "one spike".into(),
        spikes: vec![vec![0.0, 1.0], vec![1.0, 0.0]],
    };
    let figure = Figure::render(&raster).unwrap();
    let (mime, content) = figure.notebook_content();
    assert_eq!(mime, "image/svg+xml");
    assert_eq!(content, figure.svg());
    let (mime, content) = Png(figure.clone()).notebook_content();
    assert_eq!(mime, "image/png");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(content)
        .unwrap();
    assert_eq!(bytes, figure.png());
}

// ---------------------------------------------------------------------------------------------
// Schema 2: tasks with their own objective (a lower-is-better one among them), and version-1
// run directories alongside.

/// A schema-2 `metrics.json`: `objective` is `(metric, mode, unit)`, `best` its best value;
/// classification runs also fill the version-1 fields.
fn metrics_v2(
    exp: &str,
    dataset: &str,
    seed: u64,
    objective: (&str, &str, &str),
    best: f64,
    results: serde_json::Value,
) -> String {
    let classification = objective.0 == "val_acc";
    let declared = if classification {
        serde_json::json!([
            {"name": "acc", "mode": "max", "unit": "fraction"},
            {"name": "loss", "mode": "min", "unit": ""}
        ])
    } else {
        serde_json::json!([
            {"name": "loss", "mode": "min", "unit": ""},
            {"name": "position_rmse", "mode": "min", "unit": "world units"}
        ])
    };
    let legacy = |v: serde_json::Value| {
        if classification {
            v
        } else {
            serde_json::Value::Null
        }
    };
    serde_json::json!({
        "schema_version": 2, "experiment": exp, "variant": "default",
        "model": if classification { "cnn" } else { "srnn" },
        "dataset": dataset, "seed": seed, "status": "completed",
        "best_val_acc": legacy(best.into()), "best_epoch": 2,
        "final_val_acc": legacy(best.into()), "test_acc": legacy(results["test"]["acc"].clone()),
        "test_loss": legacy(results["test"]["loss"].clone()),
        "epochs_done": 2, "epochs_planned": 2, "early_stopped": false, "params": 1234,
        "wall_time_s": 3.5, "started_at": "2026-12-01T09:00:00Z",
        "finished_at": format!("2026-12-{:02}T10:00:00Z", 2 + seed),
        "host": "node2", "git_commit": "fedcba9876543210", "resumed": 0, "error": null,
        "objective": {"metric": objective.0, "mode": objective.1, "unit": objective.2,
                      "best": best, "best_epoch": 2},
        "declared": declared,
        "results": results,
    })
    .to_string()
}

/// One schema-2 run directory with a two-epoch history of `columns` (`train_*`, `val_*`).
fn run_v2(runs: &Path, exp: &str, seed: u64, metrics: &str, history: &str) {
    let dir = runs.join(exp).join("default").join(format!("seed_{seed}"));
    write(&dir.join("metrics.json"), metrics);
    write(
        &dir.join("config.yaml"),
        &format!("name: {exp}\nseed: {seed}\n"),
    );
    write(&dir.join("history.csv"), history);
}

/// Best validation position RMSE of seeds 0-2 (lower is better) of the path-integration
/// experiments; `pi_gru` is marked invalid.
const PI: [(&str, [f64; 3]); 3] = [
    ("pi_rnn", [0.42, 0.40, 0.44]),
    ("pi_lstm", [0.21, 0.25, 0.23]),
    ("pi_gru", [0.30, 0.31, 0.29]),
];

/// Path integration (objective `val_position_rmse`, min, world units; `pi_loss` optimises
/// `val_loss` instead), a schema-2 classification experiment and two version-1 ones, under
/// `root/runs`.
fn schema2_runs(root: &Path) -> PathBuf {
    let runs = root.join("runs");
    let rmse = ("val_position_rmse", "min", "world units");
    for (exp, values) in PI {
        for (seed, best) in values.iter().enumerate() {
            let results = serde_json::json!({
                "val": {"loss": best * best, "position_rmse": best},
                "test": {"loss": best * best + 0.01, "position_rmse": best + 0.02},
                "test_t200": {"position_rmse": best * 3.0},
            });
            let metrics = metrics_v2(exp, "path_integration", seed as u64, rmse, *best, results);
            let history = format!(
                "epoch,train_loss,train_position_rmse,val_loss,val_position_rmse,lr,epoch_time_s\n1,0.5,{},0.4,{},0.001,1.5\n2,0.3,{best},0.2,{best},0.001,1.5\n",
                best + 0.2,
                best + 0.1
            );
            run_v2(&runs, exp, seed as u64, &metrics, &history);
        }
    }
    for (seed, best) in [0.08, 0.06].iter().enumerate() {
        let results = serde_json::json!({"val": {"loss": best}, "test": {"loss": best + 0.01}});
        let metrics = metrics_v2(
            "pi_loss",
            "path_integration",
            seed as u64,
            ("val_loss", "min", ""),
            *best,
            results,
        );
        let history = format!(
            "epoch,train_loss,val_loss,lr,epoch_time_s\n1,0.5,0.2,0.001,1.5\n2,0.3,{best},0.001,1.5\n"
        );
        run_v2(&runs, "pi_loss", seed as u64, &metrics, &history);
    }
    for (seed, best) in [0.981, 0.985].iter().enumerate() {
        let results = serde_json::json!({
            "val": {"acc": best, "loss": 0.06},
            "test": {"acc": best - 0.002, "loss": 0.07},
        });
        let metrics = metrics_v2(
            "mnist_cnn",
            "mnist",
            seed as u64,
            ("val_acc", "max", "fraction"),
            *best,
            results,
        );
        let history = format!(
            "epoch,train_loss,train_acc,val_loss,val_acc,lr,epoch_time_s\n1,0.5,0.9,0.3,0.95,0.001,2.0\n2,0.2,0.97,0.06,{best},0.001,2.0\n"
        );
        run_v2(&runs, "mnist_cnn", seed as u64, &metrics, &history);
    }
    for (exp, values) in [("mnist_v1", [0.975, 0.979]), ("mnist_old", [0.95, 0.96])] {
        for (seed, best) in values.iter().enumerate() {
            let dir = runs.join(exp).join("default").join(format!("seed_{seed}"));
            write(
                &dir.join("metrics.json"),
                &metrics(exp, seed as u64, "completed", Some(*best), 3),
            );
            write(&dir.join("config.yaml"), &format!("name: {exp}\n"));
            write(
                &dir.join("history.csv"),
                &format!("epoch,train_loss,train_acc,val_loss,val_acc,lr,epoch_time_s,rate_lif1\n1,0.5,0.9,0.3,{best},0.001,4.0,0.1\n"),
            );
        }
    }
    runs
}

fn column_names(df: &autoresearch::polars::prelude::DataFrame) -> Vec<String> {
    df.get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect()
}

/// The value of `column` in the row of `runs` whose path ends with `tail`.
fn cell(runs: &autoresearch::polars::prelude::DataFrame, tail: &str, column: &str) -> Option<f64> {
    let path = str_column(runs, "path").unwrap();
    let i = path
        .iter()
        .position(|p| p.as_deref().is_some_and(|p| p.ends_with(tail)))
        .unwrap();
    f64_column(runs, column).unwrap()[i]
}

#[test]
fn schema_2_runs_scan_with_objective_result_and_history_columns() {
    use autoresearch::runs::{OBJECTIVE_COLUMNS, RUN_COLUMNS};
    let tmp = tempfile::tempdir().unwrap();
    let runs = schema2_runs(tmp.path());
    let found = scan(&runs).unwrap();
    assert!(found.problems.is_empty(), "{:?}", found.problems);
    assert_eq!(found.runs.height(), 9 + 2 + 2 + 4);
    let names = column_names(&found.runs);
    let n = RUN_COLUMNS.len() + OBJECTIVE_COLUMNS.len();
    assert_eq!(&names[..RUN_COLUMNS.len()], RUN_COLUMNS);
    assert_eq!(&names[RUN_COLUMNS.len()..n], OBJECTIVE_COLUMNS);
    // result columns: the union over runs, in name order, without repeating test_acc/test_loss
    assert_eq!(
        &names[n..n + 5],
        [
            "test_position_rmse",
            "test_t200_position_rmse",
            "val_acc",
            "val_loss",
            "val_position_rmse"
        ]
    );
    assert!(names[n + 5].starts_with("config."));
    let pi = "pi_rnn/default/seed_1";
    assert_eq!(cell(&found.runs, pi, "objective_best"), Some(0.40));
    assert_eq!(
        cell(&found.runs, pi, "test_t200_position_rmse"),
        Some(1.2000000000000002)
    );
    assert_eq!(cell(&found.runs, pi, "best_val_acc"), None);
    assert_eq!(cell(&found.runs, pi, "test_acc"), None);
    // a regression task's test loss fills the version-1 column
    close(
        cell(&found.runs, pi, "test_loss").unwrap(),
        0.17,
        "test_loss",
    );
    let v1 = "mnist_v1/default/seed_1";
    assert_eq!(cell(&found.runs, v1, "val_acc"), Some(0.979));
    assert_eq!(cell(&found.runs, v1, "objective_best"), Some(0.979));
    assert_eq!(cell(&found.runs, v1, "test_position_rmse"), None);
    let cnn_test = cell(&found.runs, "mnist_cnn/default/seed_0", "test_acc").unwrap();
    close(cnn_test, 0.979, "test_acc");
    let objective = str_column(&found.runs, "objective").unwrap();
    let mode = str_column(&found.runs, "objective_mode").unwrap();
    let unit = str_column(&found.runs, "objective_unit").unwrap();
    let path = str_column(&found.runs, "path").unwrap();
    for i in 0..found.runs.height() {
        let p = path[i].as_deref().unwrap();
        let want = if p.contains("/pi_loss/") {
            ("val_loss", "min", "")
        } else if p.contains("/pi_") {
            ("val_position_rmse", "min", "world units")
        } else {
            ("val_acc", "max", "fraction")
        };
        let got = (
            objective[i].as_deref().unwrap(),
            mode[i].as_deref().unwrap(),
            unit[i].as_deref().unwrap(),
        );
        assert_eq!(got, want, "{p}");
    }
    // history: the union of the runs' columns in file order, null where a run lacks one
    assert_eq!(
        column_names(&found.history),
        [
            "experiment",
            "variant",
            "seed",
            "path",
            "epoch",
            "train_loss",
            "train_acc",
            "train_position_rmse",
            "val_loss",
            "val_acc",
            "val_position_rmse",
            "lr",
            "epoch_time_s",
            "rate_lif1",
        ]
    );
    let rmse = f64_column(&found.history, "val_position_rmse").unwrap();
    assert_eq!(rmse.iter().filter(|v| v.is_some()).count(), 9 * 2);
    let acc = f64_column(&found.history, "val_acc").unwrap();
    assert_eq!(acc.iter().filter(|v| v.is_some()).count(), 2 * 2 + 4);
    // versions other than 1 and 2 are problems that name the readable ones
    let future = runs.join("pi_rnn").join("next").join("seed_0");
    write(&future.join("metrics.json"), "{\"schema_version\": 3}");
    let unversioned = runs.join("pi_rnn").join("odd").join("seed_0");
    write(&unversioned.join("metrics.json"), "{\"experiment\": \"x\"}");
    let again = scan(&runs).unwrap();
    assert_eq!(again.runs.height(), found.runs.height());
    let reasons: Vec<&str> = again.problems.iter().map(|p| p.reason.as_str()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons
        .iter()
        .any(|r| r.contains("schema_version 3") && r.contains("versions 1, 2")));
    assert!(reasons
        .iter()
        .any(|r| r.contains("no schema_version") && r.contains("1, 2")));
}

#[test]
fn a_lower_is_better_metric_picks_the_lowest_seed_and_mixed_directions_are_refused() {
    use autoresearch::metric::Mode;
    use autoresearch::runs::metric_spec;
    let tmp = tempfile::tempdir().unwrap();
    let found = scan(schema2_runs(tmp.path())).unwrap();
    let spec = metric_spec(&found.runs, "test_position_rmse").unwrap();
    assert_eq!((spec.mode, spec.unit.as_str()), (Mode::Min, "world units"));
    assert_eq!(
        metric_spec(&found.runs, "best_val_acc").unwrap().mode,
        Mode::Max
    );
    assert_eq!(
        metric_spec(&found.runs, "test_loss").unwrap().mode,
        Mode::Min
    );
    assert!(
        metric_spec(&found.runs, "objective_best").is_err(),
        "max and min tasks mixed"
    );
    let s = summarize(&found.runs, "val_position_rmse").unwrap();
    let exp = str_column(&s, "experiment").unwrap();
    assert_eq!(exp.len(), 3, "{exp:?}");
    let best_seed = f64_column(&s, "best_seed").unwrap();
    let best = f64_column(&s, "best_value").unwrap();
    for (i, (name, values)) in [PI[2], PI[1], PI[0]].iter().enumerate() {
        assert_eq!(exp[i].as_deref(), Some(*name));
        let lowest = values.iter().copied().fold(f64::INFINITY, f64::min);
        assert_eq!(best[i], Some(lowest), "{name}");
        let seed = values.iter().position(|v| *v == lowest).unwrap();
        assert_eq!(best_seed[i], Some(seed as f64), "{name}");
    }
    let mode = str_column(&s, "mode").unwrap();
    assert!(mode.iter().all(|m| m.as_deref() == Some("min")));
    // the objective's best value summarises per group in each group's own direction
    let s = summarize(&found.runs, "objective_best").unwrap();
    let (exp, mode) = (
        str_column(&s, "experiment").unwrap(),
        str_column(&s, "mode").unwrap(),
    );
    let best_seed = f64_column(&s, "best_seed").unwrap();
    for i in 0..s.height() {
        let want = if exp[i].as_deref().unwrap().starts_with("pi_") {
            "min"
        } else {
            "max"
        };
        assert_eq!(mode[i].as_deref(), Some(want));
    }
    let lstm = exp
        .iter()
        .position(|e| e.as_deref() == Some("pi_lstm"))
        .unwrap();
    assert_eq!(best_seed[lstm], Some(0.0));
    let cnn = exp
        .iter()
        .position(|e| e.as_deref() == Some("mnist_cnn"))
        .unwrap();
    assert_eq!(best_seed[cnn], Some(1.0));
    let g = |s: &str| Group::parse(s).unwrap();
    let p = paired_comparisons(
        &found.runs,
        "val_position_rmse",
        &[Pair::new(g("pi_lstm"), g("pi_rnn"))],
    )
    .unwrap();
    close(
        f64_column(&p, "mean_delta").unwrap()[0].unwrap(),
        (0.21 + 0.25 + 0.23 - 0.42 - 0.40 - 0.44) / 3.0,
        "mean_delta",
    );
    let err = paired_comparisons(
        &found.runs,
        "objective_best",
        &[Pair::new(g("pi_lstm"), g("mnist_cnn"))],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("lower-is-better"), "{err}");
}

#[test]
fn leaderboard_ranks_each_task_by_its_objective_in_its_direction() {
    let tmp = tempfile::tempdir().unwrap();
    let found = scan(schema2_runs(tmp.path())).unwrap();
    let labels: Annotations = serde_yaml_ng::from_str(
        "entries:\n  pi_lstm: {project: path-integration, iteration: '1', notes: gated memory}\n  pi_gru: {project: path-integration, iteration: '1', status: invalid, notes: 'velocity leak'}\n  mnist_old: {status: abandoned, notes: superseded}\n",
    )
    .unwrap();
    let board = Leaderboard::build(&found.runs, &labels).unwrap();
    let names: Vec<&str> = board.datasets.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "MNIST",
            "path_integration (val_loss)",
            "path_integration (val_position_rmse)"
        ]
    );
    let rmse = &board.datasets[2];
    let order: Vec<&str> = rmse.rows.iter().map(|r| r.model.as_str()).collect();
    assert_eq!(
        order,
        ["pi_lstm (srnn)", "pi_rnn (srnn)"],
        "ascending: lower is better"
    );
    golden("leaderboard_schema2.md", &board.render(None).unwrap());
}

#[test]
fn report_of_a_lower_is_better_metric_states_its_direction_and_unit() {
    let tmp = tempfile::tempdir().unwrap();
    let found = scan(schema2_runs(tmp.path())).unwrap();
    let mut options = ReportOptions::new(
        "lstm against rnn",
        vec![
            Group::parse("pi_rnn").unwrap(),
            Group::parse("pi_lstm").unwrap(),
        ],
        "runs",
    );
    options.metric = "val_position_rmse".into();
    let report = EvidenceReport::build(&found, &options).unwrap();
    let md = &report.markdown;
    assert!(
        md.contains(
            "Metric: `val_position_rmse` (world units; lower is better) over completed runs"
        ),
        "{md}"
    );
    assert!(
        md.contains("| pi_lstm | default | srnn | path_integration | 3 | 0.2300 |"),
        "{md}"
    );
    assert!(md.contains("| seed 0 (0.2100) |"), "{md}");
    assert!(
        md.contains("(lower is better: a negative delta is an improvement)"),
        "{md}"
    );
    // the curves default to the runs' objective
    let curves = report.figure("learning_curves").unwrap();
    assert!(curves.svg().contains("val_position_rmse"));
    let by_seed = column_names(&report.by_seed);
    assert!(by_seed.contains(&"test_t200_position_rmse".to_string()));
    assert!(!by_seed.iter().any(|c| c.starts_with("config.")));
    // a mixed selection of a max and a min task is refused for the objective
    options.groups.push(Group::parse("mnist_cnn").unwrap());
    options.metric = "objective_best".into();
    assert!(EvidenceReport::build(&found, &options).is_err());
}

#[test]
fn version_1_run_directories_scan_rank_and_report_as_before() {
    use autoresearch::report::write_section;
    use autoresearch::runs::RUN_COLUMNS;
    use autoresearch::Metrics;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = scan(repo.join("reports/runs")).unwrap();
    assert!(found.problems.is_empty(), "{:?}", found.problems);
    let names = column_names(&found.runs);
    assert_eq!(&names[..RUN_COLUMNS.len()], RUN_COLUMNS);
    // every version-1 field reads as written
    let path = str_column(&found.runs, "path").unwrap();
    let f = |c: &str| f64_column(&found.runs, c).unwrap();
    let (best, fin, acc, loss, obj, val) = (
        f("best_val_acc"),
        f("final_val_acc"),
        f("test_acc"),
        f("test_loss"),
        f("objective_best"),
        f("val_acc"),
    );
    let mut version_1 = 0;
    for i in 0..found.runs.height() {
        let dir = PathBuf::from(path[i].as_deref().unwrap());
        let text = std::fs::read_to_string(dir.join("metrics.json")).unwrap();
        let m: Metrics = serde_json::from_str(&text).unwrap();
        if m.schema_version == 2 {
            // the tasks' runs of 2026-12-03 sit beside the version-1 ones
            assert!(m.objective.is_some(), "{}", dir.display());
            continue;
        }
        assert_eq!(m.schema_version, 1);
        version_1 += 1;
        assert_eq!(
            (best[i], fin[i], acc[i], loss[i]),
            (m.best_val_acc, m.final_val_acc, m.test_acc, m.test_loss)
        );
        assert_eq!((obj[i], val[i]), (m.best_val_acc, m.best_val_acc));
    }
    // the four 5k-slice runs of 2026-11-30 (the full-data one of 2026-11-29 is archived outside
    // the runs root since the row's recipe gained early stopping)
    assert!(
        version_1 >= 4,
        "{version_1} version-1 runs under reports/runs"
    );
    // a folder of version-1 runs alone keeps the version-1 history columns, in order
    let v1 = scan(repo.join("reports/runs/2026-11-30")).unwrap();
    let history = column_names(&v1.history);
    assert_eq!(&history[4..11], autoresearch::rundir::HISTORY_COLUMNS);
    // the README's leaderboard, regenerated from them, is unchanged
    let mut labels = Annotations::load(&repo.join("leaderboard.yaml")).unwrap();
    labels.merge(
        autoresearch::state::ProjectStore::new(repo.join("projects"))
            .annotations()
            .unwrap(),
    );
    let references = References::load(&repo.join("reference")).unwrap();
    let fidelity = Fidelity::build(&found.runs, &references, &labels).unwrap();
    let section = Leaderboard::build(&found.runs, &labels)
        .unwrap()
        .with_runs_root("reports/runs")
        .with_fidelity(&fidelity)
        .render(Some(&repo.join("templates")))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let readme = tmp.path().join("README.md");
    std::fs::copy(repo.join("README.md"), &readme).unwrap();
    assert!(
        !write_section(&readme, &section).unwrap(),
        "README.md would change"
    );
}
