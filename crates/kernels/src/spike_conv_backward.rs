//! The backward pass of [`super::ConvLifPool`] for one sample: recompute the membrane
//! trajectory, scan it in reverse with the pooled gradient routed to each window's first
//! maximum, then accumulate the parameter gradients and (when asked) the input gradient.

use super::{add_row, heaviside, integrate, lane_blocks, product, transpose, with_surrogate};
use super::{Active, Frames, Geom};
use super::{NONE, SUBTRACT, ZERO};
use crate::conv::{put_scratch, take_scratch};
use crate::gemm::MatRef;
use crate::lif::Reset;
use crate::surrogate::{Surrogate, SurrogateFn};

/// What every sample's backward pass reads.
pub(super) struct Ctx<'a> {
    pub(super) g: &'a Geom,
    pub(super) x: &'a [f32],
    pub(super) wt: &'a [f32],
    pub(super) bias: &'a [f32],
    pub(super) grad: &'a [f32],
    pub(super) dx: Option<Frames>,
    /// Membrane trajectories `[B, T, OH·OW, O]` saved by the forward pass, if any.
    pub(super) saved: Option<Frames>,
}

/// Adds sample `b`'s weight (`dwt`, `[C·k·k, O]`) and bias (`db`) gradients and writes its
/// input gradient frames when `ctx.dx` is set (the caller owns sample `b`).
pub(super) fn sample(
    ctx: &Ctx<'_>,
    sg: Surrogate,
    b: usize,
    dwt: &mut [f32],
    db: &mut [f32],
) -> Result<(), String> {
    let g = ctx.g;
    let (np, p, patch) = (g.neurons(), g.positions(), g.patch());
    let dcols_len = if ctx.dx.is_some() {
        patch * p * DX_FRAMES.min(g.steps) + g.img()
    } else {
        0
    };
    let traj_len = if ctx.saved.is_some() { 0 } else { g.steps * np };
    let mut buf = take_scratch(traj_len + 3 * np + dcols_len);
    let (own, rest) = buf.split_at_mut(traj_len);
    let (gfull, rest) = rest.split_at_mut(np);
    let (carry, rest) = rest.split_at_mut(np);
    let (zeros, rest) = rest.split_at_mut(np);
    let dcols = &mut rest[..dcols_len];
    zeros.fill(0.0);
    let traj = match ctx.saved {
        // SAFETY: the caller owns sample `b`, so its trajectory is this call's alone.
        Some(s) => unsafe { s.frame(b) },
        None => {
            trajectory(g, ctx.x, ctx.wt, ctx.bias, b, own, zeros);
            own
        }
    };
    reverse(g, sg, ctx.grad, b, traj, gfull, carry, zeros);
    param_grads(g, ctx.x, b, traj, dwt, db);
    let res = match ctx.dx {
        Some(dx) => input_grad(g, ctx.wt, b, traj, dcols, dx),
        None => Ok(()),
    };
    put_scratch(buf);
    res
}

/// The membrane of every step of sample `b` into `traj` (`[T, OH·OW, O]`).
#[inline(always)]
fn trajectory_impl(
    g: &Geom,
    x: &[f32],
    wt: &[f32],
    bias: &[f32],
    b: usize,
    traj: &mut [f32],
    zeros: &[f32],
) {
    let (img, np) = (g.img(), g.neurons());
    let (mut act, mut cur) = (Active::default(), Vec::new());
    for t in 0..g.steps {
        let (done, rest) = traj.split_at_mut(t * np);
        let u = &mut rest[..np];
        let i = t * g.batch + b;
        act.build(g, &x[i * img..(i + 1) * img]);
        let prev = if t > 0 { &done[(t - 1) * np..] } else { zeros };
        integrate(g, &act, wt, bias, Some(prev), u, &mut cur);
    }
}

dispatch!(
    fn trajectory(g: &Geom, x: &[f32], wt: &[f32], bias: &[f32], b: usize, traj: &mut [f32], zeros: &[f32]) => trajectory_impl
);

