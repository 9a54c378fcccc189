//! Stride-1 2-D convolution by im2col + gemm, with bias and ReLU fused into the forward pass,
//! and its backward pass (gemm for the weight and column gradients, col2im for the input's).
//!
//! Layouts are PyTorch's: `x` `[B, C, H, W]`, `w` `[O, C, k, k]`, output `[B, O, OH, OW]`. The
//! column matrix of an image is `[C·k·k, OH·OW]` (row `(c, ki, kj)` holds the input pixels that
//! kernel tap sees at every output position), so `out_b = W·cols_b` lands directly in `[O, OH·OW]`.

use std::ops::Range;

use crate::gemm::MatRef;
use crate::linear::{matmul_on, Threads};
use crate::par;

/// Sizes of a stride-1 convolution with zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvDims {
    /// Images `B`.
    pub batch: usize,
    /// Input channels `C`.
    pub channels: usize,
    /// Input rows `H`.
    pub height: usize,
    /// Input columns `W`.
    pub width: usize,
    /// Output channels `O`.
    pub out_channels: usize,
    /// Kernel side `k`.
    pub kernel: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

impl ConvDims {
    /// Output rows and columns `(H + 2p - k + 1, W + 2p - k + 1)`, or an error if the kernel
    /// does not fit.
    pub fn out_hw(&self) -> Result<(usize, usize), String> {
        let side = |s: usize| (s + 2 * self.padding + 1).checked_sub(self.kernel);
        match (side(self.height), side(self.width)) {
            (Some(oh), Some(ow)) if self.kernel > 0 && oh > 0 && ow > 0 => Ok((oh, ow)),
            _ => Err(format!(
                "conv2d: a {}x{} kernel does not fit a {}x{} map with padding {}",
                self.kernel, self.kernel, self.height, self.width, self.padding
            )),
        }
    }

    /// Length of a column: `C·k·k`.
    pub fn patch(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }

    fn check(&self, what: &str, name: &str, len: usize, want: usize) -> Result<(), String> {
        if len != want {
            return Err(format!(
                "{what}: `{name}` holds {len} values, {self:?} needs {want}"
            ));
        }
        Ok(())
    }
}

/// `dst = src` for short rows (a `memcpy` call per row of a dozen values costs more than the
/// copy): blocks of 8 values, the tail as one more block overlapping the previous one, and
/// rows shorter than 8 value by value in a loop of fixed length (which the compiler cannot turn
/// into a `memcpy` call either).
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    let n = dst.len().min(src.len());
    if n < 8 {
        for i in 0..7 {
            if i < n {
                dst[i] = src[i];
            }
        }
        return;
    }
    let copy8 = |d: &mut [f32], s: &[f32]| {
        if let (Ok(d), Ok(s)) = (<&mut [f32; 8]>::try_from(d), <&[f32; 8]>::try_from(s)) {
            *d = *s;
        }
    };
    let mut i = 0;
    while i + 8 <= n {
        copy8(&mut dst[i..i + 8], &src[i..i + 8]);
        i += 8;
    }
    if i < n {
        copy8(&mut dst[n - 8..n], &src[n - 8..n]);
    }
}

