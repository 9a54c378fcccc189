//! Cluster job scripts against golden files, GPU jobs (device, per-GPU defaults, the CUDA guard
//! and check), and the errors of bad requests.

use std::path::PathBuf;

use autoresearch::cluster::{
    Cluster, ClusterProfile, Executor, JobRequest, JobScript, QueueLimits, Sweep, Walltime,
    Workspace,
};
use autoresearch::config::ConfigStore;

use crate::analysis::golden;

/// `bash -n`: the script parses as bash.
fn assert_bash_parses(text: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("job.sh");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn configs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs")
}

/// The CHPC profile with a test user's values (as `~/.config/autoresearch/clusters.yaml` gives them).
fn lengau() -> ClusterProfile {
    let tmp = tempfile::tempdir().unwrap();
    let user = tmp.path().join("clusters.yaml");
    std::fs::write(
        &user,
        "chpc_lengau:\n  user: jdoe\n  project: CSCI1234\n  email: jdoe@example.org\n  modules: [chpc/cuda/12.1]\n  env: {OMP_NUM_THREADS: \"10\"}\n",
    )
    .unwrap();
    ClusterProfile::load(&configs(), "chpc_lengau", Some(&user)).unwrap()
}

fn sweep(binary: &str, seeds: usize) -> Vec<String> {
    (0..seeds)
        .map(|s| {
            format!("{binary} train --quiet experiment=mnist_snn_ffnn_rate seed={s} runs_dir=runs")
        })
        .collect()
}

fn request(
    profile: &ClusterProfile,
    queue: &str,
    gpus: u32,
    array: bool,
    seeds: usize,
) -> JobRequest {
    JobRequest {
        name: "snn_ffnn_rate".into(),
        queue: Some(queue.into()),
        cpus: 10,
        mem_gb: 40,
        gpus,
        per_run: Walltime::hms(1, 30, 0),
        per_run_source: None,
        commands: sweep(&profile.remote_binary().unwrap(), seeds),
        array,
    }
}

#[test]
fn chpc_pbs_scripts_match_their_golden_files() {
    let profile = lengau();
    let array = JobScript::render(&profile, &request(&profile, "gpu_1", 1, true, 5)).unwrap();
    assert_eq!(array.array_len, Some(5));
    assert_eq!(
        array.walltime,
        Walltime::hms(1, 48, 0),
        "one seed per task: 1.5 h x 1.2"
    );
    golden("pbs_chpc_gpu_array.sh", &array.text);
    assert_bash_parses(&array.text);
    let serial = JobScript::render(&profile, &request(&profile, "serial", 0, false, 3)).unwrap();
    assert_eq!(serial.array_len, None);
    assert_eq!(
        serial.walltime,
        Walltime::hms(5, 24, 0),
        "3 seeds x 1.5 h x 1.2"
    );
    golden("pbs_chpc_serial.sh", &serial.text);
}

#[test]
fn slurm_script_matches_its_golden_file() {
    let mut profile = ClusterProfile::load(&configs(), "slurm", None).unwrap();
    assert!(profile.remote_work_dir().is_err(), "no user yet");
    profile.user = Some("tester".into());
    let mut req = request(&profile, "debug", 0, true, 2);
    req.cpus = 2;
    req.mem_gb = 2;
    let script = JobScript::render(&profile, &req).unwrap();
    golden("slurm_debug_array.sh", &script.text);
    assert_bash_parses(&script.text);
}

#[test]
fn bad_requests_are_clear_errors() {
    let profile = lengau();
    let err = JobScript::render(&profile, &request(&profile, "gpu_9", 1, true, 2))
        .unwrap_err()
        .to_string();
    assert!(err.contains("gpu_9") && err.contains("gpu_1"), "{err}");
    let mut long = request(&profile, "gpu_1", 1, true, 2);
    long.per_run = Walltime::hms(45, 0, 0);
    let err = JobScript::render(&profile, &long).unwrap_err().to_string();
    assert!(err.contains("48:00:00") && err.contains("gpu_1"), "{err}");
    let err = JobScript::render(&profile, &request(&profile, "gpu_1", 2, true, 2))
        .unwrap_err()
        .to_string();
    assert!(err.contains("gpus") && err.contains("at most 1"), "{err}");
    let mut bad_name = request(&profile, "serial", 0, false, 1);
    bad_name.name = "my job".into();
    assert!(JobScript::render(&profile, &bad_name).is_err());
}

