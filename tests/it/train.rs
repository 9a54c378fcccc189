use autoresearch::rundir::parse_history_csv;
use autoresearch::{Error, RunStatus, TrainOptions};

use crate::{compose, tempdir};

/// A quick FFNN on a real 3,000-image slice.
const QUICK: &[&str] = &[
    "data.limit=3000",
    "data.test_limit=1000",
    "model.hidden=[64]",
    "epochs=3",
];

fn quiet() -> TrainOptions {
    TrainOptions::default().with_quiet(true)
}

/// History rows without the timing column.
fn history(dir: &std::path::Path) -> Vec<[f64; 6]> {
    let text = std::fs::read_to_string(dir.join("history.csv")).unwrap();
    parse_history_csv(&text)
        .unwrap()
        .iter()
        .map(|r| {
            [
                r.epoch as f64,
                r.train_loss,
                r.value("train_acc").unwrap(),
                r.val_loss,
                r.value("val_acc").unwrap(),
                r.lr,
            ]
        })
        .collect()
}

#[test]
fn ffnn_learns_real_mnist_slice_and_writes_the_run_directory() {
    let runs = tempdir();
    let exp = compose(
        "mnist_ffnn_adam",
        runs.path(),
        &["data.limit=5000", "epochs=2"],
    )
    .unwrap();
    let out = exp.train_with(&quiet()).unwrap();
    let dir = out.dir.path().to_path_buf();
    assert_eq!(
        dir,
        runs.path()
            .join("mnist_ffnn_adam/data.limit=5000,epochs=2/seed_0")
    );
    let m = &out.metrics;
    assert_eq!(
        (m.status, m.epochs_done, m.schema_version),
        (RunStatus::Completed, 2, 2)
    );
    assert!(
        m.best_val_acc.unwrap() >= 0.90,
        "val acc {:?}",
        m.best_val_acc
    );
    assert!(m.test_acc.unwrap() >= 0.88, "test acc {:?}", m.test_acc);
    assert_eq!(m.params, 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
    for file in [
        "config.yaml",
        "metrics.json",
        "history.csv",
        "log.txt",
        "checkpoint/last.safetensors",
        "checkpoint/last.json",
        "checkpoint/best.safetensors",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    // metrics.json on disk is what the call returned; the saved config is the composed one
    assert_eq!(out.dir.read_metrics().unwrap().as_ref(), Some(m));
    assert_eq!(&out.dir.read_config().unwrap(), exp.config());
    assert_eq!(history(&dir).len(), 2);
    // no temporary files left behind by atomic writes
    let leftovers: Vec<_> = walk(&dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // a completed run is skipped; --force retrains
    assert!(exp.train_with(&quiet()).unwrap().skipped);
    let forced = exp.train_with(&quiet().with_force(true)).unwrap();
    assert!(!forced.skipped && forced.metrics.status == RunStatus::Completed);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn same_seed_gives_identical_history_on_cpu() {
    let (a, b) = (tempdir(), tempdir());
    let ra = compose("mnist_ffnn_adam", a.path(), QUICK)
        .unwrap()
        .train_with(&quiet())
        .unwrap();
    let rb = compose("mnist_ffnn_adam", b.path(), QUICK)
        .unwrap()
        .train_with(&quiet())
        .unwrap();
    assert_eq!(history(ra.dir.path()), history(rb.dir.path()));
    assert_eq!(ra.metrics.test_acc, rb.metrics.test_acc);
    let other = tempdir();
    let mut seed1 = QUICK.to_vec();
    seed1.push("seed=1");
    let rc = compose("mnist_ffnn_adam", other.path(), &seed1)
        .unwrap()
        .train_with(&quiet())
        .unwrap();
    assert_ne!(history(ra.dir.path()), history(rc.dir.path()));
}

#[test]
fn interrupted_run_resumes_to_the_same_result() {
    let (straight, interrupted) = (tempdir(), tempdir());
    let full = compose("mnist_ffnn_adam", straight.path(), QUICK)
        .unwrap()
        .train_with(&quiet())
        .unwrap();
    let exp = compose("mnist_ffnn_adam", interrupted.path(), QUICK).unwrap();
    let first = exp.train_with(&quiet().with_stop_after_epochs(1)).unwrap();
    assert_eq!(
        (first.metrics.status, first.metrics.epochs_done),
        (RunStatus::Killed, 1)
    );
    assert_eq!(history(first.dir.path()).len(), 1);
    let second = exp.train_with(&quiet()).unwrap();
    assert!(second.resumed);
    assert_eq!(
        (second.metrics.status, second.metrics.resumed),
        (RunStatus::Completed, 1)
    );
    assert_eq!(history(second.dir.path()), history(full.dir.path()));
    assert_eq!(second.metrics.test_acc, full.metrics.test_acc);
    assert_eq!(second.metrics.best_val_acc, full.metrics.best_val_acc);
    assert_eq!(second.metrics.started_at, first.metrics.started_at);
}

#[test]
fn sgd_nesterov_cosine_clipping_and_early_stopping_run_end_to_end() {
    let runs = tempdir();
    let mut o = QUICK.to_vec();
    o.extend([
        "optimizer=sgd",
        "scheduler=cosine",
        "clip_grad_norm=0.5",
        "epochs=4",
        "early_stopping={metric: train_loss, mode: min, patience: 0, min_delta: 10.0}",
    ]);
    let out = compose("mnist_ffnn_adam", runs.path(), &o)
        .unwrap()
        .train_with(&quiet())
        .unwrap();
    // min_delta 10 can never be met: epoch 1 sets the best, epoch 2 is one bad epoch > patience 0
    assert!(out.metrics.early_stopped);
    assert_eq!(
        (out.metrics.epochs_done, out.metrics.status),
        (2, RunStatus::Completed)
    );
    let h = history(out.dir.path());
    assert!(
        h[1][5] < h[0][5] && h[0][5] < 0.05,
        "cosine lr must decay from 0.05: {h:?}"
    );
    assert!(out.metrics.best_val_acc.unwrap() > 0.8);
}

#[test]
fn cnn_learns_real_mnist_slice() {
    let runs = tempdir();
    // the reference CNN (32c3-p2-64c3-p2-fc10) on 2,700 training images: 92.3% on seed 0
    let out = compose(
        "mnist_cnn_adam",
        runs.path(),
        &["data.limit=3000", "data.test_limit=500", "epochs=2"],
    )
    .unwrap()
    .train_with(&quiet())
    .unwrap();
    assert!(
        out.metrics.best_val_acc.unwrap() >= 0.88,
        "{:?}",
        out.metrics.best_val_acc
    );
}

#[test]
fn corrupt_checkpoint_is_reported_and_marks_the_run_failed() {
    let runs = tempdir();
    let exp = compose("mnist_ffnn_adam", runs.path(), QUICK).unwrap();
    let first = exp.train_with(&quiet().with_stop_after_epochs(1)).unwrap();
    let ckpt = first.dir.last_checkpoint();
    std::fs::write(&ckpt, b"\x10\x00\x00\x00\x00\x00\x00\x00not json").unwrap();
    match exp.train_with(&quiet()) {
        Err(Error::Checkpoint { path, message }) => {
            assert_eq!(path, ckpt);
            assert!(message.contains("--force"), "{message}");
        }
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
    let m = first.dir.read_metrics().unwrap().unwrap();
    assert_eq!(m.status, RunStatus::Failed);
    assert!(m.error.unwrap().contains("last.safetensors"));
    // the history of the epoch done survives
    assert_eq!(history(first.dir.path()).len(), 1);
    // --force starts over
    assert_eq!(
        exp.train_with(&quiet().with_force(true))
            .unwrap()
            .metrics
            .status,
        RunStatus::Completed
    );
}

#[test]
fn a_different_config_in_the_same_run_directory_is_refused() {
    let runs = tempdir();
    let mut a = QUICK.to_vec();
    a.push("variant=fixed");
    compose("mnist_ffnn_adam", runs.path(), &a)
        .unwrap()
        .train_with(&quiet().with_stop_after_epochs(1))
        .unwrap();
    a.push("optimizer.lr=0.01");
    match compose("mnist_ffnn_adam", runs.path(), &a)
        .unwrap()
        .train_with(&quiet())
    {
        Err(Error::RunDir { message, .. }) => {
            assert!(message.contains("different config"), "{message}")
        }
        other => panic!("expected a run-directory error, got {other:?}"),
    }
}

#[test]
fn corrupt_metrics_file_is_reported_not_overwritten() {
    let runs = tempdir();
    let exp = compose("mnist_ffnn_adam", runs.path(), QUICK).unwrap();
    let dir = exp.run_dir();
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::write(dir.metrics_path(), "{\"schema_version\": 1, trunc").unwrap();
    match exp.train_with(&quiet()) {
        Err(Error::RunDir { path, message }) => {
            assert_eq!(path, dir.metrics_path());
            assert!(message.contains("not valid"), "{message}");
        }
        other => panic!("expected a run-directory error, got {other:?}"),
    }
    // the file is left as it was for the user to inspect
    assert_eq!(
        std::fs::read_to_string(dir.metrics_path()).unwrap(),
        "{\"schema_version\": 1, trunc"
    );
}
