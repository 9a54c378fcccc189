//! Cluster profiles: where a cluster is, which scheduler it runs and the limits of its queues
//! (`configs/cluster/<name>.yaml`, in the repository), plus the user's own values (user name,
//! project code, e-mail, key) from `~/.config/autoresearch/clusters.yaml` or environment
//! variables, which never live in the repository.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::walltime::Walltime;
use crate::error::{Error, Result};

/// The batch scheduler of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheduler {
    /// PBS Professional (`qsub`, `qstat -f -F json`, `qdel`; arrays with `-J`).
    Pbs,
    /// Slurm (`sbatch`, `squeue`, `sacct`/`scontrol`, `scancel`; arrays with `--array`).
    Slurm,
}

/// Limits of one queue (PBS) or partition (Slurm).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueLimits {
    /// Longest walltime a job may request.
    pub max_walltime: Walltime,
    /// Most CPU cores a job may request.
    pub max_cpus: u32,
    /// Most GPUs a job may request (0: a CPU queue).
    #[serde(default)]
    pub max_gpus: u32,
    /// CPU cores per GPU requested when a GPU job does not say (`--gpus` without `--cpus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_per_gpu: Option<u32>,
    /// Memory per GPU in GB requested when a GPU job does not say (`--gpus` without `--mem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_gb_per_gpu: Option<u32>,
}

/// CPU cores of a job that does not say, where the queue has no per-GPU default.
pub const DEFAULT_CPUS: u32 = 1;

/// Memory in GB of a job that does not say, where the queue has no per-GPU default.
pub const DEFAULT_MEM_GB: u32 = 4;

impl QueueLimits {
    /// The cores and memory (GB) of a job with `gpus` GPUs that names neither: the queue's
    /// per-GPU defaults times `gpus`, else [`DEFAULT_CPUS`] and [`DEFAULT_MEM_GB`].
    pub fn default_resources(&self, gpus: u32) -> (u32, u32) {
        let per_gpu = |value: Option<u32>, fallback: u32| match value {
            Some(v) if gpus > 0 => v.saturating_mul(gpus),
            _ => fallback,
        };
        (
            per_gpu(self.cpus_per_gpu, DEFAULT_CPUS),
            per_gpu(self.mem_gb_per_gpu, DEFAULT_MEM_GB),
        )
    }
}

/// A cluster as the repository describes it, with the user's values merged in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterProfile {
    /// Profile name (the file stem).
    pub name: String,
    /// Login host (an `~/.ssh/config` alias works too).
    pub host: String,
    /// SSH port when not 22 (or the `~/.ssh/config` value).
    #[serde(default)]
    pub port: Option<u16>,
    /// The scheduler.
    pub scheduler: Scheduler,
    /// Queue used when a submission names none.
    pub default_queue: String,
    /// Queues (partitions) by name.
    pub queues: BTreeMap<String, QueueLimits>,
    /// `module load` lines of the job script.
    #[serde(default)]
    pub modules: Vec<String>,
    /// Remote directory holding `runs/`, `logs/` and job scripts; an absolute path in which
    /// `{user}` stands for [`ClusterProfile::user`] (no shell variables: scheduler directives
    /// do not expand them).
    pub work_dir: String,
    /// Remote path of the `autoresearch` binary (`{user}` as in `work_dir`).
    pub binary: String,
    /// Slurm partition (defaults to the queue name).
    #[serde(default)]
    pub partition: Option<String>,
    /// Slurm account.
    #[serde(default)]
    pub account: Option<String>,
    /// Slurm QOS.
    #[serde(default)]
    pub qos: Option<String>,
    /// Slurm generic resources per job (e.g. `gpu:1`).
    #[serde(default)]
    pub gres: Option<String>,
    /// User name on the cluster (user value).
    #[serde(default)]
    pub user: Option<String>,
    /// Project code charged for the jobs (PBS `-P`; user value).
    #[serde(default)]
    pub project: Option<String>,
    /// Address for scheduler mail on abort (user value).
    #[serde(default)]
    pub email: Option<String>,
    /// Private key file for SSH (user value; else ssh-agent or `~/.ssh/config`).
    #[serde(default)]
    pub identity_file: Option<PathBuf>,
    /// OpenSSH client config read for the host (user value; default `~/.ssh/config`).
    #[serde(default)]
    pub ssh_config: Option<PathBuf>,
    /// known_hosts file the host key must be in (user value; default from the ssh config, else
    /// `~/.ssh/known_hosts`).
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// Environment variables exported by every job script (e.g. `AUTORESEARCH_DATA`,
    /// `OMP_NUM_THREADS`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// The user's values for one profile (any field of [`ClusterProfile`] may be overridden).
pub type UserValues = BTreeMap<String, serde_yaml_ng::Value>;

/// Variables read for user values: `AUTORESEARCH_CLUSTER_<FIELD>` for every profile, or
/// `AUTORESEARCH_CLUSTER_<PROFILE>_<FIELD>` for one (upper case), e.g.
/// `AUTORESEARCH_CLUSTER_CHPC_LENGAU_PROJECT`.
pub const ENV_FIELDS: &[&str] = &[
    "user",
    "project",
    "email",
    "identity_file",
    "ssh_config",
    "known_hosts",
    "host",
    "port",
    "account",
];

