//! The recurrent spiking network [`Srnn`] seen as a dynamical system on its membranes (see
//! [`crate::dynamics::Dynamics`]).
//!
//! The state is the membranes `U` of every RLeaky layer, first to last, then of the output
//! Leaky layer; the spikes `S = H(U - θ)` are functions of it, so the previous spikes an RLeaky
//! layer feeds back are rebuilt as `spike(U[t-1] - θ)`. The drive is `fc1` of the encoded
//! input; one step runs every layer once, layer `k + 1` reading layer `k`'s new spikes, exactly
//! as [`Srnn::forward_probed`] does (through [`rleaky_step`] and [`leaky_step`], β clamped to
//! [0, 1], the reset detached). The tangent map is the Jacobian of that step with every spike
//! through its surrogate derivative; the reset's own surrogate derivative is added only when
//! [`DynamicsOptions::reset_in_jacobian`] asks (the forward, hence autograd, detaches it).

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::Linear;

use super::neuron::{
    leaky_step, rleaky_step, spike, surrogate_derivative, Feedback, LeakyParams, LeakyState,
    Neuron, RLeakyState,
};
use super::Srnn;
use crate::config::{Readout, Reset};
use crate::dynamics::{Dynamics, DynamicsOptions};

/// One spiking layer of the system, its parameters cast to the system's dtype.
#[derive(Debug, Clone)]
struct Layer {
    /// The map from the layer below's spikes; `None` for the first layer (its input is the
    /// drive).
    fc: Option<Linear>,
    /// β (clamped to [0, 1]), θ, reset and surrogate.
    params: LeakyParams,
    /// The feedback `V` of an RLeaky layer; `None` for the output Leaky layer.
    feedback: Option<Feedback>,
    /// Neurons `n`.
    n: usize,
}

/// [`Srnn`] as a dynamical system on the membranes of its layers (`lif1 ..` then the output).
///
/// `recurrent_weight` is the first RLeaky layer's all-to-all feedback weight `W` `[N, N]`
/// (none for one-to-one feedback or without recurrent layers).
#[derive(Debug, Clone)]
pub struct SrnnDynamics {
    /// `fc1`, cast: the drive.
    drive_fc: Linear,
    layers: Vec<Layer>,
    readout: Readout,
    reset_in_jacobian: bool,
    dtype: DType,
    /// The first RLeaky layer's own feedback weight.
    recurrent: Option<Tensor>,
}

/// `fc` with its weight and bias cast to `dtype`.
fn cast_linear(fc: &Linear, dtype: DType) -> Result<Linear> {
    let bias = fc.bias().map(|b| b.to_dtype(dtype)).transpose()?;
    Ok(Linear::new(fc.weight().to_dtype(dtype)?, bias))
}

/// `p` cast to `dtype`, β clamped to [0, 1] as the layers clamp it.
fn cast_params(p: &LeakyParams, dtype: DType) -> Result<LeakyParams> {
    Ok(LeakyParams {
        beta: p.beta.to_dtype(dtype)?.clamp(0.0, 1.0)?,
        threshold: p.threshold.to_dtype(dtype)?,
        reset: p.reset,
        surrogate: p.surrogate,
    })
}

/// `fb` cast to `dtype`.
fn cast_feedback(fb: &Feedback, dtype: DType) -> Result<Feedback> {
    match fb {
        Feedback::Linear { weight, bias, .. } => {
            Feedback::linear(&weight.to_dtype(dtype)?, bias.to_dtype(dtype)?)
        }
        Feedback::OneToOne(w) => Ok(Feedback::OneToOne(w.to_dtype(dtype)?)),
    }
}

/// A per-neuron parameter (rank 0 or `[n]`) as something that scales the rows of `[n, K]`.
fn column(p: &Tensor) -> Result<Tensor> {
    if p.rank() == 0 {
        Ok(p.clone())
    } else {
        p.reshape((p.elem_count(), 1))
    }
}

