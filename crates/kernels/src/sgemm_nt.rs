//! `C (+)= A·Bᵀ` for row-major `A` and `B` by dot products, with no packing: the forward
//! product of a dense layer (`x·wᵀ`) when `x` is small enough to stay in L2.
//!
//! The packed product ([`crate::sgemm`]) must first copy `wᵀ` column by column, a strided
//! scalar gather that costs about as much as the arithmetic for a batch of 128. Here each
//! `4 x 3` tile of `C` is twelve dot products over the inner dimension, eight lanes at a time
//! in twelve vector registers; both operands are read along their rows, as stored. Every
//! element of `C` is the same fixed-order sum (lane partial sums in inner order, the lanes
//! added as a fixed tree, see [`lane_tree_sum`], then the tail) whichever tile or thread
//! computes it.

use std::ops::Range;

use crate::par;

/// Rows of `A` per tile.
const TR: usize = 4;
/// Rows of `B` (columns of `C`) per tile.
const TC: usize = 3;
/// Vector lanes of the partial sums.
const LANES: usize = 8;

/// Largest `A` (in values) for which [`nt_product`] beats the packed product: every thread
/// sweeps all of `A` once per three columns of `C`, so `A` must stay in L2.
pub const MAX_A: usize = 160 * 1024;

/// Smallest product (in multiply-adds) split over threads.
const PAR_MACS: usize = 1 << 20;

/// `c[i][j] = Σ_p a[i][p]·b[j][p]` over `p < k` for `R` rows of `a` and `C` rows of `b`,
/// each a slice of at least `k` values: AVX2 registers where the CPU has them, else the same
/// sums lane by lane in portable code (the same bits either way).
#[inline(always)]
fn dot_tile<const R: usize, const C: usize>(
    a: [&[f32]; R],
    b: [&[f32]; C],
    k: usize,
) -> [[f32; C]; R] {
    if a.iter().chain(&b).any(|row| row.len() < k) {
        debug_assert!(false, "dot_tile: rows shorter than k");
        return [[f32::NAN; C]; R];
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features; every row holds at least `k` values (checked).
        return unsafe { dot_tile_avx2::<R, C>(a, b, k) };
    }
    dot_tile_portable(a, b, k)
}

/// [`dot_tile`] in AVX2 registers: `R·C` accumulators of eight lanes.
///
/// # Safety
/// The CPU must have AVX2 and FMA, and every row must hold at least `k` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_tile_avx2<const R: usize, const C: usize>(
    a: [&[f32]; R],
    b: [&[f32]; C],
    k: usize,
) -> [[f32; C]; R] {
    use std::arch::x86_64::{
        __m256, _mm256_castps256_ps128, _mm256_extractf128_ps, _mm256_fmadd_ps, _mm256_loadu_ps,
        _mm256_setzero_ps, _mm_add_ps, _mm_add_ss, _mm_cvtss_f32, _mm_movehdup_ps, _mm_movehl_ps,
    };
    let mut acc: [[__m256; C]; R] = [[_mm256_setzero_ps(); C]; R];
    let body = k / LANES * LANES;
    let mut p = 0;
    while p < body {
        let mut bv: [__m256; C] = [_mm256_setzero_ps(); C];
        for (v, row) in bv.iter_mut().zip(&b) {
            // SAFETY: `p + LANES <= k <= row.len()` (the caller's promise).
            *v = unsafe { _mm256_loadu_ps(row.as_ptr().add(p)) };
        }
        for (acc_i, row) in acc.iter_mut().zip(&a) {
            // SAFETY: as above.
            let av = unsafe { _mm256_loadu_ps(row.as_ptr().add(p)) };
            for (s, &y) in acc_i.iter_mut().zip(&bv) {
                *s = _mm256_fmadd_ps(av, y, *s);
            }
        }
        p += LANES;
    }
    let mut out = [[0.0f32; C]; R];
    for (i, (out_i, acc_i)) in out.iter_mut().zip(&acc).enumerate() {
        for (j, (o, &v)) in out_i.iter_mut().zip(acc_i).enumerate() {
            // the tree of `lane_tree_sum` in registers: lanes i + (i+4), then + (i+2), then + 1
            let half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let quarter = _mm_add_ps(half, _mm_movehl_ps(half, half));
            let one = _mm_add_ss(quarter, _mm_movehdup_ps(quarter));
            let mut s = _mm_cvtss_f32(one);
            for q in body..k {
                s = a[i][q].mul_add(b[j][q], s);
            }
            *o = s;
        }
    }
    out
}

