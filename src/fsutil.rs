//! Atomic file writes: a killed process never leaves a half-written file behind.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `bytes` to `path` via a temporary file in the same directory, fsync and rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(Error::io("creating directory", dir))?;
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp).map_err(Error::io("creating", &tmp))?;
        file.write_all(bytes).map_err(Error::io("writing", &tmp))?;
        file.sync_all().map_err(Error::io("syncing", &tmp))?;
        std::fs::rename(&tmp, path).map_err(Error::io("renaming into place", path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The temporary sibling used while writing `path` (unique per process).
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temp() -> Result<()> {
        let dir = tempfile::tempdir().map_err(Error::io("tempdir", "/tmp"))?;
        let path = dir.path().join("sub/a.json");
        write_atomic(&path, b"first version, long")?;
        write_atomic(&path, b"second")?;
        assert_eq!(
            std::fs::read(&path).map_err(Error::io("read", &path))?,
            b"second"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .map_err(Error::io("list", dir.path()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "temp files left: {names:?}");
        Ok(())
    }

    #[test]
    fn failed_write_keeps_old_content() -> Result<()> {
        let dir = tempfile::tempdir().map_err(Error::io("tempdir", "/tmp"))?;
        let path = dir.path().join("a.txt");
        write_atomic(&path, b"old")?;
        // a directory where the temp file would go makes the write fail
        std::fs::create_dir(temp_path(&path)).map_err(Error::io("mkdir", dir.path()))?;
        assert!(write_atomic(&path, b"new").is_err());
        assert_eq!(
            std::fs::read(&path).map_err(Error::io("read", &path))?,
            b"old"
        );
        Ok(())
    }
}
