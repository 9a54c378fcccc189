//! A spiking conv block over all time steps: convolution -> Leaky neuron -> max pooling, one
//! sample at a time, so the full-size `[T, B, O, OH, OW]` current, membrane and spike tensors
//! (277 MB for the MNIST SNN-CNN's first block at batch 128, T = 25) never exist.
//!
//! Inside a sample the maps are position-major (`[OH·OW, O]`): the current of a frame is the
//! bias plus, for every non-zero input value (spike inputs are sparse), that value times the
//! weight column of each kernel tap, added to a contiguous run of `O` outputs. The membrane of
//! one frame stays in cache while the sample's steps run in order. The backward pass saves
//! nothing from the forward one: it recomputes the sample's membrane trajectory (`[T, OH·OW, O]`,
//! about 2 MB), scans it in reverse with the pooled gradient routed to each window's first
//! maximum, and accumulates the weight and bias gradients per fixed group of samples (summed in
//! group order, so results do not depend on the number of threads) and, when asked, the input
//! gradient by a product with the weights and a col2im.
//!
//! Neuron semantics are those of [`crate::lif`] with a scalar β (clamped to [0, 1]) and θ:
//! the reset uses the previous step's (detached) spike.

use rayon::prelude::*;

use crate::conv::{put_scratch, take_scratch, ConvDims};
use crate::gemm::MatRef;
use crate::lif::Reset;
use crate::par;
use crate::sgemm::sgemm;
use crate::surrogate::Surrogate;

#[path = "spike_conv_backward.rs"]
mod backward;
#[path = "spike_conv_frame.rs"]
mod frame;

pub(crate) use frame::{add_row, heaviside, integrate, lane_blocks, Active};
pub(crate) use frame::{NONE, SUBTRACT, ZERO};

/// One spiking conv block's input and parameters.
#[derive(Debug, Clone, Copy)]
pub struct ConvLifPool<'a> {
    /// Input, time-first `[T, B, C, H, W]` (any real values; zeros are skipped).
    pub x: &'a [f32],
    /// Time steps `T`.
    pub steps: usize,
    /// Convolution sizes (`batch` is `B`; stride 1, zero padding).
    pub conv: ConvDims,
    /// Weights `[O, C, k, k]`.
    pub w: &'a [f32],
    /// Bias `[O]`, if any.
    pub bias: Option<&'a [f32]>,
    /// Side of the non-overlapping max-pool window (1: no pooling).
    pub pool: usize,
    /// Decay β (clamped to [0, 1]).
    pub beta: f32,
    /// Threshold θ.
    pub threshold: f32,
    /// Reset mechanism.
    pub reset: Reset,
}

/// Where [`ConvLifPool::backward`] writes.
#[derive(Debug)]
pub struct BlockGrads<'a> {
    /// Gradient of the input `[T, B, C, H, W]`, or `None` when the input needs none.
    pub dx: Option<&'a mut [f32]>,
    /// Gradient of the weights `[O, C, k, k]`.
    pub dw: &'a mut [f32],
    /// Gradient of the bias `[O]`, if wanted.
    pub db: Option<&'a mut [f32]>,
}

/// All sizes of a block, checked, with the neuron's scalars.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geom {
    pub(crate) steps: usize,
    pub(crate) batch: usize,
    pub(crate) c: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) o: usize,
    pub(crate) k: usize,
    pub(crate) pad: usize,
    pub(crate) oh: usize,
    pub(crate) ow: usize,
    pub(crate) pool: usize,
    pub(crate) ph: usize,
    pub(crate) pw: usize,
    pub(crate) beta: f32,
    pub(crate) thr: f32,
    pub(crate) reset: Reset,
}

impl Geom {
    /// Values of one input frame `C·H·W`.
    pub(crate) fn img(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Conv output positions of a frame `OH·OW`.
    pub(crate) fn positions(&self) -> usize {
        self.oh * self.ow
    }

    /// Neurons of a frame `OH·OW·O`.
    pub(crate) fn neurons(&self) -> usize {
        self.positions() * self.o
    }

    /// Values of one pooled output frame `O·PH·PW`.
    pub(crate) fn pooled(&self) -> usize {
        self.o * self.ph * self.pw
    }

    /// Length of a weight column `C·k·k`.
    pub(crate) fn patch(&self) -> usize {
        self.c * self.k * self.k
    }
}

/// Fixed number of sample groups whose parameter gradients are summed separately.
pub(crate) const GROUPS: usize = 16;

impl ConvLifPool<'_> {
    /// Sizes of the pooled output frame `(O, PH, PW)`, or an error when a side has no window.
    pub fn pooled_dims(&self) -> Result<(usize, usize, usize), String> {
        let g = self.geom()?;
        Ok((g.o, g.ph, g.pw))
    }

