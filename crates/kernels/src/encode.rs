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

/// `2^16 · clamp(p, 0, 1)`: a 16-bit uniform number below it has probability `p` (to within
/// 2^-16, far below an 8-bit pixel's step; `p = 1` always fires, `p = 0` never).
#[inline(always)]
fn cut(p: f32) -> u32 {
    (p.clamp(0.0, 1.0) * 65_536.0) as u32
}

/// Lane `l` (0..4) of a 64-bit draw as a 16-bit uniform number.
#[inline(always)]
fn lane(bits: u64, l: usize) -> u32 {
    ((bits >> (16 * l)) & 0xFFFF) as u32
}

/// One step of the rate code: `row[i] = [lane i%4 of draw i/4 < cuts[i]]`, draws numbered from
/// `base`: four pixels share one 64-bit draw, which halves the cost of the 64-bit hashing.
#[inline(always)]
fn rate_row_impl(cuts: &[u32], seed: u64, base: u64, row: &mut [f32]) {
    let n = row.len().min(cuts.len());
    // fixed-size chunks and branch-free compares, so the loop vectorises
    let quads = row[..n].chunks_exact_mut(4).zip(cuts.chunks_exact(4));
    for (quad, (o, c)) in quads.enumerate() {
        let bits = random_bits(seed, base + quad as u64);
        for l in 0..4 {
            o[l] = f32::from(u8::from(lane(bits, l) < c[l]));
        }
    }
    let done = n / 4 * 4;
    if done < n {
        let bits = random_bits(seed, base + (n / 4) as u64);
        for (l, i) in (done..n).enumerate() {
            row[i] = f32::from(u8::from(lane(bits, l) < cuts[i]));
        }
    }
}

dispatch!(
    /// [`rate_row_impl`], compiled for AVX2 where the CPU has it (called from each worker, so
    /// that the hot loop itself is the AVX2 build).
    fn rate_row(cuts: &[u32], seed: u64, base: u64, row: &mut [f32]) => rate_row_impl
);

#[inline(always)]
fn rate_impl(pixels: &[f32], steps: usize, gain: f32, seed: u64, out: &mut [f32]) {
    let n = pixels.len();
    debug_assert_eq!(out.len(), steps * n);
    if n == 0 {
        return;
    }
    let cuts: Vec<u32> = pixels.iter().map(|&p| cut(p * gain)).collect();
    par::for_row_chunks(out, n, 1, |rows, chunk| {
        for (t, row) in rows.zip(chunk.chunks_mut(n)) {
            rate_row(&cuts, seed, (t * n.div_ceil(4)) as u64, row);
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
    fn rate_code_is_the_documented_quad_stream() -> Result<(), String> {
        // draw `quad` of step `t` covers pixels 4·quad .. 4·quad + 3, 16 bits each, low first
        for n in [1usize, 6, 7, 8, 33] {
            let pixels: Vec<f32> = (0..n).map(|i| (i % 5) as f32 / 4.0).collect();
            let steps = 3;
            let mut out = vec![0.0; steps * n];
            rate(&pixels, steps, 0.9, 11, &mut out)?;
            for t in 0..steps {
                for i in 0..n {
                    let bits = random_bits(11, (t * n.div_ceil(4) + i / 4) as u64);
                    let draw = (bits >> (16 * (i % 4))) & 0xFFFF;
                    let limit = (pixels[i] * 0.9 * 65_536.0).floor() as u64;
                    let want = if draw < limit { 1.0 } else { 0.0 };
                    assert_eq!(out[t * n + i], want, "n={n} t={t} i={i}");
                }
            }
        }
        // certain pixels are certain
        let mut out = vec![0.0; 2 * 5];
        rate(&[0.0, 1.0, 1.5, -1.0, 1.0], 2, 1.0, 3, &mut out)?;
        assert_eq!(out, [0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0]);
        Ok(())
    }
}