/// The sum of eight lane partial sums as a fixed tree, `((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))`,
/// the order the AVX2 path adds them in registers.
#[inline(always)]
fn lane_tree_sum(l: &[f32; LANES]) -> f32 {
    let half = [l[0] + l[4], l[1] + l[5], l[2] + l[6], l[3] + l[7]];
    let quarter = [half[0] + half[2], half[1] + half[3]];
    quarter[0] + quarter[1]
}

/// [`dot_tile`] in portable code.
#[inline(always)]
fn dot_tile_portable<const R: usize, const C: usize>(
    a: [&[f32]; R],
    b: [&[f32]; C],
    k: usize,
) -> [[f32; C]; R] {
    let mut acc = [[[0.0f32; LANES]; C]; R];
    let body = k / LANES * LANES;
    let mut p = 0;
    while p < body {
        let mut bv = [[0.0f32; LANES]; C];
        for (v, row) in bv.iter_mut().zip(&b) {
            // SAFETY: `p + LANES <= body <= k <= row.len()`.
            v.copy_from_slice(unsafe { row.get_unchecked(p..p + LANES) });
        }
        for (acc_i, row) in acc.iter_mut().zip(&a) {
            // SAFETY: as above.
            let av = unsafe { row.get_unchecked(p..p + LANES) };
            for (acc_ij, bvj) in acc_i.iter_mut().zip(&bv) {
                for ((s, &x), &y) in acc_ij.iter_mut().zip(av).zip(bvj) {
                    *s = x.mul_add(y, *s);
                }
            }
        }
        p += LANES;
    }
    let mut out = [[0.0f32; C]; R];
    for (i, (out_i, acc_i)) in out.iter_mut().zip(&acc).enumerate() {
        for (j, (o, lanes)) in out_i.iter_mut().zip(acc_i).enumerate() {
            let mut s = lane_tree_sum(lanes);
            for q in body..k {
                s = a[i][q].mul_add(b[j][q], s);
            }
            *o = s;
        }
    }
    out
}

/// Columns `cols` of `C` (rows of `B`), all rows of `A`; `C` row-major with row stride `ldc`.
#[allow(clippy::too_many_arguments)]
fn nt_columns(
    a: &[f32],
    m: usize,
    b: &[f32],
    k: usize,
    cols: Range<usize>,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    if a.len() < m * k || b.len() < cols.end * k || (m > 0 && c.len() < (m - 1) * ldc + cols.end) {
        debug_assert!(false, "nt_columns: operands shorter than their sizes");
        return;
    }
    let arow = |i: usize| &a[i * k..(i + 1) * k];
    let brow = |j: usize| &b[j * k..(j + 1) * k];
    let mut put = |i: usize, j: usize, v: f32| {
        let at = i * ldc + j;
        c[at] = if accumulate { c[at] + v } else { v };
    };
    // four rows of `A` stay in L1 while the columns' rows of `B` stream from L2 (`B`'s
    // share is read once per four rows of `C`; reading `A` per three columns costs more)
    let full = cols.start + cols.len() / TC * TC;
    let mut i = 0;
    while i < m {
        let tall = (m - i).min(TR);
        for j in (cols.start..full).step_by(TC) {
            let bs = [brow(j), brow(j + 1), brow(j + 2)];
            if tall == TR {
                let t = dot_tile::<TR, TC>([arow(i), arow(i + 1), arow(i + 2), arow(i + 3)], bs, k);
                for (r, row) in t.iter().enumerate() {
                    for (q, &v) in row.iter().enumerate() {
                        put(i + r, j + q, v);
                    }
                }
            } else {
                for r in i..i + tall {
                    let t = dot_tile::<1, TC>([arow(r)], bs, k);
                    for (q, &v) in t[0].iter().enumerate() {
                        put(r, j + q, v);
                    }
                }
            }
        }
        for j in full..cols.end {
            for r in i..i + tall {
                put(r, j, dot_tile::<1, 1>([arow(r)], [brow(j)], k)[0][0]);
            }
        }
        i += tall;
    }
}