impl Srnn {
    /// This network as a dynamical system under `opts` (see [`SrnnDynamics`]).
    pub fn dynamics(&self, opts: &DynamicsOptions) -> Result<SrnnDynamics> {
        let dtype = opts.dtype;
        let head = self.head();
        let (out_fc, out_params) = match (head.fcs.as_slice(), head.neurons.as_slice()) {
            ([fc], [Neuron::Leaky(lif)]) => (fc, lif.params()),
            _ => candle_core::bail!("srnn dynamics: the output layer must be one Leaky layer"),
        };
        let mut fcs: Vec<&Linear> = self.fcs().iter().collect();
        fcs.push(out_fc);
        let mut layers = Vec::with_capacity(fcs.len());
        for (k, rleaky) in self.layers().iter().enumerate() {
            layers.push(Layer {
                fc: (k > 0).then(|| cast_linear(fcs[k], dtype)).transpose()?,
                params: cast_params(rleaky.params(), dtype)?,
                feedback: Some(cast_feedback(rleaky.feedback(), dtype)?),
                n: fcs[k].weight().dim(0)?,
            });
        }
        let k = layers.len();
        layers.push(Layer {
            fc: (k > 0).then(|| cast_linear(out_fc, dtype)).transpose()?,
            params: cast_params(out_params, dtype)?,
            feedback: None,
            n: out_fc.weight().dim(0)?,
        });
        let recurrent = match self.layers().first().map(|l| l.feedback()) {
            Some(Feedback::Linear { weight, .. }) => Some(weight.clone()),
            _ => None,
        };
        Ok(SrnnDynamics {
            drive_fc: cast_linear(fcs[0], dtype)?,
            layers,
            readout: head.readout,
            reset_in_jacobian: opts.reset_in_jacobian,
            dtype,
            recurrent,
        })
    }
}

impl SrnnDynamics {
    /// Where each layer's membrane starts in the flat state.
    fn offsets(&self) -> impl Iterator<Item = (usize, &Layer)> {
        self.layers.iter().scan(0, |off, layer| {
            let start = *off;
            *off += layer.n;
            Some((start, layer))
        })
    }

    /// The tangent `[n, K]` of one layer's new membrane from its own previous membrane: the
    /// leak, the feedback through `S'(U[t-1] - θ)`, and the reset's derivative when asked.
    ///
    /// # Shapes
    /// `u_prev`: `[n, 1]` (a column); `dq`: `[n, K]` -> `[n, K]`.
    fn own_tangent(&self, layer: &Layer, u_prev: &Tensor, dq: &Tensor) -> Result<Tensor> {
        let p = &layer.params;
        let (beta, theta) = (column(&p.beta)?, column(&p.threshold)?);
        let x_prev = u_prev.broadcast_sub(&theta)?;
        let keep = match p.reset {
            // β·(1 - R)·U with R = H(U - θ) detached
            Reset::Zero => x_prev.le(0.0)?.to_dtype(self.dtype)?.broadcast_mul(&beta)?,
            Reset::Subtract | Reset::None => beta.clone(),
        };
        let mut du = dq.broadcast_mul(&keep)?;
        let wants_reset = self.reset_in_jacobian && p.reset != Reset::None;
        if layer.feedback.is_none() && !wants_reset {
            return Ok(du);
        }
        let slope = surrogate_derivative(&x_prev, p.surrogate)?;
        let ds = dq.broadcast_mul(&slope)?;
        match &layer.feedback {
            Some(Feedback::Linear { weight, .. }) => du = (du + weight.matmul(&ds)?)?,
            Some(Feedback::OneToOne(w)) => du = (du + ds.broadcast_mul(&column(w)?)?)?,
            None => {}
        }
        if wants_reset {
            // subtract: -θ·R; zero: -β·U·R, with R's derivative S'(U[t-1] - θ)
            let scale = match p.reset {
                Reset::Subtract => theta,
                _ => u_prev.broadcast_mul(&beta)?,
            };
            du = (du - ds.broadcast_mul(&scale)?)?;
        }
        Ok(du)
    }
}

