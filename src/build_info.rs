//! What this binary was built with, as `autoresearch --version` reports it: `autoresearch 0.1.0
//! (cuda build)` when the `cuda` cargo feature was on, `autoresearch 0.1.0 (cpu build)` else.
//! A cluster job that holds a GPU checks it before training (see `cluster::gpu`).
//!
//! The CUDA build's line is one string literal, so the bytes `(cuda build)` are in a CUDA
//! build's file and in no CPU build's: the cluster check finds them with `grep` without running
//! the binary (a CUDA build may not start on a login node without the GPU driver). No other
//! string of the crate may contain them; a test reads this build's own file to make sure.

/// The version and the build's device support, as `--version` prints it after the name.
#[cfg(feature = "cuda")]
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (cuda build)");

/// The version and the build's device support, as `--version` prints it after the name.
#[cfg(not(feature = "cuda"))]
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (cpu build)");

/// A basic regular expression (`grep`) matching a CUDA build's version line or file, written
/// so that it does not match itself.
pub const CUDA_BUILD_PATTERN: &str = "(cuda[ ]build)";

/// Whether this binary was built with the `cuda` cargo feature.
pub fn is_cuda_build() -> bool {
    cfg!(feature = "cuda")
}

/// The CUDA build's marker backwards: spelt forwards, or in two halves the linker may place
/// side by side, it would be in every build's file.
const MARK_REVERSED: &[u8] = b")dliub aduc(";

/// Whether `bytes` (a `--version` line or a binary's file) contain a CUDA build's marker.
pub fn marks_cuda_build(bytes: &[u8]) -> bool {
    bytes
        .windows(MARK_REVERSED.len())
        .any(|w| w[0] == b'(' && w.iter().rev().eq(MARK_REVERSED.iter()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_line_says_which_build_this_is() {
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")));
        assert_eq!(marks_cuda_build(VERSION.as_bytes()), is_cuda_build());
        let cuda = format!("autoresearch 0.1.0 (cuda{}build)", ' ');
        assert!(marks_cuda_build(cuda.as_bytes()));
        assert!(!marks_cuda_build(b"autoresearch 0.1.0 (cpu build)"));
        assert!(
            !marks_cuda_build(b"autoresearch 0.1.0"),
            "builds before the line"
        );
        assert!(!marks_cuda_build(CUDA_BUILD_PATTERN.as_bytes()));
    }

    #[test]
    fn a_cpu_build_file_holds_no_cuda_marker() -> crate::Result<()> {
        if is_cuda_build() {
            return Ok(());
        }
        let exe = std::env::current_exe().map_err(crate::Error::io("locating", "this test"))?;
        let bytes = std::fs::read(&exe).map_err(crate::Error::io("reading", &exe))?;
        assert!(
            !marks_cuda_build(&bytes),
            "{} holds the CUDA marker: a string of the crate spells it",
            exe.display()
        );
        Ok(())
    }
}
