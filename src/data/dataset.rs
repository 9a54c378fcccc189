//! One interface over every kind of data: a [`Dataset`] is a task plus train, validation and
//! test [`Split`]s that hand out batches of (input, target) by sample index.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use candle_core::{Device, Tensor};

use super::task::{Classification, Task};
use super::{bits, path_integration, ImageSet};
use crate::config::DataConfig;
use crate::error::{Error, Result};

/// One split: samples addressed by index, batched on demand.
pub trait Split: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    /// Whether the split has no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The samples at `indices`, stacked.
    ///
    /// # Shapes
    /// Images: input `[B, C, H, W]` f32, target `[B]` u32 labels. Sequences (time first):
    /// input `[T, B, S]` f32, target `[T, B, R]` f32.
    fn batch(&self, indices: &[usize], device: &Device) -> Result<Batch>;
    /// The training view of the samples at `indices`: augmented with randomness drawn from
    /// `seed` where the split holds an augmentation (only training splits can), else
    /// [`Split::batch`].
    fn train_batch(&self, indices: &[usize], device: &Device, seed: u64) -> Result<Batch> {
        let _ = seed;
        self.batch(indices, device)
    }
    /// A hash of sample `i`'s content (input and target), for disjointness checks.
    fn fingerprint(&self, i: usize) -> u64;
}

/// A batch of samples: what the network reads and what it is scored against.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The network's input (images, or time-first sequences).
    pub input: Tensor,
    /// Labels or per-step targets.
    pub target: Tensor,
}

/// What one sample's input looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputShape {
    /// An image `[C, H, W]`.
    Image([usize; 3]),
    /// A sequence of `steps` steps with `channels` values each (time first in batches).
    Sequence {
        /// Values per step (`S`).
        channels: usize,
        /// Training length `T` (test splits may be longer).
        steps: usize,
    },
}

impl InputShape {
    /// `image` or `sequence`.
    pub fn kind(&self) -> &'static str {
        match self {
            InputShape::Image(_) => "image",
            InputShape::Sequence { .. } => "sequence",
        }
    }
}

/// A task with its splits.
pub struct Dataset {
    /// The data kind (`mnist`, `copy`, `path_integration`, ...).
    pub kind: &'static str,
    /// What outputs mean and how they are scored.
    pub task: Arc<dyn Task>,
    /// One sample's input.
    pub input: InputShape,
    /// Network outputs per sample (classes) or per step (target channels).
    pub outputs: usize,
    /// Training split.
    pub train: Box<dyn Split>,
    /// Validation split (picks the best checkpoint).
    pub val: Box<dyn Split>,
    /// Test splits by name (`test` first; e.g. `test_t200`), evaluated once at the end.
    pub tests: Vec<(String, Box<dyn Split>)>,
}