    pub(crate) fn geom(&self) -> Result<Geom, String> {
        let d = self.conv;
        let (oh, ow) = d.out_hw()?;
        let pool = self.pool.max(1);
        let (ph, pw) = (oh / pool, ow / pool);
        if ph == 0 || pw == 0 {
            return Err(format!(
                "conv-lif-pool: a {oh}x{ow} map does not hold a {pool}x{pool} window"
            ));
        }
        let g = Geom {
            steps: self.steps,
            batch: d.batch,
            c: d.channels,
            h: d.height,
            w: d.width,
            o: d.out_channels,
            k: d.kernel,
            pad: d.padding,
            oh,
            ow,
            pool,
            ph,
            pw,
            beta: self.beta.clamp(0.0, 1.0),
            thr: self.threshold,
            reset: self.reset,
        };
        let want = [
            ("x", self.x.len(), g.steps * g.batch * g.img()),
            ("w", self.w.len(), g.o * g.patch()),
            ("bias", self.bias.map_or(g.o, <[f32]>::len), g.o),
        ];
        for (name, len, n) in want {
            if len != n {
                return Err(format!(
                    "conv-lif-pool: `{name}` holds {len} values, {} steps of {d:?} need {n}",
                    g.steps
                ));
            }
        }
        Ok(g)
    }

    /// The weights as tap-major columns `[k·k, C, O]` and the bias (zeros when absent).
    pub(crate) fn columns(&self, g: &Geom) -> (Vec<f32>, Vec<f32>) {
        let patch = g.patch();
        let mut wt = vec![0.0f32; patch * g.o];
        let taps = g.k * g.k;
        for (oc, row) in self.w.chunks_exact(patch).enumerate() {
            for (r, &v) in row.iter().enumerate() {
                let (c, tap) = (r / taps, r % taps);
                wt[(tap * g.c + c) * g.o + oc] = v;
            }
        }
        let bias = self.bias.map_or_else(|| vec![0.0; g.o], <[f32]>::to_vec);
        (wt, bias)
    }

    /// Runs the block from a zero membrane: writes the pooled spikes (`[T, B, O, PH, PW]`) and
    /// returns the number of spikes before pooling (of `T·B·O·OH·OW` neurons-steps).
    pub fn forward(&self, out: &mut [f32]) -> Result<u64, String> {
        self.forward_saving(out, None)
    }

    /// Values of the membrane trajectory [`ConvLifPool::forward_saving`] can keep:
    /// `B·T·OH·OW·O`.
    pub fn trajectory_len(&self) -> Result<usize, String> {
        let g = self.geom()?;
        Ok(g.batch * g.steps * g.neurons())
    }

    /// [`ConvLifPool::forward`], also writing the membrane trajectory into `save` (of
    /// [`ConvLifPool::trajectory_len`] values, in an internal layout) when given, so that
    /// [`ConvLifPool::backward_saved`] need not recompute it.
    pub fn forward_saving(&self, out: &mut [f32], save: Option<&mut [f32]>) -> Result<u64, String> {
        let g = self.geom()?;
        let save = match save {
            Some(s) if s.len() == g.batch * g.steps * g.neurons() => {
                Some(Frames::new(s, g.steps * g.neurons()))
            }
            Some(_) => return Err("conv-lif-pool: trajectory buffer has the wrong size".into()),
            None => None,
        };
        let frame = g.pooled();
        if out.len() != g.steps * g.batch * frame {
            return Err(format!(
                "conv-lif-pool: output holds {} values, expected {}",
                out.len(),
                g.steps * g.batch * frame
            ));
        }
        let (wt, bias) = self.columns(&g);
        let dst = Frames::new(out, frame);
        let total = std::sync::atomic::AtomicU64::new(0);
        par::for_ranges(g.batch, 1, 1, |samples| {
            let np = g.neurons();
            let mut buf = take_scratch(np);
            let mem = &mut buf[..np];
            let mut count = 0;
            for b in samples {
                // this worker owns the samples of `samples` (disjoint frames)
                count += forward_sample(&g, self.x, &wt, &bias, b, mem, dst, save);
            }
            put_scratch(buf);
            total.fetch_add(count, std::sync::atomic::Ordering::Relaxed);
        });
        Ok(total.into_inner())
    }

