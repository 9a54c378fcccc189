//! GPU jobs on a scheduler: every run of a job that holds GPUs trains on them (`device=cuda`),
//! and the binary it runs is a CUDA build, checked over SSH before submitting
//! ([`require_cuda_build`]) and again by the job script on its node before training ([`guard`]),
//! so a CPU build never trains on the CPU while holding a GPU.

use std::path::Path;

use super::remote::Remote;
use super::script::shell_quote;
use crate::build_info::{marks_cuda_build, CUDA_BUILD_PATTERN};
use crate::config::{ConfigStore, Override};
use crate::error::{Error, Result};

/// The config key naming the compute device.
pub const DEVICE_KEY: &str = "device";

/// The device a GPU job trains on.
pub const GPU_DEVICE: &str = "cuda";

/// What to build where a GPU job's binary is a CPU build.
pub const BUILD_HINT: &str = "build it on the cluster with scripts/build-cuda.sh on a node with the CUDA toolkit (`module load` one first; list that module in the profile's `modules`), then set `binary` in your clusters.yaml to it or upload it with `autoresearch cluster setup <profile> --binary <it>`";

/// The overrides of a scheduler job whose runs hold `gpus` GPUs each: with GPUs, `device=cuda`
/// is added unless an override names the device; a device that contradicts the request (an
/// override, or the experiment's own `device:`) is refused, naming `device`.
pub fn device_overrides(
    store: &ConfigStore,
    experiment: &str,
    overrides: &[String],
    gpus: u32,
) -> Result<Vec<String>> {
    let mut given = Vec::new();
    for text in overrides {
        let o = Override::parse(text)?;
        if o.key == DEVICE_KEY {
            given.extend(o.sweep_values()?);
        }
    }
    let named = !given.is_empty();
    let (values, source) = if named {
        (given, "override")
    } else {
        let tree = store.compose(experiment, &[])?.tree;
        let set = tree
            .get(DEVICE_KEY)
            .and_then(|v| v.as_str())
            .map(String::from);
        (set.into_iter().collect(), "in the experiment's config")
    };
    if gpus > 0 {
        if let Some(bad) = values.iter().find(|v| v.as_str() != GPU_DEVICE) {
            return Err(Error::invalid(
                DEVICE_KEY,
                format!(
                    "`{bad}` ({source}) with --gpus {gpus}: the job would hold its GPU(s) and train on the CPU; a GPU job trains on `{GPU_DEVICE}` (the default with --gpus): use device={GPU_DEVICE}, or leave out --gpus for a CPU job"
                ),
            ));
        }
    } else if values.iter().any(|v| v == GPU_DEVICE) {
        return Err(Error::invalid(
            DEVICE_KEY,
            format!(
                "`{GPU_DEVICE}` ({source}) without --gpus: the scheduler gives the job no GPU to train on; ask for one with --gpus N on a GPU queue (--queue), or use device=cpu"
            ),
        ));
    }
    let mut out = overrides.to_vec();
    if gpus > 0 && !named {
        out.push(format!("{DEVICE_KEY}={GPU_DEVICE}"));
    }
    Ok(out)
}

/// Shell lines that stop a GPU job unless `binary` is a CUDA build that starts on the job's
/// node (its `--version` says so), with the reason in the log.
pub fn guard(binary: &str) -> String {
    [
        "# a GPU job: stop unless the binary is a CUDA build (a CPU build would hold the GPU and train on the CPU)".to_string(),
        format!("ar_binary={}", shell_quote(binary)),
        r#"ar_version=$("$ar_binary" --version 2>&1) || true"#.to_string(),
        format!("if ! grep -q '{CUDA_BUILD_PATTERN}' <<< \"$ar_version\"; then"),
        r#"  echo "autoresearch: $ar_binary is not a CUDA build that starts on this node (--version: $ar_version); build it with scripts/build-cuda.sh on a node with the CUDA toolkit and list the toolkit's module in the profile's modules" >&2"#.to_string(),
        "  exit 1".to_string(),
        "fi".to_string(),
    ]
    .join("\n")
}

/// What the binary at a remote path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteBuild {
    /// No file there.
    Missing,
    /// A CPU build (or one older than the build line of `--version`).
    Cpu,
    /// A CUDA build.
    Cuda,
}

