//! The predictive-coding family through the trainer: the PC-FFNN v3 recipe's short run on the
//! full MNIST split (the threshold and the reference's energy drop), relaxation that
//! descends on the trained checkpoint, the energy ramp's epochs (none relaxed at weight 0) and
//! its exact resume, and the early-stopping direction that cannot be turned against the metric.

use autoresearch::candle_core::Device;
use autoresearch::data::Split;
use autoresearch::nn::Network;
use autoresearch::train::{build_run, load_run};
use autoresearch::{Error, RunStatus, TrainOptions};

use crate::{compose, tempdir};

fn quiet() -> TrainOptions {
    TrainOptions::default().with_quiet(true)
}

/// `history.csv` as (header, rows), without the wall-clock column.
fn history(dir: &std::path::Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(dir.join("history.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let time = header.iter().position(|c| c == "epoch_time_s").unwrap();
    let rows = lines
        .map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| *i != time)
                .map(|(_, v)| v.parse::<f64>().unwrap())
                .collect()
        })
        .collect();
    let header = header.into_iter().filter(|c| c != "epoch_time_s").collect();
    (header, rows)
}

fn column(h: &(Vec<String>, Vec<Vec<f64>>), name: &str) -> Vec<f64> {
    let i =
        h.0.iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no column {name}"));
    h.1.iter().map(|r| r[i]).collect()
}

/// PC-FFNN v3, seed 0, 2 epochs on the 54k/6k split: validation >= 96.0% (the reference's log
/// for the same recipe without clipping: 94.8, 96.5; its PyTorch twin here: 94.80, 96.28), the
/// energy after relaxation falls to under a third, no relaxation step raises F; then relaxation
/// descends on 8 validation batches with the labels clamped, on the trained checkpoint and at
/// initialisation.
#[test]
fn pc_ffnn_v3_reaches_96_percent_in_two_epochs_and_relaxes_downhill_when_trained() {
    let runs = tempdir();
    let out = compose("mnist_pc_ffnn_v3", runs.path(), &["epochs=2"])
        .unwrap()
        .train_with(&quiet())
        .unwrap();
    let h = history(out.dir.path());
    let val = column(&h, "val_acc");
    assert!(val[1] >= 0.96, "val_acc after 2 epochs {val:?}");
    let energy = column(&h, "train_energy");
    assert!(energy[1] <= energy[0] / 3.0, "train energy {energy:?}");
    assert_eq!(column(&h, "energy_rises"), [0.0, 0.0]);
    assert_eq!(column(&h, "relax_steps_per_sample"), [20.0, 20.0]);

    let (cfg, trained) = load_run(out.dir.path()).unwrap();
    descends_on_8_batches(&*trained.model, &*trained.data.val);
    let fresh = build_run(&cfg, None).unwrap();
    descends_on_8_batches(&*fresh.net, &*fresh.data.val);
}

/// Relaxation with the labels clamped never raises `F` (beyond 1e-6 relative) on 8 batches of 64.
fn descends_on_8_batches(net: &dyn Network, val: &dyn Split) {
    for b in 0..8 {
        let idx: Vec<usize> = (b * 64..(b + 1) * 64).collect();
        let batch = val.batch(&idx, &Device::Cpu).unwrap();
        let r = net
            .relaxation(&batch.input, Some(&batch.target))
            .unwrap()
            .unwrap();
        assert_eq!(r.terms, ["layer1", "layer2", "layer3"]);
        for t in 1..r.trace.energies.len() {
            assert!(
                r.trace.total(t) <= r.trace.total(t - 1) * (1.0 + 1e-6),
                "batch {b}: F rose at step {t}"
            );
        }
        assert!(r.trace.total(20) < r.trace.total(0));
    }
}

/// PC-EncDec's ramp: epoch 1 has energy weight 0 and relaxes nothing (its energy columns are
/// NaN), epoch 2 weight 0.01 with 20 steps per sample; stopped after epoch 1 and resumed, the
/// run's history is the same as uninterrupted (the epoch reaches the network on resume too).
#[test]
fn the_energy_ramp_skips_relaxation_at_weight_zero_and_resumes_exactly() {
    let quick = ["data.limit=1200", "data.test_limit=200", "epochs=2"];
    let (a, b) = (tempdir(), tempdir());
    let straight = compose("mnist_pc_encdec_v2", a.path(), &quick)
        .unwrap()
        .train_with(&quiet())
        .unwrap();
    let h = history(straight.dir.path());
    let w = column(&h, "energy_weight");
    assert!(w[0] == 0.0 && (w[1] - 0.01).abs() < 1e-15, "{w:?}");
    assert_eq!(column(&h, "relax_steps_per_sample"), [0.0, 20.0]);
    let e = column(&h, "train_energy");
    assert!(e[0].is_nan() && e[1] > 0.0, "{e:?}");

    let exp = compose("mnist_pc_encdec_v2", b.path(), &quick).unwrap();
    let first = exp.train_with(&quiet().with_stop_after_epochs(1)).unwrap();
    assert_eq!(first.metrics.status, RunStatus::Killed);
    let second = exp.train_with(&quiet()).unwrap();
    assert!(second.resumed);
    let (h2, rows2) = history(second.dir.path());
    assert_eq!(h2, h.0);
    for (x, y) in rows2.iter().flatten().zip(h.1.iter().flatten()) {
        assert!(x == y || (x.is_nan() && y.is_nan()), "{x} vs {y}");
    }
}

/// CHPC-Autoresearch stopped its PC runs on the *lowest* accuracy (`mode: min` taken over the
/// metric's direction); here a direction against the metric's is refused, naming the key.
#[test]
fn an_early_stopping_direction_against_the_metric_is_refused() {
    let runs = tempdir();
    let err = compose(
        "mnist_pc_ffnn_v3",
        runs.path(),
        &[
            "early_stopping={metric: val_acc, mode: min, patience: 7}",
            "epochs=1",
            "data.limit=600",
        ],
    )
    .and_then(|e| e.train_with(&quiet()))
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err:?}");
    assert!(
        text.contains("early_stopping.metric") && text.contains("mode: min"),
        "{text}"
    );
}

/// PC-CNN v2, seed 0, 2 epochs on the full split (epoch 1 is plain cross-entropy, epoch 2 relaxes
/// the conv representations 20 steps per batch): validation >= 96.5% (the reference's smoke
/// test: 95.08, 97.13). About 6 minutes on 2 cores: run with `--ignored`.
#[test]
#[ignore = "about 6 minutes on 2 cores"]
fn pc_cnn_v2_reaches_96_5_percent_in_two_epochs() {
    let runs = tempdir();
    let out = compose("mnist_pc_cnn_v2", runs.path(), &["epochs=2"])
        .unwrap()
        .train_with(&quiet())
        .unwrap();
    let h = history(out.dir.path());
    assert_eq!(column(&h, "relax_steps_per_sample"), [0.0, 20.0]);
    let val = column(&h, "val_acc");
    assert!(val[1] >= 0.965, "val_acc {val:?}");
}
