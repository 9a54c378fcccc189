//! Non-overlapping max pooling over `[planes, H, W]` maps, PyTorch's way: trailing rows and
//! columns that do not fill a window are dropped, and the gradient of a window goes to its
//! first maximum in row-major order (which matters for binary spike maps, full of ties).

use crate::par;

/// Sizes of a pooling: `planes` maps of `height x width`, `k x k` windows with stride `k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolDims {
    /// Number of independent maps (batch times channels).
    pub planes: usize,
    /// Input rows.
    pub height: usize,
    /// Input columns.
    pub width: usize,
    /// Window side (and stride).
    pub k: usize,
}

impl PoolDims {
    /// Output rows and columns.
    pub fn out_hw(&self) -> (usize, usize) {
        (self.height / self.k.max(1), self.width / self.k.max(1))
    }

    fn check(&self, what: &str, input: usize, output: usize) -> Result<(), String> {
        let (oh, ow) = self.out_hw();
        if self.k == 0 {
            return Err(format!("{what}: window size 0"));
        }
        if input != self.planes * self.height * self.width || output != self.planes * oh * ow {
            return Err(format!(
                "{what}: {input} input and {output} output values for {} planes of {}x{} pooled by {}",
                self.planes, self.height, self.width, self.k
            ));
        }
        Ok(())
    }
}

/// Minimum number of planes per worker.
const MIN_PLANES: usize = 16;

/// Windows per block of the `2 x 2` kernels (a block's values are held in small arrays, which
/// the compiler turns into vector registers).
const BLOCK: usize = 8;

/// The maximum of `2 x 2` windows `(a0, a1, b0, b1)`, taken in that order.
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

/// One output row of a `2 x 2` pooling from input rows `r0`, `r1` (`2·orow.len()` values each).
#[inline(always)]
fn forward_row2(r0: &[f32], r1: &[f32], orow: &mut [f32]) {
    for ((o, a), b) in orow
        .iter_mut()
        .zip(r0.chunks_exact(2))
        .zip(r1.chunks_exact(2))
    {
        *o = max4(a[0], a[1], b[0], b[1]);
    }
}

#[inline(always)]
fn forward_planes_impl(x: &[f32], d: PoolDims, first: usize, out: &mut [f32]) {
    let (oh, ow) = d.out_hw();
    let (h, w, k) = (d.height, d.width, d.k);
    for (plane, o) in (first..).zip(out.chunks_exact_mut(oh * ow)) {
        let xp = &x[plane * h * w..(plane + 1) * h * w];
        for (i, orow) in o.chunks_exact_mut(ow).enumerate() {
            let row = |r: usize| &xp[(i * k + r) * w..(i * k + r) * w + ow * k];
            if k == 2 {
                forward_row2(row(0), row(1), orow);
                continue;
            }
            for (j, v) in orow.iter_mut().enumerate() {
                *v = row(0)[j * k];
            }
            for r in 0..k {
                for (v, win) in orow.iter_mut().zip(row(r).chunks_exact(k)) {
                    for &c in win {
                        *v = if c > *v { c } else { *v };
                    }
                }
            }
        }
    }
}

dispatch!(
    fn forward_planes(x: &[f32], d: PoolDims, first: usize, out: &mut [f32]) => forward_planes_impl
);

/// `out[p, i, j] = max` of `x[p]` over the window of rows `ik..ik+k`, columns `jk..jk+k`.
pub fn max_pool_forward(x: &[f32], d: PoolDims, out: &mut [f32]) -> Result<(), String> {
    d.check("max_pool2d", x.len(), out.len())?;
    let (oh, ow) = d.out_hw();
    if oh * ow > 0 {
        par::for_row_chunks(out, oh * ow, MIN_PLANES, |planes, chunk| {
            forward_planes(x, d, planes.start, chunk)
        });
    }
    Ok(())
}

