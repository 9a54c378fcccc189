//! End to end on a real cluster: a one-node Slurm and an sshd on 127.0.0.1, started by
//! `tests/cluster/testbed.sh` and stopped by PID when the test ends. One test function, since
//! the scenarios share the daemons (Slurm's ports are fixed in its config).
//!
//! Set `AUTORESEARCH_SKIP_CLUSTER_TESTS=1` to skip on a machine where the daemons cannot run
//! (it needs root, or passwordless sudo for the packages); CI never sets it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use autoresearch::cluster::{
    Cluster, ClusterProfile, Executor, JobState, Ledger, MonitorOptions, MonitorReport, Sweep,
    Walltime, Workspace,
};
use autoresearch::runs::scan;

use crate::{shared_mnist, tempdir};

/// The daemons of one test; stopped on drop, also when the test fails.
struct Testbed {
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Testbed {
    fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cluster/testbed.sh")
    }

    fn start(dir: &Path) -> Testbed {
        let out = Command::new("bash")
            .arg(Self::script())
            .arg("start")
            .arg(dir)
            .output()
            .unwrap();
        let mut bed = Testbed {
            dir: dir.to_path_buf(),
            env: Vec::new(),
        };
        assert!(
            out.status.success(),
            "testbed did not start:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(dir.join("testbed.env")).unwrap();
        bed.env = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        bed
    }

    fn get(&self, key: &str) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("testbed.env has no {key}"))
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(Self::script())
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

/// The shipped `slurm` profile with the user's values for the testbed, as
/// `~/.config/autoresearch/clusters.yaml` would give them; `changes` replace some of them.
fn profile(bed: &Testbed, root: &Path, changes: &[(&str, String)]) -> ClusterProfile {
    let data = shared_mnist().parent().unwrap().display().to_string();
    let mut fields = vec![
        ("host", "127.0.0.1".to_string()),
        ("port", bed.get("SSH_PORT").to_string()),
        ("user", bed.get("SSH_USER").to_string()),
        ("identity_file", bed.get("SSH_KEY").to_string()),
        ("known_hosts", bed.get("KNOWN_HOSTS").to_string()),
        ("ssh_config", bed.get("SSH_CONFIG").to_string()),
        ("work_dir", format!("{}/remote", root.display())),
        (
            "binary",
            format!("{}/remote/bin/autoresearch", root.display()),
        ),
        ("env", format!("{{AUTORESEARCH_DATA: {data}}}")),
    ];
    for (key, value) in changes {
        if let Some(f) = fields.iter_mut().find(|(k, _)| k == key) {
            f.1 = value.clone();
        }
    }
    let mut text = "slurm:\n".to_string();
    for (k, v) in fields {
        text.push_str(&format!("  {k}: {v}\n"));
    }
    let user = root.join("clusters.yaml");
    std::fs::write(&user, text).unwrap();
    let configs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs");
    ClusterProfile::load(&configs, "slurm", Some(&user)).unwrap()
}

fn workspace(root: &Path) -> Workspace {
    Workspace::new(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs"),
        &root.join("runs"),
        &root.join("jobs/ledger.yaml"),
    )
    .unwrap()
}

/// Monitors every second until done (at most `limit`), returning every round's report.
fn monitor(cluster: &mut Cluster, limit: Duration) -> Vec<MonitorReport> {
    let start = Instant::now();
    let mut rounds = Vec::new();
    loop {
        let options = MonitorOptions {
            max_retries: 6,
            ..MonitorOptions::default()
        };
        let r = cluster.monitor_once(&options).unwrap();
        eprintln!("{r}");
        let done = r.done();
        rounds.push(r);
        if done {
            return rounds;
        }
        assert!(start.elapsed() < limit, "jobs not done after {limit:?}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The plain FFNN recipe these timings and accuracy floors were set on (standardised pixels,
/// no dropout, no early stopping: the reference row's early stopping would end the long runs
/// before their walltime), pinned so the reference recipe of `mnist_ffnn_adam` does not move
/// them; the runs' variants name the pins.
const PLAIN: [&str; 3] = ["dataset=mnist", "early_stopping=null", "model.dropout=0"];

fn tiny(overrides: &[&str]) -> Sweep {
    let all = PLAIN.iter().chain(overrides).copied();
    let mut sweep = Sweep::new("mnist_ffnn_adam", all);
    sweep.per_run = Walltime::hms(0, 5, 0);
    sweep.mem_gb = Some(1);
    sweep
}

#[test]
fn slurm_over_ssh_end_to_end() {
    if std::env::var_os("AUTORESEARCH_SKIP_CLUSTER_TESTS").is_some() {
        eprintln!("skipped: AUTORESEARCH_SKIP_CLUSTER_TESTS is set");
        return;
    }
    let tmp = tempdir();
    let root = tmp.path();
    let bed = Testbed::start(&root.join("testbed"));
    let ws = workspace(root);

    // setup: binary and configs onto the cluster
    let mut cluster = Cluster::connect(profile(&bed, root, &[]), ws.clone()).unwrap();
    let setup = cluster
        .setup(Path::new(env!("CARGO_BIN_EXE_autoresearch")))
        .unwrap();
    assert!(setup.binary_uploaded && setup.remote_version.starts_with("autoresearch"));
    assert!(setup.configs.uploaded.len() > 20);

    sweep_submit_monitor_fetch(&mut cluster, root);
    a_study_runs_as_an_array_of_two_workers(&mut cluster, root);
    interrupted_jobs_are_resubmitted_and_resume(&mut cluster, root);
    user_cancel_is_not_resubmitted(&mut cluster);
    bad_inputs_fail_clearly_and_leave_the_ledger_intact(&bed, root, &ws);
}

/// A 2-seed sweep as a job array: submitted over SSH, monitored to the end, fetched, and
/// read back by the runs scan with the metrics the runs wrote there.
fn sweep_submit_monitor_fetch(cluster: &mut Cluster, root: &Path) {
    let ids = cluster
        .submit(&tiny(&["seed=0,1", "epochs=1", "data.limit=5000"]))
        .unwrap();
    assert_eq!(ids.len(), 2, "one array task per seed: {ids:?}");
    assert!(ids[0].ends_with("_0") && ids[1].ends_with("_1"), "{ids:?}");
    let rounds = monitor(cluster, Duration::from_secs(180));
    let fetched: usize = rounds.iter().map(|r| r.fetched.copied.len()).sum();
    assert!(
        fetched >= 10,
        "config, metrics, history, log, checkpoints x2"
    );
    assert!(rounds.iter().all(|r| r.failures.is_empty()));

    let found = scan(root.join("runs")).unwrap();
    assert!(found.problems.is_empty(), "{:?}", found.problems);
    assert_eq!(found.runs.height(), 2);
    let status = autoresearch::frame::str_column(&found.runs, "status").unwrap();
    assert!(status.iter().all(|s| s.as_deref() == Some("completed")));
    let mut seeds = autoresearch::frame::f64_column(&found.runs, "seed").unwrap();
    seeds.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(seeds, [Some(0.0), Some(1.0)]);
    // the fetched metrics are the ones the cluster wrote
    for seed in 0..2 {
        let rel = format!(
            "mnist_ffnn_adam/data.limit=5000,dataset=mnist,early_stopping=null,epochs=1,model.dropout=0/seed_{seed}/metrics.json"
        );
        let here = std::fs::read(root.join("runs").join(&rel)).unwrap();
        let there = std::fs::read(root.join("remote/runs").join(&rel)).unwrap();
        assert_eq!(here, there);
    }
    for acc in autoresearch::frame::f64_column(&found.runs, "best_val_acc").unwrap() {
        assert!(acc.unwrap() > 0.80, "5k images, 1 epoch: {acc:?}");
    }
    // a second fetch copies nothing
    let again = cluster.fetch(&[]).unwrap();
    assert!(again.copied.is_empty() && again.unchanged >= 10, "{again}");
}

/// `configs/hpo/snn_smoke.yaml` as a job array of two workers (one coordinates): it finishes
/// on the cluster, the monitor fetches the study directory, and the journal read here has
/// every trial finished, run by both workers.
fn a_study_runs_as_an_array_of_two_workers(cluster: &mut Cluster, root: &Path) {
    use autoresearch::hpo::{StudyLog, TrialStatus};
    let ids = cluster
        .submit_study(&autoresearch::cluster::StudyJob {
            study: "snn_smoke".into(),
            workers: 2,
            walltime: Walltime::hms(0, 10, 0),
            cpus: 1,
            mem_gb: 1,
            queue: None,
        })
        .unwrap();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let rounds = monitor(cluster, Duration::from_secs(300));
    assert!(rounds.iter().all(|r| r.failures.is_empty()));
    let journal = root.join("runs/hpo/snn_smoke/journal.jsonl");
    let log = StudyLog::read(&journal).unwrap();
    assert_eq!(log.trials.len(), 6);
    assert_eq!(
        log.count(TrialStatus::Completed) + log.count(TrialStatus::Pruned),
        6,
        "{log:?}"
    );
    let mut workers: Vec<&str> = log
        .trials
        .iter()
        .filter_map(|t| t.worker.as_deref())
        .collect();
    workers.sort_unstable();
    workers.dedup();
    assert_eq!(workers.len(), 2, "both array tasks ran trials: {workers:?}");
    // the trials' run directories came back with the journal (paths relative to the study)
    let study = root.join("runs/hpo/snn_smoke");
    for t in &log.trials {
        assert!(
            study.join(&t.run_dir).join("history.csv").is_file(),
            "{}",
            t.run_dir.display()
        );
    }
    let fetched = root.join("runs/hpo/snn_smoke/trials");
    assert!(
        scan(&fetched).unwrap().runs.height() == 6,
        "six trial runs fetched"
    );
}

/// Waits until the run's first checkpoint exists on the cluster while job `id` still runs.
fn wait_for_checkpoint(cluster: &mut Cluster, root: &Path, run: &str, id: &str) {
    let path = root
        .join("remote/runs")
        .join(run)
        .join("checkpoint/last.json");
    let start = Instant::now();
    while !path.is_file() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = cluster
        .remote()
        .exec("squeue --noheader --format=%i")
        .unwrap();
    assert!(
        out.stdout.lines().any(|l| l.trim() == id),
        "{id} not running: {out:?}"
    );
}

/// The last job of the resubmission chain starting at `id`, and the chain's length.
fn last_of(cluster: &Cluster, id: &str) -> (String, usize) {
    let mut current = id.to_string();
    let mut jobs = 1;
    while let Some(next) = cluster
        .ledger()
        .job(&current)
        .unwrap()
        .resubmitted_as
        .clone()
    {
        current = next;
        jobs += 1;
    }
    (current, jobs)
}

/// The run finished from checkpoints: completed, every epoch once in its history.
fn assert_resumed_to_the_end(root: &Path, run: &str, epochs: u64) {
    let dir = root.join("runs").join(run);
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["status"], "completed", "{run}");
    assert_eq!(metrics["epochs_done"], epochs, "{run}");
    assert!(
        metrics["resumed"].as_u64().unwrap() >= 1,
        "{run}: {metrics}"
    );
    let history = std::fs::read_to_string(dir.join("history.csv")).unwrap();
    assert_eq!(
        history.lines().count() as u64,
        epochs + 1,
        "{run}: no epoch twice"
    );
}

/// Interrupted jobs are resubmitted by the monitor and their runs finish from their
/// checkpoints: one killed by its walltime (1 minute, for a run that needs more), one cancelled
/// from outside autoresearch (as an administrator or preemption would).
fn interrupted_jobs_are_resubmitted_and_resume(cluster: &mut Cluster, root: &Path) {
    // 150 epochs of about 0.7-1.1 s: more than the limit plus Slurm's kill grace (90 s) even
    // on an idle machine (60 epochs finished inside the grace there, and nothing was resubmitted)
    let mut long = tiny(&["seed=6", "epochs=150"]);
    long.per_run = Walltime::hms(0, 0, 50); // x 1.2 = 00:01:00, Slurm's smallest limit
    let timed = cluster.submit(&long).unwrap();
    let timed_run =
        "mnist_ffnn_adam/dataset=mnist,early_stopping=null,epochs=150,model.dropout=0/seed_6";

    let cancelled = cluster.submit(&tiny(&["seed=7", "epochs=8"])).unwrap();
    let cancelled_run =
        "mnist_ffnn_adam/dataset=mnist,early_stopping=null,epochs=8,model.dropout=0/seed_7";
    wait_for_checkpoint(cluster, root, cancelled_run, &cancelled[0]);
    let out = cluster
        .remote()
        .exec(&format!("scancel {}", cancelled[0]))
        .unwrap();
    assert_eq!(out.status, 0, "{out:?}");

    let rounds = monitor(cluster, Duration::from_secs(600));
    assert!(rounds
        .iter()
        .all(|r| r.failures.is_empty() && r.gave_up.is_empty()));

    let first = cluster.ledger().job(&cancelled[0]).unwrap();
    assert_eq!(first.state(), JobState::Cancelled);
    assert!(!first.cancelled_by_user);
    let (last, jobs) = last_of(cluster, &cancelled[0]);
    assert_eq!(jobs, 2, "resubmitted once");
    assert_eq!(
        cluster.ledger().job(&last).unwrap().state(),
        JobState::Completed
    );
    assert_eq!(
        cluster.ledger().job(&last).unwrap().resubmits.as_deref(),
        Some(cancelled[0].as_str())
    );
    assert_resumed_to_the_end(root, cancelled_run, 8);

    let first = cluster.ledger().job(&timed[0]).unwrap();
    assert_eq!(first.state(), JobState::KilledWalltime, "{first:?}");
    let (last, jobs) = last_of(cluster, &timed[0]);
    assert!(jobs >= 2, "killed by its walltime at least once");
    // the last job completed, or its run did: a run that finishes within Slurm's kill grace
    // after the limit is reported TIMEOUT, and the monitor rightly leaves it be
    let state = cluster.ledger().job(&last).unwrap().state();
    assert!(
        state == JobState::Completed || state == JobState::KilledWalltime,
        "{last}: {state:?}"
    );
    assert_resumed_to_the_end(root, timed_run, 150);
}

/// A job cancelled with `Cluster::cancel` stays cancelled.
fn user_cancel_is_not_resubmitted(cluster: &mut Cluster) {
    let ids = cluster.submit(&tiny(&["seed=8", "epochs=30"])).unwrap();
    cluster.cancel(&ids).unwrap();
    let rounds = monitor(cluster, Duration::from_secs(120));
    assert!(rounds.iter().all(|r| r.resubmitted.is_empty()));
    let job = cluster.ledger().job(&ids[0]).unwrap();
    assert!(job.cancelled_by_user);
    assert_eq!(job.state(), JobState::Cancelled);
}

fn ledger_bytes(ws: &Workspace) -> Vec<u8> {
    std::fs::read(&ws.ledger).unwrap()
}

/// Each bad input is one clear error, and the ledger is untouched (or, for a job that fails
/// by itself, records exactly that).
fn bad_inputs_fail_clearly_and_leave_the_ledger_intact(bed: &Testbed, root: &Path, ws: &Workspace) {
    let before = ledger_bytes(ws);
    let jobs_before = Ledger::open(&ws.ledger).unwrap().jobs().len();
    let err_of = |key: &str, value: String| {
        Cluster::connect(profile(bed, root, &[(key, value)]), ws.clone())
            .unwrap_err()
            .to_string()
    };

    // unreachable host: a port nobody listens on
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = err_of("port", port.to_string());
    assert!(
        err.contains("unreachable") && err.contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );

    // auth failure: a key the server does not know (the host key's private half)
    let wrong_key = Path::new(bed.get("SSH_KEY")).with_file_name("host_ed25519");
    let err = err_of("identity_file", wrong_key.display().to_string());
    assert!(
        err.contains("authentication failed") && err.contains("host_ed25519"),
        "{err}"
    );

    // a host key not in known_hosts is refused, not trusted on first use
    let empty = root.join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let err = err_of("known_hosts", empty.display().to_string());
    assert!(
        err.contains("host key not in") && err.contains("ssh -p"),
        "{err}"
    );

    // unknown queue and walltime over the queue maximum: refused before anything is sent
    let mut cluster = Cluster::connect(profile(bed, root, &[]), ws.clone()).unwrap();
    let mut bad_queue = tiny(&["seed=0"]);
    bad_queue.queue = Some("gpu_9".into());
    let err = cluster.submit(&bad_queue).unwrap_err().to_string();
    assert!(err.contains("gpu_9") && err.contains("debug"), "{err}");
    let mut too_long = tiny(&["seed=0,1"]);
    too_long.per_run = Walltime::hms(30, 0, 0);
    let err = cluster.submit(&too_long).unwrap_err().to_string();
    assert!(err.contains("24:00:00"), "{err}");
    assert_eq!(
        ledger_bytes(ws),
        before,
        "refused submissions leave no trace"
    );

    // a job script that fails at once: reported with its log, not resubmitted
    let broken = profile(bed, root, &[("binary", "/nonexistent/autoresearch".into())]);
    let mut cluster = Cluster::connect(broken, ws.clone()).unwrap();
    let ids = cluster.submit(&tiny(&["seed=9", "epochs=1"])).unwrap();
    let rounds = monitor(&mut cluster, Duration::from_secs(120));
    let failures: Vec<_> = rounds.iter().flat_map(|r| r.failures.clone()).collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].id, ids[0]);
    assert!(
        failures[0].log_tail.contains("/nonexistent/autoresearch"),
        "{:?}",
        failures[0]
    );
    assert!(rounds.iter().all(|r| r.resubmitted.is_empty()));
    let ledger = Ledger::open(&ws.ledger).unwrap();
    assert_eq!(ledger.jobs().len(), jobs_before + 1);
    assert_eq!(ledger.job(&ids[0]).unwrap().state(), JobState::Failed);
}
