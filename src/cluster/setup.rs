//! `setup`: put what jobs need on the cluster (the binary, `configs/`, the work folders) and
//! prove the binary starts there; a CUDA build already there is not replaced by a CPU build.

use std::path::Path;

use super::client::Cluster;
use super::executor::Executor;
use super::gpu::{self, RemoteBuild};
use super::script::shell_quote;
use super::sync::{self, PushReport};
use crate::error::{Error, Result};

/// What `setup` put on the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupReport {
    /// `uname -sm` of the login host.
    pub platform: String,
    /// Whether the binary was uploaded (false: the same one was there, or a CUDA build was
    /// kept).
    pub binary_uploaded: bool,
    /// Whether a CUDA build there was kept instead of uploading a CPU build over it.
    pub kept_cuda_build: bool,
    /// Whether the binary there is a CUDA build (GPU jobs need one).
    pub cuda: bool,
    /// `autoresearch --version` as run there (or why a CUDA build did not run on the login
    /// node).
    pub remote_version: String,
    /// Config files uploaded or already there.
    pub configs: PushReport,
}

impl Cluster {
    /// Puts what jobs need on the cluster: the `binary` (built here for the same platform) at
    /// the profile's `binary` path, unless that is a CUDA build and `binary` is not; the
    /// `configs/` tree under `work_dir`; and `runs/`, `logs/` and `jobs/` folders. Then runs
    /// `autoresearch --version` there to prove it starts (a CUDA build may not start on a
    /// login node without the GPU driver; its jobs check it on their node).
    pub fn setup(&mut self, binary: &Path) -> Result<SetupReport> {
        let host = self.remote().host().to_string();
        let platform = self.check_platform()?;
        let work_dir = self.profile().remote_work_dir()?;
        self.make_dirs(&work_dir)?;
        let remote_binary = self.profile().remote_binary()?;
        let kept_cuda_build = gpu::remote_build(self.remote(), &remote_binary)?
            == RemoteBuild::Cuda
            && !gpu::file_is_cuda_build(binary)?;
        let binary_uploaded =
            !kept_cuda_build && sync::push_file(self.remote(), binary, &remote_binary, 0o755)?;
        let configs_dir = self.workspace().configs.root().to_path_buf();
        let configs = sync::push(self.remote(), &configs_dir, &format!("{work_dir}/configs"))?;
        let cuda = gpu::remote_build(self.remote(), &remote_binary)? == RemoteBuild::Cuda;
        let out = self
            .remote()
            .exec(&format!("{} --version", shell_quote(&remote_binary)))?;
        let said = [out.stderr.trim(), out.stdout.trim()].join(" ");
        let remote_version = match (out.status, cuda) {
            (0, _) => out.stdout.trim().to_string(),
            (_, true) => format!(
                "a CUDA build that does not start on the login node ({}); GPU jobs check it on their node",
                said.trim()
            ),
            _ => {
                return Err(Error::Cluster {
                    host,
                    message: format!(
                        "the uploaded binary does not start there ({}): often an older C library on the cluster; build it there with `cargo build --release` and set `binary`",
                        said.trim()
                    ),
                })
            }
        };
        Ok(SetupReport {
            platform,
            binary_uploaded,
            kept_cuda_build,
            cuda,
            remote_version,
            configs,
        })
    }

    /// `uname -sm` of the login host, refused when this binary is for another platform.
    fn check_platform(&mut self) -> Result<String> {
        let host = self.remote().host().to_string();
        let platform = self
            .remote()
            .exec("uname -sm")?
            .checked(&host, "uname -sm")?
            .stdout
            .trim()
            .to_string();
        let here = format!("{} {}", std::env::consts::OS, std::env::consts::ARCH);
        let matches = platform.to_lowercase().starts_with(std::env::consts::OS)
            && platform.ends_with(std::env::consts::ARCH);
        if !matches {
            return Err(Error::Cluster {
                host,
                message: format!(
                    "the login host is `{platform}`, this binary is for `{here}`; build on the cluster (`cargo build --release` in a clone there) and set `binary` to it"
                ),
            });
        }
        Ok(platform)
    }
}
