//! Cluster job scripts against golden files, and the errors of bad requests.

use std::path::PathBuf;

use autoresearch::cluster::{ClusterProfile, JobRequest, JobScript, Walltime};

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
