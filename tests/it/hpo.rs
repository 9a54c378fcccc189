//! Hyper-parameter studies end to end, with real worker processes on MNIST slices: a study
//! killed with `kill -9` (coordinator and workers) at several moments and resumed each time
//! keeps every finished trial, never duplicates an id and re-queues the trials that were
//! running; its hpo_snn export reads back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autoresearch::hpo::export::read_csv;
use autoresearch::hpo::journal::{asked, read, Event, StudyLog, TrialStatus};

use crate::{shared_mnist, tempdir};

const STUDY: &str = "\
experiment: mnist_snn_ffnn_rate
overrides: [data.limit=5000, epochs=5, 'model.hidden=[128]', model.encoder.steps=10]
space:
  optimizer.lr: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
  model.neuron.beta: {type: float, low: 0.5, high: 0.99}
  batch_size: {type: categorical, choices: ['32', '64']}
objective: {metric: val_acc}
budget: {trials: 16}
sampler: {kind: tpe, startup: 6}
pruner: {kind: median, startup_trials: 3}
dispatch: {mode: flexible, heartbeat_s: 0.3, grace_s: 1.5}
workers: 2
seed: 3
";

/// Copies `from` into `to` recursively.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The repository's configs with the test study as `configs/hpo/kill.yaml`.
fn configs(root: &Path) -> PathBuf {
    let configs = root.join("configs");
    copy_tree(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs"),
        &configs,
    );
    let data = format!("overrides: [data.root={}, ", shared_mnist().display());
    std::fs::write(
        configs.join("hpo/kill.yaml"),
        STUDY.replacen("overrides: [", &data, 1),
    )
    .unwrap();
    configs
}

/// `autoresearch hpo <args>` in its own process group (its workers join it).
fn hpo(root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_autoresearch"));
    cmd.arg("--configs")
        .arg(root.join("configs"))
        .arg("hpo")
        .arg("--runs")
        .arg(root.join("runs"))
        .args(args)
        .env("AUTORESEARCH_DATA", shared_mnist().parent().unwrap())
        .env("RAYON_NUM_THREADS", "1");
    cmd
}

