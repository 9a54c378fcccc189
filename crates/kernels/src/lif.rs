//! Leaky integrate-and-fire over all time steps: one forward scan and one backward scan over a
//! time-first `[T, M]` current (`M = B·N`, neuron `n` of column `m` is `m % N`).
//!
//! Threads own disjoint column ranges over all steps, and every column is computed by the same
//! sequence of `f32` operations whatever the split, so results do not depend on the number of
//! threads. The scans are monomorphised per reset, output and surrogate so the inner loop (over
//! contiguous columns) vectorises.

use crate::par;
use crate::surrogate::{Atan, FastSigmoid, StraightThrough, Surrogate, SurrogateFn, Triangle};

/// What happens to the membrane one step after a spike (from the detached spike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// `U[t] = (β·U[t-1] + I[t]) - R[t]·θ`.
    Subtract,
    /// `U[t] = β·((1 - R[t])·U[t-1]) + I[t]`.
    Zero,
    /// `U[t] = β·U[t-1] + I[t]`.
    None,
}

/// Which sequence the scan returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Spikes `S[t] = [U[t] - θ > 0]`.
    Spikes,
    /// Membrane `U[t]`.
    Membrane,
}

/// One LIF layer's input and parameters: `current` is `[steps, M]` with `M` a multiple of
/// `neurons`; `beta` and `threshold` hold 1 or `neurons` values (β is clamped to [0, 1]).
#[derive(Debug, Clone, Copy)]
pub struct Lif<'a> {
    /// Input current, time-first `[steps, M]`.
    pub current: &'a [f32],
    /// Number of time steps T.
    pub steps: usize,
    /// Neurons per sample N.
    pub neurons: usize,
    /// Decay β (1 or N values, unclamped).
    pub beta: &'a [f32],
    /// Threshold θ (1 or N values).
    pub threshold: &'a [f32],
    /// Reset mechanism.
    pub reset: Reset,
}

/// Where the backward scan writes: the current's gradient (`[steps, M]`) and, when asked, β's
/// and θ's (as many values as the parameter has: summed over batch, and over neurons for one).
#[derive(Debug)]
pub struct LifGrads<'a> {
    /// Gradient of the current, `[steps, M]`.
    pub current: &'a mut [f32],
    /// Gradient of β (same length as `Lif::beta`), or `None` when not needed.
    pub beta: Option<&'a mut [f32]>,
    /// Gradient of θ (same length as `Lif::threshold`), or `None` when not needed.
    pub threshold: Option<&'a mut [f32]>,
}

const SUBTRACT: u8 = 0;
const ZERO: u8 = 1;
const NONE: u8 = 2;
/// Columns a worker processes at a time: its `[T, BLOCK]` slice of the buffers stays in L2.
const BLOCK: usize = 1024;
/// Fewest columns worth a thread of its own.
const MIN_COLS: usize = 2048;

/// A `[rows, cols]` row-major buffer that workers write in disjoint column ranges.
#[derive(Clone, Copy)]
struct SharedCols {
    ptr: *mut f32,
    rows: usize,
    cols: usize,
}

// SAFETY: workers only ever form slices of disjoint column ranges (see `row`).
unsafe impl Send for SharedCols {}
// SAFETY: as above.
unsafe impl Sync for SharedCols {}

impl SharedCols {
    fn new(buf: &mut [f32], rows: usize, cols: usize) -> Self {
        debug_assert_eq!(buf.len(), rows * cols);
        SharedCols {
            ptr: buf.as_mut_ptr(),
            rows,
            cols,
        }
    }

    /// Columns `c0..c1` of row `t`.
    ///
    /// # Safety
    /// `t < rows`, `c0 <= c1 <= cols`, and no other live slice may overlap the same elements
    /// (callers own disjoint column ranges).
    #[inline(always)]
    unsafe fn row<'b>(self, t: usize, c0: usize, c1: usize) -> &'b mut [f32] {
        debug_assert!(t < self.rows && c0 <= c1 && c1 <= self.cols);
        std::slice::from_raw_parts_mut(self.ptr.add(t * self.cols + c0), c1 - c0)
    }
}

