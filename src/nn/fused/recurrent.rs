//! Whole recurrent layers (Elman RNN, LSTM, GRU, spiking LSTM) as one op each, forward and
//! backward through time (`autoresearch_kernels::rnn`): a 28-step two-layer LSTM is two ops
//! per layer instead of a few hundred small candle ops.

use std::sync::Mutex;

use autoresearch_kernels::rnn::{
    backward, forward, Cell, Dims, Grads, OutGrads, SpikeSpec, Trace, Weights,
};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::lif::{LifOutput, LifSpec};
use super::linear::{check_cpu_f32, keep_freed_memory, kernel_err, read, slice, tensor};
use crate::config::{Reset, Surrogate};
use crate::nn::recurrent::CellWeights;

/// Which cell a fused recurrent layer runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RecurrentCell {
    /// Elman RNN, tanh.
    Rnn,
    /// LSTM.
    Lstm,
    /// GRU.
    Gru,
    /// Spiking LSTM (see [`crate::nn::neuron::slstm_step`]).
    Slstm {
        /// Firing threshold θ.
        threshold: f64,
        /// Reset of the membrane.
        reset: Reset,
        /// Surrogate gradient of the spikes.
        surrogate: Surrogate,
    },
}

impl RecurrentCell {
    fn kernel(self) -> Cell {
        match self {
            RecurrentCell::Rnn => Cell::Tanh,
            RecurrentCell::Lstm => Cell::Lstm,
            RecurrentCell::Gru => Cell::Gru,
            RecurrentCell::Slstm {
                threshold,
                reset,
                surrogate,
            } => {
                let spec = LifSpec {
                    reset,
                    surrogate,
                    output: LifOutput::Spikes,
                };
                Cell::Slstm(SpikeSpec {
                    threshold: threshold as f32,
                    reset: spec.reset(),
                    surrogate: spec.surrogate(),
                })
            }
        }
    }
}

/// The fused layer over `x` `[T, B, K]`, `w_ih` `[G·H, K]` and `rest` = `w_hh` `[G·H, H]`,
/// `b_ih` and `b_hh` (`[G·H]` each) flattened into one vector (a custom op takes at most three
/// inputs); keeps its forward trace for its backward (one op instance per call).
struct Recurrent {
    cell: Cell,
    hidden: usize,
    trace: Mutex<Trace>,
}

impl Recurrent {
    fn dims(&self, x: &[usize]) -> Result<Dims> {
        match x {
            &[steps, batch, input] => Ok(Dims {
                steps,
                batch,
                input,
                hidden: self.hidden,
            }),
            other => candle_core::bail!("fused recurrent layer: input {other:?} is not [T, B, K]"),
        }
    }

    /// `w_hh`, `b_ih`, `b_hh` from the flattened `rest`.
    fn split<'a>(&self, rest: &'a [f32]) -> (&'a [f32], &'a [f32], &'a [f32]) {
        let gh = self.cell.gates() * self.hidden;
        let (w_hh, biases) = rest.split_at(gh * self.hidden);
        let (b_ih, b_hh) = biases.split_at(gh);
        (w_hh, b_ih, b_hh)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Trace>> {
        self.trace
            .lock()
            .map_err(|_| candle_core::Error::Msg("fused recurrent layer: poisoned trace".into()))
    }

    /// Outputs `[T, B, H]`; the SLSTM stacks spikes and membranes as `[2, T, B, H]`.
    fn out_shape(&self, d: Dims) -> Shape {
        match self.cell {
            Cell::Slstm(_) => (2, d.steps, d.batch, d.hidden).into(),
            _ => (d.steps, d.batch, d.hidden).into(),
        }
    }
}