impl Dataset {
    /// The `test` split (the test split at the training length).
    pub fn test(&self) -> Result<&dyn Split> {
        self.tests
            .iter()
            .find(|(name, _)| name == "test")
            .map(|(_, split)| &**split)
            .ok_or_else(|| Error::invalid("data", format!("`{}` has no `test` split", self.kind)))
    }
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("kind", &self.kind)
            .field("task", &self.task)
            .field("input", &self.input)
            .field("outputs", &self.outputs)
            .field("train", &self.train.len())
            .field("val", &self.val.len())
            .field(
                "tests",
                &self
                    .tests
                    .iter()
                    .map(|(n, s)| (n.clone(), s.len()))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Loads (or generates) the data `cfg` names, with `seed` the run seed (image validation
/// splits use it unless `split_seed` is set; generated data uses its own `data_seed`), and
/// checks that validation and test samples are disjoint from training ones by content.
pub fn load(cfg: &DataConfig, seed: u64) -> Result<Dataset> {
    let dataset = match cfg {
        DataConfig::Mnist(_) | DataConfig::FashionMnist(_) => images(cfg, seed)?,
        DataConfig::Cifar10(c) => super::cifar::dataset(c, seed)?,
        DataConfig::DelayedXor(c) | DataConfig::Copy(c) | DataConfig::Parity(c) => {
            bits::dataset(cfg.kind(), c)?
        }
        DataConfig::PathIntegration(c) => path_integration::dataset(c)?,
    };
    check_disjoint(&dataset)?;
    Ok(dataset)
}

/// The task of `cfg`, without loading any data (config checks, metric declarations).
pub fn task_for(cfg: &DataConfig) -> Result<(Arc<dyn Task>, InputShape, usize)> {
    Ok(match cfg {
        DataConfig::Mnist(_) | DataConfig::FashionMnist(_) => (
            Arc::new(Classification { classes: 10 }),
            InputShape::Image([1, 28, 28]),
            10,
        ),
        DataConfig::Cifar10(_) => (
            Arc::new(Classification {
                classes: super::cifar::CLASSES,
            }),
            InputShape::Image(super::cifar::SHAPE),
            super::cifar::CLASSES,
        ),
        DataConfig::DelayedXor(c) | DataConfig::Copy(c) | DataConfig::Parity(c) => {
            let gen = bits::BitTask::new(cfg.kind(), c)?;
            (Arc::new(gen.task()), gen.input_shape(), 1)
        }
        DataConfig::PathIntegration(c) => {
            let task = path_integration::PathTask::new(c);
            let outputs = task.outputs();
            (
                Arc::new(task),
                InputShape::Sequence {
                    channels: path_integration::INPUT_CHANNELS,
                    steps: c.steps,
                },
                outputs,
            )
        }
    })
}

fn images(cfg: &DataConfig, seed: u64) -> Result<Dataset> {
    let (name, images) = cfg
        .images()
        .ok_or_else(|| Error::invalid("data.kind", "not an image dataset"))?;
    let splits = super::load_splits(name, images, seed)?;
    let classes = splits.train.classes;
    Ok(Dataset {
        kind: cfg.kind(),
        task: Arc::new(Classification { classes }),
        input: InputShape::Image(splits.train.shape),
        outputs: classes,
        train: Box::new(splits.train),
        val: Box::new(splits.val),
        tests: vec![("test".to_string(), Box::new(splits.test) as Box<dyn Split>)],
    })
}

/// Errors when a validation or test sample has the content of a training sample.
pub fn check_disjoint(data: &Dataset) -> Result<()> {
    let train: HashSet<u64> = (0..data.train.len())
        .map(|i| data.train.fingerprint(i))
        .collect();
    let others = std::iter::once(("val", &data.val)).chain(
        data.tests
            .iter()
            .map(|(name, split)| (name.as_str(), split)),
    );
    for (name, split) in others {
        let shared = (0..split.len())
            .filter(|&i| train.contains(&split.fingerprint(i)))
            .count();
        if shared > 0 {
            return Err(Error::invalid(
                "data",
                format!(
                    "{shared} of {} `{name}` samples of `{}` equal a training sample; splits must be disjoint (use longer sequences, fewer samples, or deduplicated data)",
                    split.len(),
                    data.kind
                ),
            ));
        }
    }
    Ok(())
}

/// A content hash of `f32` values (bit patterns) and any extra words.
pub fn hash_f32(values: &[f32], extra: &[u64]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for v in values {
        v.to_bits().hash(&mut h);
    }
    extra.hash(&mut h);
    h.finish()
}

impl Split for ImageSet {
    fn len(&self) -> usize {
        ImageSet::len(self)
    }
    fn batch(&self, indices: &[usize], device: &Device) -> Result<Batch> {
        ImageSet::batch(self, indices, device)
    }
    fn fingerprint(&self, i: usize) -> u64 {
        let n = self.sample_len();
        hash_f32(
            &self.images[i * n..(i + 1) * n],
            &[u64::from(self.labels[i])],
        )
    }
}
