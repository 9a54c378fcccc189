//! One frame of a spiking conv block: the non-zero inputs, the current (output by output for
//! wide patches, input by input for small ones) and the membrane step, in one pass.

use super::Geom;
use crate::lif::Reset;

/// The non-zero values of one input frame, listed by channel and by input position.
#[derive(Debug, Default)]
pub(crate) struct Active {
    /// Channel `c` owns entries `cs[c]..cs[c + 1]` of `ci`, `cj`, `cv` (row, column, value).
    cs: Vec<usize>,
    ci: Vec<u32>,
    cj: Vec<u32>,
    cv: Vec<f32>,
    /// Input position `q` owns entries `ps[q]..ps[q + 1]` of `pc`, `pv` (channel, value).
    ps: Vec<usize>,
    pc: Vec<u32>,
    pv: Vec<f32>,
    cursor: Vec<usize>,
    /// Whether every listed value is 1 (a spike frame).
    pub(crate) binary: bool,
}

impl Active {
    /// Lists the non-zero values of `frame` (`[C, H, W]`).
    #[inline(always)]
    pub(crate) fn build(&mut self, g: &Geom, frame: &[f32]) {
        let hw = g.h * g.w;
        let cap = frame.len();
        // branch-free: every value is written at the next slot, which only a non-zero keeps
        self.ci.resize(cap + 1, 0);
        self.cj.resize(cap + 1, 0);
        self.cv.resize(cap + 1, 0.0);
        self.cs.clear();
        self.ps.clear();
        self.ps.resize(hw + 1, 0);
        self.cs.push(0);
        let (mut n, mut ones) = (0, 0);
        for plane in frame.chunks_exact(hw) {
            for (i, row) in plane.chunks_exact(g.w).enumerate() {
                let counts = &mut self.ps[1 + i * g.w..1 + (i + 1) * g.w];
                for ((j, &v), cnt) in row.iter().enumerate().zip(counts) {
                    let nz = (v != 0.0) as usize;
                    self.ci[n] = i as u32;
                    self.cj[n] = j as u32;
                    self.cv[n] = v;
                    *cnt += nz;
                    ones += (v == 1.0) as usize;
                    n += nz;
                }
            }
            self.cs.push(n);
        }
        self.binary = ones == n;
        for q in 0..hw {
            self.ps[q + 1] += self.ps[q];
        }
        self.pc.resize(n, 0);
        self.pv.resize(n, 0.0);
        self.cursor.clear();
        self.cursor.extend_from_slice(&self.ps[..hw]);
        for c in 0..g.c {
            for e in self.cs[c]..self.cs[c + 1] {
                let q = self.ci[e] as usize * g.w + self.cj[e] as usize;
                let slot = self.cursor[q];
                self.pc[slot] = c as u32;
                self.pv[slot] = self.cv[e];
                self.cursor[q] += 1;
            }
        }
    }

    /// Entries `(row, column, value)` of channel `c`.
    #[inline(always)]
    pub(crate) fn channel(&self, c: usize) -> (&[u32], &[u32], &[f32]) {
        let r = self.cs[c]..self.cs[c + 1];
        (&self.ci[r.clone()], &self.cj[r.clone()], &self.cv[r])
    }
}

/// `acc += row` (or `v·row`) for the lanes of a block.
#[inline(always)]
pub(crate) fn add_row<const N: usize, const BIN: bool>(acc: &mut [f32; N], v: f32, row: &[f32]) {
    if let Ok(row) = <&[f32; N]>::try_from(row) {
        for (a, &r) in acc.iter_mut().zip(row) {
            *a += if BIN { r } else { v * r };
        }
    }
}

/// Current of lanes `o0..o0 + N` at position `(oi, oj)`: bias plus the weight rows (`wt`
/// `[k·k, C, O]`) of every non-zero input the kernel sees, taps in order, channels ascending.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gather<const N: usize, const BIN: bool>(
    g: &Geom,
    act: &Active,
    wt: &[f32],
    bias: &[f32],
    o0: usize,
    oi: usize,
    oj: usize,
) -> [f32; N] {
    let (k, o) = (g.k, g.o);
    let mut acc = [0.0f32; N];
    acc.copy_from_slice(&bias[o0..o0 + N]);
    for ki in 0..k {
        let Some(i) = (oi + ki).checked_sub(g.pad).filter(|&i| i < g.h) else {
            continue;
        };
        for kj in 0..k {
            let Some(j) = (oj + kj).checked_sub(g.pad).filter(|&j| j < g.w) else {
                continue;
            };
            let q = i * g.w + j;
            let tap = ki * k + kj;
            for e in act.ps[q]..act.ps[q + 1] {
                let r = tap * g.c + act.pc[e] as usize;
                add_row::<N, BIN>(&mut acc, act.pv[e], &wt[r * o + o0..r * o + o0 + N]);
            }
        }
    }
    acc
}