/// `c = a·bᵀ` (or `c += a·bᵀ` when `accumulate`) for row-major `a` (`[m, k]`), `b` (`[n, k]`)
/// and `c` (`[m, n]`, row stride `ldc`); with `parallel`, large products split the columns of
/// `c` over the rayon pool. Fused multiply-adds everywhere (`mul_add`), so the result is the
/// same on every CPU and for any number of threads.
#[allow(clippy::too_many_arguments)]
pub fn nt_product(
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    parallel: bool,
) -> Result<(), String> {
    if a.len() < m * k || b.len() < n * k || ldc < n || (m > 0 && c.len() < (m - 1) * ldc + n) {
        return Err(format!(
            "matmul a·bᵀ: {} and {} values for {m}x{k} and {n}x{k}, {} for the {m}x{n} result",
            a.len(),
            b.len(),
            c.len()
        ));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    let threads = if parallel && m * n * k >= PAR_MACS {
        rayon::current_num_threads()
    } else {
        1
    };
    let parts = par::ranges(n, threads.min(n.div_ceil(TC)), TC);
    if parts.len() <= 1 {
        nt_columns(a, m, b, k, 0..n, c, ldc, accumulate);
        return Ok(());
    }
    let c = SharedRows {
        ptr: c.as_mut_ptr(),
        len: (m - 1) * ldc + n,
    };
    rayon::scope(|s| {
        for cols in parts {
            s.spawn(move |_| {
                // SAFETY: `c` holds `len` values, exclusively borrowed for this call; each job
                // writes only the columns `cols` of each row, disjoint from the others' (the
                // slice is shared, the elements touched are not).
                let c = unsafe { c.slice() };
                nt_columns(a, m, b, k, cols, c, ldc, accumulate);
            });
        }
    });
    Ok(())
}

/// The result matrix shared by the column jobs of [`nt_product`].
#[derive(Clone, Copy)]
struct SharedRows {
    ptr: *mut f32,
    len: usize,
}

impl SharedRows {
    /// The whole matrix as a slice.
    ///
    /// # Safety
    /// `ptr` must hold `len` values for the returned lifetime, and concurrent users must touch
    /// disjoint elements.
    unsafe fn slice<'a>(self) -> &'a mut [f32] {
        // SAFETY: as the caller guarantees.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

// SAFETY: jobs write disjoint elements (see `nt_product`).
unsafe impl Send for SharedRows {}
unsafe impl Sync for SharedRows {}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 - 500.0) / 250.0)
            .collect()
    }

    #[test]
    fn matches_naive_dot_products_at_every_edge() -> Result<(), String> {
        for (m, k, n) in [
            (1, 1, 1),
            (5, 7, 4),
            (9, 17, 11),
            (128, 784, 10),
            (13, 64, 6),
        ] {
            let (a, b) = (data(m * k, 1), data(n * k, 2));
            for accumulate in [false, true] {
                let ldc = n + 3;
                let mut c = data(m * ldc, 3);
                let before = c.clone();
                nt_product(&a, &b, m, k, n, &mut c, ldc, accumulate, true)?;
                for i in 0..m {
                    for j in 0..n {
                        let dot: f64 = (0..k)
                            .map(|p| f64::from(a[i * k + p]) * f64::from(b[j * k + p]))
                            .sum();
                        let want = dot
                            + if accumulate {
                                f64::from(before[i * ldc + j])
                            } else {
                                0.0
                            };
                        let got = f64::from(c[i * ldc + j]);
                        assert!(
                            (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                            "{m}x{k}x{n} ({i},{j}): {got} vs {want}"
                        );
                    }
                    // the padding beyond column n is untouched
                    assert_eq!(
                        c[i * ldc + n..i * ldc + ldc],
                        before[i * ldc + n..i * ldc + ldc]
                    );
                }
            }
        }
        assert!(nt_product(&[0.0; 3], &[0.0; 4], 2, 2, 2, &mut [0.0; 4], 2, false, true).is_err());
        Ok(())
    }

    #[test]
    fn portable_tile_gives_the_same_bits_as_avx2() {
        let k = 301;
        let (a, b) = (data(4 * k, 6), data(3 * k, 7));
        fn rows(v: &[f32], i: usize) -> &[f32] {
            &v[i * 301..(i + 1) * 301]
        }
        let ar = [rows(&a, 0), rows(&a, 1), rows(&a, 2), rows(&a, 3)];
        let br = [rows(&b, 0), rows(&b, 1), rows(&b, 2)];
        assert_eq!(
            dot_tile::<4, 3>(ar, br, k),
            dot_tile_portable::<4, 3>(ar, br, k)
        );
    }

    #[test]
    fn same_bits_for_any_thread_count_and_tile_position() -> Result<(), String> {
        let (m, k, n) = (37, 301, 70);
        let (a, b) = (data(m * k, 4), data(n * k, 5));
        let run = |threads: usize| -> Result<Vec<f32>, String> {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|e| e.to_string())?;
            let mut c = vec![0.0; m * n];
            pool.install(|| nt_product(&a, &b, m, k, n, &mut c, n, false, true))?;
            Ok(c)
        };
        let one = run(1)?;
        assert_eq!(one, run(2)?);
        assert_eq!(one, run(3)?);
        // row 36 is computed by a 1-row tile, rows 0..36 by 4-row tiles: the same sum either way
        let mut single = vec![0.0; n];
        nt_product(&a[36 * k..], &b, 1, k, n, &mut single, n, false, false)?;
        assert_eq!(single, one[36 * n..]);
        Ok(())
    }
}