impl Lif<'_> {
    fn columns(&self) -> Result<usize, String> {
        let n = self.neurons;
        if self.steps == 0 || n == 0 || self.current.len() % (self.steps * n) != 0 {
            return Err(format!(
                "lif: current holds {} values, not a multiple of {} steps x {} neurons",
                self.current.len(),
                self.steps,
                n
            ));
        }
        for (name, p) in [("beta", self.beta), ("threshold", self.threshold)] {
            if p.len() != 1 && p.len() != n {
                return Err(format!(
                    "lif: {name} holds {} values, expected 1 or {n}",
                    p.len()
                ));
            }
        }
        Ok(self.current.len() / self.steps)
    }

    /// β clamped to [0, 1] and θ, one value per neuron.
    fn per_neuron(&self) -> (Vec<f32>, Vec<f32>) {
        let n = self.neurons;
        let expand = |p: &[f32]| -> Vec<f32> {
            if p.len() == 1 {
                vec![p[0]; n]
            } else {
                p.to_vec()
            }
        };
        let beta = expand(self.beta)
            .iter()
            .map(|b| b.clamp(0.0, 1.0))
            .collect();
        (beta, expand(self.threshold))
    }

    /// Runs the layer from a zero membrane and writes spikes or membranes (`[steps, M]`).
    pub fn forward(&self, output: Output, out: &mut [f32]) -> Result<(), String> {
        let m = self.columns()?;
        if out.len() != self.current.len() {
            return Err(format!(
                "lif: output holds {} values, current {}",
                out.len(),
                self.current.len()
            ));
        }
        let (beta, thr) = self.per_neuron();
        let dst = SharedCols::new(out, self.steps, m);
        let spikes = output == Output::Spikes;
        par::for_ranges(m, MIN_COLS, 16, |cols| {
            let mut state = vec![0.0f32; BLOCK.min(cols.len())];
            let mut c0 = cols.start;
            while c0 < cols.end {
                let c1 = (c0 + BLOCK).min(cols.end);
                let blk = Block {
                    cur: self.current,
                    steps: self.steps,
                    m,
                    beta: &beta,
                    thr: &thr,
                    c0,
                    c1,
                };
                // SAFETY: this worker owns columns `cols`, of which `c0..c1` is a part.
                unsafe { forward_block(self.reset, spikes, &blk, dst, &mut state[..c1 - c0]) };
                c0 = c1;
            }
        });
        Ok(())
    }

    /// Backward scan: given the gradient of the forward's `output`, writes the current's
    /// gradient and (when asked) β's and θ's; the membrane is recomputed from the current.
    pub fn backward(
        &self,
        surrogate: Surrogate,
        output: Output,
        grad_out: &[f32],
        grads: LifGrads<'_>,
    ) -> Result<(), String> {
        let m = self.columns()?;
        let len = self.current.len();
        if grad_out.len() != len || grads.current.len() != len {
            return Err(format!(
                "lif backward: gradients hold {} and {} values, current {len}",
                grad_out.len(),
                grads.current.len()
            ));
        }
        for (name, g, p) in [
            ("beta", grads.beta.as_deref(), self.beta),
            ("threshold", grads.threshold.as_deref(), self.threshold),
        ] {
            if let Some(g) = g {
                if g.len() != p.len() {
                    return Err(format!(
                        "lif backward: {name} gradient holds {} values, {name} {}",
                        g.len(),
                        p.len()
                    ));
                }
            }
        }
        let (beta, thr) = self.per_neuron();
        // per-column sums over time of the parameter gradients, reduced over batch at the end
        let (need_b, need_t) = (grads.beta.is_some(), grads.threshold.is_some());
        let mut gb_cols = vec![0.0f32; if need_b { m } else { 0 }];
        let mut gt_cols = vec![0.0f32; if need_t { m } else { 0 }];
        let dst = SharedCols::new(grads.current, self.steps, m);
        let gb_dst = need_b.then(|| SharedCols::new(&mut gb_cols, 1, m));
        let gt_dst = need_t.then(|| SharedCols::new(&mut gt_cols, 1, m));
        let spikes = output == Output::Spikes;
        par::for_ranges(m, MIN_COLS, 16, |cols| {
            // per-column sums of an unneeded parameter gradient go to scratch
            let mut spare_b = vec![0.0f32; if need_b { 0 } else { BLOCK }];
            let mut spare_t = vec![0.0f32; if need_t { 0 } else { BLOCK }];
            let mut c0 = cols.start;
            while c0 < cols.end {
                let c1 = (c0 + BLOCK).min(cols.end);
                let blk = Block {
                    cur: self.current,
                    steps: self.steps,
                    m,
                    beta: &beta,
                    thr: &thr,
                    c0,
                    c1,
                };
                // SAFETY: this worker owns columns `cols`, of which `c0..c1` is a part.
                unsafe {
                    let gb = match gb_dst {
                        Some(d) => d.row(0, c0, c1),
                        None => &mut spare_b[..c1 - c0],
                    };
                    let gt = match gt_dst {
                        Some(d) => d.row(0, c0, c1),
                        None => &mut spare_t[..c1 - c0],
                    };
                    let acc = (gb, gt);
                    backward_block(self.reset, spikes, surrogate, &blk, grad_out, dst, acc);
                }
                c0 = c1;
            }
        });
        let n = self.neurons;
        let clamp_factor = |b: f32| {
            if b > 0.0 && b < 1.0 {
                1.0
            } else if b == 0.0 || b == 1.0 {
                // candle's clamp (maximum then minimum) splits the gradient at a tie
                0.5
            } else {
                0.0
            }
        };
        if let Some(g) = grads.beta {
            reduce_batch(&gb_cols, n, g);
            for (g, &b) in g.iter_mut().zip(self.beta) {
                *g *= clamp_factor(b);
            }
        }
        if let Some(g) = grads.threshold {
            reduce_batch(&gt_cols, n, g);
        }
        Ok(())
    }
}