/// Gradients of `BLOCK` `2 x 2` windows `(a0, a1, b0, b1)[t]` (row-major): window `t`'s
/// gradient `g[t]` goes to its first maximum, found branch-free (the comparisons are
/// unpredictable) as the first value equal to the window's maximum; `[o0, o1, o2, o3]` are
/// the gradients of the four positions.
#[inline(always)]
fn first_max_grads(w: [[f32; BLOCK]; 4], g: [f32; BLOCK]) -> [[f32; BLOCK]; 4] {
    let mut o = [[0.0f32; BLOCK]; 4];
    for t in 0..BLOCK {
        let m = max4(w[0][t], w[1][t], w[2][t], w[3][t]);
        let e0 = w[0][t] == m;
        let e1 = !e0 & (w[1][t] == m);
        let e2 = !(e0 | e1) & (w[2][t] == m);
        let e3 = !(e0 | e1 | e2);
        o[0][t] = if e0 { g[t] } else { 0.0 };
        o[1][t] = if e1 { g[t] } else { 0.0 };
        o[2][t] = if e2 { g[t] } else { 0.0 };
        o[3][t] = if e3 { g[t] } else { 0.0 };
    }
    o
}

/// `2 x 2` backward of `BLOCK` windows of one output row: rows `r0`, `r1` and gradient rows
/// `d0`, `d1` hold `2·BLOCK` contiguous values (loaded as vectors and de-interleaved).
#[inline(always)]
fn backward_block_row2(r0: &[f32], r1: &[f32], g: &[f32], d0: &mut [f32], d1: &mut [f32]) {
    let mut vals = [[0.0f32; BLOCK]; 4];
    let mut gb = [0.0f32; BLOCK];
    for t in 0..BLOCK {
        (vals[0][t], vals[1][t]) = (r0[2 * t], r0[2 * t + 1]);
        (vals[2][t], vals[3][t]) = (r1[2 * t], r1[2 * t + 1]);
        gb[t] = g[t];
    }
    let o = first_max_grads(vals, gb);
    for t in 0..BLOCK {
        (d0[2 * t], d0[2 * t + 1]) = (o[0][t], o[1][t]);
        (d1[2 * t], d1[2 * t + 1]) = (o[2][t], o[3][t]);
    }
}

/// `2 x 2` backward of one plane (`xp`, `dp` `h x w`, `gp` `oh x ow`), windows taken `BLOCK`
/// at a time in row-major order across output rows (rows of the small maps of a CNN hold fewer
/// windows than a block); rows of at least a block start with whole blocks of their own.
#[inline(always)]
fn backward_plane2(xp: &[f32], gp: &[f32], w: usize, ow: usize, dp: &mut [f32]) {
    let windows = gp.len();
    let (mut i, mut j) = (0, 0);
    let mut first = 0;
    while first < windows {
        if j == 0 && ow >= BLOCK {
            // vector loads along the row for its whole blocks
            let (r0, r1) = xp[2 * i * w..(2 * i + 2) * w].split_at(w);
            let (d0, d1) = dp[2 * i * w..(2 * i + 2) * w].split_at_mut(w);
            while j + BLOCK <= ow {
                let c = 2 * j..2 * (j + BLOCK);
                let g = &gp[first..first + BLOCK];
                backward_block_row2(
                    &r0[c.clone()],
                    &r1[c.clone()],
                    g,
                    &mut d0[c.clone()],
                    &mut d1[c],
                );
                j += BLOCK;
                first += BLOCK;
            }
            if j == ow {
                (i, j) = (i + 1, 0);
                continue;
            }
        }
        let row_left = if ow >= BLOCK { ow - j } else { usize::MAX };
        let n = BLOCK.min(windows - first).min(row_left);
        let mut at = [0usize; BLOCK];
        let mut vals = [[f32::NEG_INFINITY; BLOCK]; 4];
        let mut g = [0.0f32; BLOCK];
        for t in 0..n {
            let base = 2 * i * w + 2 * j;
            at[t] = base;
            vals[0][t] = xp[base];
            vals[1][t] = xp[base + 1];
            vals[2][t] = xp[base + w];
            vals[3][t] = xp[base + w + 1];
            g[t] = gp[first + t];
            j += 1;
            if j == ow {
                (i, j) = (i + 1, 0);
            }
        }
        let o = first_max_grads(vals, g);
        for t in 0..n {
            let base = at[t];
            dp[base] = o[0][t];
            dp[base + 1] = o[1][t];
            dp[base + w] = o[2][t];
            dp[base + w + 1] = o[3][t];
        }
        first += n;
    }
}