fn store() -> ConfigStore {
    ConfigStore::new(configs()).unwrap()
}

/// `cluster script chpc_lengau --gpus N --queue Q experiment=mnist_snn_ffnn_rate <overrides>`.
fn gpu_sweep(gpus: u32, queue: &str, overrides: &[&str]) -> Sweep {
    let mut sweep = Sweep::new("mnist_snn_ffnn_rate", overrides.iter().copied());
    sweep.per_run = Walltime::hms(1, 30, 0);
    sweep.gpus = gpus;
    sweep.queue = Some(queue.into());
    sweep
}

#[test]
fn a_gpu_sweep_trains_on_cuda_with_the_queues_defaults_behind_a_cuda_guard() {
    let profile = lengau();
    let sweep = gpu_sweep(1, "gpu_1", &["seed=0,1"]);
    let request = sweep.job_request(&profile, &store()).unwrap();
    assert_eq!((request.cpus, request.mem_gb, request.gpus), (4, 8, 1));
    let script = JobScript::render(&profile, &request).unwrap();
    let text = &script.text;
    assert!(
        text.contains("#PBS -l select=1:ncpus=4:mem=8gb:ngpus=1\n"),
        "{text}"
    );
    let trains: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" train --quiet "))
        .collect();
    assert_eq!(trains.len(), 2, "{text}");
    assert!(trains.iter().all(|l| l.contains(" device=cuda")), "{text}");
    let guard = text.find("ar_version=$(\"$ar_binary\" --version").unwrap();
    assert!(
        guard < text.find("commands=(").unwrap(),
        "checked before training"
    );
    assert!(text.contains("grep -q '(cuda[ ]build)'"), "{text}");
    assert!(
        text.contains("module load chpc/cuda/12.1"),
        "toolkit loaded first"
    );
    golden("pbs_chpc_gpu_sweep.sh", text);
    assert_bash_parses(text);

    let mut sized = gpu_sweep(2, "gpu_2", &[]);
    sized.cpus = Some(20);
    let request = sized.job_request(&profile, &store()).unwrap();
    assert_eq!(
        (request.cpus, request.mem_gb),
        (20, 16),
        "--cpus wins, --mem per GPU"
    );
}

#[test]
fn a_cpu_sweep_keeps_one_core_four_gb_and_no_guard() {
    let profile = lengau();
    let mut sweep = Sweep::new("mnist_snn_ffnn_rate", ["seed=0"]);
    sweep.queue = Some("serial".into());
    let request = sweep.job_request(&profile, &store()).unwrap();
    let text = JobScript::render(&profile, &request).unwrap().text;
    assert!(
        text.contains("#PBS -l select=1:ncpus=1:mem=4gb\n"),
        "{text}"
    );
    assert!(
        !text.contains("device=") && !text.contains("ar_binary"),
        "{text}"
    );
}

#[test]
fn a_device_against_the_gpu_request_is_refused_naming_device() {
    let profile = lengau();
    let err = gpu_sweep(1, "gpu_1", &["device=cpu"])
        .job_request(&profile, &store())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`device`") && err.contains("`cpu`") && err.contains("cuda"),
        "{err}"
    );
    let mut cpu = gpu_sweep(0, "serial", &["device=cuda"]);
    cpu.gpus = 0;
    let err = cpu.job_request(&profile, &store()).unwrap_err().to_string();
    assert!(
        err.contains("`device`") && err.contains("without --gpus"),
        "{err}"
    );
    let err = gpu_sweep(1, "serial", &[])
        .job_request(&profile, &store())
        .and_then(|r| JobScript::render(&profile, &r))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("at most 0") && err.contains("GPU queues: gpu_1, gpu_2"),
        "{err}"
    );
}

