//! Connectome cores end to end: a small comparison trained in-process, its run directories, the
//! aggregate files and reports, the CLI, and bad configs refused with their key.

use std::process::Command;

use autoresearch::connectome::report::aggregate;
use autoresearch::frame::{f64_column, str_column};
use autoresearch::TrainOptions;

use crate::{compose, tempdir};

const SMALL: [&str; 5] = [
    "epochs=2",
    "data.train_sequences=256",
    "data.val_sequences=64",
    "data.test_sequences=64",
    "data.test_steps=[50,80]",
];

#[test]
fn a_small_comparison_trains_resumes_and_aggregates() {
    let runs = tempdir();
    let opts = TrainOptions::default().with_quiet(true);
    for control in ["connectome", "random", "no_recurrence"] {
        for seed in [0, 1] {
            let mut o: Vec<String> = SMALL.iter().map(|s| s.to_string()).collect();
            o.push(format!("model.control={control}"));
            o.push(format!("seed={seed}"));
            o.push("data.test_noise=[0.1]".into());
            let o: Vec<&str> = o.iter().map(String::as_str).collect();
            let exp = compose("connectome_celegans_smoke", runs.path(), &o).unwrap();
            let out = exp.train_with(&opts).unwrap();
            let graph: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(out.dir.path().join("graph.json")).unwrap(),
            )
            .unwrap();
            assert_eq!(graph["microsteps"], 3);
            assert_eq!(graph["control"]["kind"], control);
            let rho = graph["spectral_radius"]["value"].as_f64().unwrap();
            assert!((rho - 0.95).abs() <= 1e-4, "{rho}");
            assert!(graph["invariants"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["passed"] == true));
            let pools =
                std::fs::read_to_string(out.dir.path().join("pool_assignments.csv")).unwrap();
            assert_eq!(pools.lines().count(), 301);
            assert_eq!(out.metrics.params, 4589, "83 x 3 + 35 x 124 adapters");
            // a completed run is skipped, not retrained
            assert!(exp.train_with(&opts).unwrap().skipped);
        }
    }
    let root = runs.path().join("connectome_celegans_smoke");
    let agg = aggregate(&root, &root.join("report")).unwrap();
    for f in [
        "metrics_by_seed.csv",
        "metrics_summary.csv",
        "loss_history.csv",
        "leaderboard.csv",
        "paired_comparisons.csv",
        "matched_topology_comparisons.csv",
        "data_validation.md",
        "bpu_validation.md",
        "control_validation.md",
        "summary.md",
        "sweep_report.md",
        "error_vs_sequence_length.png",
        "error_vs_noise.png",
        "sample_efficiency.png",
        "loss_curve_connectome.png",
    ] {
        assert!(
            agg.files.iter().any(|x| x == f),
            "{f} missing from {:?}",
            agg.files
        );
        assert!(root.join("report").join(f).is_file(), "{f}");
    }
    // every check computed and passed; none written as a constant
    for f in [
        "data_validation.md",
        "bpu_validation.md",
        "control_validation.md",
    ] {
        let text = std::fs::read_to_string(root.join("report").join(f)).unwrap();
        assert!(
            text.contains("PASS") && !text.contains("FAIL"),
            "{f}:\n{text}"
        );
    }
    let by_seed = &agg.metrics_by_seed;
    let models = str_column(by_seed, "model").unwrap();
    let splits = str_column(by_seed, "split").unwrap();
    let rad = f64_column(by_seed, "heading_error_rad").unwrap();
    let deg = f64_column(by_seed, "heading_error_deg").unwrap();
    let dist = f64_column(by_seed, "home_distance_rmse").unwrap();
    // 3 models x 2 seeds x 3 test splits, plus 2 reference models x 3 splits
    assert_eq!(by_seed.height(), 24);
    for i in 0..by_seed.height() {
        let (r, d) = (rad[i].unwrap(), deg[i].unwrap());
        assert!(
            (r.to_degrees() - d).abs() < 1e-9,
            "row {i}: {r} rad vs {d} deg"
        );
        let (model, split) = (models[i].as_deref().unwrap(), splits[i].as_deref().unwrap());
        if model == "oracle_integrator" && !split.contains("noise") {
            assert!(
                dist[i].unwrap() < 1e-4 && r < 1e-4,
                "a perfect integrator of clean inputs: {split}"
            );
        }
        if model == "oracle_integrator" && split.contains("noise") {
            assert!(
                dist[i].unwrap() > 0.01,
                "noise costs the integrator something"
            );
        }
    }
    let baselines = str_column(&agg.paired, "baseline_model").unwrap();
    for b in ["random", "no_recurrence"] {
        assert!(
            baselines.iter().any(|x| x.as_deref() == Some(b)),
            "paired against {b}"
        );
    }
    let summary = std::fs::read_to_string(root.join("report/summary.md")).unwrap();
    assert!(
        summary.contains("### vs random (matched_topology_control)"),
        "{summary}"
    );
    assert!(summary.contains("300 neurons, 3638 edges"), "{summary}");
}

fn compose_error(overrides: &[&str]) -> String {
    let runs = tempdir();
    match compose("connectome_celegans_smoke", runs.path(), overrides) {
        Err(e) => e.to_string(),
        Ok(_) => "composed without error".into(),
    }
}

#[test]
fn bad_connectome_configs_are_refused_with_their_key() {
    for (overrides, expected) in [
        (
            vec!["model.connectome.name=nowhere"],
            vec![
                "connectome `nowhere`",
                "shared data",
                "model.connectome.root",
            ],
        ),
        (
            vec!["model.pools.output=[Amphid]"],
            vec!["Amphid", "both sensory and output"],
        ),
        (
            vec!["model.pools.internal=[]"],
            vec!["types in no pool", "Layer 1 interneuron"],
        ),
        (vec!["model.microsteps=0"], vec!["model.microsteps"]),
        (
            vec!["model.spectral_radius=-1"],
            vec!["model.spectral_radius"],
        ),
        (
            vec!["model.control=shuffled"],
            vec!["unknown variant `shuffled`", "degree_shuffle_strength"],
        ),
        (
            vec!["model.connectome.nodes.unlisted=error"],
            vec!["model.connectome.nodes.unlisted", "dBWM"],
        ),
        (
            vec!["model.connectome.signs.policy=force_signed"],
            vec!["force_signed", "no presynaptic neuron has a sign label"],
        ),
        (
            vec!["model.connectome.edges.weight=count"],
            vec!["no column `count`"],
        ),
    ] {
        let err = compose_error(&overrides);
        for e in expected {
            assert!(err.contains(e), "{overrides:?}: `{e}` missing from: {err}");
        }
    }
}

#[test]
fn the_cli_prints_a_cores_graph_pools_and_radius() {
    let out = Command::new(env!("CARGO_BIN_EXE_autoresearch"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "connectome",
            "info",
            "experiment=connectome_celegans_polar",
            "model.control=degree_shuffle",
            "seed=1",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(meta["graph"]["n"], 300);
    assert_eq!(meta["pools"]["sensory"], 83);
    assert_eq!(meta["control"]["seed"], 20_001);
    assert!(meta["control"]["swaps_accepted"].as_u64().unwrap() > 10_000);
}
