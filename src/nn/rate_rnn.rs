//! Tanh rate RNN (GradientFlossing's network): `x_t = J tanh(x_{t-1}) + b + W_s s_t / S`,
//! readout `r_t = w_r x_t + o`, with a learnable, relaxed initial state `x_0`.

use candle_core::{Result, Tensor, Var};
use candle_nn::Init;

use super::network::{BuildCtx, Network};
use super::neuron::{spike, surrogate_derivative};
use super::probe::Probe;
use super::Ops;
use crate::config::{RateActivation, RateRnnConfig};
use crate::dynamics::{Dynamics, DynamicsOptions};

/// Parameters: `j` `[N, N]`, `w_s` `[N, S]`, `b` `[N]`, `w_r` `[R, N]`, `o` `[R]`, `x0` `[N]`.
#[derive(Debug, Clone)]
pub struct RateRnn {
    j: Tensor,
    w_s: Tensor,
    b: Tensor,
    w_r: Tensor,
    o: Tensor,
    x0: Tensor,
    /// Input channels `S` (the drive is divided by it).
    channels: usize,
    /// The rate function `φ`.
    activation: RateActivation,
    /// The execution policy (the fused recurrence where it runs).
    ops: Ops,
}

impl RateRnn {
    /// Creates the parameters (see [`RateRnnConfig`] for the init) and relaxes `x_0`.
    pub fn new(cfg: &RateRnnConfig, ctx: &BuildCtx) -> crate::Result<Self> {
        let (channels, _) = ctx.sequence_shape("rate_rnn")?;
        let n = cfg.hidden;
        if n == 0 {
            return Err(crate::Error::invalid(
                "model.hidden",
                "0 units; use at least 1",
            ));
        }
        let vb = ctx.vb();
        let normal = |std: f64| Init::Randn {
            mean: 0.0,
            stdev: std,
        };
        let j = vb.get_with_hints((n, n), "j", normal(cfg.gain / (n as f64).sqrt()))?;
        let w_s = vb.get_with_hints((n, channels), "w_s", normal(1.0))?;
        let b = vb.get_with_hints(
            n,
            "b",
            Init::Uniform {
                lo: 0.0,
                up: cfg.bias_max,
            },
        )?;
        let w_r = vb.get_with_hints((ctx.outputs, n), "w_r", normal(1.0))?;
        let o = vb.get_with_hints(ctx.outputs, "o", Init::Const(0.001))?;
        let drawn = if cfg.learn_initial_state {
            vb.get_with_hints(n, "x0", normal(1.0))?
        } else {
            let values = super::init::draw(normal(1.0), &n.into(), ctx.vars.seed(), "x0")?;
            Tensor::from_vec(values, n, &ctx.device)?
        };
        let mut x = drawn.unsqueeze(0)?;
        for _ in 0..cfg.relax_steps {
            x = phi(&x, cfg.activation)?
                .matmul(&j.t()?)?
                .broadcast_add(&b)?;
        }
        let relaxed = x.squeeze(0)?.detach();
        let x0 = if cfg.learn_initial_state {
            let var: Var = ctx.vars.var("x0")?;
            var.set(&relaxed)?;
            var.as_tensor().clone()
        } else {
            relaxed
        };
        Ok(RateRnn {
            j,
            w_s,
            b,
            w_r,
            o,
            x0,
            channels,
            activation: cfg.activation,
            ops: ctx.ops,
        })
    }

    /// The recurrent matrix `J` `[N, N]`.
    pub fn recurrent_matrix(&self) -> &Tensor {
        &self.j
    }

    /// The states `x_1 .. x_T` from `x_0` under the drive `s`.
    ///
    /// # Shapes
    /// `s`: `[T, B, S]` -> `[T, B, N]`.
    pub fn states(&self, s: &Tensor) -> Result<Tensor> {
        let (t_len, batch, ch) = s.dims3()?;
        let n = self.j.dim(0)?;
        let drive = s
            .reshape((t_len * batch, ch))?
            .matmul(&(self.w_s.t()? / self.channels as f64)?)?
            .broadcast_add(&self.b)?
            .reshape((t_len, batch, n))?;
        if self.ops.fuses(&drive) && self.activation == RateActivation::Tanh {
            return super::fused::tanh_rnn(&drive, &self.j, &self.x0);
        }
        let j_t = self.j.t()?;
        let mut x = self
            .x0
            .unsqueeze(0)?
            .broadcast_as((batch, n))?
            .contiguous()?;
        let mut states = Vec::with_capacity(t_len);
        for t in 0..t_len {
            x = (phi(&x, self.activation)?.matmul(&j_t)? + drive.get(t)?)?;
            states.push(x.clone());
        }
        Tensor::stack(&states, 0)
    }
}

/// `φ(x)`: tanh, or the binary step with its surrogate gradient.
fn phi(x: &Tensor, activation: RateActivation) -> Result<Tensor> {
    match activation {
        RateActivation::Tanh => x.tanh(),
        RateActivation::Binary { surrogate } => spike(x, surrogate),
    }
}

/// `φ'(x)` with its own gradient kept: `1 - tanh²(x)`, or the surrogate `S'(x)`.
fn phi_prime(x: &Tensor, activation: RateActivation) -> Result<Tensor> {
    match activation {
        RateActivation::Tanh => x.tanh()?.sqr()?.affine(-1.0, 1.0),
        RateActivation::Binary { surrogate } => surrogate_derivative(x, surrogate),
    }
}

