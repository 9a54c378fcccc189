//! Branch-free `exp`, `sigmoid` and `tanh` in plain arithmetic, so that a loop over a slice
//! compiles to vector instructions (the standard library's calls are scalar): the gate
//! non-linearities of a recurrent layer are millions of them per batch.
//!
//! `exp` is the classic range reduction `x = n·ln 2 + r` with a degree-6 polynomial for `e^r`
//! on `|r| ≤ ln 2 / 2` (Cephes' `expf` coefficients); relative error below 3e-7.

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split in two so that `n·LN2_HI` is exact for the `n` that occur.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// `1.5·2^23`: adding it rounds a float of magnitude below `2^22` to an integer.
const ROUND: f32 = 12_582_912.0;

/// `e^x` for `x` in `[-87, 88]`; outside, `e^-87` or `e^88` (so the result is always a normal
/// float, which is all `sigmoid` and `tanh` need).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // n is an integer in [-126, 127], held in the low mantissa bits of `shifted`
    let ni = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    er * f32::from_bits(((ni + 127) << 23) as u32)
}

/// `1 / (1 + e^-x)`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh x = 1 - 2 / (1 + e^2x)` (absolute error below 3e-7).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (1.0 + exp(2.0 * x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_to_the_standard_library_over_the_whole_range() {
        let mut worst = (0.0f64, 0.0f64, 0.0f64);
        for i in -197_727..=200_000 {
            let x = i as f32 * 4.4e-4; // -87 .. 88: the clamped range
            let e = f64::from(x).exp();
            let rel = ((f64::from(exp(x)) - e) / e).abs();
            worst.0 = worst.0.max(rel);
            let xs = x / 4.0;
            let s = 1.0 / (1.0 + (-f64::from(xs)).exp());
            worst.1 = worst.1.max((f64::from(sigmoid(xs)) - s).abs());
            worst.2 = worst
                .2
                .max((f64::from(tanh(xs)) - f64::from(xs).tanh()).abs());
        }
        assert!(worst.0 < 3e-7, "exp relative error {}", worst.0);
        assert!(worst.1 < 2e-7, "sigmoid absolute error {}", worst.1);
        assert!(worst.2 < 3e-7, "tanh absolute error {}", worst.2);
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert_eq!(tanh(1000.0), 1.0);
        assert_eq!(tanh(-1000.0), -1.0);
        assert!(sigmoid(-1000.0) >= 0.0 && sigmoid(1000.0) == 1.0);
    }
}
