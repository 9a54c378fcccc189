//! Typed data configs: `data:` is tagged by `kind` (`mnist`, `fashion_mnist`, `delayed_xor`,
//! `copy`, `parity`, `path_integration`), one struct per kind of data.
//!
//! Version-1 configs wrote `data: {name: mnist, ...}`; [`super::typed`] reads `name` as `kind`
//! so their run directories still load.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Which data a run trains on, chosen by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataConfig {
    /// LeCun et al. handwritten digits (IDX files).
    Mnist(ImageDataConfig),
    /// Zalando's Fashion-MNIST (same format and shapes as MNIST).
    FashionMnist(ImageDataConfig),
    /// CIFAR-10 (binary version): 50k training and 10k test 32x32 colour images, 10 classes.
    Cifar10(CifarDataConfig),
    /// Delayed XOR: `y_t` is the parity of the input bits at lags `d, 2d, ..., 2^order·d`.
    DelayedXor(BitTaskConfig),
    /// Copy: `y_t = x_{t-d}`.
    Copy(BitTaskConfig),
    /// Parity of `2^order` delayed bits (delayed XOR with `order` 2 by default).
    Parity(BitTaskConfig),
    /// Path integration of a run-and-turn walk from its speed and turn rate.
    PathIntegration(PathIntegrationConfig),
}

impl DataConfig {
    /// The kind as written in configs and `metrics.json` (`dataset`): `mnist`, `copy`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            DataConfig::Mnist(_) => "mnist",
            DataConfig::FashionMnist(_) => "fashion_mnist",
            DataConfig::Cifar10(_) => "cifar10",
            DataConfig::DelayedXor(_) => "delayed_xor",
            DataConfig::Copy(_) => "copy",
            DataConfig::Parity(_) => "parity",
            DataConfig::PathIntegration(_) => "path_integration",
        }
    }

    /// The image dataset and its settings, for image kinds.
    pub fn images(&self) -> Option<(DatasetName, &ImageDataConfig)> {
        match self {
            DataConfig::Mnist(c) => Some((DatasetName::Mnist, c)),
            DataConfig::FashionMnist(c) => Some((DatasetName::FashionMnist, c)),
            _ => None,
        }
    }

    /// Mutable image settings, for image kinds.
    pub fn images_mut(&mut self) -> Option<&mut ImageDataConfig> {
        match self {
            DataConfig::Mnist(c) | DataConfig::FashionMnist(c) => Some(c),
            _ => None,
        }
    }

    /// The configured data directory (image kinds; generated data has none).
    pub fn root(&self) -> Option<&Path> {
        match self {
            DataConfig::Cifar10(c) => c.root.as_deref(),
            _ => self.images().and_then(|(_, c)| c.root.as_deref()),
        }
    }

    /// Forgets the data directory (a relocation key, not part of a run's identity).
    pub fn clear_root(&mut self) {
        if let DataConfig::Cifar10(c) = self {
            c.root = None;
        }
        if let Some(c) = self.images_mut() {
            c.root = None;
        }
    }
}

/// How an image dataset is found, split and scaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDataConfig {
    /// Directory holding the dataset's files; searched first (see `data::locate`). A directory
    /// that does not exist is an error, never a silent fallback to another copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// Fraction of the training images held out for validation.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
    /// Seed of the validation split; defaults to the run seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_seed: Option<u64>,
    /// Use only the first N training images (before the split), for quick runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Use only the first N test images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_limit: Option<usize>,
    /// Pixel scaling applied after dividing by 255.
    #[serde(default)]
    pub normalize: Normalize,
    /// Base URLs tried, in order, when the files are found nowhere locally.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<String>,
}

fn default_val_fraction() -> f64 {
    0.1
}

/// The image datasets in IDX format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetName {
    /// LeCun et al. handwritten digits.
    Mnist,
    /// Zalando's Fashion-MNIST (same format and shapes as MNIST).
    FashionMnist,
}

impl DatasetName {
    /// The folder name used under data roots and the cache.
    pub fn dir_name(self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion_mnist",
        }
    }
}

/// Pixel scaling after `x / 255`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Normalize {
    /// Keep pixels in [0, 1] (what spike encoders need).
    #[default]
    None,
    /// `(x - mean) / std`.
    Standardize { mean: f64, std: f64 },
}

/// How CIFAR-10 is found, split, scaled and (for training only) augmented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CifarDataConfig {
    /// Directory holding `data_batch_1.bin` .. `data_batch_5.bin` and `test_batch.bin` (or
    /// their folder `cifar-10-batches-bin/`); searched first, never silently replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// Fraction of the 50k training images held out for validation.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
    /// Seed of the validation split; defaults to the run seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_seed: Option<u64>,
    /// Use only the first N training images (before the split), for quick runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Use only the first N test images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_limit: Option<usize>,
    /// Per-channel standardisation after `x / 255`, applied to every view.
    #[serde(default)]
    pub normalize: ChannelNormalize,
    /// Random transforms of training images, applied in order before normalisation; the
    /// validation and test views are never augmented.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub augment: Vec<Augment>,
    /// Check every file against the official MD5 (off only for copies you made yourself).
    #[serde(default = "default_true")]
    pub verify_checksums: bool,
    /// Base URLs tried, in order, for `cifar-10-binary.tar.gz` when the files are found nowhere
    /// locally (default: the dataset authors' page).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<String>,
}

fn default_true() -> bool {
    true
}