impl Dynamics for SrnnDynamics {
    fn state_size(&self) -> usize {
        self.layers.iter().map(|l| l.n).sum()
    }

    /// Zero membranes (as the forward starts), `[1, N]`.
    fn initial_state(&self) -> Result<Tensor> {
        let device = self.drive_fc.weight().device();
        Tensor::zeros((1, self.state_size()), self.dtype, device)
    }

    /// # Shapes
    /// `input`: `[T, B, ...]` -> `fc1`'s currents `[T, B, D]`.
    fn drive(&self, input: &Tensor) -> Result<Tensor> {
        let (t_len, batch) = (input.dim(0)?, input.dim(1)?);
        let x = input.reshape((t_len, batch, ()))?.to_dtype(self.dtype)?;
        self.drive_fc.forward(&x)
    }

    /// # Shapes
    /// `state`: `[B, N]`, `drive`: `[B, D]` -> `[B, N]`.
    fn step(&self, state: &Tensor, drive: &Tensor) -> Result<Tensor> {
        let mut parts = Vec::with_capacity(self.layers.len());
        let mut spikes = drive.clone();
        for (off, layer) in self.offsets() {
            let p = &layer.params;
            let input = match &layer.fc {
                Some(fc) => fc.forward(&spikes)?,
                None => drive.clone(),
            };
            let mem = state.narrow(1, off, layer.n)?.contiguous()?;
            let (s, mem) = match &layer.feedback {
                Some(fb) => {
                    let prev = RLeakyState {
                        spikes: spike(&mem.broadcast_sub(&p.threshold)?, p.surrogate)?,
                        mem,
                    };
                    let (s, next) = rleaky_step(&input, &prev, fb, p)?;
                    (s, next.mem)
                }
                None => {
                    let (s, next) = leaky_step(&input, &LeakyState { mem }, p)?;
                    (s, next.mem)
                }
            };
            parts.push(mem);
            spikes = s;
        }
        Tensor::cat(&parts, 1)
    }

    /// # Shapes
    /// `prev`, `next`: `[1, N]`; `drive`: `[1, D]`; `tangents`: `[N, K]` -> `[N, K]`.
    fn tangent(&self, prev: &Tensor, next: &Tensor, _drive: &Tensor, q: &Tensor) -> Result<Tensor> {
        let mut out = Vec::with_capacity(self.layers.len());
        // the tangent of the layer below's new spikes `[n_below, K]`
        let mut below: Option<Tensor> = None;
        for (off, layer) in self.offsets() {
            let u_prev = prev.narrow(1, off, layer.n)?.t()?;
            let dq = q.narrow(0, off, layer.n)?;
            let mut du = self.own_tangent(layer, &u_prev, &dq)?;
            if let (Some(fc), Some(ds)) = (&layer.fc, &below) {
                du = (du + fc.weight().matmul(ds)?)?;
            }
            let u_next = next.narrow(1, off, layer.n)?.t()?;
            let x_next = u_next.broadcast_sub(&column(&layer.params.threshold)?)?;
            let slope = surrogate_derivative(&x_next, layer.params.surrogate)?;
            below = Some(du.broadcast_mul(&slope)?);
            out.push(du);
        }
        Tensor::cat(&out, 0)
    }

    /// The head's readout of the output layer's spikes `spike(U - θ)` (and membranes `U`).
    ///
    /// # Shapes
    /// `states`: `[T, B, N]` -> scores `[B, classes]`.
    fn readout(&self, states: &Tensor) -> Result<Tensor> {
        let (off, out) = match self.offsets().last() {
            Some(last) => last,
            None => candle_core::bail!("srnn dynamics without an output layer"),
        };
        let mem = states.narrow(2, off, out.n)?.contiguous()?;
        let spikes = spike(
            &mem.broadcast_sub(&out.params.threshold)?,
            out.params.surrogate,
        )?;
        self.readout.scores(&spikes, Some(&mem))
    }

    fn recurrent_weight(&self) -> Option<Tensor> {
        self.recurrent.clone()
    }
}