    /// Gradients of [`ConvLifPool::forward`]'s pooled spikes from their gradient `grad`
    /// (`[T, B, O, PH, PW]`), with the spike's surrogate derivative.
    pub fn backward(
        &self,
        surrogate: Surrogate,
        grad: &[f32],
        grads: BlockGrads<'_>,
    ) -> Result<(), String> {
        self.backward_saved(surrogate, grad, grads, None)
    }

    /// [`ConvLifPool::backward`] from the trajectory `saved` by
    /// [`ConvLifPool::forward_saving`] (overwritten), or recomputing it when `None`.
    pub fn backward_saved(
        &self,
        surrogate: Surrogate,
        grad: &[f32],
        grads: BlockGrads<'_>,
        saved: Option<&mut [f32]>,
    ) -> Result<(), String> {
        let g = self.geom()?;
        let saved = match saved {
            Some(s) if s.len() == g.batch * g.steps * g.neurons() => {
                Some(Frames::new(s, g.steps * g.neurons()))
            }
            Some(_) => return Err("conv-lif-pool backward: wrong trajectory size".into()),
            None => None,
        };
        if grad.len() != g.steps * g.batch * g.pooled() {
            return Err(format!(
                "conv-lif-pool backward: gradient holds {} values, expected {}",
                grad.len(),
                g.steps * g.batch * g.pooled()
            ));
        }
        if grads.dw.len() != self.w.len() {
            return Err("conv-lif-pool backward: dw must match w".to_string());
        }
        if let Some(db) = grads.db.as_deref() {
            if db.len() != g.o {
                return Err("conv-lif-pool backward: db must hold O values".to_string());
            }
        }
        let dx = match grads.dx {
            Some(dx) if dx.len() == self.x.len() => Some(Frames::new(dx, g.img())),
            Some(_) => return Err("conv-lif-pool backward: dx must match x".to_string()),
            None => None,
        };
        let (wt, bias) = self.columns(&g);
        let (patch, o) = (g.patch(), g.o);
        let part_len = patch * o + o;
        let groups = par::ranges(g.batch, GROUPS.min(g.batch), 1);
        let parts: Vec<Vec<f32>> = groups
            .into_par_iter()
            .map(|samples| {
                let mut part = vec![0.0f32; part_len];
                let (dwt, db) = part.split_at_mut(patch * o);
                let ctx = backward::Ctx {
                    g: &g,
                    x: self.x,
                    wt: &wt,
                    bias: &bias,
                    grad,
                    dx,
                    saved,
                };
                for b in samples {
                    // this group owns the samples of `samples` (disjoint frames of dx)
                    backward::sample(&ctx, surrogate, b, dwt, db)?;
                }
                Ok(part)
            })
            .collect::<Result<_, String>>()?;
        let mut sum = vec![0.0f32; part_len];
        for part in &parts {
            for (s, v) in sum.iter_mut().zip(part) {
                *s += *v;
            }
        }
        for (r, row) in sum[..patch * o].chunks_exact(o).enumerate() {
            for (oc, &v) in row.iter().enumerate() {
                grads.dw[oc * patch + r] = v;
            }
        }
        if let Some(db) = grads.db {
            db.copy_from_slice(&sum[patch * o..]);
        }
        Ok(())
    }
}

/// A time-first `[T, B, frame]` buffer whose per-sample frames workers write in disjoint sets.
#[derive(Clone, Copy)]
pub(crate) struct Frames {
    ptr: *mut f32,
    len: usize,
    frame: usize,
}

// SAFETY: workers only form slices of frames of their own samples (see `frame`).
unsafe impl Send for Frames {}
// SAFETY: as above.
unsafe impl Sync for Frames {}

impl Frames {
    fn new(buf: &mut [f32], frame: usize) -> Self {
        Frames {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            frame,
        }
    }

    /// Frame `i` (`t·B + b`).
    ///
    /// # Safety
    /// No other live slice may overlap the frame (callers own disjoint samples).
    #[inline(always)]
    pub(crate) unsafe fn frame<'b>(self, i: usize) -> &'b mut [f32] {
        debug_assert!((i + 1) * self.frame <= self.len);
        std::slice::from_raw_parts_mut(self.ptr.add(i * self.frame), self.frame)
    }
}