impl ClusterProfile {
    /// Loads `configs/cluster/<name>.yaml` under `configs`, then merges the user's values
    /// from `user_file` (a map of profile name to fields) and the environment.
    pub fn load(configs: &Path, name: &str, user_file: Option<&Path>) -> Result<ClusterProfile> {
        let dir = configs.join("cluster");
        let path = dir.join(format!("{name}.yaml"));
        if !path.is_file() {
            let mut known: Vec<String> = std::fs::read_dir(&dir)
                .map(|d| {
                    d.flatten()
                        .filter_map(|e| {
                            let p = e.path();
                            (p.extension()? == "yaml")
                                .then(|| p.file_stem().map(|s| s.to_string_lossy().into_owned()))?
                        })
                        .collect()
                })
                .unwrap_or_default();
            known.sort();
            return Err(Error::UnknownGroupOption {
                group: "cluster".into(),
                option: name.into(),
                valid: known.join(", "),
            });
        }
        let mut tree = crate::config::load_yaml(&path)?;
        if let Some(file) = user_file.filter(|f| f.is_file()) {
            let users = crate::config::load_yaml(file)?;
            if let Some(mine) = users.get(name) {
                crate::config::merge(&mut tree, mine.clone());
            }
        }
        for field in ENV_FIELDS {
            let specific = format!(
                "AUTORESEARCH_CLUSTER_{}_{}",
                name.to_uppercase(),
                field.to_uppercase()
            );
            let generic = format!("AUTORESEARCH_CLUSTER_{}", field.to_uppercase());
            if let Some(value) = std::env::var(&specific)
                .ok()
                .or_else(|| std::env::var(&generic).ok())
            {
                let parsed: serde_yaml_ng::Value =
                    serde_yaml_ng::from_str(&value).unwrap_or(serde_yaml_ng::Value::String(value));
                crate::config::set_path(&mut tree, field, parsed)
                    .map_err(|m| Error::invalid(format!("${specific}"), m))?;
            }
        }
        let profile: ClusterProfile = serde_path_to_error::deserialize(tree).map_err(|e| {
            Error::invalid(
                format!("cluster {name}: {}", e.path()),
                e.inner().to_string(),
            )
        })?;
        profile.check()?;
        Ok(profile)
    }

    /// The default user file: `$XDG_CONFIG_HOME/autoresearch/clusters.yaml`, else
    /// `~/.config/autoresearch/clusters.yaml`.
    pub fn user_file() -> Option<PathBuf> {
        std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .map(|d| d.join("autoresearch").join("clusters.yaml"))
    }

