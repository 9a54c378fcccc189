//! Copying directory trees between here and a [`Remote`], new or changed files only.
//!
//! `pull` (fetching run directories) never overwrites a local file that is newer than the
//! remote one, and stamps each copied file with the remote modification time, so the next
//! pull sees it as unchanged. `push` (configs, the binary) uploads a file when it is missing
//! there, differs in size, or is newer here.

use std::path::{Path, PathBuf};

use super::remote::{unix_seconds, walk_local, write_local_stamped, Remote, RemoteFile};
use crate::error::{Error, Result};

/// What a pull did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// Local files written (new or changed there).
    pub copied: Vec<PathBuf>,
    /// Files already identical (same size and modification time).
    pub unchanged: usize,
    /// Local files left alone because they are newer than the remote copy.
    pub kept_newer_local: Vec<PathBuf>,
    /// Bytes copied.
    pub bytes: u64,
}

impl FetchReport {
    /// Adds `other`'s counts to this report.
    pub fn merge(&mut self, other: FetchReport) {
        self.copied.extend(other.copied);
        self.unchanged += other.unchanged;
        self.kept_newer_local.extend(other.kept_newer_local);
        self.bytes += other.bytes;
    }
}

impl std::fmt::Display for FetchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} file(s) copied ({} bytes), {} unchanged",
            self.copied.len(),
            self.bytes,
            self.unchanged
        )?;
        if !self.kept_newer_local.is_empty() {
            write!(
                f,
                ", {} kept because the local copy is newer: {}",
                self.kept_newer_local.len(),
                self.kept_newer_local
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
        Ok(())
    }
}

/// Whether `relative` names a file being written (an atomic write's temp file or an upload).
fn in_flight(relative: &str) -> bool {
    let name = relative.rsplit('/').next().unwrap_or(relative);
    (name.starts_with('.') && name.ends_with(".tmp")) || name.contains(".upload-")
}

/// Copies the files under remote `remote_dir` into `local_dir` (see the module doc).
pub fn pull(remote: &mut dyn Remote, remote_dir: &str, local_dir: &Path) -> Result<FetchReport> {
    let mut report = FetchReport::default();
    for file in remote.list_files(remote_dir)? {
        if in_flight(&file.relative) {
            continue;
        }
        let local = local_dir.join(&file.relative);
        match std::fs::metadata(&local) {
            Ok(meta) => {
                let local_mtime = unix_seconds(meta.modified().ok());
                if local_mtime > file.mtime {
                    report.kept_newer_local.push(local);
                    continue;
                }
                if local_mtime == file.mtime && meta.len() == file.size {
                    report.unchanged += 1;
                    continue;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("reading", &local)(e)),
        }
        let bytes = remote.read_file(&format!("{remote_dir}/{}", file.relative))?;
        write_local_stamped(&local, &bytes, file.mtime)?;
        report.bytes += bytes.len() as u64;
        report.copied.push(local);
    }
    Ok(report)
}

/// What a push did: remote paths uploaded, files already there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Remote files written.
    pub uploaded: Vec<String>,
    /// Files already up to date there.
    pub unchanged: usize,
}

/// Whether a local file with `size` and `mtime` must replace `there` (absent, different size,
/// or older).
fn needs_upload(there: Option<&RemoteFile>, size: u64, mtime: u64) -> bool {
    there.is_none_or(|r| r.size != size || mtime > r.mtime)
}

/// Uploads the files under `local_dir` to remote `remote_dir` (see the module doc).
pub fn push(remote: &mut dyn Remote, local_dir: &Path, remote_dir: &str) -> Result<PushReport> {
    let mut local = Vec::new();
    walk_local(local_dir, "", &mut local)?;
    let there = remote.list_files(remote_dir)?;
    let mut report = PushReport::default();
    for file in local.iter().filter(|f| !in_flight(&f.relative)) {
        let existing = there.iter().find(|r| r.relative == file.relative);
        if !needs_upload(existing, file.size, file.mtime) {
            report.unchanged += 1;
            continue;
        }
        let path = local_dir.join(&file.relative);
        let bytes = std::fs::read(&path).map_err(Error::io("reading", &path))?;
        let target = format!("{remote_dir}/{}", file.relative);
        remote.write_file(&target, &bytes, 0o644)?;
        report.uploaded.push(target);
    }
    Ok(report)
}

