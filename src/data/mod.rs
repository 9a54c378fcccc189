//! Data: a [`Dataset`] of any kind behind one interface (task, train / val / test splits of
//! (input, target) batches): IDX images (MNIST, Fashion-MNIST) located with a checksummed
//! download, generated bit tasks (`bits`) and path integration (`path_integration`).

pub mod augment;
pub mod bits;
pub mod cifar;
mod dataset;
pub mod encode;
pub mod idx;
mod images;
pub mod locate;
pub mod path_integration;
pub mod path_reference;
pub mod task;

pub use dataset::{check_disjoint, hash_f32, load, task_for, Batch, Dataset, InputShape, Split};
pub use images::{
    epoch_permutation, epoch_stream, load_splits, load_splits_from, ImageSet, Splits,
};
pub use locate::{DataSearch, DatasetFiles, DATA_ENV};
pub use task::{Classification, MetricSums, StepLabelling, Task};
