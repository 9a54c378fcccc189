//! CIFAR-10, binary version: `data_batch_1.bin` .. `data_batch_5.bin` (training) and
//! `test_batch.bin`, each 10,000 records of one label byte and 3,072 pixel bytes (the 1,024 R,
//! then G, then B values of a 32x32 image, row-major). Found like MNIST (`data.root`,
//! `$AUTORESEARCH_DATA/cifar10`, `shared/data/cifar10`, the user cache, either directly or in
//! the archive's `cifar-10-batches-bin/`), checked against the official MD5s, else downloaded
//! as `cifar-10-binary.tar.gz` (checked) into the cache.
//!
//! Pixels stay `u8` in memory (184 MB for all 60k images); batches are normalised per channel
//! when gathered, and training batches are augmented first (see [`super::augment`]).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{Device, Tensor};
use md5::Digest;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::augment;
use super::dataset::{Batch, Dataset, InputShape, Split};
use super::locate::{fetch, DataSearch, DATA_ENV};
use super::task::Classification;
use crate::config::{Augment, ChannelNormalize, CifarDataConfig};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// Bytes of one record: the label, then 3 x 32 x 32 pixels.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
/// Pixels of one image.
pub const IMAGE_BYTES: usize = 3 * 32 * 32;
/// `[C, H, W]` of a CIFAR image.
pub const SHAPE: [usize; 3] = [3, 32, 32];
/// Classes.
pub const CLASSES: usize = 10;
/// The official archive (binary version) and its MD5, from the dataset authors' page.
pub const ARCHIVE: (&str, &str) = ("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530");
/// The folder the archive extracts to.
pub const ARCHIVE_DIR: &str = "cifar-10-batches-bin";
/// Where the dataset's authors publish it.
pub const HOME_PAGE: &str = "https://www.cs.toronto.edu/~kriz/cifar.html";

/// The training files and the test file with their official MD5s.
pub const FILES: [(&str, &str); 6] = [
    ("data_batch_1.bin", "5dd7e06a14cb22eb9f671a540d1b7c25"),
    ("data_batch_2.bin", "5ea93a67294ea407fff1d09f752e9692"),
    ("data_batch_3.bin", "942cd6a4bcdd0dd3c604fbe906cb4421"),
    ("data_batch_4.bin", "ae636b3ba5c66a11e91e8cb52e771fcb"),
    ("data_batch_5.bin", "53f37980c15c3d472c316c40844f3f0d"),
    ("test_batch.bin", "803d5f7f4d78ea53de84dbe85f74fb6d"),
];

/// The mirror tried when none is configured: the dataset authors' folder.
pub const DEFAULT_MIRROR: &str = "https://www.cs.toronto.edu/~kriz";

/// Labelled `u8` images, normalised per channel when batched (never augmented).
#[derive(Debug, Clone)]
pub struct U8Images {
    /// `len() · C·H·W` pixels, channel planes per image.
    pub pixels: Vec<u8>,
    /// One class index per image.
    pub labels: Vec<u32>,
    /// `[C, H, W]` of one image.
    pub shape: [usize; 3],
    /// The per-channel standardisation of every batch.
    pub normalize: ChannelNormalize,
}

impl U8Images {
    fn sample_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The `u8` pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.sample_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// A new set of the images at `indices`.
    pub fn subset(&self, indices: &[usize]) -> U8Images {
        U8Images {
            pixels: indices
                .iter()
                .flat_map(|&i| self.image(i))
                .copied()
                .collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            shape: self.shape,
            normalize: self.normalize.clone(),
        }
    }