/// `out[n] = Σ_b cols[b·N + n]` (b ascending); for a single `out`, also summed over `n`.
fn reduce_batch(cols: &[f32], n: usize, out: &mut [f32]) {
    let mut per = vec![0.0f32; n];
    for row in cols.chunks(n) {
        for (p, c) in per.iter_mut().zip(row) {
            *p += *c;
        }
    }
    if out.len() == 1 {
        out[0] = per.iter().sum();
    } else {
        out.copy_from_slice(&per);
    }
}

/// Columns `c0..c1` of a layer, with per-neuron parameters.
struct Block<'a> {
    cur: &'a [f32],
    steps: usize,
    m: usize,
    beta: &'a [f32],
    thr: &'a [f32],
    c0: usize,
    c1: usize,
}

impl Block<'_> {
    /// The runs `(offset, neuron, len)` of columns of the block that lie in one sample (so that
    /// the neuron index is contiguous). A plain loop over them, not a closure, keeps the hot
    /// loops inside the AVX2-compiled function.
    #[inline(always)]
    fn segments(&self) -> Segments {
        Segments {
            n: self.beta.len(),
            c: self.c0,
            c0: self.c0,
            c1: self.c1,
        }
    }
}

/// Iterator of [`Block::segments`].
struct Segments {
    n: usize,
    c: usize,
    c0: usize,
    c1: usize,
}

impl Iterator for Segments {
    type Item = (usize, usize, usize);

    #[inline(always)]
    fn next(&mut self) -> Option<(usize, usize, usize)> {
        if self.c >= self.c1 || self.n == 0 {
            return None;
        }
        let n0 = self.c % self.n;
        let len = (self.n - n0).min(self.c1 - self.c);
        let item = (self.c - self.c0, n0, len);
        self.c += len;
        Some(item)
    }
}

#[inline(always)]
fn heaviside(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else {
        0.0
    }
}

/// The membrane update from `prev` (same `f32` operations, same order, as the plain path).
#[inline(always)]
fn step<const R: u8>(prev: f32, cur: f32, beta: f32, thr: f32) -> f32 {
    let fired = heaviside(prev - thr);
    match R {
        SUBTRACT => (beta * prev + cur) - fired * thr,
        ZERO => beta * ((1.0 - fired) * prev) + cur,
        _ => beta * prev + cur,
    }
}

