//! Leaky integrate-and-fire over all time steps in one op (forward and backward scans).

use autoresearch_kernels::lif::{self as kernel, Lif, LifGrads};
use autoresearch_kernels::surrogate::Surrogate as KernelSurrogate;
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::linear::{check_cpu_f32, kernel_err, read, slice, tensor};
use crate::config::{Reset, Surrogate};

/// Which sequence the fused LIF op returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifOutput {
    /// The spikes `S[t]`.
    Spikes,
    /// The membrane `U[t]` (after integration, before the next step's reset).
    Membrane,
}

/// The fixed choices of a fused LIF scan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LifSpec {
    /// Reset mechanism.
    pub reset: Reset,
    /// Surrogate gradient of the spike.
    pub surrogate: Surrogate,
    /// What the op returns.
    pub output: LifOutput,
}

impl LifSpec {
    /// The kernel's reset.
    pub(super) fn reset(&self) -> kernel::Reset {
        match self.reset {
            Reset::Subtract => kernel::Reset::Subtract,
            Reset::Zero => kernel::Reset::Zero,
            Reset::None => kernel::Reset::None,
        }
    }

    /// The kernel's surrogate.
    pub(super) fn surrogate(&self) -> KernelSurrogate {
        match self.surrogate {
            Surrogate::Atan { alpha } => KernelSurrogate::Atan {
                alpha: alpha as f32,
            },
            Surrogate::FastSigmoid { slope } => KernelSurrogate::FastSigmoid {
                slope: slope as f32,
            },
            Surrogate::Triangle { width } => KernelSurrogate::Triangle {
                width: width as f32,
            },
            Surrogate::StraightThrough => KernelSurrogate::StraightThrough,
        }
    }

    fn output(&self) -> kernel::Output {
        match self.output {
            LifOutput::Spikes => kernel::Output::Spikes,
            LifOutput::Membrane => kernel::Output::Membrane,
        }
    }
}

const OP: &str = "fused lif";

/// The op: `steps` and `neurons` (N) fixed at construction.
struct LifOp {
    spec: LifSpec,
    steps: usize,
    neurons: usize,
}

impl LifOp {
    fn kernel<'a>(&self, current: &'a [f32], beta: &'a [f32], threshold: &'a [f32]) -> Lif<'a> {
        Lif {
            current,
            steps: self.steps,
            neurons: self.neurons,
            beta,
            threshold,
            reset: self.spec.reset(),
        }
    }
}

impl CustomOp3 for LifOp {
    fn name(&self) -> &'static str {
        "fused-lif"
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
        let current = slice(s1, l1, OP)?;
        let lif = self.kernel(current, slice(s2, l2, OP)?, slice(s3, l3, OP)?);
        let mut out = vec![0.0f32; current.len()];
        lif.forward(self.spec.output(), &mut out)
            .map_err(kernel_err)?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        current: &Tensor,
        beta: &Tensor,
        threshold: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = "fused lif backward";
        let mut g_cur = vec![0.0f32; current.elem_count()];
        let mut g_beta = beta.track_op().then(|| vec![0.0f32; beta.elem_count()]);
        let mut g_thr = threshold
            .track_op()
            .then(|| vec![0.0f32; threshold.elem_count()]);
        read(grad, op, |g| {
            read(current, op, |c| {
                read(beta, op, |b| {
                    read(threshold, op, |th| {
                        let grads = LifGrads {
                            current: &mut g_cur,
                            beta: g_beta.as_deref_mut(),
                            threshold: g_thr.as_deref_mut(),
                        };
                        self.kernel(c, b, th)
                            .backward(self.spec.surrogate(), self.spec.output(), g, grads)
                            .map_err(kernel_err)
                    })
                })
            })
        })?;
        Ok((
            current
                .track_op()
                .then(|| tensor(g_cur, current.shape()))
                .transpose()?,
            g_beta.map(|v| tensor(v, beta.shape())).transpose()?,
            g_thr.map(|v| tensor(v, threshold.shape())).transpose()?,
        ))
    }
}

