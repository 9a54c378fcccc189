//! Spike encoders over plain slices: pure functions of their inputs and a seed, so the same
//! call gives the same spikes on any machine and with any number of threads.

use crate::par;

/// 64 random bits for counter `n` of stream `seed` (SplitMix64's output function applied to a
/// seed-dependent counter): stateless, so any element can be drawn independently.
#[inline(always)]
pub fn random_bits(seed: u64, n: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0xD1B5_4A32_D192_ED03)
        .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `2^32 · clamp(p, 0, 1)`: a 32-bit uniform number below it has probability `p`.
#[inline(always)]
fn cut(p: f32) -> u64 {
    (p.clamp(0.0, 1.0) as f64 * 4_294_967_296.0) as u64
}

/// One step of the rate code: `row[i] = [half of draw i/2 < cuts[i]]`, draws numbered from `base`.
#[inline(always)]
fn rate_row_impl(cuts: &[u64], seed: u64, base: u64, row: &mut [f32]) {
    let n = row.len().min(cuts.len());
    // pixel pairs share one 64-bit draw: low half for the first, high half for the second
    // (fixed-size chunks and branch-free compares, so the loop vectorises)
    let pairs = row.chunks_exact_mut(2).zip(cuts.chunks_exact(2));
    for (pair, (o, c)) in pairs.enumerate() {
        let bits = random_bits(seed, base + pair as u64);
        o[0] = f32::from(u8::from((bits & 0xFFFF_FFFF) < c[0]));
        o[1] = f32::from(u8::from((bits >> 32) < c[1]));
    }
    if n % 2 == 1 {
        let bits = random_bits(seed, base + (n / 2) as u64);
        row[n - 1] = f32::from(u8::from((bits & 0xFFFF_FFFF) < cuts[n - 1]));
    }
}

dispatch!(
    /// [`rate_row_impl`], compiled for AVX2 where the CPU has it (called from each worker, so
    /// that the hot loop itself is the AVX2 build).
    fn rate_row(cuts: &[u64], seed: u64, base: u64, row: &mut [f32]) => rate_row_impl
);

#[inline(always)]
fn rate_impl(pixels: &[f32], steps: usize, gain: f32, seed: u64, out: &mut [f32]) {
    let n = pixels.len();
    debug_assert_eq!(out.len(), steps * n);
    if n == 0 {
        return;
    }
    let cuts: Vec<u64> = pixels.iter().map(|&p| cut(p * gain)).collect();
    par::for_row_chunks(out, n, 1, |rows, chunk| {
        for (t, row) in rows.zip(chunk.chunks_mut(n)) {
            rate_row(&cuts, seed, (t * n.div_ceil(2)) as u64, row);
        }
    });
}

dispatch!(
    /// Rate (Bernoulli) code: `out[t, i] = 1` with probability `clamp(gain·pixels[i], 0, 1)`,
    /// independently for every step `t < steps` and pixel `i`; `out` is `[steps, pixels.len()]`.
    pub fn rate_unchecked(pixels: &[f32], steps: usize, gain: f32, seed: u64, out: &mut [f32]) => rate_impl
);

/// [`rate_unchecked`] after checking that `out` holds `steps · pixels.len()` values.
pub fn rate(
    pixels: &[f32],
    steps: usize,
    gain: f32,
    seed: u64,
    out: &mut [f32],
) -> Result<(), String> {
    if out.len() != steps * pixels.len() {
        return Err(format!(
            "rate code: output holds {} values, {steps} steps x {} pixels need {}",
            out.len(),
            pixels.len(),
            steps * pixels.len()
        ));
    }
    rate_unchecked(pixels, steps, gain, seed, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_code_fires_at_the_pixel_intensity_and_is_reproducible() -> Result<(), String> {
        let pixels: Vec<f32> = (0..101).map(|i| i as f32 / 100.0).collect();
        let steps = 4000;
        let mut out = vec![0.0; steps * pixels.len()];
        rate(&pixels, steps, 1.0, 42, &mut out)?;
        for (i, &p) in pixels.iter().enumerate() {
            let fired: f32 = (0..steps).map(|t| out[t * pixels.len() + i]).sum();
            let mean = fired / steps as f32;
            // binomial standard error at most 0.5/sqrt(4000) = 0.0079; allow 5 of them
            assert!((mean - p).abs() < 0.04, "pixel {p}: rate {mean}");
        }
        assert!(out.iter().all(|&v| v == 0.0 || v == 1.0));
        let mut again = vec![0.0; out.len()];
        rate(&pixels, steps, 1.0, 42, &mut again)?;
        assert_eq!(out, again);
        rate(&pixels, steps, 1.0, 43, &mut again)?;
        assert_ne!(out, again);
        assert!(rate(&pixels, 2, 1.0, 0, &mut again).is_err());
        Ok(())
    }

    #[test]
    fn rate_code_is_the_documented_pairwise_stream() -> Result<(), String> {
        // draw `pair` of step `t` covers pixels 2·pair (low 32 bits) and 2·pair + 1 (high bits)
        for n in [1usize, 6, 7, 33] {
            let pixels: Vec<f32> = (0..n).map(|i| (i % 5) as f32 / 4.0).collect();
            let steps = 3;
            let mut out = vec![0.0; steps * n];
            rate(&pixels, steps, 0.9, 11, &mut out)?;
            for t in 0..steps {
                for i in 0..n {
                    let bits = random_bits(11, (t * n.div_ceil(2) + i / 2) as u64);
                    let half = if i % 2 == 0 {
                        bits & 0xFFFF_FFFF
                    } else {
                        bits >> 32
                    };
                    let want = if half < cut(pixels[i] * 0.9) {
                        1.0
                    } else {
                        0.0
                    };
                    assert_eq!(out[t * n + i], want, "n={n} t={t} i={i}");
                }
            }
        }
        Ok(())
    }
}
