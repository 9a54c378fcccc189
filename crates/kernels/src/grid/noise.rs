//! Counter-based Gaussian draws for the learning-path noise: each draw is a pure function of
//! its key, so results do not depend on thread count or visiting order.

/// SplitMix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A standard normal draw keyed by `(seed, sample, step, cell, slot)` (Box-Muller).
pub(crate) fn normal(seed: u64, sample: usize, step: usize, cell: usize, slot: usize) -> f64 {
    let key =
        mix(mix(mix(mix(seed) ^ sample as u64) ^ step as u64) ^ ((cell as u64) << 3 | slot as u64));
    let u1 = ((key >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let u2 = ((mix(key) >> 11) as f64) / (1u64 << 53) as f64;
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