/// Runs a Leaky layer over time from a zero membrane:
/// `R[t] = H(U[t-1] - θ)` (detached), `U[t] = β·U[t-1] + I[t] - R[t]·θ` (subtract; zero reset:
/// `β·(1 - R[t])·U[t-1] + I[t]`; none: `β·U[t-1] + I[t]`), `S[t] = H(U[t] - θ)` with the
/// surrogate derivative at `U[t] - θ` in the backward pass; β is clamped to [0, 1].
///
/// The forward pass performs the same `f32` operations in the same order as
/// [`crate::nn::neuron::leaky_step`], so spikes and membranes are bit-identical to the plain
/// path; the backward pass recomputes the membrane and returns the gradients of `current` and,
/// when they are tracked, of `beta` (zero where the clamp is active, halved at exactly 0 or 1
/// like candle's `clamp`) and `threshold`.
///
/// # Shapes
/// `current`: `[T, B, ...]`; `beta`, `threshold`: `[1]` or `[N]` with `N` the product of the
/// dims after `B` -> `[T, B, ...]`.
pub fn lif(current: &Tensor, beta: &Tensor, threshold: &Tensor, spec: LifSpec) -> Result<Tensor> {
    check_cpu_f32(current, OP, "current")?;
    check_cpu_f32(beta, OP, "beta")?;
    check_cpu_f32(threshold, OP, "threshold")?;
    let dims = current.dims();
    if dims.len() < 2 || current.elem_count() == 0 {
        bail!("{OP}: current must be a non-empty [T, B, ...], got {dims:?}");
    }
    let neurons: usize = dims[2..].iter().product();
    for (name, p) in [("beta", beta), ("threshold", threshold)] {
        if p.elem_count() != 1 && p.elem_count() != neurons {
            bail!(
                "{OP}: {name} {:?} must hold 1 or {neurons} values for current {dims:?}",
                p.dims()
            );
        }
    }
    let op = LifOp {
        spec,
        steps: dims[0],
        neurons,
    };
    current
        .contiguous()?
        .apply_op3(&beta.contiguous()?, &threshold.contiguous()?, op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::neuron::{Leaky, LeakyParams, NeuronDynamics};
    use crate::nn::Ops;
    use candle_core::{Device, Var};

    /// Deterministic values in `[lo, lo + span)`, multiples of 1/1024.
    fn values(n: usize, seed: u64, lo: f32, span: f32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let r = autoresearch_kernels::encode::random_bits(seed, i as u64) >> 40;
                lo + ((r as f32 / (1u64 << 24) as f32) * span * 1024.0).floor() / 1024.0
            })
            .collect()
    }

    fn max_rel_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        let scale = b.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
        Ok((a - b)?.abs()?.max_all()?.to_scalar::<f32>()? / scale)
    }

    /// The gradient of `v`; none at all (θ of a membrane output without subtract reset does not
    /// reach the loss, and autograd then leaves it out) counts as zeros.
    fn grad(grads: &candle_core::backprop::GradStore, v: &Var) -> Result<Tensor> {
        match grads.get(v) {
            Some(g) => Ok(g.clone()),
            None => v.zeros_like(),
        }
    }

    #[test]
    fn forward_is_bit_identical_and_gradients_match_autograd_through_the_plain_scan() -> Result<()>
    {
        let dev = Device::Cpu;
        let (steps, batch, neurons) = (11, 3, 37);
        let surrogates = [
            Surrogate::Atan { alpha: 2.0 },
            Surrogate::FastSigmoid { slope: 25.0 },
            Surrogate::Triangle { width: 0.5 },
            Surrogate::StraightThrough,
        ];
        let current = Var::from_vec(
            values(steps * batch * neurons, 1, -0.4, 1.4),
            (steps, batch, neurons),
            &dev,
        )?;
        let weight = Tensor::from_vec(
            values(steps * batch * neurons, 2, -1.0, 2.0),
            (steps, batch, neurons),
            &dev,
        )?;
        // per-neuron β with some values above 1 (clamped) and one exactly 1, per-neuron θ
        let mut b = values(neurons, 3, 0.5, 0.7);
        b[0] = 1.0;
        let params = [
            (
                Var::from_vec(b, neurons, &dev)?,
                Var::from_vec(values(neurons, 4, 0.25, 1.0), neurons, &dev)?,
            ),
            (Var::new(0.875f32, &dev)?, Var::new(0.75f32, &dev)?),
        ];
        for reset in [Reset::Subtract, Reset::Zero, Reset::None] {
            for (beta, thr) in &params {
                for (i, surrogate) in surrogates.iter().enumerate() {
                    let output = if i % 2 == 0 {
                        LifOutput::Spikes
                    } else {
                        LifOutput::Membrane
                    };
                    let what = format!("{reset:?} {surrogate:?} {output:?} beta {:?}", beta.dims());
                    let plain = Leaky::new(LeakyParams {
                        beta: beta.as_tensor().clone(),
                        threshold: thr.as_tensor().clone(),
                        reset,
                        surrogate: *surrogate,
                    });
                    let (s, m) = plain.scan_zero(current.as_tensor())?;
                    let want = if output == LifOutput::Spikes { s } else { m };
                    let spec = LifSpec {
                        reset,
                        surrogate: *surrogate,
                        output,
                    };
                    let got = lif(
                        current.as_tensor(),
                        &beta.flatten_all()?,
                        &thr.flatten_all()?,
                        spec,
                    )?;
                    let (gv, wv) = (
                        got.flatten_all()?.to_vec1::<f32>()?,
                        want.flatten_all()?.to_vec1::<f32>()?,
                    );
                    assert!(
                        gv.iter().zip(&wv).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "forward {what}"
                    );
                    let gg = (got * &weight)?.sum_all()?.backward()?;
                    let gw = (want * &weight)?.sum_all()?.backward()?;
                    for (v, name) in [(&current, "current"), (beta, "beta"), (thr, "threshold")] {
                        let d = max_rel_diff(&grad(&gg, v)?, &grad(&gw, v)?)?;
                        assert!(d < 1e-5, "{name} gradient {what}: {d}");
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn fixed_parameters_get_no_gradient_and_layers_of_any_rank_work() -> Result<()> {
        let dev = Device::Cpu;
        let (steps, batch) = (6, 2);
        let shape = (steps, batch, 3, 4, 5);
        let current = Var::from_vec(values(steps * batch * 60, 5, -0.2, 1.0), shape, &dev)?;
        let beta = Tensor::new(0.9f32, &dev)?;
        let thr = Var::from_vec(values(60, 6, 0.5, 0.5), (3, 4, 5), &dev)?;
        let layer = Leaky::new(LeakyParams {
            beta,
            threshold: thr.as_tensor().clone(),
            reset: Reset::Subtract,
            surrogate: Surrogate::default(),
        });
        let want = layer.forward(Ops::Plain, current.as_tensor())?;
        let got = layer.forward(Ops::Fused, current.as_tensor())?;
        assert_eq!(got.dims(), want.dims());
        assert_eq!(
            got.flatten_all()?.to_vec1::<f32>()?,
            want.flatten_all()?.to_vec1::<f32>()?
        );
        let gg = got.sum_all()?.backward()?;
        let gw = want.sum_all()?.backward()?;
        for (v, name) in [(&current, "current"), (&thr, "threshold")] {
            assert!(
                max_rel_diff(&grad(&gg, v)?, &grad(&gw, v)?)? < 1e-5,
                "{name}"
            );
        }
        Ok(())
    }

    #[test]
    fn wrong_shapes_and_dtypes_are_errors() -> Result<()> {
        let dev = Device::Cpu;
        let spec = LifSpec {
            reset: Reset::Subtract,
            surrogate: Surrogate::default(),
            output: LifOutput::Spikes,
        };
        let current = Tensor::zeros((4, 2, 5), candle_core::DType::F32, &dev)?;
        let one = Tensor::new(&[1.0f32], &dev)?;
        assert!(lif(
            &current,
            &Tensor::zeros(3, candle_core::DType::F32, &dev)?,
            &one,
            spec
        )
        .is_err());
        assert!(lif(
            &current.to_dtype(candle_core::DType::F64)?,
            &one,
            &one,
            spec
        )
        .is_err());
        assert!(lif(
            &Tensor::zeros(4, candle_core::DType::F32, &dev)?,
            &one,
            &one,
            spec
        )
        .is_err());
        assert!(lif(&current, &one, &one, spec).is_ok());
        Ok(())
    }
}
