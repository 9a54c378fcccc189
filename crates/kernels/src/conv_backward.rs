//! The backward pass of the convolution: per fixed group of images, chunk by chunk, the output
//! gradient (masked by the ReLU, or scattered from a pooling) and the image columns go through
//! one product for the weight gradient and one for the column gradient, which col2im adds back
//! onto the input gradient.

use std::ops::Range;

use rayon::prelude::*;

use super::{col2im, im2col, put_scratch, sum8, take_scratch, ConvDims};
use crate::gemm::MatRef;
use crate::linear::{matmul_on, Threads};
use crate::par;

/// The gradient reaching a convolution's output.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ConvGrad<'a> {
    /// `g` `[B, O, OH, OW]`, masked by `relu_out > 0` when the layer had a ReLU (its output).
    Dense {
        /// Gradient of the output.
        g: &'a [f32],
        /// The forward output, for ReLU's mask.
        relu_out: Option<&'a [f32]>,
    },
    /// The gradient of a max pooling of the output: `g` `[B, O, PH·PW]` goes to position
    /// `arg` (within the `OH·OW` plane) of each window, nowhere for `u32::MAX`.
    Pooled {
        /// Gradient of the pooled output.
        g: &'a [f32],
        /// Winning position of each window.
        arg: &'a [u32],
        /// Windows per plane `PH·PW`.
        windows: usize,
    },
}

impl ConvGrad<'_> {
    /// Writes the output gradient of image `b`, channel `oc` (`dst`, `OH·OW` values).
    #[inline(always)]
    fn plane(&self, b: usize, oc: usize, o: usize, dst: &mut [f32]) {
        let p = dst.len();
        match *self {
            ConvGrad::Dense { g, relu_out } => {
                let src = &g[(b * o + oc) * p..(b * o + oc + 1) * p];
                match relu_out {
                    Some(y) => {
                        let yr = &y[(b * o + oc) * p..(b * o + oc + 1) * p];
                        for ((t, &gv), &yv) in dst.iter_mut().zip(src).zip(yr) {
                            *t = if yv > 0.0 { gv } else { 0.0 };
                        }
                    }
                    None => dst.copy_from_slice(src),
                }
            }
            ConvGrad::Pooled { g, arg, windows } => {
                dst.fill(0.0);
                let at = (b * o + oc) * windows..(b * o + oc + 1) * windows;
                for (&gv, &a) in g[at.clone()].iter().zip(&arg[at]) {
                    if let Some(t) = dst.get_mut(a as usize) {
                        *t = gv;
                    }
                }
            }
        }
    }
}

/// Number of image groups whose weight gradients are summed separately (then added in group
/// order): fixed, so the result does not depend on the number of threads.
const GROUPS: usize = 8;

/// Target size (in values) of a group's column buffer: images are processed in chunks this big.
const CHUNK_VALUES: usize = 1 << 17;

/// The backward pass of one group of images `imgs`: adds its weight and bias gradients to
/// `part` (`[O·C·k·k]` then `[O]`) and writes its images' input gradients to `dx` if given.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_group_impl(
    x: &[f32],
    w: &[f32],
    grad: ConvGrad<'_>,
    d: ConvDims,
    imgs: Range<usize>,
    part: &mut [f32],
    dx: Option<&mut [f32]>,
    parallel_gemm: bool,
    with_dw: bool,
) -> Result<(), String> {
    let (oh, ow) = d.out_hw()?;
    let (p, patch, o) = (oh * ow, d.patch(), d.out_channels);
    let threads = if parallel_gemm {
        Threads::Pool
    } else {
        Threads::Serial
    };
    let per_chunk = (CHUNK_VALUES / (patch * p).max(1)).clamp(1, imgs.len().max(1));
    let gt_len = o * per_chunk * p;
    let cols_len = if with_dw { patch * per_chunk * p } else { 0 };
    let dcols_len = if dx.is_some() {
        patch * per_chunk * p
    } else {
        0
    };
    let mut buf = take_scratch(gt_len + cols_len + dcols_len);
    let (gt, rest) = buf.split_at_mut(gt_len);
    let (cols, rest) = rest.split_at_mut(cols_len);
    let bufs = ChunkBuffers {
        gt,
        cols,
        dcols: &mut rest[..dcols_len],
        per_chunk,
    };
    let res = backward_chunks(x, w, grad, d, imgs, part, dx, bufs, threads, with_dw);
    put_scratch(buf);
    res
}