/// `(x / 255 - mean[c]) / std[c]` per colour channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelNormalize {
    /// Mean per channel (R, G, B).
    pub mean: Vec<f64>,
    /// Standard deviation per channel (R, G, B).
    pub std: Vec<f64>,
}

impl Default for ChannelNormalize {
    /// The CIFAR-10 training set's statistics as the reference uses them.
    fn default() -> Self {
        ChannelNormalize {
            mean: vec![0.4914, 0.4822, 0.4465],
            std: vec![0.2470, 0.2435, 0.2616],
        }
    }
}

/// One random transform of a training image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Augment {
    /// Mirror left-right with probability `p` (torchvision's `RandomHorizontalFlip`).
    HorizontalFlip {
        /// Probability of a flip.
        #[serde(default = "default_flip_p")]
        p: f64,
    },
    /// Pad every side by `padding`, then cut a `size x size` window at a uniform offset in
    /// `0..=H + 2·padding - size` on each axis (torchvision's `RandomCrop`).
    RandomCrop {
        /// Side of the crop.
        size: usize,
        /// Pixels added on every side.
        #[serde(default)]
        padding: usize,
        /// How the padding is filled.
        #[serde(default)]
        padding_mode: PaddingMode,
    },
}

fn default_flip_p() -> f64 {
    0.5
}

/// How crop padding is filled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaddingMode {
    /// Mirror about the edge pixel, which is not repeated (torch's `reflect`: `c b | a b c`).
    #[default]
    Reflect,
    /// Zeros (black before normalisation).
    Zeros,
}

/// Generated bit-sequence tasks (`delayed_xor`, `copy`, `parity`): input bits `x_t ∈ {0, A}`,
/// binary targets `y_t`, scored from the first step whose target depends only on inputs the
/// network has seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitTaskConfig {
    /// The delay `d` in steps (>= 1).
    pub delay: usize,
    /// Parity over `2^order` lags `d, 2d, ..., 2^order·d` (default 1 for `delayed_xor`, 2 for
    /// `parity`; `copy` has one lag and takes no order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<u32>,
    /// Sequence length `T` in steps.
    #[serde(default = "default_bit_steps")]
    pub steps: usize,
    /// Input amplitude `A` of a 1 bit.
    #[serde(default = "default_amplitude")]
    pub amplitude: f64,
    /// Training sequences (each epoch visits each once; upstream draws a fresh batch per step,
    /// which `train_sequences = steps x batch_size` with one epoch reproduces).
    #[serde(default = "default_train_sequences")]
    pub train_sequences: usize,
    /// Validation sequences.
    #[serde(default = "default_eval_sequences")]
    pub val_sequences: usize,
    /// Test sequences.
    #[serde(default = "default_eval_sequences")]
    pub test_sequences: usize,
    /// Seed of the generated data, independent of the model seed.
    #[serde(default = "default_data_seed")]
    pub data_seed: u64,
    /// Reproduce the upstream off-by-one: also score the step before the first observable
    /// target, whose target depends on a bit the network never sees (a coin flip).
    #[serde(default)]
    pub upstream_first_target: bool,
}

fn default_bit_steps() -> usize {
    300
}
fn default_amplitude() -> f64 {
    1.0
}
fn default_train_sequences() -> usize {
    48_000
}
fn default_eval_sequences() -> usize {
    512
}
/// The default data seed of generated tasks (upstream path integration's `DATA_SEED`).
pub fn default_data_seed() -> u64 {
    12345
}

/// Path integration: integrate speed and turn rate of a run-and-turn walk into heading and
/// position (see `data::path_integration`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathIntegrationConfig {
    /// What the network predicts at each step.
    #[serde(default)]
    pub targets: PathTargets,
    /// Training and validation sequence length `T`.
    #[serde(default = "default_path_steps")]
    pub steps: usize,
    /// Training sequences.
    #[serde(default = "default_path_train")]
    pub train_sequences: usize,
    /// Validation sequences.
    #[serde(default = "default_path_eval")]
    pub val_sequences: usize,
    /// Sequences per test split.
    #[serde(default = "default_path_eval")]
    pub test_sequences: usize,
    /// Clean test lengths; one test split each (`test` at `steps`, else `test_t<T>`).
    #[serde(default = "default_test_steps")]
    pub test_steps: Vec<usize>,
    /// Input noise levels (std of Gaussian noise on speed and turn rate) of the noisy test
    /// splits `test_t<T>_noise<1000σ>`, at the longest test length; 0 adds no split.
    #[serde(default)]
    pub test_noise: Vec<f64>,
    /// Bins of the polar heading bump (`polar_bump` targets).
    #[serde(default = "default_heading_bins")]
    pub heading_bins: usize,
    /// Seed of the generated data, independent of the model seed.
    #[serde(default = "default_data_seed")]
    pub data_seed: u64,
}

fn default_path_steps() -> usize {
    50
}
fn default_path_train() -> usize {
    10_000
}
fn default_path_eval() -> usize {
    2_000
}
fn default_test_steps() -> Vec<usize> {
    vec![50, 100, 200]
}
fn default_heading_bins() -> usize {
    32
}

/// Targets of path integration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathTargets {
    /// `[cos θ, sin θ, x, y]` (unnormalised world units).
    #[default]
    Cartesian,
    /// A von Mises heading bump over `heading_bins` bins, then `[cos β, sin β, |p|/25]` (home
    /// bearing, egocentric, and scaled home distance).
    PolarBump,
}