/// Uploads one file to `remote_path` with `mode` unless an identical-size, newer copy is there.
pub fn push_file(
    remote: &mut dyn Remote,
    local: &Path,
    remote_path: &str,
    mode: i32,
) -> Result<bool> {
    let meta = std::fs::metadata(local).map_err(Error::io("reading", local))?;
    let (dir, name) = remote_path.rsplit_once('/').unwrap_or((".", remote_path));
    let there = remote.list_files(dir)?;
    let existing = there.iter().find(|r| r.relative == name);
    if !needs_upload(existing, meta.len(), unix_seconds(meta.modified().ok())) {
        return Ok(false);
    }
    let bytes = std::fs::read(local).map_err(Error::io("reading", local))?;
    remote.write_file(remote_path, &bytes, mode)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::super::remote::LocalShell;
    use super::*;

    fn write(path: &Path, text: &str) -> Result<()> {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(Error::io("mkdir", p))?;
        }
        std::fs::write(path, text).map_err(Error::io("writing", path))
    }

    #[test]
    fn pull_copies_new_and_changed_files_and_keeps_newer_local_ones() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(Error::io("tempdir", "."))?;
        let there = tmp.path().join("remote");
        let here = tmp.path().join("local");
        write(&there.join("a/metrics.json"), "{\"v\": 1}")?;
        write(&there.join("a/history.csv"), "epoch\n1\n")?;
        write(&there.join("a/.metrics.json.77.tmp"), "half")?;
        let remote_dir = there.display().to_string();
        let first = pull(&mut LocalShell, &remote_dir, &here)?;
        assert_eq!(first.copied.len(), 2, "{first}");
        assert!(!here.join("a/.metrics.json.77.tmp").exists());
        let again = pull(&mut LocalShell, &remote_dir, &here)?;
        assert_eq!((again.copied.len(), again.unchanged), (0, 2));

        // a local edit made after the remote file is kept
        let local_metrics = here.join("a/metrics.json");
        write(&local_metrics, "{\"v\": \"mine\"}")?;
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&local_metrics)
            .and_then(|f| f.set_modified(later))
            .map_err(Error::io("touching", &local_metrics))?;
        let kept = pull(&mut LocalShell, &remote_dir, &here)?;
        assert_eq!(kept.kept_newer_local, vec![local_metrics.clone()]);
        assert_eq!(
            std::fs::read_to_string(&local_metrics).map_err(Error::io("reading", "m"))?,
            "{\"v\": \"mine\"}"
        );

        // a remote change (newer, other size) is copied
        let history = there.join("a/history.csv");
        write(&history, "epoch\n1\n2\n")?;
        std::fs::File::options()
            .write(true)
            .open(&history)
            .and_then(|f| f.set_modified(later))
            .map_err(Error::io("touching", &history))?;
        let changed = pull(&mut LocalShell, &remote_dir, &here)?;
        assert_eq!(changed.copied, vec![here.join("a/history.csv")]);
        Ok(())
    }

    #[test]
    fn push_uploads_once() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(Error::io("tempdir", "."))?;
        let here = tmp.path().join("configs");
        write(&here.join("experiment/x.yaml"), "a: 1\n")?;
        let there = tmp.path().join("remote/configs").display().to_string();
        assert_eq!(push(&mut LocalShell, &here, &there)?.uploaded.len(), 1);
        let again = push(&mut LocalShell, &here, &there)?;
        assert_eq!((again.uploaded.len(), again.unchanged), (0, 1));
        Ok(())
    }
}
