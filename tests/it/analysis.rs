//! Analysis end to end on synthetic run directories: scan, statistics against an independent
//! computation, leaderboard and report against golden files, figures rendered headless.

use std::path::{Path, PathBuf};

use autoresearch::frame::{f64_column, str_column};
use autoresearch::plot::{Figure, LearningCurves, MembraneTrace, SpikeRaster};
use autoresearch::report::{
    replace_section, Annotations, EvidenceReport, Leaderboard, ReportOptions,
};
use autoresearch::runs::scan;
use autoresearch::stats::{paired_comparisons, summarize, Group, PAIRED_COLUMNS};

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
fn synthetic_runs(root: &Path) -> PathBuf {
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
        &[(g("exp_b"), g("exp_a")), (g("exp_c"), g("exp_a"))],
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
    let err = paired_comparisons(&found.runs, "best_val_acc", &[(g("nope"), g("exp_a"))])
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

fn annotations() -> Annotations {
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
    let (svg, png) = fig.save(tmp.path().join("figs"), "membrane").unwrap();
    assert!(std::fs::metadata(svg).unwrap().len() > 2_000);
    assert!(std::fs::metadata(png).unwrap().len() > 5_000);
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
