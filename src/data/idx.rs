//! IDX file reading (the MNIST format), gzip-compressed or raw.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// IDX magic for unsigned-byte images with 3 dimensions (N x rows x cols).
pub const IMAGES_MAGIC: u32 = 0x0803;
/// IDX magic for unsigned-byte labels with 1 dimension.
pub const LABELS_MAGIC: u32 = 0x0801;

/// A decoded unsigned-byte IDX array.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    /// Dimensions from the header, e.g. `[60000, 28, 28]`.
    pub dims: Vec<usize>,
    /// Row-major payload.
    pub data: Vec<u8>,
}

/// Reads a file's bytes, decompressing it when it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(Error::io("reading data file", path))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| Error::Data {
                path: path.to_path_buf(),
                message: format!("corrupt or truncated gzip stream ({e})"),
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Reads an IDX file and checks its magic number.
pub fn read_idx(path: &Path, expected_magic: u32) -> Result<IdxArray> {
    parse_idx(&read_maybe_gz(path)?, expected_magic).map_err(|message| Error::Data {
        path: path.to_path_buf(),
        message,
    })
}

/// Parses IDX bytes: big-endian magic (`0x08` = unsigned byte, low byte = rank), dims, payload.
pub fn parse_idx(bytes: &[u8], expected_magic: u32) -> std::result::Result<IdxArray, String> {
    let word = |i: usize| -> Option<u32> {
        bytes
            .get(4 * i..4 * i + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
    };
    let magic = word(0)
        .ok_or_else(|| format!("only {} bytes, too short for an IDX header", bytes.len()))?;
    if magic != expected_magic {
        return Err(format!(
            "wrong magic number {magic:#06x}, expected {expected_magic:#06x} ({})",
            if expected_magic == IMAGES_MAGIC {
                "unsigned-byte images, rank 3"
            } else {
                "unsigned-byte labels, rank 1"
            }
        ));
    }
    let rank = (magic & 0xff) as usize;
    let dims = (1..=rank)
        .map(|i| word(i).map(|d| d as usize))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| "truncated IDX header".to_string())?;
    let header = 4 * (rank + 1);
    let expected: usize = dims.iter().product();
    let payload = &bytes[header.min(bytes.len())..];
    if payload.len() != expected {
        return Err(format!(
            "{} payload: header dims {dims:?} need {expected} bytes, file has {}",
            if payload.len() < expected {
                "truncated"
            } else {
                "oversized"
            },
            payload.len()
        ));
    }
    Ok(IdxArray {
        dims,
        data: payload.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend(payload);
        v
    }

    #[test]
    fn parses_and_rejects() {
        let ok = idx(IMAGES_MAGIC, &[2, 1, 2], &[1, 2, 3, 4]);
        assert_eq!(
            parse_idx(&ok, IMAGES_MAGIC).map(|a| a.dims),
            Ok(vec![2, 1, 2])
        );
        assert!(parse_idx(&ok, LABELS_MAGIC).is_err_and(|m| m.contains("wrong magic")));
        assert!(
            parse_idx(&ok[..10], IMAGES_MAGIC).is_err_and(|m| m.contains("truncated IDX header"))
        );
        assert!(parse_idx(&ok[..18], IMAGES_MAGIC).is_err_and(|m| m.contains("truncated payload")));
        assert!(parse_idx(&[0, 0], IMAGES_MAGIC).is_err_and(|m| m.contains("too short")));
    }
}
