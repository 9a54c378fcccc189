//! A packed f32 matrix product (BLIS-style blocking around a 6x16 register-tile kernel) for
//! the dense and convolution layers: on this project's 2-core AVX2 machines it runs about twice
//! as fast as the `gemm` crate on the layers' shapes.
//!
//! `C (+)= A·B` is computed in blocks: at most `KC` terms of the inner dimension at a time
//! (split evenly, so 288 terms make one block, not 256 + 32), `B` packed into `KC x 16` column
//! panels and `A` into `6 x KC` row panels, each `6 x 16` tile of `C` kept
//! in 12 vector registers while the kernel runs down `KC`. Every element of `C` is summed over
//! the inner dimension in the same order whichever thread computes it, so the result does not
//! depend on the number of threads; threads take disjoint column (or row) ranges of `C`.

use std::ops::Range;

use crate::gemm::MatRef;
use crate::par;

/// Rows of a register tile.
pub(crate) const MR: usize = 6;
/// Columns of a register tile (two 8-lane vectors).
pub(crate) const NR: usize = 16;
/// Inner-dimension block.
pub(crate) const KC: usize = 320;
/// Rows of `A` packed at a time (a multiple of `MR`; `MC x KC` floats stay in L2).
pub(crate) const MC: usize = 72;
/// Columns of `B` packed at a time (a multiple of `NR`).
const NC: usize = 1024;

/// `acc = Σ_p a[p·MR + i]·b[p·NR + j]` over the `kc` packed terms.
#[inline(always)]
pub(crate) fn tile<const FMA: bool>(kc: usize, a: &[f32], b: &[f32]) -> [[f32; NR]; MR] {
    let mut acc = [[0.0f32; NR]; MR];
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)).take(kc) {
        for (row, &ai) in acc.iter_mut().zip(ap) {
            for (c, &bj) in row.iter_mut().zip(bp) {
                *c = if FMA {
                    ai.mul_add(bj, *c)
                } else {
                    *c + ai * bj
                };
            }
        }
    }
    acc
}

/// `c = row[..c.len()]` (`set`) or `c += row[..c.len()]`, without a `memcpy` call for the
/// partial tiles (a fixed-length loop with a guard instead of a variable-length copy).
#[inline(always)]
pub(crate) fn write_row(c: &mut [f32], row: &[f32; NR], set: bool) {
    if let Ok(c) = <&mut [f32; NR]>::try_from(&mut *c) {
        for (cv, &v) in c.iter_mut().zip(row) {
            *cv = if set { v } else { *cv + v };
        }
        return;
    }
    for (j, &v) in row.iter().enumerate() {
        if let Some(cv) = c.get_mut(j) {
            *cv = if set { v } else { *cv + v };
        }
    }
}