#[test]
fn a_slurm_gpu_job_asks_for_gres_and_checks_its_binary() {
    let mut profile = ClusterProfile::load(&configs(), "slurm", None).unwrap();
    profile.user = Some("tester".into());
    profile.queues.insert(
        "gpu".into(),
        QueueLimits {
            max_walltime: Walltime::hms(24, 0, 0),
            max_cpus: 8,
            max_gpus: 2,
            cpus_per_gpu: Some(4),
            mem_gb_per_gpu: Some(8),
        },
    );
    let request = gpu_sweep(1, "gpu", &[])
        .job_request(&profile, &store())
        .unwrap();
    let text = JobScript::render(&profile, &request).unwrap().text;
    for line in [
        "#SBATCH --cpus-per-task=4\n",
        "#SBATCH --mem=8G\n",
        "#SBATCH --gres=gpu:1\n",
        " device=cuda",
        "ar_binary=/home/tester/autoresearch/bin/autoresearch\n",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    assert_bash_parses(&text);
}

#[test]
fn a_gpu_job_is_refused_before_qsub_when_the_binary_there_is_a_cpu_build() {
    let tmp = tempfile::tempdir().unwrap();
    let binary = tmp.path().join("autoresearch");
    std::fs::write(
        &binary,
        "#!/bin/sh\necho 'autoresearch 0.1.0 (cpu build)'\n",
    )
    .unwrap();
    let mut profile = lengau();
    profile.host = "local".into(); // this machine's shell; no qsub here
    profile.work_dir = tmp.path().join("work").display().to_string();
    profile.binary = binary.display().to_string();
    let ledger = tmp.path().join("ledger.yaml");
    let ws = Workspace::new(&configs(), &tmp.path().join("runs"), &ledger).unwrap();
    let mut cluster = Cluster::connect(profile, ws).unwrap();
    let err = cluster
        .submit(&gpu_sweep(1, "gpu_1", &["seed=0"]))
        .unwrap_err()
        .to_string();
    let said = format!("the remote binary at {} is a CPU build", binary.display());
    assert!(
        err.contains(&said) && err.contains("scripts/build-cuda.sh"),
        "{err}"
    );
    assert!(cluster.ledger().jobs().is_empty(), "nothing submitted");
    assert!(!tmp.path().join("work/jobs").exists(), "no script written");
}

/// The 94.96% CIFAR-10 recipe: ResNet-18, 200 epochs, seeds 0-4.
const RECIPE: &str = "cifar10_resnet18_sgd_cosine_augmented";

/// A fetched short run of the recipe as `train` leaves it: its `config.yaml` (the composed
/// config with `device` and `epochs=2`), `history.csv` of `times` and `metrics.json` of `host`.
fn measured_run(runs: &std::path::Path, device: &str, times: &[f64], host: &str) -> PathBuf {
    use autoresearch::rundir::EpochRecord;
    use autoresearch::RunDir;
    let exp = crate::compose(
        RECIPE,
        runs,
        &[&format!("device={device}"), "epochs=2", "seed=0"],
    )
    .unwrap();
    let dir = RunDir::for_config(exp.config());
    std::fs::create_dir_all(dir.path()).unwrap();
    dir.write_config(exp.config()).unwrap();
    let rows: Vec<EpochRecord> = times
        .iter()
        .enumerate()
        .map(|(i, t)| EpochRecord {
            epoch: i + 1,
            train_loss: 2.0,
            train: Vec::new(),
            val_loss: 2.0,
            val: Vec::new(),
            lr: 0.1,
            epoch_time_s: *t,
            extra: Vec::new(),
        })
        .collect();
    dir.write_history(&rows).unwrap();
    let metrics = format!(
        r#"{{"schema_version": 2, "experiment": "{RECIPE}", "variant": "epochs=2", "model": "resnet18_cifar",
 "dataset": "cifar10_augmented", "seed": 0, "status": "completed", "best_val_acc": 0.4, "best_epoch": 2,
 "final_val_acc": 0.4, "test_acc": 0.4, "test_loss": 1.6, "epochs_done": {n}, "epochs_planned": 2,
 "early_stopped": false, "params": 11173962, "wall_time_s": 45.0, "started_at": "2025-01-01T00:00:00Z",
 "finished_at": "2025-01-01T00:01:00Z", "host": "{host}", "git_commit": null, "resumed": 0, "error": null}}"#,
        n = times.len()
    );
    std::fs::write(dir.metrics_path(), metrics).unwrap();
    assert!(
        dir.read_metrics().unwrap().is_some(),
        "metrics.json reads back"
    );
    dir.path().to_path_buf()
}

