//! The local executor: the same `Executor` interface as a cluster, with worker processes here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use autoresearch::cluster::{Executor, JobState, LocalExecutor, MonitorOptions, Sweep, Workspace};
use autoresearch::runs::scan;

use crate::{shared_mnist, tempdir};

/// Waits until every job is done, returning the failures reported on the way.
fn wait_all(exec: &mut LocalExecutor) -> Vec<autoresearch::cluster::Failure> {
    let mut failures = Vec::new();
    let report = exec
        .wait(
            Duration::from_millis(100),
            &MonitorOptions::default(),
            &mut |r| failures.extend(r.failures.clone()),
        )
        .unwrap();
    assert!(report.done());
    failures
}

fn executor(root: &Path, workers: usize) -> LocalExecutor {
    let ws = Workspace::new(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs"),
        &root.join("runs"),
        &root.join("jobs/ledger.yaml"),
    )
    .unwrap();
    let data = shared_mnist().parent().unwrap().display().to_string();
    LocalExecutor::with_binary(
        ws,
        workers,
        PathBuf::from(env!("CARGO_BIN_EXE_autoresearch")),
    )
    .unwrap()
    .with_env("AUTORESEARCH_DATA", &data)
}

#[test]
fn two_workers_run_a_seed_sweep_and_a_cancel_sticks() {
    let tmp = tempdir();
    let mut local = executor(tmp.path(), 2);
    // standardised pixels and no dropout: the recipe the accuracy floor below was set on
    // (the reference row's own recipe, dropout on raw pixels, learns more slowly in 1 epoch)
    let sweep = Sweep::new(
        "mnist_ffnn_adam",
        [
            "seed=0,1",
            "epochs=1",
            "data.limit=3000",
            "dataset=mnist",
            "model.dropout=0",
        ],
    );
    let ids = local.submit(&sweep).unwrap();
    assert_eq!(ids.len(), 2);
    assert!(wait_all(&mut local).is_empty());
    for id in &ids {
        assert_eq!(local.ledger().job(id).unwrap().state(), JobState::Completed);
    }
    let found = scan(tmp.path().join("runs")).unwrap();
    assert_eq!(found.runs.height(), 2);
    for acc in autoresearch::frame::f64_column(&found.runs, "best_val_acc").unwrap() {
        assert!(acc.unwrap() > 0.75, "{acc:?}");
    }

    // a long run cancelled while it trains ends cancelled and is not restarted
    let long = local
        .submit(&Sweep::new("mnist_ffnn_adam", ["seed=5", "epochs=50"]))
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    local.cancel(&long).unwrap();
    assert!(wait_all(&mut local).is_empty());
    let job = local.ledger().job(&long[0]).unwrap();
    assert_eq!(job.state(), JobState::Cancelled);
    assert!(job.resubmitted_as.is_none());

    // a failing worker is reported with the end of its log
    let script = tmp.path().join("broken.sh");
    std::fs::write(&script, "#!/bin/sh\necho \"boom: $*\" >&2\nexit 3\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let ws = local.workspace().clone();
    let mut broken = LocalExecutor::with_binary(ws, 1, script).unwrap();
    let bad = broken
        .submit(&Sweep::new("mnist_ffnn_adam", ["seed=6", "epochs=1"]))
        .unwrap();
    let failures = wait_all(&mut broken);
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].id, bad[0]);
    assert_eq!(failures[0].detail.as_deref(), Some("exit status 3"));
    assert!(
        failures[0].log_tail.contains("boom: --configs"),
        "{:?}",
        failures[0]
    );
    assert!(failures[0].log_tail.contains("seed=6"), "{:?}", failures[0]);
}