/// Asks the CPU to bring a tile's `rows` destination rows (`NR` values from `at`, row stride
/// `rs`) into cache while the tile is computed: the write-back at its end otherwise waits on
/// memory for every row, as the destination is usually cold (written long before, or new).
#[inline(always)]
pub(crate) fn prefetch_tile(at: *const f32, rs: usize, rows: usize) {
    #[cfg(target_arch = "x86_64")]
    for i in 0..rows {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // a row of `NR` values spans at most two cache lines: its first and last value's
        let first = at.wrapping_add(i * rs);
        // SAFETY: SSE is part of every x86_64 CPU, and a prefetch never faults, whatever
        // the address.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(first.cast());
            _mm_prefetch::<_MM_HINT_T0>(first.wrapping_add(NR - 1).cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (at, rs, rows);
}

/// Packs rows `rows` x inner terms `ks` of `a` into `MR`-row panels, zero-padded.
#[inline(always)]
pub(crate) fn pack_a(a: &MatRef<'_>, rows: Range<usize>, ks: Range<usize>, out: &mut [f32]) {
    let kc = ks.len();
    for (panel, r0) in rows.clone().step_by(MR).enumerate() {
        let dst = &mut out[panel * kc * MR..(panel + 1) * kc * MR];
        let live = MR.min(rows.end - r0);
        if a.col_stride == 1 {
            for i in 0..MR {
                if i < live {
                    let src = &a.data[(r0 + i) * a.row_stride + ks.start..][..kc];
                    for (p, &v) in src.iter().enumerate() {
                        dst[p * MR + i] = v;
                    }
                } else {
                    for p in 0..kc {
                        dst[p * MR + i] = 0.0;
                    }
                }
            }
        } else {
            for (p, d) in ks.clone().zip(dst.chunks_exact_mut(MR)) {
                for (i, v) in d.iter_mut().enumerate() {
                    *v = if i < live {
                        a.data[(r0 + i) * a.row_stride + p * a.col_stride]
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// Packs inner terms `ks` x columns `cols` of `b` into `NR`-column panels, zero-padded.
#[inline(always)]
pub(crate) fn pack_b(b: &MatRef<'_>, ks: Range<usize>, cols: Range<usize>, out: &mut [f32]) {
    let kc = ks.len();
    for (panel, c0) in cols.clone().step_by(NR).enumerate() {
        let dst = &mut out[panel * kc * NR..(panel + 1) * kc * NR];
        let live = NR.min(cols.end - c0);
        if b.col_stride == 1 {
            for (p, d) in ks.clone().zip(dst.chunks_exact_mut(NR)) {
                let src = &b.data[p * b.row_stride + c0..][..live];
                if let (Ok(d), Ok(src)) = (
                    <&mut [f32; NR]>::try_from(&mut *d),
                    <&[f32; NR]>::try_from(src),
                ) {
                    // a fixed-size copy: two vector moves instead of a `memcpy` call
                    *d = *src;
                } else {
                    d[..live].copy_from_slice(src);
                    d[live..].fill(0.0);
                }
            }
        } else {
            for j in 0..NR {
                if j < live {
                    let base = (c0 + j) * b.col_stride;
                    for (p, d) in ks.clone().zip(dst.chunks_exact_mut(NR)) {
                        d[j] = b.data[base + p * b.row_stride];
                    }
                } else {
                    for d in dst.chunks_exact_mut(NR) {
                        d[j] = 0.0;
                    }
                }
            }
        }
    }
}

thread_local! {
    /// Packing buffers of this thread, kept between calls (allocating and faulting in fresh
    /// pages would cost as much as a small product).
    pub(crate) static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Two 64-byte aligned slices of `a` and `b` values carved from `buf` (grown as needed).
pub(crate) fn aligned(buf: &mut Vec<f32>, a: usize, b: usize) -> (&mut [f32], &mut [f32]) {
    const ALIGN: usize = 16; // floats per 64 bytes
    let a_pad = a.div_ceil(ALIGN) * ALIGN;
    if buf.len() < a_pad + b + ALIGN {
        buf.resize(a_pad + b + ALIGN, 0.0);
    }
    let skew = buf.as_ptr().align_offset(64).min(ALIGN);
    let (ap, bp) = buf[skew..].split_at_mut(a_pad);
    (&mut ap[..a], &mut bp[..b])
}

/// The destination of a product, shared by workers that write disjoint elements of it.
#[derive(Clone, Copy)]
struct Dst {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: a `Dst` is only created in `sgemm` from an exclusively borrowed slice that outlives
// every worker, and workers write disjoint elements.
unsafe impl Send for Dst {}
// SAFETY: as above.
unsafe impl Sync for Dst {}

impl Dst {
    /// The `len` values from `at`.
    ///
    /// # Safety
    /// `at + len` must not exceed the destination, the destination must outlive `'a`, and no
    /// other thread may access these values while the slice lives.
    #[inline(always)]
    unsafe fn slice<'a>(self, at: usize, len: usize) -> &'a mut [f32] {
        debug_assert!(at + len <= self.len);
        // SAFETY: in bounds and unshared, as the caller promises.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(at), len) }
    }
}

/// `dst (+)= a·b` for the columns `cols` of the product, rows `rows` of `dst` taking rows
/// `rows` of `a` (`dst` row stride `rs`); `overwrite`: the first inner block sets `dst`.
///
/// # Safety
/// `dst` must hold `(rows.end - 1)·rs + cols.end` values, and no other thread may access
/// the elements in `rows x cols` during the call.
#[inline(always)]
unsafe fn product<const FMA: bool>(
    dst: Dst,
    rs: usize,
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    rows: Range<usize>,
    cols: Range<usize>,
    overwrite: bool,
) {
    let k = a.cols;
    let b_len = KC * NC.min(cols.len().div_ceil(NR) * NR);
    let a_len = KC * MC.min(rows.len().div_ceil(MR) * MR);
    let mut scratch = SCRATCH.with(|s| s.take());
    let (ap, bp) = aligned(&mut scratch, a_len, b_len);
    for jc in cols.clone().step_by(NC) {
        let jcols = jc..(jc + NC).min(cols.end);
        let kc_even = k.div_ceil(k.div_ceil(KC));
        for pc in (0..k).step_by(kc_even) {
            let ks = pc..(pc + kc_even).min(k);
            let kc = ks.len();
            pack_b(b, ks.clone(), jcols.clone(), bp);
            let set = overwrite && pc == 0;
            for ic in rows.clone().step_by(MC) {
                let irows = ic..(ic + MC).min(rows.end);
                pack_a(a, irows.clone(), ks.clone(), ap);
                for (jp, j0) in jcols.clone().step_by(NR).enumerate() {
                    let nr = NR.min(jcols.end - j0);
                    let bpanel = &bp[jp * kc * NR..(jp + 1) * kc * NR];
                    for (ip, i0) in irows.clone().step_by(MR).enumerate() {
                        let mr = MR.min(irows.end - i0);
                        prefetch_tile(dst.ptr.wrapping_add(i0 * rs + j0), rs, mr);
                        let acc = tile::<FMA>(kc, &ap[ip * kc * MR..(ip + 1) * kc * MR], bpanel);
                        for (i, row) in acc.iter().enumerate().take(mr) {
                            // SAFETY: row `i0 + i` and columns `j0..j0 + nr` lie in
                            // `rows x cols`, which the caller guarantees are in bounds and ours.
                            let c = unsafe { dst.slice((i0 + i) * rs + j0, nr) };
                            write_row(c, row, set);
                        }
                    }
                }
            }
        }
    }
    SCRATCH.with(|s| s.replace(scratch));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn product_fma(
    dst: Dst,
    rs: usize,
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    rows: Range<usize>,
    cols: Range<usize>,
    overwrite: bool,
) {
    // SAFETY: forwarded from the caller.
    unsafe { product::<true>(dst, rs, a, b, rows, cols, overwrite) }
}

/// [`product`] with fused multiply-adds where the CPU has AVX2 and FMA (so results differ in
/// the last bits between such CPUs and others, never between runs or thread counts).
///
/// # Safety
/// As for [`product`].
unsafe fn product_dispatch(
    dst: Dst,
    rs: usize,
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    rows: Range<usize>,
    cols: Range<usize>,
    overwrite: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function was compiled for; the rest is
        // forwarded from the caller.
        unsafe { product_fma(dst, rs, a, b, rows, cols, overwrite) };
        return;
    }
    // SAFETY: forwarded from the caller.
    unsafe { product::<false>(dst, rs, a, b, rows, cols, overwrite) }
}

/// Smallest product (in flops) split over threads.
const PAR_FLOPS: usize = 1 << 21;

/// `dst = a·b` (or `dst += a·b` when `accumulate`); `dst` row-major `a.rows x b.cols` with row
/// stride `dst_row_stride`. With `parallel`, large products are split over the rayon pool by
/// disjoint columns (or rows) of `dst`.
pub fn sgemm(
    dst: &mut [f32],
    dst_row_stride: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    accumulate: bool,
    parallel: bool,
) -> Result<(), String> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k {
        return Err(format!(
            "matmul: {}x{} times {}x{}",
            a.rows, a.cols, b.rows, b.cols
        ));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if dst_row_stride < n || dst.len() < (m - 1) * dst_row_stride + n {
        return Err(format!("matmul: destination too small for {m}x{n}"));
    }
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_row_stride).take(m) {
                row[..n].fill(0.0);
            }
        }
        return Ok(());
    }
    if a.data.len() <= a.last_index() || b.data.len() <= b.last_index() {
        return Err("matmul: operand slice shorter than its view".to_string());
    }
    let dst = Dst {
        ptr: dst.as_mut_ptr(),
        len: (m - 1) * dst_row_stride + n,
    };
    let threads = if parallel && 2 * m * n * k >= PAR_FLOPS {
        rayon::current_num_threads()
    } else {
        1
    };
    let by_cols = par::ranges(n, threads.min(n.div_ceil(NR)), NR);
    let by_rows = par::ranges(m, threads.min(m.div_ceil(MR)), MR);
    let jobs: Vec<(Range<usize>, Range<usize>)> = if by_cols.len() >= by_rows.len() {
        by_cols.into_iter().map(|c| (0..m, c)).collect()
    } else {
        by_rows.into_iter().map(|r| (r, 0..n)).collect()
    };
    let (a, b) = (&a, &b);
    match jobs.as_slice() {
        [] => {}
        [(rows, cols)] => {
            // SAFETY: `dst` holds `(m - 1)·rs + n` values (checked above) and is exclusively
            // borrowed by this call.
            unsafe {
                product_dispatch(
                    dst,
                    dst_row_stride,
                    a,
                    b,
                    rows.clone(),
                    cols.clone(),
                    !accumulate,
                )
            }
        }
        _ => rayon::scope(|s| {
            for (rows, cols) in jobs {
                s.spawn(move |_| {
                    // SAFETY: as above; the jobs cover disjoint blocks of `dst`, and the
                    // borrow outlives the scope.
                    unsafe { product_dispatch(dst, dst_row_stride, a, b, rows, cols, !accumulate) }
                });
            }
        }),
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn naive(a: &MatRef<'_>, b: &MatRef<'_>) -> Vec<f32> {
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                let mut s = 0.0f64;
                for p in 0..a.cols {
                    s += a.data[i * a.row_stride + p * a.col_stride] as f64
                        * b.data[p * b.row_stride + j * b.col_stride] as f64;
                }
                out[i * b.cols + j] = s as f32;
            }
        }
        out
    }

    /// Test values in [-1, 1) from a counter hash keyed by `seed`.
    pub(crate) fn data(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 1009) as f32 / 504.5) - 1.0)
            .collect()
    }

    #[test]
    fn matches_naive_product_for_all_layouts_and_edges() {
        // shapes straddling the tile and block sizes
        for (m, k, n) in [
            (1, 1, 1),
            (5, 3, 7),
            (6, 16, 16),
            (13, 300, 37),
            (77, 513, 1050),
            (130, 70, 20),
        ] {
            let (ad, bd) = (data(m * k, 1), data(k * n, 2));
            for (at, bt) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = if at {
                    MatRef::row_major(&ad, k, m).t()
                } else {
                    MatRef::row_major(&ad, m, k)
                };
                let b = if bt {
                    MatRef::row_major(&bd, n, k).t()
                } else {
                    MatRef::row_major(&bd, k, n)
                };
                let want = naive(&a, &b);
                for parallel in [false, true] {
                    let mut got = vec![f32::NAN; m * n];
                    sgemm(&mut got, n, a, b, false, parallel).unwrap();
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                            "{m}x{k}x{n}: {g} vs {w}"
                        );
                    }
                    sgemm(&mut got, n, a, b, true, parallel).unwrap();
                    for (g, w) in got.iter().zip(&want) {
                        assert!((g - 2.0 * w).abs() <= 2e-4 * (1.0 + w.abs()));
                    }
                }
            }
        }
    }

    #[test]
    fn strided_destination_and_thread_count_independence() {
        let (m, k, n, rs) = (100, 200, 300, 310);
        let (ad, bd) = (data(m * k, 3), data(k * n, 4));
        let (a, b) = (MatRef::row_major(&ad, m, k), MatRef::row_major(&bd, k, n));
        let run = |threads: usize, tall: bool| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut got = vec![-7.0f32; m * rs];
            let (a, b) = if tall { (b.t(), a.t()) } else { (a, b) };
            pool.install(|| sgemm(&mut got, rs, a, b, false, true))
                .unwrap();
            got
        };
        let one = run(1, false);
        assert_eq!(one, run(3, false));
        let want = naive(&a, &b);
        for i in 0..m {
            for j in 0..rs {
                let g = one[i * rs + j];
                if j < n {
                    assert!((g - want[i * n + j]).abs() <= 1e-4 * (1.0 + want[i * n + j].abs()));
                } else {
                    assert_eq!(g, -7.0, "padding column {j} was written");
                }
            }
        }
        // a tall product (split by rows) with row stride > cols: padding stays untouched
        let mut tall = vec![-7.0f32; 300 * 110];
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| sgemm(&mut tall, 110, b.t(), a.t(), false, true))
            .unwrap();
        let want_t = naive(&b.t(), &a.t());
        for i in 0..300 {
            for j in 0..110 {
                let g = tall[i * 110 + j];
                if j < 100 {
                    assert!(
                        (g - want_t[i * 100 + j]).abs() <= 1e-4 * (1.0 + want_t[i * 100 + j].abs())
                    );
                } else {
                    assert_eq!(g, -7.0);
                }
            }
        }
        assert!(sgemm(&mut tall, 110, a, a, false, true).is_err());
    }
}