/// Max-pools the spikes of a position-major membrane frame `[OH·OW, O]` into `out`
/// `[O, PH, PW]` (through `pooled`, `[PH·PW, O]`).
#[inline(always)]
fn pool_frame(g: &Geom, mem: &[f32], pooled: &mut [f32], out: &mut [f32]) {
    let (o, p, windows) = (g.o, g.pool, g.ph * g.pw);
    for (at, win) in pooled.chunks_exact_mut(o).enumerate() {
        let (wi, wj) = (at / g.pw, at % g.pw);
        win.fill(0.0);
        for di in 0..p {
            for dj in 0..p {
                let pos = (wi * p + di) * g.ow + wj * p + dj;
                for (m, &u) in win.iter_mut().zip(&mem[pos * o..(pos + 1) * o]) {
                    *m = m.max(heaviside(u - g.thr));
                }
            }
        }
    }
    // written in output order (the output is fresh memory: scattered stores miss)
    for (oc, orow) in out.chunks_exact_mut(windows).enumerate() {
        for (d, src) in orow.iter_mut().zip(pooled.chunks_exact(o)) {
            *d = src[oc];
        }
    }
}

/// `dst` `[cols, rows]` = the transpose of `src` `[rows, cols]`.
#[inline(always)]
pub(crate) fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    for (r, row) in src.chunks_exact(cols).take(rows).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            dst[c * rows + r] = v;
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn forward_sample_impl(
    g: &Geom,
    x: &[f32],
    wt: &[f32],
    bias: &[f32],
    b: usize,
    mem: &mut [f32],
    out: Frames,
    save: Option<Frames>,
) -> u64 {
    let (img, np) = (g.img(), g.neurons());
    let mut pooled = vec![0.0f32; g.pooled()];
    let (mut act, mut cur) = (Active::default(), Vec::new());
    mem.fill(0.0);
    // SAFETY: the caller owns sample `b`, so its trajectory is this call's alone.
    let mut traj = save.map(|s| unsafe { s.frame(b) });
    let mut count = 0u64;
    for t in 0..g.steps {
        let i = t * g.batch + b;
        act.build(g, &x[i * img..(i + 1) * img]);
        let u: &[f32] = match traj.as_deref_mut() {
            Some(traj) => {
                let (done, rest) = traj.split_at_mut(t * np);
                let prev = if t > 0 { &done[(t - 1) * np..] } else { &*mem };
                let u = &mut rest[..np];
                count += integrate(g, &act, wt, bias, Some(prev), u, &mut cur) as u64;
                u
            }
            None => {
                count += integrate(g, &act, wt, bias, None, mem, &mut cur) as u64;
                mem
            }
        };
        // SAFETY: the caller owns sample `b`, so frame `i` is this call's alone.
        pool_frame(g, u, &mut pooled, unsafe { out.frame(i) });
    }
    count
}

dispatch!(
    /// Runs sample `b` (the caller owns its frames of `out`); returns its spike count.
    fn forward_sample(g: &Geom, x: &[f32], wt: &[f32], bias: &[f32], b: usize, mem: &mut [f32], out: Frames, save: Option<Frames>) -> u64 => forward_sample_impl
);

/// Calls `f` with the monomorphised surrogate (a macro so each arm stays in the AVX2 build).
macro_rules! with_surrogate {
    ($sg:expr, |$s:ident| $body:expr) => {
        match $sg {
            Surrogate::Atan { alpha } => {
                let $s = crate::surrogate::Atan::new(alpha);
                $body
            }
            Surrogate::FastSigmoid { slope } => {
                let $s = crate::surrogate::FastSigmoid::new(slope);
                $body
            }
            Surrogate::Triangle { width } => {
                let $s = crate::surrogate::Triangle::new(width);
                $body
            }
            Surrogate::StraightThrough => {
                let $s = crate::surrogate::StraightThrough;
                $body
            }
        }
    };
}
pub(crate) use with_surrogate;

/// `dst = a·b` on the calling thread.
pub(crate) fn product(
    dst: &mut [f32],
    ld: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
) -> Result<(), String> {
    sgemm(dst, ld, a, b, false, false)
}

#[cfg(test)]
#[path = "spike_conv_tests.rs"]
mod tests;
