//! A spiking conv block (convolution -> Leaky -> max pooling over all time steps) as one op,
//! so the full-size current, membrane and spike tensors of the block never exist.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use autoresearch_kernels::conv::ConvDims;
use autoresearch_kernels::spike_conv::{BlockGrads, ConvLifPool};
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::lif::LifSpec;
use super::linear::{check_cpu_f32, keep_freed_memory, kernel_err, read, slice, tensor};

const OP: &str = "fused conv-lif-pool";

/// The fixed choices of a spiking conv block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConvLifPoolSpec {
    /// Zero padding of the convolution (stride 1).
    pub padding: usize,
    /// Side of the non-overlapping max-pool window (1: none).
    pub pool: usize,
    /// Decay β of the Leaky neurons (clamped to [0, 1]).
    pub beta: f32,
    /// Threshold θ.
    pub threshold: f32,
    /// Reset and surrogate (`output` is ignored: the block returns spikes).
    pub lif: LifSpec,
}

/// The block's pooled spikes and the spike count before pooling.
#[derive(Debug, Clone)]
pub struct ConvLifPoolOutput {
    /// Pooled spikes `[T, B, O, OH/p, OW/p]`, differentiable.
    pub spikes: Tensor,
    /// Number of spikes of the Leaky layer (before pooling).
    pub fired: u64,
    /// Number of neuron-steps of the Leaky layer `T·B·O·OH·OW`.
    pub neuron_steps: usize,
}

/// Largest membrane trajectory (in values) the forward pass keeps for the backward pass
/// (128 MB; larger blocks recompute it sample by sample).
const SAVE_LIMIT: usize = 32 << 20;

/// A trajectory buffer kept from one batch to the next (a fresh allocation this large is
/// mapped anew and faults in every page).
static SPARE: Mutex<Vec<f32>> = Mutex::new(Vec::new());

/// A buffer of `len` values (contents arbitrary), the spare one if there is one.
fn take_buffer(len: usize) -> Vec<f32> {
    let mut buf = SPARE
        .lock()
        .map(|mut s| std::mem::take(&mut *s))
        .unwrap_or_default();
    buf.resize(len, 0.0);
    buf
}

/// Keeps `buf` as the spare buffer if it is the largest seen.
fn give_back(buf: Vec<f32>) {
    if let Ok(mut spare) = SPARE.lock() {
        if buf.capacity() > spare.capacity() {
            *spare = buf;
        }
    }
}

struct Op {
    spec: ConvLifPoolSpec,
    steps: usize,
    dims: ConvDims,
    fired: Arc<AtomicU64>,
    /// Whether the forward pass keeps the trajectory (a backward pass may follow).
    save: bool,
    saved: Mutex<Option<Vec<f32>>>,
}

impl Op {
    fn block<'a>(&self, x: &'a [f32], w: &'a [f32], b: &'a [f32]) -> ConvLifPool<'a> {
        ConvLifPool {
            x,
            steps: self.steps,
            conv: self.dims,
            w,
            bias: Some(b),
            pool: self.spec.pool,
            beta: self.spec.beta,
            threshold: self.spec.threshold,
            reset: self.spec.lif.reset(),
        }
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        if let Some(buf) = self.saved.get_mut().ok().and_then(Option::take) {
            give_back(buf);
        }
    }
}