    /// The queues that take GPU jobs (`max_gpus` above 0), by name.
    pub fn gpu_queues(&self) -> Vec<&str> {
        self.queues
            .iter()
            .filter(|(_, q)| q.max_gpus > 0)
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// The limits of `queue`, or an error listing the queues there are.
    pub fn queue(&self, queue: &str) -> Result<&QueueLimits> {
        self.queues
            .get(queue)
            .ok_or_else(|| Error::UnknownGroupOption {
                group: format!("queue of cluster {}", self.name),
                option: queue.into(),
                valid: self.queues.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    /// `work_dir` with `{user}` replaced.
    pub fn remote_work_dir(&self) -> Result<String> {
        self.expand("work_dir", &self.work_dir)
    }

    /// `binary` with `{user}` replaced.
    pub fn remote_binary(&self) -> Result<String> {
        self.expand("binary", &self.binary)
    }

    fn expand(&self, key: &str, path: &str) -> Result<String> {
        if !path.contains("{user}") {
            return Ok(path.to_string());
        }
        match &self.user {
            Some(u) => Ok(path.replace("{user}", u)),
            None => Err(Error::invalid(
                format!("cluster {}: {key}", self.name),
                format!(
                    "`{path}` needs your user name: set `user` for `{}` in ~/.config/autoresearch/clusters.yaml or AUTORESEARCH_CLUSTER_USER",
                    self.name
                ),
            )),
        }
    }

    fn check(&self) -> Result<()> {
        for (key, path) in [("work_dir", &self.work_dir), ("binary", &self.binary)] {
            if path.contains('$') || !path.starts_with('/') {
                return Err(Error::invalid(
                    format!("cluster {}: {key}", self.name),
                    format!("`{path}` must be an absolute path without shell variables (`{{user}}` is replaced by your user name)"),
                ));
            }
        }
        for name in self.env.keys() {
            let mut chars = name.chars();
            let valid = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(Error::invalid(
                    format!("cluster {}: env.{name}", self.name),
                    "a variable name is letters, digits and `_`, not starting with a digit",
                ));
            }
        }
        self.check_gpu_defaults()?;
        self.queue(&self.default_queue).map(|_| ())
    }

    /// Per-GPU defaults only on GPU queues, above 0, and within `max_cpus` at `max_gpus`.
    fn check_gpu_defaults(&self) -> Result<()> {
        for (name, q) in &self.queues {
            let bad = |key: &str, message: String| {
                Err(Error::invalid(
                    format!("cluster {}: queues.{name}.{key}", self.name),
                    message,
                ))
            };
            for (key, value) in [
                ("cpus_per_gpu", q.cpus_per_gpu),
                ("mem_gb_per_gpu", q.mem_gb_per_gpu),
            ] {
                match value {
                    Some(_) if q.max_gpus == 0 => {
                        return bad(
                            key,
                            "a per-GPU default on a queue without GPUs (max_gpus: 0)".into(),
                        )
                    }
                    Some(0) => return bad(key, "0; use 1 or more".into()),
                    _ => {}
                }
            }
            if let Some(c) = q.cpus_per_gpu {
                if c.saturating_mul(q.max_gpus) > q.max_cpus {
                    return bad(
                        "cpus_per_gpu",
                        format!(
                            "{c} per GPU x {} GPUs is more than max_cpus ({})",
                            q.max_gpus, q.max_cpus
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_configs() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs")
    }

    #[test]
    fn shipped_profiles_load_and_user_values_merge() -> crate::Result<()> {
        let tmp = tempfile::tempdir().map_err(Error::io("tempdir", "."))?;
        let user = tmp.path().join("clusters.yaml");
        std::fs::write(
            &user,
            "chpc_lengau:\n  user: jdoe\n  project: CSCI1234\n  email: jdoe@example.org\n",
        )
        .map_err(Error::io("writing", &user))?;
        let p = ClusterProfile::load(&repo_configs(), "chpc_lengau", Some(&user))?;
        assert_eq!(p.scheduler, Scheduler::Pbs);
        assert_eq!(p.host, "lengau.chpc.ac.za");
        assert_eq!(p.user.as_deref(), Some("jdoe"));
        assert_eq!(p.project.as_deref(), Some("CSCI1234"));
        assert_eq!(p.queue("gpu_1")?.max_gpus, 1);
        assert_eq!(p.queue("gpu_1")?.max_walltime, Walltime::hms(48, 0, 0));
        let err = p.queue("gpu_9").unwrap_err().to_string();
        assert!(err.contains("gpu_9") && err.contains("serial"), "{err}");
        let slurm = ClusterProfile::load(&repo_configs(), "slurm", None)?;
        assert_eq!(slurm.scheduler, Scheduler::Slurm);
        let err = ClusterProfile::load(&repo_configs(), "nowhere", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("chpc_lengau") && err.contains("slurm"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn gpu_queues_default_cores_and_memory_per_gpu() -> crate::Result<()> {
        let p = ClusterProfile::load(&repo_configs(), "chpc_lengau", None)?;
        assert_eq!(p.queue("gpu_1")?.default_resources(1), (4, 8));
        assert_eq!(p.queue("gpu_4")?.default_resources(4), (16, 32));
        assert_eq!(
            p.queue("gpu_1")?.default_resources(0),
            (1, 4),
            "no GPU asked"
        );
        assert_eq!(p.queue("serial")?.default_resources(0), (1, 4));
        assert_eq!(
            p.gpu_queues(),
            ["gpu_1", "gpu_2", "gpu_3", "gpu_4", "gpu_long"]
        );
        for (name, q) in &p.queues {
            if let Some(c) = q.cpus_per_gpu {
                assert!(c * q.max_gpus <= q.max_cpus, "{name}");
            }
        }
        Ok(())
    }

    #[test]
    fn a_per_gpu_default_that_cannot_hold_is_an_error_naming_it() -> crate::Result<()> {
        let tmp = tempfile::tempdir().map_err(Error::io("tempdir", "."))?;
        let user = tmp.path().join("clusters.yaml");
        for (queue, value, said) in [
            ("serial", "cpus_per_gpu: 2", "queues.serial.cpus_per_gpu"),
            ("gpu_1", "cpus_per_gpu: 11", "more than max_cpus (10)"),
            ("gpu_2", "mem_gb_per_gpu: 0", "queues.gpu_2.mem_gb_per_gpu"),
        ] {
            let text = format!("chpc_lengau:\n  queues:\n    {queue}: {{{value}}}\n");
            std::fs::write(&user, text).map_err(Error::io("writing", &user))?;
            let err = ClusterProfile::load(&repo_configs(), "chpc_lengau", Some(&user))
                .unwrap_err()
                .to_string();
            assert!(err.contains(said), "{err}");
        }
        Ok(())
    }

    #[test]
    fn a_misspelt_user_field_is_an_error_naming_it() -> crate::Result<()> {
        let tmp = tempfile::tempdir().map_err(Error::io("tempdir", "."))?;
        let user = tmp.path().join("clusters.yaml");
        std::fs::write(&user, "slurm:\n  projekt: X\n").map_err(Error::io("writing", &user))?;
        let err = ClusterProfile::load(&repo_configs(), "slurm", Some(&user))
            .unwrap_err()
            .to_string();
        assert!(err.contains("projekt"), "{err}");
        Ok(())
    }
}