/// Lanes `o0..o0 + N` of position `(oi, oj)`: `dst = step(prev, current)` with `prev` from
/// `prev` (or `dst` itself when `None`); returns the number of spikes.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gather_step<const N: usize, const BIN: bool, const R: u8>(
    g: &Geom,
    act: &Active,
    wt: &[f32],
    bias: &[f32],
    (o0, oi, oj): (usize, usize, usize),
    prev: Option<&[f32]>,
    dst: &mut [f32],
) -> f32 {
    let acc = gather::<N, BIN>(g, act, wt, bias, o0, oi, oj);
    let mut p = [0.0f32; N];
    p.copy_from_slice(&prev.unwrap_or(&*dst)[o0..o0 + N]);
    let mut fired = [0.0f32; N];
    let it = dst[o0..o0 + N].iter_mut().zip(&p).zip(&acc).zip(&mut fired);
    for (((d, &pv), &c), f) in it {
        let m = step::<R>(pv, c, g.beta, g.thr);
        *d = m;
        *f = heaviside(m - g.thr);
    }
    fired.iter().sum()
}

/// Calls `$f::<N>(o0)` for lane blocks `o0..o0 + N` covering `0..$o` (N = 64, 32, 16, 8, 1).
macro_rules! lane_blocks {
    ($o:expr, |$o0:ident, $n:ident| $body:expr) => {{
        let mut $o0 = 0;
        while $o0 < $o {
            let rest = $o - $o0;
            if rest >= 64 {
                const $n: usize = 64;
                $body;
                $o0 += 64;
            } else if rest >= 32 {
                const $n: usize = 32;
                $body;
                $o0 += 32;
            } else if rest >= 16 {
                const $n: usize = 16;
                $body;
                $o0 += 16;
            } else if rest >= 8 {
                const $n: usize = 8;
                $body;
                $o0 += 8;
            } else {
                const $n: usize = 1;
                $body;
                $o0 += 1;
            }
        }
    }};
}
pub(crate) use lane_blocks;

/// One step of a frame (`[OH·OW, O]`): `mem = step(prev, current)` with the current from the
/// non-zero inputs `act` (see [`gather`]) and `prev` the previous membrane (`mem` itself when
/// `None`); returns the number of spikes.
#[inline(always)]
pub(crate) fn integrate(
    g: &Geom,
    act: &Active,
    wt: &[f32],
    bias: &[f32],
    prev: Option<&[f32]>,
    mem: &mut [f32],
    cur: &mut Vec<f32>,
) -> f32 {
    if g.patch() <= SMALL_PATCH {
        return match (act.binary, g.reset) {
            (true, Reset::Subtract) => scatter::<true, SUBTRACT>(g, act, wt, bias, prev, mem, cur),
            (true, Reset::Zero) => scatter::<true, ZERO>(g, act, wt, bias, prev, mem, cur),
            (true, Reset::None) => scatter::<true, NONE>(g, act, wt, bias, prev, mem, cur),
            (false, Reset::Subtract) => {
                scatter::<false, SUBTRACT>(g, act, wt, bias, prev, mem, cur)
            }
            (false, Reset::Zero) => scatter::<false, ZERO>(g, act, wt, bias, prev, mem, cur),
            (false, Reset::None) => scatter::<false, NONE>(g, act, wt, bias, prev, mem, cur),
        };
    }
    match (act.binary, g.reset) {
        (true, Reset::Subtract) => integrate_mono::<true, SUBTRACT>(g, act, wt, bias, prev, mem),
        (true, Reset::Zero) => integrate_mono::<true, ZERO>(g, act, wt, bias, prev, mem),
        (true, Reset::None) => integrate_mono::<true, NONE>(g, act, wt, bias, prev, mem),
        (false, Reset::Subtract) => integrate_mono::<false, SUBTRACT>(g, act, wt, bias, prev, mem),
        (false, Reset::Zero) => integrate_mono::<false, ZERO>(g, act, wt, bias, prev, mem),
        (false, Reset::None) => integrate_mono::<false, NONE>(g, act, wt, bias, prev, mem),
    }
}

