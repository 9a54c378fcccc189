//! Matrix products with mostly-zero (spike) inputs `x`, so that the cost scales with the
//! number of active inputs: a linear layer's forward pass gathers, per row of `x`, the columns
//! of `w` picked by the row's non-zero entries ([`sparse_matmul`]), and its weight gradient
//! scatters each row of the output gradient onto the same columns ([`sparse_t_matmul`]).
//!
//! Every output element is a sum taken in ascending input order by one thread, so results do
//! not depend on the number of threads. Matrices denser than [`MAX_DENSITY`] go to dense gemm
//! ([`crate::sgemm`]), as does the input gradient `dx = g·w`.

use rayon::prelude::*;

use crate::gemm::MatRef;
use crate::par;
use crate::sgemm::sgemm;

#[path = "spike_gather.rs"]
mod gather;
pub use gather::{sparse_matmul, sparse_t_matmul};

/// Above this fraction of non-zero inputs, dense gemm is faster than the gather.
pub const MAX_DENSITY: f64 = 0.3;

/// A sparse matrix in compressed-row form (entries of each row in ascending column order).
/// Values are stored only when some differ from 1 (spike matrices store indices alone).
#[derive(Debug, Clone, PartialEq)]
pub struct SparseRows {
    rows: usize,
    cols: usize,
    offsets: Vec<usize>,
    /// Column of each entry; every one is below `cols` (the gathers rely on it).
    index: Vec<u32>,
    /// Value of each entry, or empty when every value is exactly 1.
    value: Vec<f32>,
}

impl SparseRows {
    /// The non-zero entries of the row-major `rows x cols` matrix `x`, or `None` when more than
    /// `max_density` of them are non-zero (then a dense product is faster).
    pub fn from_dense(
        x: &[f32],
        rows: usize,
        cols: usize,
        max_density: f64,
    ) -> Result<Option<Self>, String> {
        if x.len() != rows * cols || cols > u32::MAX as usize {
            return Err(format!(
                "sparse rows: {} values for a {rows}x{cols} matrix",
                x.len()
            ));
        }
        let parts = par::ranges(rows, par::workers(rows * cols, 1 << 16), 1);
        let pieces: Vec<Option<Piece>> = parts
            .into_par_iter()
            .map(|r| {
                let limit = (max_density * (r.len() * cols) as f64) as usize;
                let mut piece = Piece {
                    ends: Vec::with_capacity(r.len()),
                    // room for the density limit: no reallocation (pages past the used part
                    // are never touched)
                    index: Vec::with_capacity(limit + cols),
                    value: Vec::new(),
                    binary: true,
                };
                compress(x, cols, r.start, r.end, limit, &mut piece).then_some(piece)
            })
            .collect();
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        let pieces: Vec<Piece> = match pieces.into_iter().collect::<Option<_>>() {
            Some(p) => p,
            None => return Ok(None),
        };
        let nnz = pieces.iter().map(|p| p.index.len()).sum();
        let binary = pieces.iter().all(|p| p.binary);
        let mut index = Vec::with_capacity(nnz);
        let mut value = Vec::with_capacity(if binary { 0 } else { nnz });
        for piece in &pieces {
            let base = index.len();
            offsets.extend(piece.ends.iter().map(|e| base + e));
            index.extend_from_slice(&piece.index);
            if !binary {
                if piece.binary {
                    value.resize(index.len(), 1.0);
                } else {
                    value.extend_from_slice(&piece.value);
                }
            }
        }
        Ok(Some(SparseRows {
            rows,
            cols,
            offsets,
            index,
            value,
        }))
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Number of stored (non-zero) entries.
    pub fn nnz(&self) -> usize {
        self.index.len()
    }

    /// Whether every stored value is exactly 1.
    pub fn is_binary(&self) -> bool {
        self.value.is_empty()
    }

    /// Column indices and values of row `r` (values empty for a binary matrix).
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let span = self.offsets[r]..self.offsets[r + 1];
        let val = if self.is_binary() {
            &[][..]
        } else {
            &self.value[span.clone()]
        };
        (&self.index[span], val)
    }
}

/// The compressed entries of a block of rows: `ends[i]` is where row `i` ends in `index`;
/// `value` stays empty while every value is 1 (`binary`).
struct Piece {
    ends: Vec<usize>,
    index: Vec<u32>,
    value: Vec<f32>,
    binary: bool,
}

