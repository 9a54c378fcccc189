//! Datasets: IDX loaders, locating files (with checksummed download), splits and batching.

pub mod encode;
pub mod idx;
mod images;
pub mod locate;

pub use images::{epoch_permutation, load_splits, load_splits_from, ImageSet, Splits};
pub use locate::{DataSearch, DatasetFiles, DATA_ENV};