/// Largest patch `C·k·k` whose frames are computed input by input ([`scatter`]: few
/// non-zero inputs, each adding its taps' weight rows) rather than output by output.
const SMALL_PATCH: usize = 16;

/// [`integrate`] for small patches: the current of the whole frame into `cur` (bias, then each
/// non-zero input's weight rows added at its taps' outputs), then the membrane step.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn scatter<const BIN: bool, const R: u8>(
    g: &Geom,
    act: &Active,
    wt: &[f32],
    bias: &[f32],
    prev: Option<&[f32]>,
    mem: &mut [f32],
    cur: &mut Vec<f32>,
) -> f32 {
    let (o, k) = (g.o, g.k);
    cur.resize(mem.len(), 0.0);
    for row in cur.chunks_exact_mut(o) {
        row.copy_from_slice(bias);
    }
    for c in 0..g.c {
        let (rows, cols, vals) = act.channel(c);
        for ((&i, &j), &v) in rows.iter().zip(cols).zip(vals) {
            for ki in 0..k {
                let oi = (i as usize + g.pad).wrapping_sub(ki);
                if oi >= g.oh {
                    continue;
                }
                for kj in 0..k {
                    let oj = (j as usize + g.pad).wrapping_sub(kj);
                    if oj >= g.ow {
                        continue;
                    }
                    let pos = oi * g.ow + oj;
                    let r = (ki * k + kj) * g.c + c;
                    let dst = &mut cur[pos * o..(pos + 1) * o];
                    for (d, &w) in dst.iter_mut().zip(&wt[r * o..(r + 1) * o]) {
                        *d += if BIN { w } else { v * w };
                    }
                }
            }
        }
    }
    let mut fired = [0.0f32; 8];
    let (beta, thr) = (g.beta, g.thr);
    match prev {
        Some(p) => {
            for ((ms, ps), cs) in mem.chunks_mut(8).zip(p.chunks(8)).zip(cur.chunks(8)) {
                for (((m, &pv), &cv), f) in ms.iter_mut().zip(ps).zip(cs).zip(&mut fired) {
                    *m = step::<R>(pv, cv, beta, thr);
                    *f += heaviside(*m - thr);
                }
            }
        }
        None => {
            for (ms, cs) in mem.chunks_mut(8).zip(cur.chunks(8)) {
                for ((m, &cv), f) in ms.iter_mut().zip(cs).zip(&mut fired) {
                    *m = step::<R>(*m, cv, beta, thr);
                    *f += heaviside(*m - thr);
                }
            }
        }
    }
    fired.iter().sum()
}

#[inline(always)]
fn integrate_mono<const BIN: bool, const R: u8>(
    g: &Geom,
    act: &Active,
    wt: &[f32],
    bias: &[f32],
    prev: Option<&[f32]>,
    mem: &mut [f32],
) -> f32 {
    let o = g.o;
    let mut count = 0.0f32;
    for (pos, dst) in mem.chunks_exact_mut(o).enumerate() {
        let (oi, oj) = (pos / g.ow, pos % g.ow);
        let pp = prev.map(|p| &p[pos * o..(pos + 1) * o]);
        lane_blocks!(o, |o0, N| count +=
            gather_step::<N, BIN, R>(g, act, wt, bias, (o0, oi, oj), pp, dst));
    }
    count
}

/// `H(x)`.
#[inline(always)]
pub(crate) fn heaviside(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else {
        0.0
    }
}

pub(crate) const SUBTRACT: u8 = 0;
pub(crate) const ZERO: u8 = 1;
pub(crate) const NONE: u8 = 2;

/// The membrane update from `prev` (the same `f32` operations, in the same order, as
/// [`crate::lif`] and the plain path).
#[inline(always)]
pub(crate) fn step<const R: u8>(prev: f32, cur: f32, beta: f32, thr: f32) -> f32 {
    let fired = heaviside(prev - thr);
    match R {
        SUBTRACT => (beta * prev + cur) - fired * thr,
        ZERO => beta * ((1.0 - fired) * prev) + cur,
        _ => beta * prev + cur,
    }
}