/// Work buffers of [`backward_chunks`] (contents arbitrary on entry).
struct ChunkBuffers<'a> {
    /// Masked output gradient of a chunk, `[O, n·OH·OW]`.
    gt: &'a mut [f32],
    /// Columns of a chunk, `[C·k·k, n·OH·OW]`.
    cols: &'a mut [f32],
    /// Column gradient of a chunk (empty without `dx`).
    dcols: &'a mut [f32],
    /// Images per chunk `n`.
    per_chunk: usize,
}

/// The body of [`backward_group_impl`], chunk by chunk.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_chunks(
    x: &[f32],
    w: &[f32],
    grad: ConvGrad<'_>,
    d: ConvDims,
    imgs: Range<usize>,
    part: &mut [f32],
    mut dx: Option<&mut [f32]>,
    bufs: ChunkBuffers<'_>,
    threads: Threads,
    with_dw: bool,
) -> Result<(), String> {
    let (oh, ow) = d.out_hw()?;
    let (p, patch, o) = (oh * ow, d.patch(), d.out_channels);
    let img = d.channels * d.height * d.width;
    let ChunkBuffers {
        gt,
        cols,
        dcols,
        per_chunk,
    } = bufs;
    if let Some(dx) = dx.as_deref_mut() {
        dx.fill(0.0);
    }
    let (dwp, dbp) = part.split_at_mut(o * patch);
    let mut start = imgs.start;
    while start < imgs.end {
        let n = per_chunk.min(imgs.end - start);
        let ld = n * p;
        for s in 0..n {
            let b = start + s;
            for (oc, db) in dbp.iter_mut().enumerate() {
                let dst = &mut gt[oc * ld + s * p..oc * ld + (s + 1) * p];
                grad.plane(b, oc, o, dst);
                *db += sum8(dst);
            }
            if with_dw {
                im2col(
                    &x[b * img..(b + 1) * img],
                    &d,
                    oh,
                    ow,
                    &mut cols[s * p..],
                    ld,
                );
            }
        }
        let gm = MatRef::row_major(&gt[..o * ld], o, ld);
        if with_dw {
            let cm = MatRef::row_major(&cols[..patch * ld], patch, ld);
            matmul_on(dwp, patch, gm, cm.t(), true, threads)?;
        }
        if let Some(dx) = dx.as_deref_mut() {
            let wt = MatRef::row_major(w, o, patch).t();
            matmul_on(&mut dcols[..patch * ld], ld, wt, gm, false, threads)?;
            for s in 0..n {
                let local = start + s - imgs.start;
                col2im(
                    &dcols[s * p..],
                    ld,
                    &d,
                    oh,
                    ow,
                    &mut dx[local * img..(local + 1) * img],
                );
            }
        }
        start += n;
    }
    Ok(())
}

