//! Convolution + bias + ReLU + non-overlapping max pooling in one pass per image.
//!
//! The full-size convolution output of an image lives only in a per-thread buffer: the pass
//! writes the pooled map and, per window, the position of its first maximum (the one PyTorch's
//! pooling sends the gradient to), so neither the full-size output nor its gradient is ever
//! allocated (for the MNIST CNN's first layer they are 11 MB each per batch of 128). The
//! backward pass scatters the pooled gradient to those positions image by image inside the
//! convolution's backward pass.

use rayon::prelude::*;

use crate::conv::{backward_with, forward_with, put_scratch, take_scratch};
use crate::conv::{ConvDims, ConvGrad};
use crate::linear::Threads;
use crate::par;

/// Window position meaning "no gradient" (the window's maximum was cut to 0 by the ReLU).
pub const NO_GRADIENT: u32 = u32::MAX;

/// Sizes of the pooled map `(PH, PW) = (OH / k, OW / k)`, or an error if a side has no window.
pub fn pooled_hw(d: &ConvDims, k: usize) -> Result<(usize, usize), String> {
    let (oh, ow) = d.out_hw()?;
    if k == 0 || oh < k || ow < k {
        return Err(format!(
            "conv2d + max_pool2d: a {oh}x{ow} map does not hold a {k}x{k} window"
        ));
    }
    Ok((oh / k, ow / k))
}

/// Windows per block of the `2 x 2` pooling (held in small arrays, i.e. vector registers).
const BLOCK: usize = 8;

/// The maximum of a `2 x 2` window `(a0, a1, b0, b1)`, taken in that order.
#[inline(always)]
fn max4(a0: f32, a1: f32, b0: f32, b1: f32) -> f32 {
    let m = if a1 > a0 { a1 } else { a0 };
    let m = if b0 > m { b0 } else { m };
    if b1 > m {
        b1
    } else {
        m
    }
}

/// Maxima and first-maximum positions of `BLOCK` `2 x 2` windows `v[0..4][t]` (row-major
/// order; the window's top-left value at plane position `at[t]`, rows `ow` apart), branch-free:
/// the first maximum is the first value equal to the maximum, and the offset is selected by
/// arithmetic on the comparison results (these comparisons are unpredictable).
#[inline(always)]
fn block_max_arg(
    v: &[[f32; BLOCK]; 4],
    at: &[u32; BLOCK],
    ow: u32,
    relu: bool,
) -> ([f32; BLOCK], [u32; BLOCK]) {
    let (mut m, mut arg) = ([0.0f32; BLOCK], [0u32; BLOCK]);
    for t in 0..BLOCK {
        let max = max4(v[0][t], v[1][t], v[2][t], v[3][t]);
        let (e0, e1, e2) = (
            (v[0][t] == max) as u32,
            (v[1][t] == max) as u32,
            (v[2][t] == max) as u32,
        );
        // 0 if e0, else 1 if e1, else ow if e2, else ow + 1
        let off = (1 - e0) * (e1 + (1 - e1) * (ow + (1 - e2)));
        let alive = max > 0.0;
        let dead = (relu && !alive) as u32;
        m[t] = max;
        arg[t] = (at[t] + off) | dead.wrapping_neg();
    }
    (m, arg)
}