#[inline(always)]
fn forward_impl<const R: u8, const SPK: bool>(blk: &Block<'_>, dst: SharedCols, state: &mut [f32]) {
    state.fill(0.0);
    for t in 0..blk.steps {
        let cur = &blk.cur[t * blk.m + blk.c0..t * blk.m + blk.c1];
        // SAFETY: the caller owns columns `c0..c1` of `dst` (see `forward_block`).
        let out = unsafe { dst.row(t, blk.c0, blk.c1) };
        for (off, n0, len) in blk.segments() {
            let it = state[off..off + len]
                .iter_mut()
                .zip(&cur[off..off + len])
                .zip(&blk.beta[n0..n0 + len])
                .zip(&blk.thr[n0..n0 + len])
                .zip(&mut out[off..off + len]);
            for ((((s, &c), &b), &th), o) in it {
                let mem = step::<R>(*s, c, b, th);
                *s = mem;
                *o = if SPK { heaviside(mem - th) } else { mem };
            }
        }
    }
}

#[inline(always)]
fn backward_impl<const R: u8, const SPK: bool, S: SurrogateFn>(
    sg: S,
    blk: &Block<'_>,
    grad_out: &[f32],
    dst: SharedCols,
    (gb, gt): (&mut [f32], &mut [f32]),
) {
    let width = blk.c1 - blk.c0;
    let zeros = vec![0.0f32; width];
    // 1. the membrane of every step, into the gradient buffer
    for t in 0..blk.steps {
        let cur = &blk.cur[t * blk.m + blk.c0..t * blk.m + blk.c1];
        // SAFETY: the caller owns columns `c0..c1` of `dst`; rows `t` and `t - 1` are distinct.
        let mem = unsafe { dst.row(t, blk.c0, blk.c1) };
        let prev: &[f32] = if t > 0 {
            // SAFETY: as above.
            unsafe { dst.row(t - 1, blk.c0, blk.c1) }
        } else {
            &zeros
        };
        for (off, n0, len) in blk.segments() {
            let it = mem[off..off + len]
                .iter_mut()
                .zip(&prev[off..off + len])
                .zip(&cur[off..off + len])
                .zip(&blk.beta[n0..n0 + len])
                .zip(&blk.thr[n0..n0 + len]);
            for ((((u, &p), &c), &b), &th) in it {
                *u = step::<R>(p, c, b, th);
            }
        }
    }
    // 2. reverse scan, overwriting U[t] with dL/dU[t]
    let mut carry = vec![0.0f32; width];
    gb.fill(0.0);
    gt.fill(0.0);
    for t in (0..blk.steps).rev() {
        // SAFETY: rows `t` and `t - 1` are distinct rows of the caller's columns.
        let g_row = unsafe { dst.row(t, blk.c0, blk.c1) };
        let prev: &[f32] = if t > 0 {
            // SAFETY: as above; this borrow ends with the iteration.
            unsafe { dst.row(t - 1, blk.c0, blk.c1) }
        } else {
            &zeros
        };
        let go = &grad_out[t * blk.m + blk.c0..t * blk.m + blk.c1];
        for (off, n0, len) in blk.segments() {
            let r = off..off + len;
            let it = g_row[r.clone()]
                .iter_mut()
                .zip(&prev[r.clone()])
                .zip(&go[r.clone()])
                .zip(&mut carry[r.clone()])
                .zip(gb[r.clone()].iter_mut().zip(&mut gt[r]))
                .zip(blk.beta[n0..n0 + len].iter().zip(&blk.thr[n0..n0 + len]));
            for (((((u, &p), &go), c), (gb, gt)), (&b, &th)) in it {
                let s_grad = sg.grad(*u - th);
                let g_spike = if SPK { go * s_grad } else { 0.0 };
                let g = if SPK { g_spike + *c } else { go + *c };
                let fired = heaviside(p - th);
                let kept = if R == ZERO { (1.0 - fired) * p } else { p };
                *gb += g * kept;
                *gt -= g_spike;
                if R == SUBTRACT {
                    *gt -= fired * g;
                }
                *c = if R == ZERO {
                    b * ((1.0 - fired) * g)
                } else {
                    b * g
                };
                *u = g;
            }
        }
    }
}