impl CustomOp3 for Op {
    fn name(&self) -> &'static str {
        "fused-conv-lif-pool"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let blk = self.block(slice(s1, l1, OP)?, slice(s2, l2, OP)?, slice(s3, l3, OP)?);
        let (o, ph, pw) = blk.pooled_dims().map_err(kernel_err)?;
        let (t, b) = (self.steps, self.dims.batch);
        let mut out = vec![0.0f32; t * b * o * ph * pw];
        let len = blk.trajectory_len().map_err(kernel_err)?;
        let fired = if self.save && len <= SAVE_LIMIT {
            let mut traj = take_buffer(len);
            let fired = blk
                .forward_saving(&mut out, Some(&mut traj))
                .map_err(kernel_err)?;
            if let Ok(mut slot) = self.saved.lock() {
                *slot = Some(traj);
            }
            fired
        } else {
            blk.forward(&mut out).map_err(kernel_err)?
        };
        self.fired.store(fired, Ordering::Relaxed);
        Ok((CpuStorage::F32(out), Shape::from((t, b, o, ph, pw))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = "fused conv-lif-pool backward";
        let mut dx = x.track_op().then(|| vec![0.0f32; x.elem_count()]);
        let mut dw = vec![0.0f32; w.elem_count()];
        let mut db = b.track_op().then(|| vec![0.0f32; b.elem_count()]);
        // the saved trajectory is overwritten: a second backward pass recomputes it
        let mut saved = self.saved.lock().ok().and_then(|mut s| s.take());
        read(grad, op, |g| {
            read(x, op, |xs| {
                read(w, op, |ws| {
                    read(b, op, |bs| {
                        let grads = BlockGrads {
                            dx: dx.as_deref_mut(),
                            dw: &mut dw,
                            db: db.as_deref_mut(),
                        };
                        self.block(xs, ws, bs)
                            .backward_saved(
                                self.spec.lif.surrogate(),
                                g,
                                grads,
                                saved.as_deref_mut(),
                            )
                            .map_err(kernel_err)
                    })
                })
            })
        })?;
        if let Some(buf) = saved {
            give_back(buf);
        }
        Ok((
            dx.map(|v| tensor(v, x.shape())).transpose()?,
            w.track_op().then(|| tensor(dw, w.shape())).transpose()?,
            db.map(|v| tensor(v, b.shape())).transpose()?,
        ))
    }
}

/// Runs a spiking conv block over all time steps from a zero membrane: `I = conv(x, w) + b`
/// per frame, the Leaky scan of [`super::lif`] with scalar β and θ, then `pool x pool` max
/// pooling of the spikes (gradient to each window's first maximum, like
/// [`crate::nn::pool::max_pool2d`]). When a backward pass may follow, the forward pass keeps
/// the membrane trajectory if it is at most 128 MB; otherwise the backward pass recomputes it
/// sample by sample.
///
/// # Shapes
/// `x`: `[T, B, C, H, W]`, `w`: `[O, C, k, k]`, `b`: `[O]` -> spikes `[T, B, O, OH/p, OW/p]`
/// with `OH = H + 2·padding - k + 1` (likewise `OW`).
pub fn conv_lif_pool(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    spec: ConvLifPoolSpec,
) -> Result<ConvLifPoolOutput> {
    keep_freed_memory();
    check_cpu_f32(x, OP, "x")?;
    check_cpu_f32(w, OP, "w")?;
    let (&[steps, batch, channels, height, width], &[out_channels, wc, kh, kw]) =
        (x.dims(), w.dims())
    else {
        bail!(
            "{OP}: x {:?} must be [T, B, C, H, W] and w {:?} [O, C, k, k]",
            x.dims(),
            w.dims()
        );
    };
    if wc != channels || kh != kw {
        bail!(
            "{OP}: weight {:?} does not fit input {:?}",
            w.dims(),
            x.dims()
        );
    }
    let dims = ConvDims {
        batch,
        channels,
        height,
        width,
        out_channels,
        kernel: kh,
        padding: spec.padding,
    };
    let (oh, ow) = dims.out_hw().map_err(kernel_err)?;
    let bias = match b {
        Some(b) => {
            check_cpu_f32(b, OP, "b")?;
            if b.dims() != [out_channels] {
                bail!("{OP}: bias {:?} for weight {:?}", b.dims(), w.dims());
            }
            b.contiguous()?
        }
        None => Tensor::zeros(out_channels, w.dtype(), w.device())?,
    };
    let fired = Arc::new(AtomicU64::new(0));
    let op = Op {
        spec,
        steps,
        dims,
        fired: fired.clone(),
        save: x.track_op() || w.track_op() || bias.track_op(),
        saved: Mutex::new(None),
    };
    let spikes = x.contiguous()?.apply_op3(&w.contiguous()?, &bias, op)?;
    Ok(ConvLifPoolOutput {
        spikes,
        fired: fired.load(Ordering::Relaxed),
        neuron_steps: steps * batch * out_channels * oh * ow,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Reset, Surrogate};
    use crate::nn::fused::LifOutput;
    use crate::nn::neuron::{constant, Leaky, LeakyParams, NeuronDynamics};
    use candle_core::{DType, Device, Var};

    /// Values in `[lo, lo + span)` on a grid of 1/64 (sums exact in any order).
    fn grid(n: usize, seed: u64, lo: f32, span: f32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let r = autoresearch_kernels::encode::random_bits(seed, i as u64) >> 40;
                lo + ((r as f32 / (1u64 << 24) as f32) * span * 64.0).floor() / 64.0
            })
            .collect()
    }

