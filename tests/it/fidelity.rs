//! Our runs against published reference values: the fidelity report and the leaderboard's
//! reference columns, on the synthetic runs of the analysis tests and a reference file.

use autoresearch::report::{BenchRates, Fidelity, Leaderboard, References, Verdict};
use autoresearch::runs::scan;

use super::analysis::{annotations, golden, synthetic_runs};

/// exp_a on the last epoch (its synthetic history peaks there), exp_b on the lowest val_loss
/// (a flat loss: the first epoch, 0.02 below its best), exp_c planned upstream, exp_d never run.
const REFERENCE: &str = "project: Upstream
source: a README
metric: val_acc
unit: fraction
rows:
  - {experiment: exp_a, model: A-net, encoding: rate, statistic: last_epoch, mean: 0.9713,
     std: 0.0012, ddof: 1, seeds: 5, per_seed: [0.9700, 0.9710, 0.9713, 0.9716, 0.9726],
     budget: 3 epochs, source: iter 1, bench: c}
  - {experiment: exp_b, model: B-net, encoding: rate, statistic: at_min_val_loss, mean: 0.9755,
     std: 0.0009, seeds: 5, budget: 3 epochs, source: iter 2, differences: B has a wider layer}
  - {experiment: exp_c, model: C-net, encoding: ttfs, status: planned, budget: never run, source: plan}
  - {experiment: exp_d, model: D-net, encoding: rate, mean: 0.9, std: 0.01, seeds: 3, budget: 1 epoch,
     source: iter 4}
";

#[test]
fn each_row_is_compared_on_its_statistic_and_the_report_traces_to_run_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let found = scan(synthetic_runs(tmp.path())).unwrap();
    let file = tmp.path().join("reference.yaml");
    std::fs::write(&file, REFERENCE).unwrap();
    let references = References::load(&file).unwrap();
    // exp_a's runs say how many samples they trained on; the bench timed its network at 2,000/s
    for seed in 0..5 {
        let dir = tmp.path().join(format!("runs/exp_a/default/seed_{seed}"));
        std::fs::write(
            dir.join("log.txt"),
            "2026-12-07T00:00:00Z started exp_a / default seed 0 (4000 train, 1000 val, 0 test samples of mnist, 10 parameters)\n",
        )
        .unwrap();
    }
    let bench = tmp.path().join("bench.json");
    std::fs::write(
        &bench,
        r#"{"train": {"c": {"median": 2000.0, "min": 1900.0, "max": 2100.0, "runs": [], "ms_per_batch": 64.0}}}"#,
    )
    .unwrap();
    let mut rates = BenchRates::read(&[&bench]).unwrap();
    rates.files = vec!["bench.json".into()]; // as a user names it, not the temporary path
    let fidelity = Fidelity::build(&found.runs, &references, &annotations())
        .unwrap()
        .with_bench(&rates);
    // 4,000 samples over its 4 s epochs against the bench's 2,000/s
    let a = &fidelity.rows[0];
    assert_eq!(a.train_samples_s(), Some(1000.0));
    assert_eq!(a.bench_samples_s, Some(2000.0));
    assert_eq!(a.train_over_bench(), Some(0.5));
    assert_eq!(a.bench_row.as_deref(), Some("c"));
    assert_eq!(fidelity.rows[1].train_over_bench(), None, "no bench row");
    // where `bench --experiment exp_a` timed the row's own step, that is the comparison
    let own = tmp.path().join("own.json");
    std::fs::write(
        &own,
        r#"{"train": {"exp_a": {"median": 1250.0, "min": 1200.0, "max": 1300.0, "runs": [], "ms_per_batch": 100.0}}}"#,
    )
    .unwrap();
    let with_own = Fidelity::build(&found.runs, &references, &annotations())
        .unwrap()
        .with_bench(&BenchRates::read(&[&bench, &own]).unwrap());
    let a_own = &with_own.rows[0];
    assert_eq!(a_own.bench_row.as_deref(), Some("own"));
    assert_eq!(a_own.train_over_bench(), Some(0.8));
    assert_eq!(with_own.rows[1].bench_row, None);
    // idle runs of the same experiment (here the same runs) give the speed table its ratio
    let idle = with_own.with_idle(&found.runs, "idle-runs").unwrap();
    let a_idle = &idle.rows[0];
    assert_eq!(a_idle.idle, Some((4.0, Some(1000.0))));
    assert_eq!(a_idle.train_over_bench(), Some(0.8));
    assert_eq!(idle.rows[3].idle, None, "exp_d never ran");
    let rendered = tmp.path().join("idle-report");
    idle.write(&rendered, None).unwrap();
    let text = std::fs::read_to_string(rendered.join("report.md")).unwrap();
    assert!(
        text.contains("| Idle epoch (s) |") && text.contains("(idle-runs;"),
        "{text}"
    );
    let verdicts: Vec<Verdict> = fidelity.rows.iter().map(|r| r.verdict).collect();
    assert_eq!(
        verdicts,
        [
            Verdict::Within,
            Verdict::Outside,
            Verdict::New,
            Verdict::NoRuns
        ]
    );
    let (a, b) = (&fidelity.rows[0], &fidelity.rows[1]);
    // exp_a's last epochs are its synthetic best values, mean 0.97132
    let mean_a = a.ours_mean.unwrap();
    assert!((mean_a - 0.97132).abs() < 1e-12, "{mean_a}");
    assert!((a.distance.unwrap() - (0.97132 - 0.9713) / 0.0012).abs() < 1e-9);
    // Welch against the five published values: same mean, so p is large
    let w = a.welch.unwrap();
    assert!(w.p_two_sided > 0.9 && w.dof > 4.0, "{w:?}");
    // exp_b's first epochs (the lowest, flat, val_loss) are 0.02 below its best
    assert!((b.ours_mean.unwrap() - (0.97546 - 0.02)).abs() < 1e-12);
    assert!(b.welch.unwrap().p_two_sided < 1e-6);
    assert_eq!(b.ours.len(), 5, "the running seed 5 is not counted");

    let out = tmp.path().join("fidelity");
    let written = fidelity.write(&out, None).unwrap();
    for name in [
        "report.md",
        "fidelity.csv",
        "seeds.csv",
        "fidelity.svg",
        "fidelity.png",
    ] {
        assert!(written.contains(&out.join(name)), "{name} not written");
    }
    let seeds = std::fs::read_to_string(out.join("seeds.csv")).unwrap();
    // fifteen runs of ours (exp_a, exp_b and the new exp_c) with their directories, five
    // published values without
    assert_eq!(seeds.matches(",ours,").count(), 15);
    assert_eq!(seeds.matches(",reference,").count(), 5);
    assert!(seeds.contains("/runs/exp_a/default/seed_0"));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    golden("fidelity.md", &report);

    // the leaderboard shows the reference and the distance on the same statistic
    let board = Leaderboard::build(&found.runs, &annotations())
        .unwrap()
        .with_fidelity(&fidelity);
    golden("leaderboard_reference.md", &board.render(None).unwrap());
}

#[test]
fn a_reference_file_with_a_bad_row_is_one_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("reference.yaml");
    std::fs::write(
        &file,
        REFERENCE.replace("mean: 0.9755,", "mean: 0.9755, colour: red,"),
    )
    .unwrap();
    let err = References::load(&file).unwrap_err().to_string();
    assert!(
        err.contains("reference.yaml") && err.contains("unknown field `colour`"),
        "{err}"
    );
}