macro_rules! avx2_variant {
    ($avx:ident, $imp:ident, <$($g:ident: $gt:ty),*>, <$($tp:ident: $bound:path),*>, ($($a:ident: $t:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx<$(const $g: $gt,)* $($tp: $bound),*>($($a: $t),*) {
            $imp::<$($g,)* $($tp),*>($($a),*)
        }
    };
}

avx2_variant!(forward_avx2, forward_impl, <R: u8, SPK: bool>, <>,
    (blk: &Block<'_>, dst: SharedCols, state: &mut [f32]));
avx2_variant!(backward_avx2, backward_impl, <R: u8, SPK: bool>, <S: SurrogateFn>,
    (sg: S, blk: &Block<'_>, grad_out: &[f32], dst: SharedCols, acc: (&mut [f32], &mut [f32])));

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn forward_mono<const R: u8, const SPK: bool>(blk: &Block<'_>, dst: SharedCols, state: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has the features `forward_avx2` was compiled for.
        return unsafe { forward_avx2::<R, SPK>(blk, dst, state) };
    }
    forward_impl::<R, SPK>(blk, dst, state)
}

fn backward_mono<const R: u8, const SPK: bool, S: SurrogateFn>(
    sg: S,
    blk: &Block<'_>,
    grad_out: &[f32],
    dst: SharedCols,
    acc: (&mut [f32], &mut [f32]),
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has the features `backward_avx2` was compiled for.
        return unsafe { backward_avx2::<R, SPK, S>(sg, blk, grad_out, dst, acc) };
    }
    backward_impl::<R, SPK, S>(sg, blk, grad_out, dst, acc)
}

/// # Safety
/// The caller owns columns `blk.c0..blk.c1` of `dst` (no other slice of them is live).
unsafe fn forward_block(
    reset: Reset,
    spikes: bool,
    blk: &Block<'_>,
    dst: SharedCols,
    st: &mut [f32],
) {
    match (reset, spikes) {
        (Reset::Subtract, true) => forward_mono::<SUBTRACT, true>(blk, dst, st),
        (Reset::Subtract, false) => forward_mono::<SUBTRACT, false>(blk, dst, st),
        (Reset::Zero, true) => forward_mono::<ZERO, true>(blk, dst, st),
        (Reset::Zero, false) => forward_mono::<ZERO, false>(blk, dst, st),
        (Reset::None, true) => forward_mono::<NONE, true>(blk, dst, st),
        (Reset::None, false) => forward_mono::<NONE, false>(blk, dst, st),
    }
}

fn backward_surrogate<const R: u8, const SPK: bool>(
    surrogate: Surrogate,
    blk: &Block<'_>,
    grad_out: &[f32],
    dst: SharedCols,
    acc: (&mut [f32], &mut [f32]),
) {
    match surrogate {
        Surrogate::Atan { alpha } => {
            backward_mono::<R, SPK, _>(Atan::new(alpha), blk, grad_out, dst, acc)
        }
        Surrogate::FastSigmoid { slope } => {
            backward_mono::<R, SPK, _>(FastSigmoid::new(slope), blk, grad_out, dst, acc)
        }
        Surrogate::Triangle { width } => {
            backward_mono::<R, SPK, _>(Triangle::new(width), blk, grad_out, dst, acc)
        }
        Surrogate::StraightThrough => {
            backward_mono::<R, SPK, _>(StraightThrough, blk, grad_out, dst, acc)
        }
    }
}

/// # Safety
/// The caller owns columns `blk.c0..blk.c1` of `dst` (no other slice of them is live).
unsafe fn backward_block(
    reset: Reset,
    spikes: bool,
    sg: Surrogate,
    blk: &Block<'_>,
    go: &[f32],
    dst: SharedCols,
    acc: (&mut [f32], &mut [f32]),
) {
    match (reset, spikes) {
        (Reset::Subtract, true) => backward_surrogate::<SUBTRACT, true>(sg, blk, go, dst, acc),
        (Reset::Subtract, false) => backward_surrogate::<SUBTRACT, false>(sg, blk, go, dst, acc),
        (Reset::Zero, true) => backward_surrogate::<ZERO, true>(sg, blk, go, dst, acc),
        (Reset::Zero, false) => backward_surrogate::<ZERO, false>(sg, blk, go, dst, acc),
        (Reset::None, true) => backward_surrogate::<NONE, true>(sg, blk, go, dst, acc),
        (Reset::None, false) => backward_surrogate::<NONE, false>(sg, blk, go, dst, acc),
    }
}

#[cfg(test)]
#[path = "lif_tests.rs"]
mod tests;