/// `autoresearch cluster script chpc_lengau <args>` with a test user's values.
fn cluster_script(tmp: &std::path::Path, args: &[&str]) -> std::process::Output {
    let user = tmp.join("clusters.yaml");
    std::fs::write(&user, "chpc_lengau:\n  user: jdoe\n  project: CSCI1234\n").unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_autoresearch"))
        .current_dir(tmp)
        .arg("--configs")
        .arg(configs())
        .args(["cluster", "--user-file"])
        .arg(&user)
        .args(["script", "chpc_lengau"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_gpu_sweep_of_the_recipe_sizes_its_walltime_from_a_measured_gpu_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let run = measured_run(&tmp.path().join("runs"), "cuda", &[20.0, 20.0], "gpu4001");
    let run_arg = run.display().to_string();
    let experiment = format!("experiment={RECIPE}");
    let gpu = ["--gpus", "1", "--queue", "gpu_1"];
    let render = |extra: &[&str]| {
        let args: Vec<&str> = gpu
            .iter()
            .copied()
            .chain(extra.iter().copied())
            .chain(["--epoch-time-from", &run_arg, &experiment])
            .collect();
        let out = cluster_script(tmp.path(), &args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        String::from_utf8(out.stdout).unwrap()
    };
    // 5 seeds one after another in one job: 5 x 200 epochs x 20 s x 1.2 = 24000 s, under
    // gpu_1's 48:00:00
    let serial = render(&["--no-array"]);
    let measured = format!(
        "200 epochs x 20 s (median epoch of {run_arg}, 2 epochs measured on gpu4001, cuda)"
    );
    for line in [
        "#PBS -l select=1:ncpus=4:mem=8gb:ngpus=1\n".to_string(),
        "#PBS -l walltime=06:40:00\n".to_string(),
        format!("# walltime: 5 runs x {measured} x 1.2 = 06:40:00\n"),
    ] {
        assert!(serial.contains(&line), "{line} in {serial}");
    }
    assert_eq!(serial.matches(" device=cuda").count(), 5, "{serial}");
    assert_bash_parses(&serial);
    // as an array (the default), each task runs one seed: 200 x 20 s x 1.2 = 4800 s
    let array = render(&[]);
    for line in [
        "#PBS -l walltime=01:20:00\n".to_string(),
        "#PBS -J 0-4\n".to_string(),
        format!("# walltime: 1 run per array task x {measured} x 1.2 = 01:20:00\n"),
    ] {
        assert!(array.contains(&line), "{line} in {array}");
    }
    // a hand estimate renders no `# walltime:` line
    let out = cluster_script(
        tmp.path(),
        &[&gpu[..], &["--per-run", "01:00:00", &experiment]].concat(),
    );
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("# walltime:"));
}

#[test]
fn an_epoch_time_is_refused_from_another_device_or_beside_per_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cpu_run = measured_run(&tmp.path().join("runs"), "cpu", &[300.0, 310.0], "laptop");
    let cpu_arg = cpu_run.display().to_string();
    let experiment = format!("experiment={RECIPE}");
    let gpu = ["--gpus", "1", "--queue", "gpu_1"];
    let stderr = |args: &[&str]| {
        let out = cluster_script(tmp.path(), args);
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = stderr(&[&gpu[..], &["--epoch-time-from", &cpu_arg, &experiment]].concat());
    assert!(
        err.contains("--epoch-time-from")
            && err.contains(&cpu_arg)
            && err.contains("trained on `cpu`")
            && err.contains("trains on `cuda`"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let err = stderr(
        &[
            &gpu[..],
            &[
                "--per-run",
                "01:00:00",
                "--epoch-time-from",
                &cpu_arg,
                &experiment,
            ],
        ]
        .concat(),
    );
    assert!(
        err.contains("--epoch-time-from")
            && err.contains("--per-run")
            && err.contains("cannot be used with"),
        "{err}"
    );
    let empty = tmp.path().join("not_a_run");
    std::fs::create_dir_all(&empty).unwrap();
    let err = stderr(
        &[
            &gpu[..],
            &[
                "--epoch-time-from",
                &empty.display().to_string(),
                &experiment,
            ],
        ]
        .concat(),
    );
    assert!(
        err.contains(&empty.join("history.csv").display().to_string())
            && err.contains("train one short run on the target queue first"),
        "{err}"
    );
}