/// Appends the non-zeros of rows `r0..r1` to `piece`; `false` once more than `limit` are found.
#[inline(always)]
fn compress_impl(
    x: &[f32],
    cols: usize,
    r0: usize,
    r1: usize,
    limit: usize,
    piece: &mut Piece,
) -> bool {
    let mut masks = vec![0u64; cols.div_ceil(64)];
    let mut ones = vec![0u64; cols.div_ceil(64)];
    for r in r0..r1 {
        let row = &x[r * cols..(r + 1) * cols];
        row_masks(row, &mut masks, &mut ones);
        let all_ones = masks == ones;
        let start = piece.index.len();
        piece
            .index
            .extend(masks.iter().enumerate().flat_map(|(c, &m)| SetBits {
                mask: m,
                base: (c * 64) as u32,
            }));
        if !all_ones && piece.binary {
            // first value other than 1: from now on store values
            piece.value.resize(start, 1.0);
            piece.binary = false;
        }
        if !piece.binary {
            let new = &piece.index[start..];
            piece.value.extend(new.iter().map(|&c| row[c as usize]));
        }
        piece.ends.push(piece.index.len());
        if piece.index.len() > limit {
            return false;
        }
    }
    true
}

/// Per 64 values of `row`: a bit per non-zero (`nz`) and per exact one (`ones`).
#[inline(always)]
fn row_masks(row: &[f32], nz: &mut [u64], ones: &mut [u64]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { row_masks_avx2(row, nz, ones) };
    }
    for ((chunk, n), o) in row.chunks(64).zip(nz).zip(ones) {
        (*n, *o) = (0, 0);
        for (i, &v) in chunk.iter().enumerate() {
            *n |= u64::from(v != 0.0) << i;
            *o |= u64::from(v == 1.0) << i;
        }
    }
}

/// [`row_masks`] by 8-lane compares and move-masks (the same bits: `v != 0` is true for NaN,
/// false for -0).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_masks_avx2(row: &[f32], nz: &mut [u64], ones: &mut [u64]) {
    use std::arch::x86_64::{
        _mm256_cmp_ps, _mm256_loadu_ps, _mm256_movemask_ps, _mm256_set1_ps, _mm256_setzero_ps,
        _CMP_EQ_OQ, _CMP_NEQ_UQ,
    };
    let (zero, one) = (_mm256_setzero_ps(), _mm256_set1_ps(1.0));
    for ((chunk, n), o) in row.chunks(64).zip(nz).zip(ones) {
        let (mut a, mut b) = (0u64, 0u64);
        let mut eights = chunk.chunks_exact(8);
        for (j, c) in (&mut eights).enumerate() {
            // SAFETY: `c` holds 8 values (unaligned load).
            let v = _mm256_loadu_ps(c.as_ptr());
            let m1 = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NEQ_UQ>(v, zero)) as u32 as u64;
            let m2 = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(v, one)) as u32 as u64;
            a |= m1 << (8 * j);
            b |= m2 << (8 * j);
        }
        let at = chunk.len() - eights.remainder().len();
        for (i, &v) in eights.remainder().iter().enumerate() {
            a |= u64::from(v != 0.0) << (at + i);
            b |= u64::from(v == 1.0) << (at + i);
        }
        (*n, *o) = (a, b);
    }
}

/// The positions `base + i` of the set bits `i` of `mask`, ascending.
struct SetBits {
    mask: u64,
    base: u32,
}

impl Iterator for SetBits {
    type Item = u32;

    #[inline(always)]
    fn next(&mut self) -> Option<u32> {
        if self.mask == 0 {
            return None;
        }
        let i = self.mask.trailing_zeros();
        self.mask &= self.mask - 1;
        Some(self.base + i)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.mask.count_ones() as usize;
        (n, Some(n))
    }
}

dispatch!(
    /// [`compress_impl`] for the best instruction set.
    fn compress(x: &[f32], cols: usize, r0: usize, r1: usize, limit: usize, piece: &mut Piece) -> bool => compress_impl
);

/// A linear layer `y = x·wᵀ + b` whose input `x` is mostly zero.
#[derive(Debug, Clone, Copy)]
pub struct SpikeLinear<'a> {
    /// Input, row-major `[rows, inputs]`.
    pub x: &'a [f32],
    /// Number of rows R.
    pub rows: usize,
    /// Input features K.
    pub inputs: usize,
    /// Weight, row-major `[outputs, inputs]`.
    pub w: &'a [f32],
    /// Output features N.
    pub outputs: usize,
}