    /// The images at `indices`, each passed through `transform` (which returns the pixels to
    /// normalise), normalised, as `[B, C, H, W]` f32 with `[B]` u32 labels.
    fn gather(
        &self,
        indices: &[usize],
        device: &Device,
        transform: impl Fn(usize, &[u8]) -> Vec<u8> + Sync,
    ) -> Result<Batch> {
        use rayon::prelude::*;
        let n = self.sample_len();
        let mut out = vec![0f32; indices.len() * n];
        out.par_chunks_mut(n.max(1))
            .zip(indices.par_iter().enumerate())
            .for_each(|(dst, (pos, &i))| {
                let pixels = transform(pos, self.image(i));
                augment::normalize_into(&pixels, self.shape, &self.normalize, dst);
            });
        let [c, h, w] = self.shape;
        Ok(Batch {
            input: Tensor::from_vec(out, (indices.len(), c, h, w), device)?,
            target: Tensor::from_vec(
                indices
                    .iter()
                    .map(|&i| self.labels[i])
                    .collect::<Vec<u32>>(),
                indices.len(),
                device,
            )?,
        })
    }
}

impl Split for U8Images {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn batch(&self, indices: &[usize], device: &Device) -> Result<Batch> {
        self.gather(indices, device, |_, img| img.to_vec())
    }
    fn fingerprint(&self, i: usize) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.image(i).hash(&mut h);
        self.labels[i].hash(&mut h);
        h.finish()
    }
}

/// A training split with its augmentation: [`Split::train_batch`] draws each image's
/// transforms from the batch seed; [`Split::batch`] is the plain view.
#[derive(Debug, Clone)]
pub struct Augmented {
    /// The training images.
    pub images: U8Images,
    /// The transforms, in order (normalisation follows them).
    pub steps: Vec<Augment>,
}

impl Split for Augmented {
    fn len(&self) -> usize {
        self.images.labels.len()
    }
    fn batch(&self, indices: &[usize], device: &Device) -> Result<Batch> {
        self.images.batch(indices, device)
    }
    fn train_batch(&self, indices: &[usize], device: &Device, seed: u64) -> Result<Batch> {
        let shape = self.images.shape;
        self.images.gather(indices, device, |pos, img| {
            augment::apply(&self.steps, img, shape, &mut augment::image_rng(seed, pos)).0
        })
    }
    fn fingerprint(&self, i: usize) -> u64 {
        self.images.fingerprint(i)
    }
}

/// Checks a CIFAR config without reading data: the split, limits, normalisation and an
/// augmentation that keeps the 32x32 shape.
pub fn check(c: &CifarDataConfig) -> Result<()> {
    crate::config::validate::image_split(c.val_fraction, false, c.limit, c.test_limit)?;
    let n = &c.normalize;
    if n.mean.len() != 3 || n.std.len() != 3 {
        return Err(Error::invalid(
            "data.normalize",
            format!(
                "{} means and {} stds; give one per channel (R, G, B)",
                n.mean.len(),
                n.std.len()
            ),
        ));
    }
    if let Some(s) = n.std.iter().find(|s| !s.is_finite() || **s <= 0.0) {
        return Err(Error::invalid(
            "data.normalize.std",
            format!("{s}; use positive numbers"),
        ));
    }
    let out = augment::output_shape(&c.augment, SHAPE).map_err(|m| {
        let (key, msg) = m.split_once(": ").unwrap_or(("data.augment", m.as_str()));
        Error::invalid(key, msg)
    })?;
    if out != SHAPE {
        return Err(Error::invalid(
            "data.augment",
            format!("the transforms turn 32x32 images into {}x{}, but validation and test images are not augmented; crop back to size 32", out[1], out[2]),
        ));
    }
    Ok(())
}