fn start(root: &Path, verb: &str) -> Child {
    use std::os::unix::process::CommandExt;
    let log = std::fs::File::create(root.join(format!("{verb}.log"))).unwrap();
    hpo(root, &[verb, "kill"])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Finished trials by id with their values.
fn finished(journal: &Path) -> Vec<(usize, f64)> {
    let log = StudyLog::read(journal).unwrap();
    log.trials
        .iter()
        .filter(|t| t.status.finished())
        .map(|t| (t.id, t.value.unwrap_or(f64::NAN)))
        .collect()
}

#[test]
fn a_study_killed_at_five_moments_resumes_without_losing_or_duplicating_trials() {
    let tmp = tempdir();
    let root = tmp.path();
    configs(root);
    let journal = root.join("runs/hpo/kill/journal.jsonl");
    let mut before: Vec<(usize, f64)> = Vec::new();
    for (i, delay_s) in [0.6, 1.0, 0.4, 1.6, 1.2].iter().enumerate() {
        let mut child = start(root, if i == 0 { "run" } else { "resume" });
        std::thread::sleep(Duration::from_secs_f64(*delay_s));
        let killed = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .status()
            .unwrap();
        assert!(killed.success());
        child.wait().unwrap();
        let now = finished(&journal);
        for t in &before {
            assert!(now.contains(t), "kill {i}: finished trial {t:?} lost");
        }
        before = now;
    }
    assert!(
        before.len() < 16,
        "the kills came after the study ended: {before:?}"
    );
    let mut child = start(root, "resume");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "resume did not finish"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log_text = std::fs::read_to_string(root.join("resume.log")).unwrap();
    assert!(child.wait().unwrap().success(), "{log_text}");

    let events = read(&journal).unwrap();
    let asked = asked(&events);
    assert_eq!(
        asked,
        (0..16).collect::<Vec<_>>(),
        "each id asked exactly once"
    );
    let requeued = events
        .iter()
        .filter(|e| matches!(e, Event::Requeue { .. }))
        .count();
    assert!(requeued >= 1, "no stale trial was re-queued");
    let log = StudyLog::read(&journal).unwrap();
    assert_eq!(log.count(TrialStatus::Failed), 0, "{log:?}");
    assert_eq!(
        log.count(TrialStatus::Completed) + log.count(TrialStatus::Pruned),
        16
    );
    for t in &before {
        assert!(finished(&journal).contains(t), "finished trial {t:?} lost");
    }
    eprintln!(
        "kill test: {requeued} re-queues, {} pruned, best {:?}",
        log.count(TrialStatus::Pruned),
        log.trials
            .iter()
            .filter_map(|t| t.value)
            .fold(f64::NAN, f64::max)
    );

    // the hpo_snn export reads back with its columns
    let out = hpo(root, &["export", "kill"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let csv = read_csv(&path).unwrap();
    assert_eq!(csv.rows.len(), 16);
    let tail = [
        "objective",
        "eval_time",
        "start_time",
        "end_time",
        "start_date",
        "end_date",
        "iteration",
        "algorithm",
        "length",
        "trestart",
        "model",
    ];
    assert_eq!(&csv.header[csv.header.len() - tail.len()..], &tail);
    assert_eq!(
        &csv.header[..3],
        &["batch_size", "model.neuron.beta", "optimizer.lr"]
    );
    for (row, (objective, acc)) in csv
        .column("objective")
        .unwrap()
        .iter()
        .zip(csv.column("val_acc").unwrap())
        .enumerate()
    {
        let (o, a): (f64, f64) = (objective.parse().unwrap(), acc.parse().unwrap());
        assert_eq!(o, -a, "row {row}: objective is the negated accuracy");
    }
    let status = hpo(root, &["status", "kill"]).output().unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("16 of 16 trials"));
}

#[test]
fn a_pruned_run_says_so_stops_at_once_and_is_never_resumed() {
    use autoresearch::train::{EpochMonitor, TrainOptions, Verdict};
    use autoresearch::RunStatus;
    let tmp = tempdir();
    let exp = crate::compose(
        "mnist_snn_ffnn_rate",
        tmp.path(),
        &[
            "data.limit=600",
            "epochs=4",
            "model.hidden=[32]",
            "model.encoder.steps=4",
        ],
    )
    .unwrap();
    let opts = TrainOptions {
        quiet: true,
        skip_test: true,
        silent_below: Some(3),
        ..TrainOptions::default()
    }
    .with_monitor(EpochMonitor::new(|r| {
        assert!(r.value("silent_lt3_lif2").is_some(), "{:?}", r.extra);
        if r.epoch == 2 {
            Verdict::Prune("test rule".into())
        } else {
            Verdict::Continue
        }
    }));
    let run = exp.train_with(&opts).unwrap();
    assert_eq!(run.metrics.status, RunStatus::Pruned);
    assert_eq!(
        run.metrics.epochs_done, 2,
        "stopped right after the decision"
    );
    assert!(run.metrics.test_acc.is_none(), "validation only");
    let log = std::fs::read_to_string(run.dir.path().join("log.txt")).unwrap();
    assert!(log.contains("pruned after epoch 2: test rule"), "{log}");
    let again = exp
        .train_with(&TrainOptions::default().with_quiet(true))
        .unwrap();
    assert!(again.skipped, "a pruned run is final");
    assert_eq!(again.metrics.epochs_done, 2);
}

#[test]
fn a_requeued_trial_resumes_from_its_run_checkpoint() {
    use autoresearch::hpo::coordinator::Coordinator;
    use autoresearch::hpo::files::{read_json, StudyDir, Ticket};
    use autoresearch::hpo::{Study, StudyConfig};
    use autoresearch::train::TrainOptions;
    let tmp = tempdir();
    let root = tmp.path();
    configs(root);
    let store = autoresearch::config::ConfigStore::new(root.join("configs")).unwrap();
    let ws = autoresearch::cluster::Workspace::new(
        &root.join("configs"),
        &root.join("runs"),
        &root.join("jobs/ledger.yaml"),
    )
    .unwrap();
    let config = StudyConfig::load(&store, "kill").unwrap();
    let study = Study::new(ws, "kill", config.clone())
        .with_binary(PathBuf::from(env!("CARGO_BIN_EXE_autoresearch")));
    // the coordinator queues the first trials and dies; trial 0 had trained one epoch
    let dir = StudyDir::at(study.dir().path());
    let mut c = Coordinator::open(&store, dir.clone(), "kill", &config).unwrap();
    c.step().unwrap();
    drop(c);
    let ticket: Ticket = read_json(&dir.queued(0)).unwrap();
    let exp = autoresearch::Experiment::compose_in(&store, &config.experiment, &ticket.overrides)
        .unwrap();
    let first = exp
        .train_with(
            &TrainOptions::default()
                .with_quiet(true)
                .with_stop_after_epochs(1),
        )
        .unwrap();
    assert_eq!(first.metrics.epochs_done, 1);
    let log = study.resume().unwrap();
    assert_eq!(log.trials.len(), 16);
    let trial0 = study.dir().path().join(&log.trials[0].run_dir);
    let text = std::fs::read_to_string(trial0.join("log.txt")).unwrap();
    assert!(
        text.contains("resumed from checkpoint after epoch 1"),
        "{text}"
    );
    let history = std::fs::read_to_string(trial0.join("history.csv")).unwrap();
    let epochs: Vec<&str> = history
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let want: Vec<String> = (1..=epochs.len()).map(|e| e.to_string()).collect();
    assert_eq!(epochs, want, "one row per epoch, none repeated");
}