dispatch!(
    fn backward_group(x: &[f32], w: &[f32], grad: ConvGrad<'_>, d: ConvDims, imgs: Range<usize>, part: &mut [f32], dx: Option<&mut [f32]>, parallel_gemm: bool, with_dw: bool) -> Result<(), String> => backward_group_impl
);

/// Gradients of [`conv_forward`] from the gradient `g` of its output (`[B, O, OH, OW]`).
///
/// When `y` (the forward output) is given, the layer had a ReLU and `g` is first masked by
/// `y > 0`. Writes `dw` (`[O, C, k, k]`), `db` (`[O]`) and `dx` (`[B, C, H, W]`), each when
/// given (skip what needs no gradient: without `dw` no columns are built). Images are processed in [`GROUPS`] fixed
/// groups spread over the workers, each in chunks of bounded size.
#[allow(clippy::too_many_arguments)]
pub fn conv_backward(
    x: &[f32],
    w: &[f32],
    g: &[f32],
    y: Option<&[f32]>,
    d: ConvDims,
    dx: Option<&mut [f32]>,
    dw: Option<&mut [f32]>,
    db: Option<&mut [f32]>,
) -> Result<(), String> {
    let (oh, ow) = d.out_hw()?;
    let (p, patch, o) = (oh * ow, d.patch(), d.out_channels);
    let img = d.channels * d.height * d.width;
    d.check("conv2d backward", "x", x.len(), d.batch * img)?;
    d.check("conv2d backward", "w", w.len(), o * patch)?;
    d.check("conv2d backward", "g", g.len(), d.batch * o * p)?;
    if let Some(dw) = dw.as_deref() {
        d.check("conv2d backward", "dw", dw.len(), o * patch)?;
    }
    if let Some(y) = y {
        d.check("conv2d backward", "y", y.len(), d.batch * o * p)?;
    }
    let grad = ConvGrad::Dense { g, relu_out: y };
    backward_with(x, w, grad, d, dx, dw, db)
}

/// [`conv_backward`] from any [`ConvGrad`] (sizes of `x`, `w`, `dw` and the gradient checked by
/// the caller).
pub(crate) fn backward_with(
    x: &[f32],
    w: &[f32],
    grad: ConvGrad<'_>,
    d: ConvDims,
    dx: Option<&mut [f32]>,
    mut dw: Option<&mut [f32]>,
    db: Option<&mut [f32]>,
) -> Result<(), String> {
    let (patch, o) = (d.patch(), d.out_channels);
    let with_dw = dw.is_some();
    let img = d.channels * d.height * d.width;
    let groups = par::ranges(d.batch, GROUPS.min(d.batch), 1);
    let part_len = o * patch + o;
    let mut parts = vec![0.0f32; groups.len().max(1) * part_len];
    let mut dx_parts: Vec<Option<&mut [f32]>> = Vec::with_capacity(groups.len());
    match dx {
        Some(dx) => {
            d.check("conv2d backward", "dx", dx.len(), d.batch * img)?;
            let mut rest = dx;
            for r in &groups {
                let (head, tail) = rest.split_at_mut(r.len() * img);
                dx_parts.push(Some(head));
                rest = tail;
            }
        }
        None => dx_parts.resize_with(groups.len(), || None),
    }
    let parallel_gemm = groups.len() == 1;
    let work: Vec<_> = groups
        .into_iter()
        .zip(parts.chunks_mut(part_len))
        .zip(dx_parts)
        .collect();
    work.into_par_iter()
        .map(|((imgs, part), dxp)| {
            backward_group(x, w, grad, d, imgs, part, dxp, parallel_gemm, with_dw)
        })
        .collect::<Result<Vec<()>, String>>()?;
    let mut sums = parts.chunks(part_len);
    if let Some(first) = sums.next() {
        if let Some(dw) = dw.as_deref_mut() {
            dw.copy_from_slice(&first[..o * patch]);
        }
        let mut bias_sum = first[o * patch..].to_vec();
        for part in sums {
            if let Some(dw) = dw.as_deref_mut() {
                for (a, b) in dw.iter_mut().zip(&part[..o * patch]) {
                    *a += *b;
                }
            }
            for (a, b) in bias_sum.iter_mut().zip(&part[o * patch..]) {
                *a += *b;
            }
        }
        if let Some(db) = db {
            d.check("conv2d backward", "db", db.len(), o)?;
            db.copy_from_slice(&bias_sum);
        }
    }
    Ok(())
}
