//! Non-spiking recurrent cells (Elman RNN, LSTM, GRU) with PyTorch's parameter layout, names and
//! initialisation, and a [`Stack`] of them over time-first sequences `[T, B, ...]`.
//!
//! Every cell takes the *projected* input `x·W_ihᵀ + b_ih` at each step: [`CellWeights::project`]
//! computes it for all `T` steps in one matrix product, and the loop over time only multiplies
//! the hidden state. Cells never keep state between calls.

mod cells;
mod dynamics;
#[cfg(test)]
pub(crate) mod dynamics_tests;
mod stack;
#[cfg(test)]
mod tests;

pub use cells::{lstm_gates, Gru, Lstm, LstmState, Rnn};
pub use dynamics::{StackDynamics, StackReadout};
pub use stack::{Cell, CellState, Stack};

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// One recurrent layer's weights in PyTorch's layout (`G` gates: 1 for RNN, 4 for LSTM, 3 for
/// GRU): `weight_ih` `[G·H, in]`, `weight_hh` `[G·H, H]`, `bias_ih` and `bias_hh` `[G·H]`.
#[derive(Debug, Clone)]
pub struct CellWeights {
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor,
    bias_hh: Tensor,
    /// `weight_hhᵀ`, one view shared by every step: the gradients of all steps then accumulate
    /// into one contiguous tensor (a transpose per step made each a strided add, 3x slower).
    weight_hh_t: Tensor,
}

impl CellWeights {
    /// Builds from `weight_ih` `[G·H, in]`, `weight_hh` `[G·H, H]`, `bias_ih`, `bias_hh` `[G·H]`.
    pub fn from_tensors(
        weight_ih: Tensor,
        weight_hh: Tensor,
        bias_ih: Tensor,
        bias_hh: Tensor,
    ) -> Result<Self> {
        let (rows, hidden) = weight_hh.dims2()?;
        let (rows_ih, _) = weight_ih.dims2()?;
        if rows_ih != rows
            || bias_ih.dims() != [rows]
            || bias_hh.dims() != [rows]
            || rows % hidden != 0
        {
            candle_core::bail!(
                "recurrent weights do not fit together: weight_ih {:?}, weight_hh {:?}, bias_ih {:?}, bias_hh {:?}",
                weight_ih.dims(),
                weight_hh.dims(),
                bias_ih.dims(),
                bias_hh.dims()
            );
        }
        Ok(CellWeights {
            weight_hh_t: weight_hh.t()?,
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
        })
    }

    /// Input-to-hidden weights `[G·H, in]`.
    pub fn weight_ih(&self) -> &Tensor {
        &self.weight_ih
    }

    /// Hidden-to-hidden weights `[G·H, H]`.
    pub fn weight_hh(&self) -> &Tensor {
        &self.weight_hh
    }

    /// Input bias `[G·H]`.
    pub fn bias_ih(&self) -> &Tensor {
        &self.bias_ih
    }

    /// Hidden bias `[G·H]`.
    pub fn bias_hh(&self) -> &Tensor {
        &self.bias_hh
    }

    /// Creates `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh` under `vb` for `gates` gates of
    /// `hidden` units, all drawn from PyTorch's `U(-1/√hidden, 1/√hidden)`.
    pub fn new(gates: usize, input: usize, hidden: usize, vb: &VarBuilder) -> Result<Self> {
        if hidden == 0 || input == 0 {
            candle_core::bail!(
                "recurrent layer {}: input {input} and hidden {hidden} must both be positive",
                vb.prefix()
            );
        }
        let bound = 1.0 / (hidden as f64).sqrt();
        let init = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let rows = gates * hidden;
        CellWeights::from_tensors(
            vb.get_with_hints((rows, input), "weight_ih", init)?,
            vb.get_with_hints((rows, hidden), "weight_hh", init)?,
            vb.get_with_hints(rows, "bias_ih", init)?,
            vb.get_with_hints(rows, "bias_hh", init)?,
        )
    }

    /// Hidden size `H` (columns of `weight_hh`).
    pub fn hidden(&self) -> Result<usize> {
        self.weight_hh.dim(1)
    }

    /// `x·W_ihᵀ + b_ih` for every step at once (one matrix product).
    ///
    /// # Shapes
    /// `x`: `[T, B, in]` -> `[T, B, G·H]`.
    pub fn project(&self, x: &Tensor) -> Result<Tensor> {
        let (t, b, k) = x.dims3()?;
        let want = self.weight_ih.dim(1)?;
        if k != want {
            candle_core::bail!(
                "recurrent input has {k} features per step (shape {:?}), the layer expects {want}",
                x.dims()
            );
        }
        x.reshape((t * b, k))?
            .matmul(&self.weight_ih.t()?)?
            .broadcast_add(&self.bias_ih)?
            .reshape((t, b, ()))
    }

    /// `h·W_hhᵀ + b_hh`.
    ///
    /// # Shapes
    /// `h`: `[B, H]` -> `[B, G·H]`.
    pub fn recur(&self, h: &Tensor) -> Result<Tensor> {
        h.matmul(&self.weight_hh_t)?.broadcast_add(&self.bias_hh)
    }
}
