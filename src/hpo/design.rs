//! Initial designs in the unit cube: independent uniform points and Latin hypercube samples
//! (each axis cut into `n` equal strata, each stratum hit exactly once), both seeded.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// `n` points of `dims` coordinates, each uniform in `[0, 1)`.
pub fn random(n: usize, dims: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..dims).map(|_| rng.random::<f64>()).collect())
        .collect()
}

/// `n` points of `dims` coordinates forming a Latin hypercube: on every axis, point `i` lies in
/// stratum `perm(i)` of `[k/n, (k+1)/n)`, at a uniform place inside it.
pub fn latin_hypercube(n: usize, dims: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut points = vec![vec![0.0; dims]; n];
    for d in 0..dims {
        let mut strata: Vec<usize> = (0..n).collect();
        strata.shuffle(&mut rng);
        for (point, k) in points.iter_mut().zip(strata) {
            point[d] = (k as f64 + rng.random::<f64>()) / n as f64;
        }
    }
    points
}