    #[test]
    fn block_matches_conv_then_plain_leaky_then_pool_with_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let (t, b, c, h, o) = (4, 2, 2, 8, 3);
        for (reset, real) in [(Reset::Subtract, true), (Reset::Zero, false)] {
            let xs = grid(t * b * c * h * h, 1, -0.5, 1.5);
            let xs: Vec<f32> = if real {
                xs
            } else {
                xs.iter()
                    .map(|v| if *v > 0.5 { 1.0 } else { 0.0 })
                    .collect()
            };
            let x = Var::from_vec(xs, (t, b, c, h, h), &dev)?;
            let w = Var::from_vec(grid(o * c * 9, 2, -0.375, 1.0), (o, c, 3, 3), &dev)?;
            let bias = Var::from_vec(grid(o, 3, -0.125, 0.5), o, &dev)?;
            let surrogate = Surrogate::FastSigmoid { slope: 25.0 };
            let spec = ConvLifPoolSpec {
                padding: 1,
                pool: 2,
                beta: 0.875,
                threshold: 0.5,
                lif: LifSpec {
                    reset,
                    surrogate,
                    output: LifOutput::Spikes,
                },
            };
            let got = conv_lif_pool(x.as_tensor(), &w, Some(&bias), spec)?;
            let cur = x
                .reshape((t * b, c, h, h))?
                .conv2d(&w, 1, 1, 1, 1)?
                .broadcast_add(&bias.reshape((1, o, 1, 1))?)?;
            let params = LeakyParams {
                beta: constant(0.875, DType::F32, &dev)?,
                threshold: constant(0.5, DType::F32, &dev)?,
                reset,
                surrogate,
            };
            let leaky = Leaky::new(params);
            let spikes = leaky.scan_zero(&cur.reshape((t, b, o, h, h))?)?.0;
            let fired = spikes.sum_all()?.to_scalar::<f32>()? as u64;
            let want = crate::nn::pool::max_pool2d(&spikes.reshape((t * b, o, h, h))?, 2)?
                .reshape((t, b, o, h / 2, h / 2))?;
            assert_eq!((got.fired, got.neuron_steps), (fired, t * b * o * h * h));
            let (gv, wv) = (
                got.spikes.flatten_all()?.to_vec1::<f32>()?,
                want.flatten_all()?.to_vec1::<f32>()?,
            );
            assert_eq!(gv, wv, "{reset:?}");
            let weight = Tensor::from_vec(grid(gv.len(), 4, -1.0, 2.0), want.shape(), &dev)?;
            let gg = (got.spikes * &weight)?.sum_all()?.backward()?;
            let gw = (want * &weight)?.sum_all()?.backward()?;
            for (v, name) in [(&x, "x"), (&w, "w"), (&bias, "bias")] {
                let (a, e) = match (gg.get(v), gw.get(v)) {
                    (Some(a), Some(e)) => (a.flatten_all()?, e.flatten_all()?),
                    _ => candle_core::bail!("{name}: no gradient"),
                };
                let scale = e.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
                let diff = (a - e)?.abs()?.max_all()?.to_scalar::<f32>()?;
                assert!(
                    diff <= 1e-5 * scale,
                    "{reset:?} {name}: {diff} (scale {scale})"
                );
            }
        }
        Ok(())
    }
}