/// Looks at the file at `binary` on `remote` without running it (a CUDA build may not start on
/// a login node without the GPU driver): `grep` for the CUDA build's version line.
pub fn remote_build(remote: &mut dyn Remote, binary: &str) -> Result<RemoteBuild> {
    let path = shell_quote(binary);
    let command = format!(
        "if [ ! -f {path} ]; then echo missing; elif LC_ALL=C grep -aq '{CUDA_BUILD_PATTERN}' {path}; then echo cuda; else echo cpu; fi"
    );
    let host = remote.host().to_string();
    let out = remote.exec(&command)?.checked(&host, "grep")?;
    match out.stdout.trim() {
        "missing" => Ok(RemoteBuild::Missing),
        "cuda" => Ok(RemoteBuild::Cuda),
        "cpu" => Ok(RemoteBuild::Cpu),
        other => Err(Error::Cluster {
            host,
            message: format!("checking the binary {binary}: unexpected output `{other}`"),
        }),
    }
}

/// Refuses a GPU job whose binary at `binary` on `remote` is missing or a CPU build.
pub fn require_cuda_build(remote: &mut dyn Remote, binary: &str) -> Result<()> {
    let message = match remote_build(remote, binary)? {
        RemoteBuild::Cuda => return Ok(()),
        RemoteBuild::Missing => format!(
            "a GPU job needs a CUDA build of autoresearch at {binary}, and there is no file there: {BUILD_HINT}"
        ),
        RemoteBuild::Cpu => format!(
            "the remote binary at {binary} is a CPU build: a GPU job would hold its GPU(s) and train on the CPU; {BUILD_HINT}"
        ),
    };
    Err(Error::Cluster {
        host: remote.host().to_string(),
        message,
    })
}

/// Whether the local file at `path` is a CUDA build of autoresearch.
pub fn file_is_cuda_build(path: &Path) -> Result<bool> {
    let bytes = std::fs::read(path).map_err(Error::io("reading", path))?;
    Ok(marks_cuda_build(&bytes))
}

#[cfg(test)]
mod tests {
    use super::super::remote::LocalShell;
    use super::*;

    fn store() -> Result<ConfigStore> {
        ConfigStore::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs"))
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_gpu_job_trains_on_cuda_and_a_contradicting_device_is_refused() -> Result<()> {
        let store = store()?;
        let exp = "mnist_snn_ffnn_rate";
        let added = device_overrides(&store, exp, &strings(&["seed=0,1"]), 1)?;
        assert_eq!(added, strings(&["seed=0,1", "device=cuda"]));
        let kept = device_overrides(&store, exp, &strings(&["device=cuda"]), 2)?;
        assert_eq!(kept, strings(&["device=cuda"]), "not added twice");
        let cpu = device_overrides(&store, exp, &strings(&["seed=0"]), 0)?;
        assert_eq!(cpu, strings(&["seed=0"]), "a CPU job is left as it is");
        for (overrides, gpus, said) in [
            (&["device=cpu"][..], 1, "`cpu` (override) with --gpus 1"),
            (&["device=cpu,cuda"][..], 1, "`cpu`"),
            (&["device=cuda"][..], 0, "without --gpus"),
        ] {
            let err = device_overrides(&store, exp, &strings(overrides), gpus)
                .unwrap_err()
                .to_string();
            assert!(err.contains("`device`") && err.contains(said), "{err}");
        }
        Ok(())
    }

    #[test]
    fn an_experiment_that_says_device_cpu_is_refused_with_gpus() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(Error::io("tempdir", "."))?;
        let configs = tmp.path().join("configs");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let options = [
            ("dataset", "mnist_pixels"),
            ("model", "ffnn"),
            ("optimizer", "adam"),
            ("scheduler", "constant"),
        ];
        for (group, name) in options {
            let dir = configs.join(group);
            std::fs::create_dir_all(&dir).map_err(Error::io("mkdir", &dir))?;
            let from = src.join(group).join(format!("{name}.yaml"));
            let to = dir.join(format!("{name}.yaml"));
            std::fs::copy(&from, &to).map_err(Error::io("copying", &from))?;
        }
        let exp = configs.join("experiment");
        std::fs::create_dir_all(&exp).map_err(Error::io("mkdir", &exp))?;
        let from = src.join("experiment/mnist_ffnn_adam.yaml");
        let text = std::fs::read_to_string(&from).map_err(Error::io("reading", &from))?;
        let to = exp.join("on_cpu.yaml");
        std::fs::write(&to, format!("{text}\ndevice: cpu\n")).map_err(Error::io("writing", &to))?;
        let store = ConfigStore::new(&configs)?;
        let err = device_overrides(&store, "on_cpu", &[], 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`device`") && err.contains("in the experiment's config"),
            "{err}"
        );
        assert_eq!(
            device_overrides(&store, "on_cpu", &strings(&["device=cuda"]), 1)?,
            strings(&["device=cuda"]),
            "an explicit override wins over the file"
        );
        Ok(())
    }

