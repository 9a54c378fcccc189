//! What the cluster operations need from the machine the scheduler runs on: run a shell
//! command, list a directory tree, copy files both ways. [`super::ssh::SshRemote`] does it over
//! SSH; [`LocalShell`] does it here, for a notebook that runs on the login node itself.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// What a remote command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit status (`-1` when killed by a signal).
    pub status: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// The output, or an error naming `what` with the status and stderr when it failed.
    pub fn checked(self, host: &str, what: &str) -> Result<Output> {
        if self.status == 0 {
            return Ok(self);
        }
        let said = [self.stderr.trim(), self.stdout.trim()]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or("no output");
        Err(Error::Cluster {
            host: host.to_string(),
            message: format!("`{what}` exited with status {}: {said}", self.status),
        })
    }
}

/// One regular file under a listed directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Path relative to the listed directory (`/`-separated).
    pub relative: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: u64,
}

/// A machine reached by shell commands and file copies.
pub trait Remote {
    /// Host name used in messages.
    fn host(&self) -> &str;
    /// Runs `command` with `sh -c` semantics in the login shell's home directory.
    fn exec(&mut self, command: &str) -> Result<Output>;
    /// Every regular file under `dir`, recursively (empty when `dir` does not exist).
    fn list_files(&mut self, dir: &str) -> Result<Vec<RemoteFile>>;
    /// Writes `bytes` to `path` atomically (temp file + rename) with `mode`, creating parents.
    fn write_file(&mut self, path: &str, bytes: &[u8], mode: i32) -> Result<()>;
    /// Reads the file at `path`.
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>>;
}

/// The scheduler is on this machine: commands run with `sh -c`, files are local.
#[derive(Debug, Clone, Default)]
pub struct LocalShell;

impl Remote for LocalShell {
    fn host(&self) -> &str {
        "localhost"
    }

    fn exec(&mut self, command: &str) -> Result<Output> {
        let out = Command::new("sh")
            .arg("-c")
            .arg(command)
            .output()
            .map_err(Error::io("running sh -c", command))?;
        Ok(Output {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    fn list_files(&mut self, dir: &str) -> Result<Vec<RemoteFile>> {
        let mut files = Vec::new();
        walk_local(Path::new(dir), "", &mut files)?;
        files.sort_by(|a, b| a.relative.cmp(&b.relative));
        Ok(files)
    }

    fn write_file(&mut self, path: &str, bytes: &[u8], mode: i32) -> Result<()> {
        let path = Path::new(path);
        write_atomic(path, bytes)?;
        set_mode(path, mode)
    }

    fn read_file(&mut self, path: &str) -> Result<Vec<u8>> {
        std::fs::read(path).map_err(Error::io("reading", path))
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: i32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = u32::try_from(mode).unwrap_or(0o644);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(Error::io("setting the mode of", path))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: i32) -> Result<()> {
    Ok(())
}

/// Appends the regular files under `dir` to `out`, named relative to the walk's root.
pub(crate) fn walk_local(dir: &Path, prefix: &str, out: &mut Vec<RemoteFile>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("listing", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(Error::io("listing", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{}", entry.file_name().to_string_lossy())
        };
        let meta = entry
            .metadata()
            .map_err(Error::io("reading", entry.path()))?;
        if meta.is_dir() {
            walk_local(&entry.path(), &relative, out)?;
        } else if meta.is_file() {
            out.push(RemoteFile {
                relative,
                size: meta.len(),
                mtime: unix_seconds(meta.modified().ok()),
            });
        }
    }
    Ok(())
}

/// Seconds since the Unix epoch (0 when unknown).
pub(crate) fn unix_seconds(time: Option<SystemTime>) -> u64 {
    time.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// Writes `bytes` to the local `path` atomically and stamps it with `mtime` (seconds), so a
/// later sync sees it as unchanged.
pub(crate) fn write_local_stamped(path: &Path, bytes: &[u8], mtime: u64) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io("creating", parent))?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = path.with_file_name(format!(".{name}.{}.fetch.tmp", std::process::id()));
    let mut file = std::fs::File::create(&tmp).map_err(Error::io("creating", &tmp))?;
    file.write_all(bytes).map_err(Error::io("writing", &tmp))?;
    let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
    file.set_modified(when)
        .map_err(Error::io("setting the time of", &tmp))?;
    file.sync_all().map_err(Error::io("syncing", &tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(Error::io("renaming into", path))
}

/// Reads all of `reader` as lossy UTF-8.
#[cfg_attr(not(feature = "ssh"), allow(dead_code))]
pub(crate) fn read_lossy(mut reader: impl Read, what: &str) -> Result<String> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(Error::io("reading the output of", what))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
