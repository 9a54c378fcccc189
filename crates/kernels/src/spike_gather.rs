//! The two sparse products of [`super`]: the gather (`x·wᵀ`, forward) and the scatter
//! (`gᵀ·x`, weight gradient), each over rows of a [`SparseRows`].

use std::ops::Range;

use rayon::prelude::*;

use super::SparseRows;
use crate::par;

/// `out = x·wᵀ (+ bias)` for row-major `w` (`[n, x.cols]`): `out[r, j] = Σ_k x[r, k]·w[j, k]`
/// over the stored entries of row `r` in ascending `k` (`out` row-major `[x.rows, n]`); each
/// output element is the same fixed-order sum for any number of threads.
pub fn sparse_matmul(
    x: &SparseRows,
    w: &[f32],
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<(), String> {
    if w.len() != x.cols * n || out.len() != x.rows * n || bias.is_some_and(|v| v.len() != n) {
        return Err(format!(
            "sparse matmul: {}x{} times the transpose of {} values (n = {n}) into {} values (bias {:?})",
            x.rows,
            x.cols,
            w.len(),
            out.len(),
            bias.map(<[f32]>::len)
        ));
    }
    if n == 0 || x.rows == 0 {
        return Ok(());
    }
    let packed = Packed::new(w, x.cols, n);
    // split rows so that workers get similar numbers of entries (plus one per row)
    let work = |r: usize| x.offsets[r] + r;
    let total = work(x.rows);
    let parts = par::workers(total, 4096);
    // first row whose preceding work reaches `i/parts` of the total
    let split = |i: usize| {
        let (mut lo, mut hi) = (0, x.rows);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if work(mid) * parts < total * i {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    };
    let mut bounds: Vec<usize> = (0..=parts).map(split).collect();
    bounds[parts] = x.rows;
    let run = |rows: Range<usize>, chunk: &mut [f32]| {
        gather_rows(x, rows.start, rows.end, &packed, bias, chunk);
    };
    if parts <= 1 {
        run(0..x.rows, out);
        return Ok(());
    }
    rayon::scope(|s| {
        let mut rest = out;
        for w in bounds.windows(2) {
            let (chunk, tail) = rest.split_at_mut((w[1] - w[0]) * n);
            rest = tail;
            let rows = w[0]..w[1];
            let run = &run;
            s.spawn(move |_| run(rows, chunk));
        }
    });
    Ok(())
}

/// `wᵀ` (`[k, n]` for `w: [n, k]`) packed in column blocks of `width`: block `j` (columns
/// `n0..n0 + w`, `n0 = j·width`) is a contiguous row-major `[k, w]` matrix at
/// `data[start + k·n0..]`, its start aligned to a cache line, so that it stays in L2 (and in
/// few pages) while rows gather from it.
struct Packed {
    data: Vec<f32>,
    start: usize,
    k: usize,
    n: usize,
    width: usize,
}

impl Packed {
    fn new(wts: &[f32], k: usize, n: usize) -> Packed {
        // 32 columns (4 AVX registers of accumulators; measured fastest) unless the `[k, width]`
        // slice would not fit in about half of L2
        let width = [32, 16]
            .into_iter()
            .find(|w| k * w * 4 <= 512 << 10)
            .unwrap_or(8);
        let mut data = vec![0.0f32; k * n + 16];
        let start = data.as_ptr().align_offset(64).min(16);
        let mut blocks = Vec::new();
        let mut rest = &mut data[start..start + k * n];
        let mut n0 = 0;
        while n0 < n {
            let w = width.min(n - n0);
            let (blk, tail) = rest.split_at_mut(k * w);
            blocks.push((n0, w, blk));
            rest = tail;
            n0 += w;
        }
        blocks
            .into_par_iter()
            .for_each(|(n0, w, blk)| transpose_into(&wts[n0 * k..(n0 + w) * k], k, w, blk));
        Packed {
            data,
            start,
            k,
            n,
            width,
        }
    }

    /// Block at column `n0`: `(w, ldb, values)` with row `i` of the block at
    /// `values[i·ldb..i·ldb + w]` (here `ldb = w`).
    fn block(&self, n0: usize) -> (usize, usize, &[f32]) {
        let w = self.width.min(self.n - n0);
        let at = self.start + self.k * n0;
        (w, w, &self.data[at..at + self.k * w])
    }
}

/// `dst = srcᵀ` for row-major `src` (`[rows, k]`) into row-major `dst` (`[k, rows]`), by
/// `8 x 8` tiles held in registers, so that both sides move along cache lines; the ragged edges
/// value by value.
#[inline(always)]
fn transpose_impl(src: &[f32], k: usize, rows: usize, dst: &mut [f32]) {
    const T: usize = 8;
    if src.len() < rows * k || dst.len() < rows * k {
        debug_assert!(false, "transpose_into: operands shorter than their sizes");
        return;
    }
    let (full_rows, full_k) = (rows / T * T, k / T * T);
    for i0 in (0..full_rows).step_by(T) {
        for p0 in (0..full_k).step_by(T) {
            let mut tile = [[0.0f32; T]; T];
            for (i, t) in tile.iter_mut().enumerate() {
                let at = (i0 + i) * k + p0;
                t.copy_from_slice(&src[at..at + T]);
            }
            for q in 0..T {
                let at = (p0 + q) * rows + i0;
                for (o, t) in dst[at..at + T].iter_mut().zip(&tile) {
                    *o = t[q];
                }
            }
        }
    }
    for i in 0..rows {
        let from = if i < full_rows { full_k } else { 0 };
        for p in from..k {
            dst[p * rows + i] = src[i * k + p];
        }
    }
}

dispatch!(
    /// `dst = srcᵀ` (see [`transpose_impl`]).
    fn transpose_into(src: &[f32], k: usize, rows: usize, dst: &mut [f32]) => transpose_impl
);

#[inline(always)]
fn gather_rows_impl(
    x: &SparseRows,
    r0: usize,
    r1: usize,
    b: &Packed,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    if x.is_binary() {
        gather_rows_generic::<true>(x, r0, r1, b, bias, out);
    } else {
        gather_rows_generic::<false>(x, r0, r1, b, bias, out);
    }
}

dispatch!(
    /// Rows `r0..r1` of [`sparse_matmul`] into `out` (their rows only).
    fn gather_rows(x: &SparseRows, r0: usize, r1: usize, b: &Packed, bias: Option<&[f32]>, out: &mut [f32]) => gather_rows_impl
);

#[inline(always)]
fn gather_rows_generic<const BIN: bool>(
    x: &SparseRows,
    r0: usize,
    r1: usize,
    b: &Packed,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let n = b.n;
    if b.k != x.cols || out.len() < (r1 - r0) * n || r1 > x.rows {
        debug_assert!(false, "gather_rows: inconsistent operands");
        return;
    }
    let mut n0 = 0;
    while n0 < n {
        let (w, ldb, blk) = b.block(n0);
        // what `block` relies on for its unchecked reads: row `k - 1` of the block is there
        if x.cols > 0 && blk.len() < (x.cols - 1) * ldb + w {
            debug_assert!(false, "gather_rows: block shorter than its rows");
            return;
        }
        for r in r0..r1 {
            let (idx, val) = x.row(r);
            let dst = &mut out[(r - r0) * n + n0..(r - r0) * n + n0 + w];
            span::<BIN>(idx, val, blk, ldb, dst);
            if let Some(bias) = bias {
                for (o, &c) in dst.iter_mut().zip(&bias[n0..n0 + w]) {
                    *o += c;
                }
            }
        }
        n0 += w;
    }
}

/// `dst[j] = Σ_i val[i]·blk[idx[i]·ldb + j]` for `j < dst.len()`, where row `k` of the block is
/// `blk[k·ldb..k·ldb + dst.len()]` and every `idx[i]` is a row (as [`gather_rows_generic`]
/// checks), widest pieces first.
#[inline(always)]
fn span<const BIN: bool>(idx: &[u32], val: &[f32], blk: &[f32], ldb: usize, dst: &mut [f32]) {
    let w = dst.len();
    let mut j = 0;
    while w - j >= 32 {
        block::<32, BIN>(idx, val, blk, ldb, j, &mut dst[j..j + 32]);
        j += 32;
    }
    if w - j >= 16 {
        block::<16, BIN>(idx, val, blk, ldb, j, &mut dst[j..j + 16]);
        j += 16;
    }
    if w - j >= 8 {
        block::<8, BIN>(idx, val, blk, ldb, j, &mut dst[j..j + 8]);
        j += 8;
    }
    if j < w {
        let mut acc = [0.0f32; 8];
        for (i, &k) in idx.iter().enumerate() {
            let src = &blk[k as usize * ldb + j..][..w - j];
            let v = if BIN { 1.0 } else { val[i] };
            for (a, &s) in acc.iter_mut().zip(src) {
                *a = v.mul_add(s, *a);
            }
        }
        dst[j..].copy_from_slice(&acc[..w - j]);
    }
}

/// Columns `j..j + W` of [`span`], the accumulators in registers: even and odd entries go to
/// two sets of partial sums (each in ascending order; two independent chains hide the add
/// latency), added at the end. With `BIN` every value is 1 and the multiply is skipped;
/// otherwise each entry is one fused multiply-add.
#[inline(always)]
fn block<const W: usize, const BIN: bool>(
    idx: &[u32],
    val: &[f32],
    blk: &[f32],
    ldb: usize,
    j: usize,
    dst: &mut [f32],
) {
    let row = |k: u32| {
        let at = k as usize * ldb + j;
        debug_assert!(at + W <= blk.len());
        // SAFETY: `k` is a row of the block (indices of a `SparseRows` are below its `cols`,
        // the block's row count: `gather_rows_generic`), `j + W <= w` (`span`), and the block
        // holds `(rows - 1)·ldb + w` values (checked in `gather_rows_generic`), so
        // `at + W <= k·ldb + w <= blk.len()`.
        unsafe { blk.get_unchecked(at..at + W) }
    };
    let add = |acc: &mut [f32; W], i: usize, k: u32| {
        if BIN {
            for (a, &s) in acc.iter_mut().zip(row(k)) {
                *a += s;
            }
        } else {
            let v = val[i];
            for (a, &s) in acc.iter_mut().zip(row(k)) {
                *a = v.mul_add(s, *a);
            }
        }
    };
    let (mut even, mut odd) = ([0.0f32; W], [0.0f32; W]);
    let pairs = idx.len() / 2;
    for p in 0..pairs {
        add(&mut even, 2 * p, idx[2 * p]);
        add(&mut odd, 2 * p + 1, idx[2 * p + 1]);
    }
    if idx.len() % 2 == 1 {
        add(&mut even, idx.len() - 1, idx[idx.len() - 1]);
    }
    for ((d, e), o) in dst.iter_mut().zip(even).zip(odd) {
        *d = e + o;
    }
}

/// `dw = gᵀ·x` (`[n, x.cols]`) for row-major `g` (`[x.rows, n]`), and with `db` the column
/// sums of `g` on the way: for each block of 32 output rows, every row of `g`'s slice is added
/// to the block's columns picked by the row of `x` (rows in ascending order), in a
/// `[x.cols, 32]` accumulator that stays in L2; workers own disjoint blocks.
pub fn sparse_t_matmul(
    x: &SparseRows,
    g: &[f32],
    n: usize,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) -> Result<(), String> {
    let k = x.cols;
    if g.len() != x.rows * n || dw.len() != n * k || db.as_ref().is_some_and(|d| d.len() != n) {
        return Err(format!(
            "sparse t-matmul: ({}x{k})ᵀ·g with g {} values (n = {n}) into {} values (db {:?})",
            x.rows,
            g.len(),
            dw.len(),
            db.map(|d| d.len())
        ));
    }
    if k == 0 || n == 0 {
        if let Some(db) = db {
            crate::spike::column_sums(g, n, db)?;
        }
        return Ok(());
    }
    if x.is_binary() && u32::try_from(x.rows).is_ok() {
        binary_t_matmul(x, g, n, dw, db);
    } else {
        rowwise_t_matmul(x, g, n, dw, db);
    }
    Ok(())
}

/// [`sparse_t_matmul`] row by row: each row of `g` is added into an L2-resident accumulator
/// at the columns its row of `x` selects (any values).
fn rowwise_t_matmul(x: &SparseRows, g: &[f32], n: usize, dw: &mut [f32], db: Option<&mut [f32]>) {
    let k = x.cols;
    const WB: usize = 32;
    let db_chunks: Vec<Option<&mut [f32]>> = match db {
        Some(d) => d.chunks_mut(WB).map(Some).collect(),
        None => (0..n.div_ceil(WB)).map(|_| None).collect(),
    };
    /// `(first output row, its block of dw, its slice of db)`.
    type Block<'a> = (usize, &'a mut [f32], Option<&'a mut [f32]>);
    let mut blocks: Vec<Block<'_>> = dw
        .chunks_mut(WB * k)
        .zip(db_chunks)
        .enumerate()
        .map(|(i, (c, d))| (i * WB, c, d))
        .collect();
    let parts = par::ranges(blocks.len(), par::workers(x.nnz() * n, 1 << 20), 1);
    let mut groups = Vec::new();
    for r in parts.iter().rev() {
        groups.push(blocks.split_off(r.start));
    }
    groups.into_par_iter().for_each(|group| {
        let mut acc = vec![0.0f32; k * WB];
        let mut spare = [0.0f32; WB];
        for (n0, out, db) in group {
            scatter_block(x, g, n, n0, &mut acc, out, db.unwrap_or(&mut spare));
        }
    });
}

#[inline(always)]
fn scatter_block_impl(
    x: &SparseRows,
    g: &[f32],
    n: usize,
    n0: usize,
    acc: &mut [f32],
    out: &mut [f32],
    db: &mut [f32],
) {
    const WB: usize = 32;
    let k = x.cols;
    let w = WB.min(n - n0);
    acc.fill(0.0);
    let mut sums = [0.0f32; WB];
    if w == WB && acc.len() >= k * WB {
        for r in 0..x.rows {
            let mut seg = [0.0f32; WB];
            seg.copy_from_slice(&g[r * n + n0..r * n + n0 + WB]);
            for (t, &s) in sums.iter_mut().zip(&seg) {
                *t += s;
            }
            let (idx, val) = x.row(r);
            // SAFETY (both loops): `c < x.cols = k` (a `SparseRows` invariant) and
            // `acc.len() >= k·WB` (checked above), so `c·WB + WB <= acc.len()`.
            if x.is_binary() {
                for &c in idx {
                    let at = c as usize * WB;
                    let a = unsafe { acc.get_unchecked_mut(at..at + WB) };
                    for (a, &s) in a.iter_mut().zip(&seg) {
                        *a += s;
                    }
                }
            } else {
                for (&c, &v) in idx.iter().zip(val) {
                    let at = c as usize * WB;
                    let a = unsafe { acc.get_unchecked_mut(at..at + WB) };
                    for (a, &s) in a.iter_mut().zip(&seg) {
                        *a += v * s;
                    }
                }
            }
        }
    } else {
        for r in 0..x.rows {
            let seg = &g[r * n + n0..r * n + n0 + w];
            for (t, &s) in sums.iter_mut().zip(seg) {
                *t += s;
            }
            let (idx, val) = x.row(r);
            for (e, &c) in idx.iter().enumerate() {
                let v = val.get(e).copied().unwrap_or(1.0);
                for (a, &s) in acc[c as usize * w..c as usize * w + w].iter_mut().zip(seg) {
                    *a += v * s;
                }
            }
        }
    }
    for (d, &t) in db.iter_mut().zip(&sums[..w]) {
        *d = t;
    }
    // the block's rows of `dw`: out[i, c] = acc[c, i]
    for (i, row) in out.chunks_exact_mut(k).enumerate().take(w) {
        for (c, o) in row.iter_mut().enumerate() {
            *o = acc[c * w + i];
        }
    }
}

dispatch!(
    /// Output rows `n0..n0 + 32` of [`sparse_t_matmul`] into `out` (and the column sums into
    /// `db`), with `acc` as scratch.
    fn scatter_block(x: &SparseRows, g: &[f32], n: usize, n0: usize, acc: &mut [f32], out: &mut [f32], db: &mut [f32]) => scatter_block_impl
);

/// The rows holding an entry in each column of `x` (compressed-column form, without values):
/// column `c`'s rows, ascending, are `rows[starts[c]..starts[c + 1]]`. Needs `x.rows` to fit
/// in `u32`.
fn column_lists(x: &SparseRows) -> (Vec<usize>, Vec<u32>) {
    let k = x.cols;
    let mut starts = vec![0usize; k + 1];
    for r in 0..x.rows {
        for &c in x.row(r).0 {
            starts[c as usize + 1] += 1;
        }
    }
    for c in 0..k {
        starts[c + 1] += starts[c];
    }
    let mut fill = starts[..k].to_vec();
    let mut rows = vec![0u32; x.nnz()];
    for r in 0..x.rows {
        for &c in x.row(r).0 {
            let at = &mut fill[c as usize];
            rows[*at] = r as u32;
            *at += 1;
        }
    }
    (starts, rows)
}

/// Output units per block of [`binary_t_matmul`]: 8 AVX registers of accumulators.
const WC: usize = 64;

/// [`sparse_t_matmul`] for a 0/1 `x`, by columns: for each block of [`WC`] output units and
/// each input column `c`, the rows of `g` where `c` spiked are summed in registers (loads and
/// adds only; the row-wise scatter stores every partial sum) and written once to `dw[.., c]`.
/// Each sum runs over rows in ascending order, as the row-wise scatter's does, so both give
/// the same bits. Workers own disjoint blocks of output units.
fn binary_t_matmul(x: &SparseRows, g: &[f32], n: usize, dw: &mut [f32], db: Option<&mut [f32]>) {
    let k = x.cols;
    let (starts, rows) = column_lists(x);
    let db_chunks: Vec<Option<&mut [f32]>> = match db {
        Some(d) => d.chunks_mut(WC).map(Some).collect(),
        None => (0..n.div_ceil(WC)).map(|_| None).collect(),
    };
    dw.par_chunks_mut(WC * k)
        .zip(db_chunks)
        .enumerate()
        .for_each(|(i, (out, db))| {
            column_block(&starts, &rows, x.rows, g, n, i * WC, out, db);
        });
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn column_block_impl(
    starts: &[usize],
    rows: &[u32],
    nrows: usize,
    g: &[f32],
    n: usize,
    n0: usize,
    out: &mut [f32],
    db: Option<&mut [f32]>,
) {
    let k = starts.len() - 1;
    let w = WC.min(n - n0);
    if g.len() < nrows * n || out.len() < w * k {
        debug_assert!(false, "column_block: inconsistent operands");
        return;
    }
    for c in 0..k {
        let mut acc = [0.0f32; WC];
        let list = &rows[starts[c]..starts[c + 1]];
        if w == WC {
            for &r in list {
                let at = r as usize * n + n0;
                // SAFETY: `r < nrows` (a row of `x`) and `n0 + WC <= n`, so
                // `at + WC <= nrows·n <= g.len()` (checked above).
                let seg = unsafe { g.get_unchecked(at..at + WC) };
                for (a, &v) in acc.iter_mut().zip(seg) {
                    *a += v;
                }
            }
        } else {
            for &r in list {
                let at = r as usize * n + n0;
                for (a, &v) in acc.iter_mut().zip(&g[at..at + w]) {
                    *a += v;
                }
            }
        }
        for (j, &a) in acc[..w].iter().enumerate() {
            out[j * k + c] = a;
        }
    }
    if let Some(db) = db {
        let mut sums = [0.0f32; WC];
        for row in g[..nrows * n].chunks_exact(n) {
            for (t, &v) in sums.iter_mut().zip(&row[n0..n0 + w]) {
                *t += v;
            }
        }
        db.copy_from_slice(&sums[..w]);
    }
}

dispatch!(
    /// Output units `n0..n0 + 64` of [`binary_t_matmul`] into `out` (their rows of `dw`) and
    /// their bias gradient into `db`.
    fn column_block(starts: &[usize], rows: &[u32], nrows: usize, g: &[f32], n: usize, n0: usize, out: &mut [f32], db: Option<&mut [f32]>) => column_block_impl
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_and_row_scatters_give_the_same_bits() -> Result<(), String> {
        for (r, k, n) in [(300, 131, 517), (40, 7, 64), (33, 90, 10), (5, 3, 1)] {
            let x: Vec<f32> = (0..r * k)
                .map(|i| f32::from(u8::from(crate::encode::random_bits(1, i as u64) % 7 == 0)))
                .collect();
            let g: Vec<f32> = (0..r * n)
                .map(|i| (crate::encode::random_bits(2, i as u64) >> 40) as f32 / 1e7 - 0.8)
                .collect();
            let s = SparseRows::from_dense(&x, r, k, 1.0)?.ok_or("dense")?;
            assert!(s.is_binary());
            let (mut dw1, mut db1) = (vec![0.0; n * k], vec![0.0; n]);
            let (mut dw2, mut db2) = (vec![1.0; n * k], vec![1.0; n]);
            binary_t_matmul(&s, &g, n, &mut dw1, Some(&mut db1));
            rowwise_t_matmul(&s, &g, n, &mut dw2, Some(&mut db2));
            assert_eq!(dw1, dw2, "{r}x{k}x{n}");
            assert_eq!(db1, db2, "{r}x{k}x{n}");
        }
        Ok(())
    }
}