/// Loads CIFAR-10 as a dataset: a seeded validation split from the training files, the test
/// file, and the augmentation on the training split only.
pub fn dataset(c: &CifarDataConfig, seed: u64) -> Result<Dataset> {
    check(c)?;
    let dir = locate(c)?;
    let read = |names: &[(&str, &str)], limit: Option<usize>| -> Result<U8Images> {
        let mut images = U8Images {
            pixels: Vec::new(),
            labels: Vec::new(),
            shape: SHAPE,
            normalize: c.normalize.clone(),
        };
        for (name, md5) in names {
            let path = dir.join(name);
            let bytes = read_checked(&path, c.verify_checksums.then_some(*md5))?;
            parse_records(&path, &bytes, &mut images)?;
        }
        let keep = limit.map_or(images.labels.len(), |l| l.min(images.labels.len()));
        images.labels.truncate(keep);
        images.pixels.truncate(keep * IMAGE_BYTES);
        Ok(images)
    };
    let pool = read(&FILES[..5], c.limit)?;
    let test = read(&FILES[5..], c.test_limit)?;
    let val_len = (pool.labels.len() as f64 * c.val_fraction).round() as usize;
    if val_len == 0 || val_len >= pool.labels.len() {
        return Err(Error::invalid(
            "data.val_fraction",
            format!(
                "{} of {} images leaves an empty train or validation split",
                c.val_fraction,
                pool.labels.len()
            ),
        ));
    }
    let mut order: Vec<usize> = (0..pool.labels.len()).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(
        c.split_seed.unwrap_or(seed),
    ));
    let (val_idx, train_idx) = order.split_at_mut(val_len);
    val_idx.sort_unstable();
    train_idx.sort_unstable();
    let train = pool.subset(train_idx);
    let train: Box<dyn Split> = if c.augment.is_empty() {
        Box::new(train)
    } else {
        Box::new(Augmented {
            images: train,
            steps: c.augment.clone(),
        })
    };
    Ok(Dataset {
        kind: "cifar10",
        task: Arc::new(Classification { classes: CLASSES }),
        input: InputShape::Image(SHAPE),
        outputs: CLASSES,
        train,
        val: Box::new(pool.subset(val_idx)),
        tests: vec![("test".to_string(), Box::new(test) as Box<dyn Split>)],
    })
}

/// Appends the records of one file to `images`, refusing a size that is not a whole number of
/// records and labels outside 0..10.
pub fn parse_records(path: &Path, bytes: &[u8], images: &mut U8Images) -> Result<()> {
    let bad = |message: String| Error::Data {
        path: path.to_path_buf(),
        message,
    };
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD_BYTES) {
        return Err(bad(format!(
            "{} bytes is not a whole number of {RECORD_BYTES}-byte records (a label byte and 3,072 pixels); the file is truncated or not CIFAR-10's binary version",
            bytes.len()
        )));
    }
    for (i, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        let label = record[0];
        if usize::from(label) >= CLASSES {
            return Err(bad(format!(
                "record {i} has label {label}; CIFAR-10 labels are 0..9"
            )));
        }
        images.labels.push(u32::from(label));
        images.pixels.extend_from_slice(&record[1..]);
    }
    Ok(())
}

/// Reads a file, checking its MD5 when `md5` is given.
fn read_checked(path: &Path, md5: Option<&str>) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(Error::io("reading CIFAR-10 file", path))?;
    if let Some(expected) = md5 {
        let got = hex(&md5::Md5::digest(&bytes));
        if got != expected {
            return Err(Error::Data {
                path: path.to_path_buf(),
                message: format!(
                    "MD5 {got}, but the official file's is {expected}: a truncated or modified copy; extract {} again from {HOME_PAGE}, or set data.verify_checksums: false for files you wrote yourself",
                    ARCHIVE.0
                ),
            });
        }
    }
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The folder holding all six files in `dir` (itself or its `cifar-10-batches-bin/`), or what
/// is missing.
fn find_in(dir: &Path) -> std::result::Result<PathBuf, String> {
    if !dir.is_dir() {
        return Err("no such folder".to_string());
    }
    let missing = |d: &Path| -> Vec<&str> {
        FILES
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| !d.join(n).is_file())
            .collect()
    };
    let nested = dir.join(ARCHIVE_DIR);
    for d in [dir, nested.as_path()] {
        if missing(d).is_empty() {
            return Ok(d.to_path_buf());
        }
    }
    Err(format!("missing {}", missing(dir).join(", ")))
}