    /// A fake `autoresearch` printing `version` for `--version`.
    fn fake_binary(dir: &Path, name: &str, version: &str) -> Result<String> {
        let path = dir.join(name);
        let script = format!("#!/bin/sh\necho 'autoresearch {version}'\n");
        std::fs::write(&path, script).map_err(Error::io("writing", &path))?;
        let status = std::process::Command::new("chmod")
            .arg("+x")
            .arg(&path)
            .status()
            .map_err(Error::io("chmod", &path))?;
        assert!(status.success());
        Ok(path.display().to_string())
    }

    #[test]
    fn the_remote_check_tells_cuda_builds_from_cpu_builds_and_missing_files() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(Error::io("tempdir", "."))?;
        let cuda = fake_binary(tmp.path(), "cuda", &format!("0.1.0 (cuda{}build)", ' '))?;
        let cpu = fake_binary(tmp.path(), "cpu", "0.1.0 (cpu build)")?;
        let old = fake_binary(tmp.path(), "old", "0.1.0")?;
        let missing = tmp.path().join("missing").display().to_string();
        let mut shell = LocalShell;
        assert_eq!(remote_build(&mut shell, &cuda)?, RemoteBuild::Cuda);
        assert_eq!(remote_build(&mut shell, &cpu)?, RemoteBuild::Cpu);
        assert_eq!(remote_build(&mut shell, &old)?, RemoteBuild::Cpu);
        assert_eq!(remote_build(&mut shell, &missing)?, RemoteBuild::Missing);
        require_cuda_build(&mut shell, &cuda)?;
        let err = require_cuda_build(&mut shell, &cpu)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("the remote binary at {cpu} is a CPU build"))
                && err.contains("scripts/build-cuda.sh"),
            "{err}"
        );
        let err = require_cuda_build(&mut shell, &missing)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no file there"), "{err}");
        assert!(file_is_cuda_build(Path::new(&cuda))?);
        assert!(!file_is_cuda_build(Path::new(&cpu))?);
        Ok(())
    }

    #[test]
    fn the_guard_stops_a_cpu_build_and_lets_a_cuda_build_train() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(Error::io("tempdir", "."))?;
        let cuda = fake_binary(tmp.path(), "cuda", &format!("0.1.0 (cuda{}build)", ' '))?;
        let cpu = fake_binary(tmp.path(), "cpu", "0.1.0 (cpu build)")?;
        let missing = tmp.path().join("missing").display().to_string();
        let run = |binary: &str| -> Result<std::process::Output> {
            let script = format!("set -euo pipefail\n{}\necho training\n", guard(binary));
            std::process::Command::new("bash")
                .arg("-c")
                .arg(&script)
                .output()
                .map_err(Error::io("running bash", binary))
        };
        let ok = run(&cuda)?;
        assert!(ok.status.success());
        assert_eq!(String::from_utf8_lossy(&ok.stdout), "training\n");
        for bad in [cpu, missing] {
            let out = run(&bad)?;
            let said = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{said}");
            assert!(out.stdout.is_empty(), "no training after a failed guard");
            assert!(
                said.contains(&format!("{bad} is not a CUDA build")) && said.contains("--version:"),
                "{said}"
            );
        }
        Ok(())
    }
}