/// The spikes' gradient of one frame (`gfull`, `[OH·OW, O]`): each window's pooled gradient
/// (`gp`, `[O, PH·PW]`, transposed into `gpt`) at the window's first maximum of the binary
/// spikes `H(u - θ)` in row-major order: its first spike, or its first position if none.
#[inline(always)]
fn route(g: &Geom, u: &[f32], gp: &[f32], gpt: &mut [f32], gfull: &mut [f32], rem: &mut [f32]) {
    let (o, p, windows) = (g.o, g.pool, g.ph * g.pw);
    if g.ph * p != g.oh || g.pw * p != g.ow {
        gfull.fill(0.0);
    }
    transpose(gp, o, windows, gpt);
    for (at, gw) in gpt.chunks_exact(o).enumerate() {
        let (wi, wj) = (at / g.pw, at % g.pw);
        rem.fill(1.0);
        for di in 0..p {
            for dj in 0..p {
                let pos = (wi * p + di) * g.ow + wj * p + dj;
                let r = pos * o..(pos + 1) * o;
                let it = gfull[r.clone()].iter_mut().zip(&u[r]).zip(rem.iter_mut());
                for (((d, &uv), m), &gv) in it.zip(gw) {
                    let claim = heaviside(uv - g.thr) * *m;
                    *m -= claim;
                    *d = gv * claim;
                }
            }
        }
        // no spike in the window: its first position is the maximum
        let first = (wi * p) * g.ow + wj * p;
        let it = gfull[first * o..(first + 1) * o].iter_mut().zip(rem.iter());
        for ((d, &m), &gv) in it.zip(gw) {
            *d += gv * m;
        }
    }
}

