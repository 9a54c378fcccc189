use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::{shared_mnist, tempdir};

fn autoresearch(cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_autoresearch"));
    cmd.current_dir(cwd)
        .arg("--configs")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs"))
        .args(args);
    cmd.env("AUTORESEARCH_DATA", shared_mnist().parent().unwrap());
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn fails_with(cwd: &Path, args: &[&str], expected: &[&str]) {
    let out = autoresearch(cwd, args).output().unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    for e in expected {
        assert!(err.contains(e), "`{e}` missing from: {err}");
    }
}

#[test]
fn bad_input_gives_one_clear_error_and_non_zero_exit() {
    let tmp = tempdir();
    let d = tmp.path();
    fails_with(
        d,
        &["train", "experiment=nope"],
        &[
            "unknown option `nope` for config group `experiment`",
            "mnist_ffnn_adam",
        ],
    );
    fails_with(
        d,
        &["train", "experiment=mnist_ffnn_adam", "optimizer.lrr=1"],
        &["optimizer", "lrr"],
    );
    fails_with(
        d,
        &["train", "experiment=mnist_ffnn_adam", "model=transformer"],
        &[
            "unknown option `transformer` for config group `model`",
            "cnn, ffnn, grid, gru, hybrid_gru",
        ],
    );
    fails_with(d, &["train", "epochs=2"], &["no experiment=NAME given"]);
    fails_with(
        d,
        &["train", "experiment=mnist_ffnn_adam", "seed=0,1"],
        &["--multirun"],
    );
    // out-of-range values and a data root without the data fail before any training
    fails_with(
        d,
        &["train", "experiment=mnist_ffnn_adam", "optimizer.lr=-1"],
        &["optimizer.lr", "-1"],
    );
    fails_with(
        d,
        &["train", "experiment=mnist_ffnn_adam", "batch_size=0"],
        &["batch_size"],
    );
    fails_with(
        d,
        &[
            "train",
            "experiment=mnist_ffnn_adam",
            "epochs=1",
            "data.root=/nonexistent/mnist",
        ],
        &["data.root", "/nonexistent/mnist"],
    );
    // missing data: every place is listed, and the run is marked failed with the reason
    let out = autoresearch(
        d,
        &[
            "train",
            "experiment=mnist_ffnn_adam",
            "epochs=1",
            "data.mirrors=[file:///nonexistent/mirror]",
            "--quiet",
        ],
    )
    .env("AUTORESEARCH_DATA", d.join("no-data"))
    .env("HOME", d)
    .env_remove("XDG_CACHE_HOME")
    .output()
    .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success());
    for place in [
        "no-data/mnist",
        ".cache/autoresearch/mnist",
        "file:///nonexistent/mirror",
    ] {
        assert!(err.contains(place), "`{place}` missing from: {err}");
    }
}

#[test]
fn killed_process_resumes_from_its_checkpoint_to_the_same_result() {
    let tmp = tempdir();
    let args = [
        "train",
        "experiment=mnist_ffnn_adam",
        "data.limit=6000",
        "data.test_limit=1000",
        "epochs=6",
        "--quiet",
    ];
    let straight = tmp.path().join("straight");
    std::fs::create_dir_all(&straight).unwrap();
    assert!(autoresearch(&straight, &args)
        .output()
        .unwrap()
        .status
        .success());

    let killed = tmp.path().join("killed");
    std::fs::create_dir_all(&killed).unwrap();
    let run =
        killed.join("runs/mnist_ffnn_adam/data.limit=6000,data.test_limit=1000,epochs=6/seed_0");
    let mut child = autoresearch(&killed, &args).spawn().unwrap();
    let start = Instant::now();
    while !run.join("checkpoint/last.json").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let metrics = std::fs::read_to_string(run.join("metrics.json")).unwrap();
    assert!(
        metrics.contains("\"running\""),
        "process finished before it was killed: {metrics}"
    );

    let out = autoresearch(&killed, &args).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let read = |root: &Path, file: &str| {
        std::fs::read_to_string(
            root.join("runs/mnist_ffnn_adam/data.limit=6000,data.test_limit=1000,epochs=6/seed_0")
                .join(file),
        )
        .unwrap()
    };
    let strip = |csv: String| {
        csv.lines()
            .map(|l| l.rsplit_once(',').map_or(l, |(a, _)| a).to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(read(&killed, "history.csv")),
        strip(read(&straight, "history.csv"))
    );
    let test_acc = |root: &Path| {
        read(root, "metrics.json")
            .lines()
            .find(|l| l.contains("\"test_acc\""))
            .map(str::to_string)
    };
    assert_eq!(test_acc(&killed), test_acc(&straight));
    assert!(read(&killed, "log.txt").contains("resumed from checkpoint"));
}