impl CustomOp3 for Recurrent {
    fn name(&self) -> &'static str {
        "fused-recurrent"
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
        let op = "fused recurrent layer";
        let d = self.dims(l1.dims())?;
        let (w_hh, b_ih, b_hh) = self.split(slice(s3, l3, op)?);
        let w = Weights {
            w_ih: slice(s2, l2, op)?,
            w_hh,
            b_ih,
            b_hh,
        };
        let tbn = d.steps * d.batch * d.hidden;
        let mut trace = self.lock()?;
        let mut out = vec![0f32; tbn];
        forward(
            self.cell,
            d,
            slice(s1, l1, op)?,
            w,
            &mut out,
            Some(&mut trace),
        )
        .map_err(kernel_err)?;
        if let Cell::Slstm(_) = self.cell {
            out.extend_from_slice(&trace.states);
        }
        Ok((CpuStorage::F32(out), self.out_shape(d)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w_ih: &Tensor,
        rest: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = "fused recurrent layer backward";
        let d = self.dims(x.dims())?;
        let gh = self.cell.gates() * d.hidden;
        let tbn = d.steps * d.batch * d.hidden;
        // the first layer's input is data: no gradient to form
        let mut dx = vec![
            0f32;
            if x.track_op() {
                d.steps * d.batch * d.input
            } else {
                0
            }
        ];
        let mut dw_ih = vec![0f32; gh * d.input];
        let mut drest = vec![0f32; gh * d.hidden + 2 * gh];
        let trace = self.lock()?;
        read(x, op, |x| {
            read(w_ih, op, |w_ih| {
                read(rest, op, |rest| {
                    read(grad, op, |g| {
                        let (w_hh, b_ih, b_hh) = self.split(rest);
                        let (dw_hh, dbias) = drest.split_at_mut(gh * d.hidden);
                        let (db_ih, db_hh) = dbias.split_at_mut(gh);
                        let (d_out, d_mem) = g.split_at(tbn);
                        let w = Weights {
                            w_ih,
                            w_hh,
                            b_ih,
                            b_hh,
                        };
                        let grads = Grads {
                            x: (!dx.is_empty()).then_some(&mut dx[..]),
                            w_ih: &mut dw_ih,
                            w_hh: dw_hh,
                            b_ih: db_ih,
                            b_hh: db_hh,
                        };
                        let upstream = OutGrads {
                            out: d_out,
                            mem: (!d_mem.is_empty()).then_some(d_mem),
                        };
                        backward(self.cell, d, x, w, &trace, upstream, grads).map_err(kernel_err)
                    })
                })
            })
        })?;
        let dx = if dx.is_empty() {
            None
        } else {
            Some(tensor(dx, x.shape())?)
        };
        Ok((
            dx,
            Some(tensor(dw_ih, w_ih.shape())?),
            Some(tensor(drest, rest.shape())?),
        ))
    }
}

/// A recurrent layer over a whole sequence from zero states, differentiable in the input and
/// all four weights (CPU `f32` only; see [`super::available`]). Returns the outputs `[T, B, H]`
/// (hidden states; SLSTM: spikes) and, for the SLSTM, the membranes `[T, B, H]`.
///
/// # Shapes
/// `x`: `[T, B, K]`, weights with `G·H` rows (`G` = 1, 4, 3, 4) -> (`[T, B, H]`,
/// `Some([T, B, H])` for the SLSTM).
pub fn recurrent(
    cell: RecurrentCell,
    x: &Tensor,
    weights: &CellWeights,
) -> Result<(Tensor, Option<Tensor>)> {
    keep_freed_memory();
    let cell = cell.kernel();
    let (w_ih, w_hh, b_ih, b_hh) = (
        weights.weight_ih(),
        weights.weight_hh(),
        weights.bias_ih(),
        weights.bias_hh(),
    );
    let op = "fused recurrent layer";
    for (t, name) in [
        (x, "x"),
        (w_ih, "w_ih"),
        (w_hh, "w_hh"),
        (b_ih, "b_ih"),
        (b_hh, "b_hh"),
    ] {
        check_cpu_f32(t, op, name)?;
    }
    let (_, _, k) = x.dims3()?;
    let (gh, hidden) = w_hh.dims2()?;
    if gh != cell.gates() * hidden
        || w_ih.dims() != [gh, k]
        || b_ih.dims() != [gh]
        || b_hh.dims() != [gh]
    {
        candle_core::bail!(
            "{op}: a {cell:?} layer over x {:?} needs w_ih [{gh}, {k}], w_hh [{gh}, {hidden}] with {gh} = {} x {hidden}, biases [{gh}]; got {:?}, {:?}, {:?}, {:?}",
            x.dims(),
            cell.gates(),
            w_ih.dims(),
            w_hh.dims(),
            b_ih.dims(),
            b_hh.dims()
        );
    }
    let rest = Tensor::cat(&[&w_hh.flatten_all()?, b_ih, b_hh], 0)?;
    let out = x.contiguous()?.apply_op3(
        &w_ih.contiguous()?,
        &rest,
        Recurrent {
            cell,
            hidden,
            trace: Mutex::new(Trace::default()),
        },
    )?;
    match cell {
        Cell::Slstm(_) => Ok((out.get(0)?, Some(out.get(1)?))),
        _ => Ok((out, None)),
    }
}

#[cfg(test)]
#[path = "recurrent_tests.rs"]
mod tests;
