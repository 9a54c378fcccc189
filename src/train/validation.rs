//! `validation: {kind: test_sample}`: a fresh random sample of the test split each epoch.

use candle_core::Device;

use crate::data::{Batch, Split};
use crate::error::Result;

/// `size` distinct indices of `0..len` (all of them when `size >= len`), drawn from
/// `(seed, epoch)` and sorted.
pub fn sample_indices(len: usize, size: usize, seed: u64, epoch: usize) -> Vec<usize> {
    use rand::seq::index::sample;
    use rand::SeedableRng;
    if size >= len {
        return (0..len).collect();
    }
    // the epoch's stream, offset so it is not the training permutation's
    let stream = crate::data::epoch_stream(seed, epoch) ^ 0x7E57;
    let mut rng = rand::rngs::StdRng::seed_from_u64(stream);
    let mut idx = sample(&mut rng, len, size).into_vec();
    idx.sort_unstable();
    idx
}

/// The samples `indices` of `inner`, as a split of their own.
pub struct Subset<'a> {
    /// The split sampled from.
    pub inner: &'a dyn Split,
    /// Which of its samples, in order.
    pub indices: Vec<usize>,
}

impl Split for Subset<'_> {
    fn len(&self) -> usize {
        self.indices.len()
    }

    fn batch(&self, indices: &[usize], device: &Device) -> Result<Batch> {
        let mapped: Vec<usize> = indices.iter().map(|i| self.indices[*i]).collect();
        self.inner.batch(&mapped, device)
    }

    fn fingerprint(&self, i: usize) -> u64 {
        self.inner.fingerprint(self.indices[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_distinct_seeded_and_fresh_each_epoch() {
        let a = sample_indices(10_000, 2_000, 3, 1);
        assert_eq!(a.len(), 2_000);
        assert!(a.windows(2).all(|w| w[0] < w[1]) && a[1999] < 10_000);
        assert_eq!(a, sample_indices(10_000, 2_000, 3, 1));
        assert_ne!(a, sample_indices(10_000, 2_000, 3, 2));
        assert_eq!(sample_indices(5, 9, 0, 0), vec![0, 1, 2, 3, 4]);
    }
}