/// Finds the six files locally, else downloads the archive into the user cache.
pub fn locate(c: &CifarDataConfig) -> Result<PathBuf> {
    let search = DataSearch::local(c.root.clone());
    if let Some(root) = &search.config_root {
        return find_in(root).map_err(|missing| {
            Error::invalid(
                "data.root",
                format!(
                    "{} does not hold CIFAR-10's binary files ({missing}); point data.root at the folder with data_batch_1.bin .. data_batch_5.bin and test_batch.bin, or remove it to search ${DATA_ENV}/cifar10, shared/data/cifar10 and the user cache",
                    root.display()
                ),
            )
        });
    }
    let mut looked = Vec::new();
    for (what, dir) in search.candidates(Path::new("cifar10")) {
        match find_in(&dir) {
            Ok(found) => return Ok(found),
            Err(missing) => looked.push(format!("{what} {} ({missing})", dir.display())),
        }
    }
    let mirrors = if c.mirrors.is_empty() {
        vec![DEFAULT_MIRROR.to_string()]
    } else {
        c.mirrors.clone()
    };
    match &search.cache_root {
        Some(cache) => {
            let target = cache.join("cifar10");
            match download(&mirrors, &target, ARCHIVE.1, &FILES) {
                Ok(()) => {
                    return find_in(&target).map_err(|m| Error::Data {
                        path: target.clone(),
                        message: format!("downloaded, but {m}"),
                    })
                }
                Err(reason) => looked.push(format!("download into {}: {reason}", target.display())),
            }
        }
        None => looked.push("no user cache ($HOME unset), so no download".to_string()),
    }
    looked.push(format!(
        "get the binary version ({}, MD5 {}) from {HOME_PAGE} and extract data_batch_1.bin .. data_batch_5.bin and test_batch.bin into one of these folders, or set data.root",
        ARCHIVE.0, ARCHIVE.1
    ));
    Err(Error::DataNotFound {
        dataset: "cifar10".to_string(),
        looked: looked.join("; "),
    })
}

/// Fetches the archive from the first mirror that serves it with MD5 `archive_md5`, and writes
/// the data `files` (each checked against its MD5) into `target`.
pub fn download(
    mirrors: &[String],
    target: &Path,
    archive_md5: &str,
    files: &[(&str, &str)],
) -> std::result::Result<(), String> {
    let mut failures = Vec::new();
    for mirror in mirrors {
        let url = format!("{}/{}", mirror.trim_end_matches('/'), ARCHIVE.0);
        let archive = match fetch(&url) {
            Ok(bytes) => bytes,
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        let md5 = hex(&md5::Md5::digest(&archive));
        if md5 != archive_md5 {
            failures.push(format!("{url}: MD5 {md5}, expected {archive_md5}"));
            continue;
        }
        return extract(&archive, target, files).map_err(|e| format!("{url}: {e}"));
    }
    Err(failures.join("; "))
}

/// Writes the archive's six data files into `target` (atomically, each checked against its
/// MD5); other members are skipped and no path from the archive is used.
fn extract(
    archive: &[u8],
    target: &Path,
    files: &[(&str, &str)],
) -> std::result::Result<(), String> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    let mut written = 0;
    for entry in tar.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some((name, md5)) = files.iter().find(|(n, _)| *n == name) else {
            continue;
        };
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).map_err(|e| e.to_string())?;
        let got = hex(&md5::Md5::digest(&bytes));
        if got != *md5 {
            return Err(format!(
                "{name} in the archive has MD5 {got}, expected {md5}"
            ));
        }
        write_atomic(&target.join(name), &bytes).map_err(|e| e.to_string())?;
        written += 1;
    }
    if written < files.len() {
        return Err(format!(
            "the archive held {written} of the {} data files",
            files.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "cifar_tests.rs"]
mod tests;