/// One reverse step: `u` (the membrane `U[t]`) becomes `dL/dI[t]`; `carry` is `dL/dU[t]`
/// through `U[t+1]` on entry and through `U[t]` into `U[t-1]` on exit.
#[inline(always)]
fn reverse_step<const R: u8, S: SurrogateFn>(
    sg: S,
    u: &mut [f32],
    prev: &[f32],
    gfull: &[f32],
    carry: &mut [f32],
    beta: f32,
    thr: f32,
) {
    let it = u.iter_mut().zip(prev).zip(gfull).zip(carry.iter_mut());
    for (((u, &p), &go), c) in it {
        let g = go * sg.grad(*u - thr) + *c;
        let fired = heaviside(p - thr);
        *c = if R == ZERO {
            beta * ((1.0 - fired) * g)
        } else {
            beta * g
        };
        *u = g;
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn reverse_impl(
    g: &Geom,
    sg: Surrogate,
    grad: &[f32],
    b: usize,
    traj: &mut [f32],
    gfull: &mut [f32],
    carry: &mut [f32],
    zeros: &[f32],
) {
    let (np, pooled) = (g.neurons(), g.pooled());
    let (mut gpt, mut rem) = (vec![0.0f32; pooled], vec![0.0f32; g.o]);
    carry.fill(0.0);
    for t in (0..g.steps).rev() {
        let (before, rest) = traj.split_at_mut(t * np);
        let u = &mut rest[..np];
        let prev = if t > 0 {
            &before[(t - 1) * np..]
        } else {
            zeros
        };
        let i = t * g.batch + b;
        let gp = &grad[i * pooled..(i + 1) * pooled];
        route(g, u, gp, &mut gpt, gfull, &mut rem);
        let (beta, thr) = (g.beta, g.thr);
        with_surrogate!(sg, |s| match g.reset {
            Reset::Subtract => reverse_step::<SUBTRACT, _>(s, u, prev, gfull, carry, beta, thr),
            Reset::Zero => reverse_step::<ZERO, _>(s, u, prev, gfull, carry, beta, thr),
            Reset::None => reverse_step::<NONE, _>(s, u, prev, gfull, carry, beta, thr),
        });
    }
}

dispatch!(
    fn reverse(g: &Geom, sg: Surrogate, grad: &[f32], b: usize, traj: &mut [f32], gfull: &mut [f32], carry: &mut [f32], zeros: &[f32]) => reverse_impl
);

/// Adds lanes `o0..o0 + N` of one weight row's gradient: the sum over the non-zero inputs
/// (`rows`, `cols`, `vals`) of one channel of each value times the current gradient (`gt`,
/// `[OH·OW, O]`) at the output that tap `(ki, kj)` maps it to.
#[inline(always)]
fn weight_lanes<const N: usize, const BIN: bool>(
    g: &Geom,
    (rows, cols, vals): (&[u32], &[u32], &[f32]),
    gt: &[f32],
    (ki, kj): (usize, usize),
    o0: usize,
    dst: &mut [f32],
) {
    let o = g.o;
    let mut acc = [0.0f32; N];
    for ((&i, &j), &v) in rows.iter().zip(cols).zip(vals) {
        let oi = (i as usize + g.pad).wrapping_sub(ki);
        let oj = (j as usize + g.pad).wrapping_sub(kj);
        if oi < g.oh && oj < g.ow {
            let pos = oi * g.ow + oj;
            add_row::<N, BIN>(&mut acc, v, &gt[pos * o + o0..pos * o + o0 + N]);
        }
    }
    for (d, a) in dst[o0..o0 + N].iter_mut().zip(&acc) {
        *d += *a;
    }
}

/// Adds sample `b`'s bias and weight gradients from the current gradients `gc`
/// (`[T, OH·OW, O]`): every non-zero input times the current gradient at its taps' outputs.
#[inline(always)]
fn param_grads_impl(g: &Geom, x: &[f32], b: usize, gc: &[f32], dwt: &mut [f32], db: &mut [f32]) {
    let (o, k, img, np) = (g.o, g.k, g.img(), g.neurons());
    let mut act = Active::default();
    for t in 0..g.steps {
        let gt = &gc[t * np..(t + 1) * np];
        for row in gt.chunks_exact(o) {
            for (d, &v) in db.iter_mut().zip(row) {
                *d += v;
            }
        }
        let i = t * g.batch + b;
        act.build(g, &x[i * img..(i + 1) * img]);
        for c in 0..g.c {
            let list = act.channel(c);
            if list.0.is_empty() {
                continue;
            }
            for ki in 0..k {
                for kj in 0..k {
                    let r = (c * k + ki) * k + kj;
                    let dst = &mut dwt[r * o..(r + 1) * o];
                    let tap = (ki, kj);
                    if act.binary {
                        lane_blocks!(o, |o0, N| weight_lanes::<N, true>(
                            g, list, gt, tap, o0, dst
                        ));
                    } else {
                        lane_blocks!(o, |o0, N| weight_lanes::<N, false>(
                            g, list, gt, tap, o0, dst
                        ));
                    }
                }
            }
        }
    }
}

dispatch!(
    fn param_grads(g: &Geom, x: &[f32], b: usize, gc: &[f32], dwt: &mut [f32], db: &mut [f32]) => param_grads_impl
);

/// `dx = col2im(dt)` for one frame: `dt` `[OH·OW, k·k·C]` (the column gradients, tap-major),
/// summed position-major into `acc` (`[H·W, C]`, contiguous runs of `C`), then written to `dx`
/// (`[C, H, W]`) in its order.
#[inline(always)]
fn col2im_impl(g: &Geom, dt: &[f32], acc: &mut [f32], dx: &mut [f32]) {
    let (c, k, pad, patch) = (g.c, g.k, g.pad, g.patch());
    acc.fill(0.0);
    for (pos, row) in dt.chunks_exact(patch).take(g.positions()).enumerate() {
        let (oi, oj) = (pos / g.ow, pos % g.ow);
        for ki in 0..k {
            let Some(i) = (oi + ki).checked_sub(pad).filter(|&i| i < g.h) else {
                continue;
            };
            for kj in 0..k {
                let Some(j) = (oj + kj).checked_sub(pad).filter(|&j| j < g.w) else {
                    continue;
                };
                let q = i * g.w + j;
                let src = &row[(ki * k + kj) * c..(ki * k + kj + 1) * c];
                for (a, &v) in acc[q * c..(q + 1) * c].iter_mut().zip(src) {
                    *a += v;
                }
            }
        }
    }
    let hw = g.h * g.w;
    for (ch, plane) in dx.chunks_exact_mut(hw).enumerate() {
        for (d, src) in plane.iter_mut().zip(acc.chunks_exact(c)) {
            *d = src[ch];
        }
    }
}

dispatch!(
    fn col2im(g: &Geom, dt: &[f32], acc: &mut [f32], dx: &mut [f32]) => col2im_impl
);

/// Steps per product of [`input_grad`] (a taller product packs the weights less often).
const DX_FRAMES: usize = 8;

/// Writes sample `b`'s input gradient frames: `dt = G·Wᵀ` (`[n·OH·OW, k·k·C]`, with `wt` the
/// tap-major weights `[k·k·C, O]`) for up to [`DX_FRAMES`] steps at a time, then col2im per
/// step (`dcols` holds `dt` and an `[H·W, C]` accumulator).
fn input_grad(
    g: &Geom,
    wt: &[f32],
    b: usize,
    gc: &[f32],
    dcols: &mut [f32],
    dx: Frames,
) -> Result<(), String> {
    let (np, p, o, patch) = (g.neurons(), g.positions(), g.o, g.patch());
    let (dt, acc) = dcols.split_at_mut(patch * p * DX_FRAMES.min(g.steps));
    let wm = MatRef::row_major(wt, patch, o).t();
    let mut t0 = 0;
    while t0 < g.steps {
        let n = DX_FRAMES.min(g.steps - t0);
        let gm = MatRef::row_major(&gc[t0 * np..(t0 + n) * np], n * p, o);
        product(&mut dt[..n * p * patch], patch, gm, wm)?;
        for s in 0..n {
            // SAFETY: the caller owns sample `b`, so this frame is written by this call alone.
            let frame = unsafe { dx.frame((t0 + s) * g.batch + b) };
            col2im(g, &dt[s * p * patch..(s + 1) * p * patch], acc, frame);
        }
        t0 += n;
    }
    Ok(())
}