/// [`RateRnn`] as a dynamical system on the pre-activation `x`; tangents follow upstream's
/// `D_t = diag(φ'(x_t))·J`, the Jacobian of `h_t = φ(x_t)` (the same exponents as `x`'s).
struct RateDynamics<'a> {
    /// The network whose parameters receive the gradients.
    net: &'a RateRnn,
    /// The same network with every parameter cast to the dynamics' dtype.
    cast: RateRnn,
}

impl Dynamics for RateDynamics<'_> {
    fn state_size(&self) -> usize {
        self.cast.x0.elem_count()
    }

    fn initial_state(&self) -> Result<Tensor> {
        self.cast.x0.unsqueeze(0)
    }

    fn drive(&self, input: &Tensor) -> Result<Tensor> {
        let (t_len, batch, ch) = input.dims3()?;
        input
            .to_dtype(self.cast.j.dtype())?
            .reshape((t_len * batch, ch))?
            .matmul(&(self.cast.w_s.t()? / self.cast.channels as f64)?)?
            .broadcast_add(&self.cast.b)?
            .reshape((t_len, batch, ()))
    }

    fn step(&self, state: &Tensor, drive: &Tensor) -> Result<Tensor> {
        phi(state, self.cast.activation)?.matmul(&self.cast.j.t()?)? + drive
    }

    fn tangent(
        &self,
        _prev: &Tensor,
        next: &Tensor,
        _drive: &Tensor,
        q: &Tensor,
    ) -> Result<Tensor> {
        let d = phi_prime(next, self.cast.activation)?.t()?;
        self.cast.j.matmul(q)?.broadcast_mul(&d)
    }

    fn readout(&self, states: &Tensor) -> Result<Tensor> {
        let (t_len, batch, n) = states.dims3()?;
        states
            .reshape((t_len * batch, n))?
            .matmul(&self.cast.w_r.t()?)?
            .broadcast_add(&self.cast.o)?
            .reshape((t_len, batch, ()))
    }

    fn recurrent_weight(&self) -> Option<Tensor> {
        Some(self.net.j.clone())
    }
}

impl Network for RateRnn {
    fn dynamics(&self, opts: &DynamicsOptions) -> Option<crate::Result<Box<dyn Dynamics + '_>>> {
        let cast = |t: &Tensor| t.to_dtype(opts.dtype);
        let built = (|| -> Result<RateDynamics<'_>> {
            Ok(RateDynamics {
                net: self,
                cast: RateRnn {
                    j: cast(&self.j)?,
                    w_s: cast(&self.w_s)?,
                    b: cast(&self.b)?,
                    w_r: cast(&self.w_r)?,
                    o: cast(&self.o)?,
                    x0: cast(&self.x0)?,
                    ..self.clone()
                },
            })
        })();
        Some(
            built
                .map(|d| Box::new(d) as Box<dyn Dynamics + '_>)
                .map_err(Into::into),
        )
    }

    /// # Shapes
    /// `input`: `[T, B, S]` -> readout `[T, B, R]`.
    fn forward_probed(&self, input: &Tensor, _probe: &mut dyn Probe) -> Result<Tensor> {
        let x = self.states(input)?;
        let (t_len, batch, n) = x.dims3()?;
        x.reshape((t_len * batch, n))?
            .matmul(&self.w_r.t()?)?
            .broadcast_add(&self.o)?
            .reshape((t_len, batch, ()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{InputShape, StepLabelling};
    use crate::nn::SeededVarMap;
    use candle_core::{DType, Device};

    fn net(ops: Ops, vars: &SeededVarMap) -> crate::Result<RateRnn> {
        let cfg: RateRnnConfig = crate::config::from_yaml_str("{hidden: 6, gain: 1.5}")?;
        let ctx = BuildCtx {
            input: InputShape::Sequence {
                channels: 2,
                steps: 7,
            },
            outputs: 1,
            task: std::sync::Arc::new(StepLabelling { scored_from: 2 }),
            ops,
            device: Device::Cpu,
            vars,
        };
        RateRnn::new(&cfg, &ctx)
    }

    /// The fused recurrence gives the plain loop's outputs and gradients.
    #[test]
    fn fused_and_plain_paths_agree() -> crate::Result<()> {
        let s = Tensor::randn(0f32, 1.0, (7, 3, 2), &Device::Cpu)?;
        let y = Tensor::randn(0f32, 1.0, (7, 3, 1), &Device::Cpu)?
            .ge(0.0)?
            .to_dtype(DType::F32)?;
        let task = StepLabelling { scored_from: 2 };
        let mut results = Vec::new();
        for ops in [Ops::Fused, Ops::Plain] {
            let vars = SeededVarMap::new(4);
            let rnn = net(ops, &vars)?;
            let step = rnn.train_step(&s, &y, &task, 0)?;
            let mut grads = Vec::new();
            for (name, var) in vars.named_vars()? {
                let g = step
                    .grads
                    .get(var.as_tensor())
                    .map(|g| g.flatten_all()?.to_vec1::<f32>())
                    .transpose()?;
                grads.push((name, g));
            }
            results.push((
                step.loss,
                step.output.flatten_all()?.to_vec1::<f32>()?,
                grads,
            ));
        }
        let (fused, plain) = (&results[0], &results[1]);
        assert!(
            (fused.0 - plain.0).abs() < 1e-5,
            "{} vs {}",
            fused.0,
            plain.0
        );
        for (a, b) in fused.1.iter().zip(&plain.1) {
            assert!((a - b).abs() < 1e-5, "output {a} vs {b}");
        }
        for ((name, a), (_, b)) in fused.2.iter().zip(&plain.2) {
            let (a, b) = (
                a.as_ref().expect("fused grad"),
                b.as_ref().expect("plain grad"),
            );
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() < 1e-5 * (1.0 + y.abs()), "{name}: {x} vs {y}");
            }
        }
        Ok(())
    }
}