#[inline(always)]
fn backward_planes_impl(x: &[f32], g: &[f32], d: PoolDims, first: usize, dx: &mut [f32]) {
    let (oh, ow) = d.out_hw();
    let (h, w, k) = (d.height, d.width, d.k);
    for (plane, dp) in (first..).zip(dx.chunks_exact_mut(h * w)) {
        let xp = &x[plane * h * w..(plane + 1) * h * w];
        let gp = &g[plane * oh * ow..(plane + 1) * oh * ow];
        if k == 2 {
            if 2 * oh != h || 2 * ow != w {
                // dropped rows or columns: no window writes them
                dp.fill(0.0);
            }
            backward_plane2(xp, gp, w, ow, dp);
            continue;
        }
        dp.fill(0.0);
        for i in 0..oh {
            for j in 0..ow {
                let mut best = (i * k) * w + j * k;
                let mut max = xp[best];
                for r in i * k..i * k + k {
                    for c in j * k..j * k + k {
                        let v = xp[r * w + c];
                        if v > max {
                            max = v;
                            best = r * w + c;
                        }
                    }
                }
                dp[best] = gp[i * ow + j];
            }
        }
    }
}

dispatch!(
    fn backward_planes(x: &[f32], g: &[f32], d: PoolDims, first: usize, dx: &mut [f32]) => backward_planes_impl
);

/// Gradient of [`max_pool_forward`]: `dx` is overwritten with `g` at each window's first
/// maximum (row-major) and zero everywhere else, dropped rows and columns included. (A window
/// holding NaN sends its gradient to an arbitrary one of its values.)
pub fn max_pool_backward(x: &[f32], g: &[f32], d: PoolDims, dx: &mut [f32]) -> Result<(), String> {
    d.check("max_pool2d backward", x.len(), g.len())?;
    if dx.len() != x.len() {
        return Err(format!(
            "max_pool2d backward: gradient holds {} values, input {}",
            dx.len(),
            x.len()
        ));
    }
    let (h, w) = (d.height, d.width);
    if h * w > 0 {
        par::for_row_chunks(dx, h * w, MIN_PLANES, |planes, chunk| {
            backward_planes(x, g, d, planes.start, chunk)
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], g: &[f32], d: PoolDims) -> (Vec<f32>, Vec<f32>) {
        let (oh, ow) = d.out_hw();
        let (h, w, k) = (d.height, d.width, d.k);
        let mut out = vec![0.0; d.planes * oh * ow];
        let mut dx = vec![0.0; x.len()];
        for p in 0..d.planes {
            for i in 0..oh {
                for j in 0..ow {
                    let mut best = None::<(usize, f32)>;
                    for r in 0..k {
                        for c in 0..k {
                            let at = p * h * w + (i * k + r) * w + j * k + c;
                            if best.is_none_or(|(_, m)| x[at] > m) {
                                best = Some((at, x[at]));
                            }
                        }
                    }
                    let (at, m) = best.unwrap();
                    out[(p * oh + i) * ow + j] = m;
                    dx[at] += g[(p * oh + i) * ow + j];
                }
            }
        }
        (out, dx)
    }

    #[test]
    fn matches_naive_pooling_with_ties_and_odd_sides() {
        for (planes, height, width, k) in [
            (3, 5, 7, 2),
            (40, 11, 11, 2),
            (2, 9, 8, 3),
            (1, 4, 4, 1),
            (2, 3, 37, 2),
            (3, 34, 35, 2),
        ] {
            let d = PoolDims {
                planes,
                height,
                width,
                k,
            };
            let n = planes * height * width;
            // binary values: ties everywhere, so the first-maximum rule is exercised
            for x in [
                (0..n)
                    .map(|i| ((i * 7919) % 13) as f32 - 6.0)
                    .collect::<Vec<_>>(),
                (0..n).map(|i| ((i * 7919 / 3) % 2) as f32).collect(),
                vec![0.0; n],
            ] {
                let (oh, ow) = d.out_hw();
                let g: Vec<f32> = (0..planes * oh * ow).map(|i| i as f32 + 1.0).collect();
                let (want_out, want_dx) = naive(&x, &g, d);
                let mut out = vec![f32::NAN; want_out.len()];
                max_pool_forward(&x, d, &mut out).unwrap();
                assert_eq!(out, want_out);
                let mut dx = vec![f32::NAN; n];
                max_pool_backward(&x, &g, d, &mut dx).unwrap();
                assert_eq!(dx, want_dx);
            }
        }
        let d = PoolDims {
            planes: 1,
            height: 4,
            width: 4,
            k: 2,
        };
        assert!(max_pool_forward(&[0.0; 15], d, &mut [0.0; 4]).is_err());
    }
}