impl SpikeLinear<'_> {
    fn check(&self) -> Result<(), String> {
        let (r, k, n) = (self.rows, self.inputs, self.outputs);
        if self.x.len() != r * k || self.w.len() != n * k {
            return Err(format!(
                "spike linear: x holds {} values (want {r}x{k}), w {} (want {n}x{k})",
                self.x.len(),
                self.w.len()
            ));
        }
        Ok(())
    }

    /// `out = x·wᵀ + bias` (`[rows, outputs]`); returns the compressed `x` when the sparse path
    /// ran (hand it to [`SpikeLinear::weight_grad`]), `None` when `x` was dense.
    pub fn forward(
        &self,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) -> Result<Option<SparseRows>, String> {
        self.check()?;
        let (r, k, n) = (self.rows, self.inputs, self.outputs);
        match SparseRows::from_dense(self.x, r, k, MAX_DENSITY)? {
            Some(sparse) => {
                sparse_matmul(&sparse, self.w, n, bias, out)?;
                Ok(Some(sparse))
            }
            None => {
                let x = MatRef::row_major(self.x, r, k);
                sgemm(out, n, x, MatRef::row_major(self.w, n, k).t(), false, true)?;
                if let Some(bias) = bias {
                    add_rows(out, bias)?;
                }
                Ok(None)
            }
        }
    }

    /// `dw = gᵀ·x` (`[outputs, inputs]`) for the output gradient `g` (`[rows, outputs]`), and
    /// with `db` the bias gradient (column sums of `g`, computed in the same pass); `sparse` is
    /// what [`SpikeLinear::forward`] returned (`None`: decide again).
    pub fn weight_grad(
        &self,
        sparse: Option<&SparseRows>,
        g: &[f32],
        dw: &mut [f32],
        db: Option<&mut [f32]>,
    ) -> Result<(), String> {
        self.check()?;
        let (r, k, n) = (self.rows, self.inputs, self.outputs);
        if g.len() != r * n || dw.len() != n * k {
            return Err(format!(
                "spike linear backward: g holds {} values (want {r}x{n}), dw {} (want {n}x{k})",
                g.len(),
                dw.len()
            ));
        }
        let built;
        let sparse = match sparse {
            Some(s) => Some(s),
            None => {
                built = SparseRows::from_dense(self.x, r, k, MAX_DENSITY)?;
                built.as_ref()
            }
        };
        match sparse {
            Some(s) if s.rows == r && s.cols == k => sparse_t_matmul(s, g, n, dw, db),
            Some(s) => Err(format!(
                "spike linear backward: compressed x is {}x{}, x is {r}x{k}",
                s.rows, s.cols
            )),
            None => {
                if let Some(db) = db {
                    column_sums(g, n, db)?;
                }
                let gt = MatRef::row_major(g, r, n).t();
                sgemm(dw, k, gt, MatRef::row_major(self.x, r, k), false, true)
            }
        }
    }

    /// `dx = g·w` (`[rows, inputs]`), dense.
    pub fn input_grad(&self, g: &[f32], dx: &mut [f32]) -> Result<(), String> {
        self.check()?;
        let (r, k, n) = (self.rows, self.inputs, self.outputs);
        if g.len() != r * n || dx.len() != r * k {
            return Err(format!(
                "spike linear backward: g holds {} values (want {r}x{n}), dx {} (want {r}x{k})",
                g.len(),
                dx.len()
            ));
        }
        sgemm(
            dx,
            k,
            MatRef::row_major(g, r, n),
            MatRef::row_major(self.w, n, k),
            false,
            true,
        )
    }
}

/// `out[i, :] += v` for every row of `out` (rows of `v.len()`).
fn add_rows(out: &mut [f32], v: &[f32]) -> Result<(), String> {
    if v.is_empty() || out.len() % v.len() != 0 {
        return Err(format!(
            "add rows: {} values in rows of {}",
            out.len(),
            v.len()
        ));
    }
    par::for_row_chunks(out, v.len(), 64, |_, chunk| {
        for row in chunk.chunks_mut(v.len()) {
            for (o, &c) in row.iter_mut().zip(v) {
                *o += c;
            }
        }
    });
    Ok(())
}

/// Sums of the columns of the row-major `[rows, n]` matrix `g`, rows in ascending order.
pub fn column_sums(g: &[f32], n: usize, out: &mut [f32]) -> Result<(), String> {
    if out.len() != n || (n > 0 && g.len() % n != 0) || (n == 0 && !g.is_empty()) {
        return Err(format!("column sums: {} values in rows of {n}", g.len()));
    }
    out.fill(0.0);
    if n == 0 {
        return Ok(());
    }
    let parts = par::ranges(n, par::workers(g.len(), 1 << 16).min(n.div_ceil(16)), 16);
    let sums: Vec<Vec<f32>> = parts
        .par_iter()
        .map(|cols| {
            let mut acc = vec![0.0f32; cols.len()];
            for row in g.chunks_exact(n) {
                for (a, &v) in acc.iter_mut().zip(&row[cols.clone()]) {
                    *a += v;
                }
            }
            acc
        })
        .collect();
    for (cols, s) in parts.iter().zip(sums) {
        out[cols.clone()].copy_from_slice(&s);
    }
    Ok(())
}

#[cfg(test)]
#[path = "spike_tests.rs"]
mod tests;