/// Pools one plane of row length `ow` by `k` into rows of `pw` windows: `out[j]` the window
/// maximum, `arg[j]` the position of its first maximum (row-major), or [`NO_GRADIENT`] when
/// `relu` and the maximum is not positive.
#[inline(always)]
fn pool_plane(
    plane: &[f32],
    ow: usize,
    k: usize,
    pw: usize,
    relu: bool,
    out: &mut [f32],
    arg: &mut [u32],
) {
    if k == 2 {
        // windows in blocks across rows (the maps of a CNN have rows shorter than a block)
        let (mut i, mut j) = (0, 0);
        for (ob, ab) in out.chunks_mut(BLOCK).zip(arg.chunks_mut(BLOCK)) {
            let mut v = [[0.0f32; BLOCK]; 4];
            let mut at = [0u32; BLOCK];
            for t in 0..ob.len() {
                let base = 2 * i * ow + 2 * j;
                at[t] = base as u32;
                (v[0][t], v[1][t]) = (plane[base], plane[base + 1]);
                (v[2][t], v[3][t]) = (plane[base + ow], plane[base + ow + 1]);
                j += 1;
                if j == pw {
                    (i, j) = (i + 1, 0);
                }
            }
            let (m, a) = block_max_arg(&v, &at, ow as u32, relu);
            let n = ob.len();
            ob.copy_from_slice(&m[..n]);
            ab.copy_from_slice(&a[..n]);
        }
        return;
    }
    for (i, (orow, arow)) in out
        .chunks_exact_mut(pw)
        .zip(arg.chunks_exact_mut(pw))
        .enumerate()
    {
        for (j, (o, a)) in orow.iter_mut().zip(arow.iter_mut()).enumerate() {
            let (i0, j0) = (i * k, j * k);
            let mut best = i0 * ow + j0;
            let mut max = plane[best];
            for r in i0..i0 + k {
                for c in j0..j0 + k {
                    let v = plane[r * ow + c];
                    let better = v > max;
                    best = if better { r * ow + c } else { best };
                    max = if better { v } else { max };
                }
            }
            *o = max;
            let alive = max > 0.0;
            *a = if relu && !alive {
                NO_GRADIENT
            } else {
                best as u32
            };
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
    k: usize,
    first: usize,
    out: &mut [f32],
    arg: &mut [u32],
) -> Result<(), String> {
    let (oh, ow) = d.out_hw()?;
    let (ph, pw) = pooled_hw(&d, k)?;
    let (p, o) = (oh * ow, d.out_channels);
    let cols_len = d.patch() * p;
    let mut buf = take_scratch(cols_len + o * p);
    let (cols, plane) = buf.split_at_mut(cols_len);
    let plane = &mut plane[..o * p];
    let mut res = Ok(());
    for (b, (ob, ab)) in (first..).zip(
        out.chunks_exact_mut(o * ph * pw)
            .zip(arg.chunks_exact_mut(o * ph * pw)),
    ) {
        res = forward_with(x, w, bias, relu, d, b, plane, cols, Threads::Serial);
        if res.is_err() {
            break;
        }
        for ((pl, oc), ac) in plane
            .chunks_exact(p)
            .zip(ob.chunks_exact_mut(ph * pw))
            .zip(ab.chunks_exact_mut(ph * pw))
        {
            pool_plane(pl, ow, k, pw, relu, oc, ac);
        }
    }
    put_scratch(buf);
    res
}

dispatch!(
    fn forward_images(x: &[f32], w: &[f32], bias: Option<&[f32]>, relu: bool, d: ConvDims, k: usize, first: usize, out: &mut [f32], arg: &mut [u32]) -> Result<(), String> => forward_images_impl
);

/// `out = max_pool_k(relu?(conv(x, w) + bias))` (stride-1 convolution with zero padding, then
/// `k x k` pooling with trailing rows and columns dropped) and `arg`, per window, the position
/// of its first maximum within the `OH x OW` plane ([`NO_GRADIENT`] where the ReLU zeroed it).
///
/// `x` `[B, C, H, W]`, `w` `[O, C, kh, kw]`, `bias` `[O]`, `out` and `arg` `[B, O, PH, PW]`.
/// Images are split over workers, each with one image's columns and output in its buffer.
#[allow(clippy::too_many_arguments)]
pub fn conv_pool_forward(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    d: ConvDims,
    k: usize,
    out: &mut [f32],
    arg: &mut [u32],
) -> Result<(), String> {
    let (ph, pw) = pooled_hw(&d, k)?;
    let o = d.out_channels;
    let want = [
        (x.len(), d.batch * d.channels * d.height * d.width, "x"),
        (w.len(), o * d.patch(), "w"),
        (out.len(), d.batch * o * ph * pw, "out"),
        (arg.len(), d.batch * o * ph * pw, "arg"),
        (bias.map_or(o, <[f32]>::len), o, "bias"),
    ];
    if let Some((len, need, name)) = want.iter().find(|(len, need, _)| len != need) {
        return Err(format!(
            "conv2d + max_pool2d: `{name}` holds {len} values, {d:?} pooled by {k} needs {need}"
        ));
    }
    let per_image = o * ph * pw;
    if per_image == 0 || d.batch == 0 {
        return Ok(());
    }
    // one contiguous block of images (of both `out` and `arg`) per worker
    let mut jobs = Vec::new();
    let (mut out_rest, mut arg_rest) = (out, arg);
    for imgs in par::ranges(d.batch, par::workers(d.batch, 1), 1) {
        let (o1, o2) = out_rest.split_at_mut(imgs.len() * per_image);
        let (a1, a2) = arg_rest.split_at_mut(imgs.len() * per_image);
        jobs.push((imgs.start, o1, a1));
        (out_rest, arg_rest) = (o2, a2);
    }
    jobs.into_par_iter()
        .map(|(first, o, a)| forward_images(x, w, bias, relu, d, k, first, o, a))
        .collect::<Result<Vec<()>, String>>()?;
    Ok(())
}

/// Gradients of [`conv_pool_forward`] from the gradient `g` of its pooled output
/// (`[B, O, PH, PW]`) and the window positions `arg` it returned: writes `dw`, `db` when given
/// and `dx` when given, as [`crate::conv::conv_backward`] does for the unpooled output.
#[allow(clippy::too_many_arguments)]
pub fn conv_pool_backward(
    x: &[f32],
    w: &[f32],
    g: &[f32],
    arg: &[u32],
    d: ConvDims,
    k: usize,
    dx: Option<&mut [f32]>,
    dw: Option<&mut [f32]>,
    db: Option<&mut [f32]>,
) -> Result<(), String> {
    let (ph, pw) = pooled_hw(&d, k)?;
    let o = d.out_channels;
    let img = d.channels * d.height * d.width;
    let want = [
        (x.len(), d.batch * img, "x"),
        (w.len(), o * d.patch(), "w"),
        (
            dw.as_ref().map_or(o * d.patch(), |v| v.len()),
            o * d.patch(),
            "dw",
        ),
        (g.len(), d.batch * o * ph * pw, "g"),
        (arg.len(), d.batch * o * ph * pw, "arg"),
        (
            dx.as_ref().map_or(d.batch * img, |v| v.len()),
            d.batch * img,
            "dx",
        ),
        (db.as_ref().map_or(o, |v| v.len()), o, "db"),
    ];
    if let Some((len, need, name)) = want.iter().find(|(len, need, _)| len != need) {
        return Err(format!("conv2d + max_pool2d backward: `{name}` holds {len} values, {d:?} pooled by {k} needs {need}"));
    }
    let grad = ConvGrad::Pooled {
        g,
        arg,
        windows: ph * pw,
    };
    backward_with(x, w, grad, d, dx, dw, db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::{conv_backward, conv_forward};
    use crate::pool::{max_pool_backward, max_pool_forward, PoolDims};

    fn data(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 1009) as f32 / 504.5) - 1.0)
            .collect()
    }

    /// The unfused chain: conv (+ReLU), pool, then their backward passes.
    fn chain(
        x: &[f32],
        w: &[f32],
        b: &[f32],
        g: &[f32],
        relu: bool,
        d: ConvDims,
        k: usize,
    ) -> [Vec<f32>; 4] {
        let (oh, ow) = d.out_hw().unwrap();
        let o = d.out_channels;
        let mut y = vec![0.0; d.batch * o * oh * ow];
        conv_forward(x, w, Some(b), relu, d, &mut y).unwrap();
        let pd = PoolDims {
            planes: d.batch * o,
            height: oh,
            width: ow,
            k,
        };
        let mut pooled = vec![0.0; g.len()];
        max_pool_forward(&y, pd, &mut pooled).unwrap();
        let mut gy = vec![0.0; y.len()];
        max_pool_backward(&y, g, pd, &mut gy).unwrap();
        let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; o]);
        conv_backward(
            x,
            w,
            &gy,
            relu.then_some(y.as_slice()),
            d,
            Some(&mut dx),
            Some(&mut dw),
            Some(&mut db),
        )
        .unwrap();
        [pooled, dx, dw, db]
    }

    #[test]
    fn matches_convolution_then_pooling() {
        // (B, C, H, W, O, kernel, padding, pool): odd sides, small and large patches, k = 2, 3
        for (batch, channels, height, width, out_channels, kernel, padding, k) in [
            (3, 1, 12, 11, 4, 3, 0, 2),
            (5, 3, 9, 10, 6, 3, 1, 2),
            (2, 4, 11, 11, 3, 2, 0, 3),
            (9, 2, 8, 7, 5, 3, 1, 2),
            (2, 2, 8, 37, 3, 3, 0, 2),
        ] {
            let d = ConvDims {
                batch,
                channels,
                height,
                width,
                out_channels,
                kernel,
                padding,
            };
            let (ph, pw) = pooled_hw(&d, k).unwrap();
            let x = data(batch * channels * height * width, 1);
            // quantised values: ties inside windows, and whole windows cut to 0 by the ReLU
            let x: Vec<f32> = x.iter().map(|v| (v * 2.0).round() / 2.0).collect();
            let w: Vec<f32> = data(out_channels * d.patch(), 2)
                .iter()
                .map(|v| (v * 2.0).round() / 2.0)
                .collect();
            let b = data(out_channels, 3);
            let g = data(batch * out_channels * ph * pw, 4);
            for relu in [true, false] {
                let want = chain(&x, &w, &b, &g, relu, d, k);
                let mut out = vec![f32::NAN; g.len()];
                let mut arg = vec![7u32; g.len()];
                conv_pool_forward(&x, &w, Some(&b), relu, d, k, &mut out, &mut arg).unwrap();
                let (mut dx, mut dw, mut db) = (
                    vec![f32::NAN; x.len()],
                    vec![f32::NAN; w.len()],
                    vec![f32::NAN; out_channels],
                );
                conv_pool_backward(
                    &x,
                    &w,
                    &g,
                    &arg,
                    d,
                    k,
                    Some(&mut dx),
                    Some(&mut dw),
                    Some(&mut db),
                )
                .unwrap();
                for (got, want, what) in [
                    (&out, &want[0], "out"),
                    (&dx, &want[1], "dx"),
                    (&dw, &want[2], "dw"),
                    (&db, &want[3], "db"),
                ] {
                    for (i, (a, b)) in got.iter().zip(want.iter()).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                            "{what}[{i}] {a} vs {b} for {d:?} relu {relu}"
                        );
                    }
                }
            }
        }
        let d = ConvDims {
            batch: 1,
            channels: 1,
            height: 4,
            width: 4,
            out_channels: 1,
            kernel: 3,
            padding: 0,
        };
        assert!(pooled_hw(&d, 3).is_err());
    }
}