thread_local! {
    /// Column and gradient buffers of this thread, kept between calls (fresh zeroed buffers of
    /// a few MB per call cost more than the work they hold).
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// This thread's scratch buffer, grown to at least `len` values (contents arbitrary: write
/// before reading); hand it back with [`put_scratch`]. (No closure-taking helper: a closure
/// would be compiled outside the AVX2 function that calls it.)
pub(crate) fn take_scratch(len: usize) -> Vec<f32> {
    let mut buf = SCRATCH.with(|s| s.take());
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    buf
}

/// Returns a buffer from [`take_scratch`] for the next call on this thread.
pub(crate) fn put_scratch(buf: Vec<f32>) {
    SCRATCH.with(|s| s.replace(buf));
}

/// Columns `[lo, hi)` of an output row whose input column `oj + kj - pad` lies inside `0..w`.
#[inline(always)]
fn valid_cols(ow: usize, w: usize, kj: usize, pad: usize) -> (usize, usize) {
    let lo = pad.saturating_sub(kj).min(ow);
    let hi = (w + pad).saturating_sub(kj).min(ow).max(lo);
    (lo, hi)
}

/// Writes the column matrix of one image `x` (`[C, H, W]`) into `cols`, row `r` at
/// `cols[r * row_stride..][..OH·OW]`.
#[inline(always)]
fn im2col(x: &[f32], d: &ConvDims, oh: usize, ow: usize, cols: &mut [f32], row_stride: usize) {
    let (h, w, k, pad) = (d.height, d.width, d.kernel, d.padding);
    for c in 0..d.channels {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for ki in 0..k {
            for kj in 0..k {
                let r = (c * k + ki) * k + kj;
                let row = &mut cols[r * row_stride..r * row_stride + oh * ow];
                let (lo, hi) = valid_cols(ow, w, kj, pad);
                for (oi, dst) in row.chunks_exact_mut(ow).enumerate() {
                    let ii = oi + ki;
                    if ii < pad || ii - pad >= h {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &plane[(ii - pad) * w..(ii - pad + 1) * w];
                    dst[..lo].fill(0.0);
                    copy_short(&mut dst[lo..hi], &src[lo + kj - pad..hi + kj - pad]);
                    dst[hi..].fill(0.0);
                }
            }
        }
    }
}

/// Adds the column matrix `cols` (row `r` at `cols[r * row_stride..]`) back onto one image's
/// gradient `dx` (`[C, H, W]`): the transpose of [`im2col`].
#[inline(always)]
fn col2im(cols: &[f32], row_stride: usize, d: &ConvDims, oh: usize, ow: usize, dx: &mut [f32]) {
    let (h, w, k, pad) = (d.height, d.width, d.kernel, d.padding);
    for c in 0..d.channels {
        let plane = &mut dx[c * h * w..(c + 1) * h * w];
        for ki in 0..k {
            for kj in 0..k {
                let r = (c * k + ki) * k + kj;
                let row = &cols[r * row_stride..r * row_stride + oh * ow];
                let (lo, hi) = valid_cols(ow, w, kj, pad);
                for (oi, src) in row.chunks_exact(ow).enumerate() {
                    let ii = oi + ki;
                    if ii < pad || ii - pad >= h {
                        continue;
                    }
                    let dst =
                        &mut plane[(ii - pad) * w + lo + kj - pad..(ii - pad) * w + hi + kj - pad];
                    for (a, b) in dst.iter_mut().zip(&src[lo..hi]) {
                        *a += *b;
                    }
                }
            }
        }
    }
}

/// Sum of `v` with 8 running partial sums (combined in a fixed order), so it vectorises.
#[inline(always)]
fn sum8(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += *x;
        }
    }
    let tail: f32 = chunks.remainder().iter().sum();
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Runs `f` on disjoint row blocks of `out` in parallel like [`par::for_row_chunks`], returning
/// the first error any block reported.
pub(crate) fn try_row_chunks<F>(
    out: &mut [f32],
    row_len: usize,
    min_rows: usize,
    f: F,
) -> Result<(), String>
where
    F: Fn(Range<usize>, &mut [f32]) -> Result<(), String> + Sync,
{
    let failed = std::sync::Mutex::new(None);
    par::for_row_chunks(out, row_len, min_rows, |r, chunk| {
        if let Err(e) = f(r, chunk) {
            if let Ok(mut slot) = failed.lock() {
                slot.get_or_insert(e);
            }
        }
    });
    match failed.into_inner() {
        Ok(None) => Ok(()),
        Ok(Some(e)) => Err(e),
        Err(_) => Err("conv2d: a worker panicked".to_string()),
    }
}

/// Largest patch (`C·k·k`) computed by [`small_patch_product`] instead of `gemm`, which is
/// inefficient for so short an inner dimension (conv1 of the MNIST CNN has 9).
const SMALL_PATCH: usize = 16;

/// Columns per register block of [`small_patch_product`].
const LANES: usize = 32;

/// `acc[t] += Σ_r w[r]·cols[r·p + j + t]` for `t < N`.
#[inline(always)]
fn small_patch_block<const N: usize>(
    w: &[f32],
    cols: &[f32],
    p: usize,
    j: usize,
    acc: &mut [f32; N],
) {
    for (r, &wr) in w.iter().enumerate() {
        let c = &cols[r * p + j..r * p + j + N];
        for (a, &cv) in acc.iter_mut().zip(c) {
            *a += wr * cv;
        }
    }
}

/// `out[o, :] = bias[o] + Σ_r w[o, r]·cols[r, :]` (`w` `[O, patch]`, `cols` `[patch, p]`, `out`
/// `[O, p]`), keeping a block of outputs in registers across the short patch.
#[inline(always)]
fn small_patch_product(
    w: &[f32],
    cols: &[f32],
    patch: usize,
    p: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    for (o, orow) in out.chunks_exact_mut(p).enumerate() {
        let wrow = &w[o * patch..(o + 1) * patch];
        let b = bias.map_or(0.0, |b| b[o]);
        let mut j = 0;
        while j + LANES <= p {
            let mut acc = [b; LANES];
            small_patch_block(wrow, cols, p, j, &mut acc);
            orow[j..j + LANES].copy_from_slice(&acc);
            j += LANES;
        }
        while j < p {
            let mut acc = [b; 1];
            small_patch_block(wrow, cols, p, j, &mut acc);
            orow[j] = acc[0];
            j += 1;
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn forward_images_impl(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    d: ConvDims,
    first: usize,
    out: &mut [f32],
    parallel_gemm: bool,
) -> Result<(), String> {
    let (oh, ow) = d.out_hw()?;
    let threads = if parallel_gemm {
        Threads::Pool
    } else {
        Threads::Serial
    };
    let len = d.patch() * oh * ow;
    let mut buf = take_scratch(len);
    let res = forward_with(x, w, bias, relu, d, first, out, &mut buf[..len], threads);
    put_scratch(buf);
    res
}

/// [`forward_images_impl`] with a column buffer of `C·k·k · OH·OW` values.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn forward_with(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    d: ConvDims,
    first: usize,
    out: &mut [f32],
    cols: &mut [f32],
    threads: Threads,
) -> Result<(), String> {
    let (oh, ow) = d.out_hw()?;
    let (p, patch, o) = (oh * ow, d.patch(), d.out_channels);
    let img = d.channels * d.height * d.width;
    let wm = MatRef::row_major(w, o, patch);
    for (b, ob) in (first..).zip(out.chunks_exact_mut(o * p)) {
        im2col(&x[b * img..(b + 1) * img], &d, oh, ow, cols, p);
        if patch <= SMALL_PATCH {
            small_patch_product(w, cols, patch, p, bias, ob);
        } else {
            if let Some(bias) = bias {
                for (row, &bv) in ob.chunks_exact_mut(p).zip(bias) {
                    row.fill(bv);
                }
            }
            let cm = MatRef::row_major(cols, patch, p);
            matmul_on(ob, p, wm, cm, bias.is_some(), threads)?;
        }
        if relu {
            for v in ob.iter_mut() {
                *v = v.max(0.0);
            }
        }
    }
    Ok(())
}

dispatch!(
    fn forward_images(x: &[f32], w: &[f32], bias: Option<&[f32]>, relu: bool, d: ConvDims, first: usize, out: &mut [f32], parallel_gemm: bool) -> Result<(), String> => forward_images_impl
);

/// `out = conv(x, w) + bias`, then ReLU when `relu` (stride 1, zero `padding`).
///
/// `x` `[B, C, H, W]`, `w` `[O, C, k, k]`, `bias` `[O]`, `out` `[B, O, OH, OW]`. Images are split
/// over workers (each with its own column buffer of one image); a single image threads its
/// product instead.
pub fn conv_forward(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    d: ConvDims,
    out: &mut [f32],
) -> Result<(), String> {
    let (oh, ow) = d.out_hw()?;
    let (p, o) = (oh * ow, d.out_channels);
    d.check(
        "conv2d",
        "x",
        x.len(),
        d.batch * d.channels * d.height * d.width,
    )?;
    d.check("conv2d", "w", w.len(), o * d.patch())?;
    d.check("conv2d", "out", out.len(), d.batch * o * p)?;
    if let Some(b) = bias {
        d.check("conv2d", "bias", b.len(), o)?;
    }
    if d.batch * o * p == 0 {
        return Ok(());
    }
    if par::workers(d.batch, 1) > 1 {
        try_row_chunks(out, o * p, 1, |imgs, chunk| {
            forward_images(x, w, bias, relu, d, imgs.start, chunk, false)
        })
    } else {
        forward_images(x, w, bias, relu, d, 0, out, true)
    }
}

#[path = "conv_backward.rs"]
mod backward;
pub use backward::conv_backward;
pub(crate) use backward::{backward_with, ConvGrad};

#[cfg(test)]
#[path = "conv_tests.rs"]
mod tests;
