//! A stack of recurrent layers of one cell kind.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::cells::{Gru, Lstm, LstmState, Rnn};
use super::CellWeights;
use crate::config::{CellKind, RecurrentStack};
use crate::nn::dropout::Dropout;
use crate::nn::{fused, Ops};

/// One recurrent layer of any kind.
#[derive(Debug, Clone)]
pub enum Cell {
    /// Elman RNN (tanh).
    Rnn(Rnn),
    /// LSTM.
    Lstm(Lstm),
    /// GRU.
    Gru(Gru),
}

/// The final state of any cell.
#[derive(Debug, Clone)]
pub enum CellState {
    /// Hidden state of an RNN or GRU `[B, H]`.
    Hidden(Tensor),
    /// Hidden and cell state of an LSTM.
    Lstm(LstmState),
}

impl CellState {
    /// The hidden state `h` `[B, H]`.
    pub fn h(&self) -> &Tensor {
        match self {
            CellState::Hidden(h) => h,
            CellState::Lstm(s) => &s.h,
        }
    }
}

impl Cell {
    /// A `kind` layer `input -> hidden` with PyTorch names and init under `vb`.
    pub fn new(kind: CellKind, input: usize, hidden: usize, vb: &VarBuilder) -> Result<Self> {
        Ok(match kind {
            CellKind::Rnn => Cell::Rnn(Rnn::new(input, hidden, vb)?),
            CellKind::Lstm => Cell::Lstm(Lstm::new(input, hidden, vb)?),
            CellKind::Gru => Cell::Gru(Gru::new(input, hidden, vb)?),
        })
    }

    /// The layer's weights.
    pub fn weights(&self) -> &CellWeights {
        match self {
            Cell::Rnn(c) => &c.weights,
            Cell::Lstm(c) => &c.weights,
            Cell::Gru(c) => &c.weights,
        }
    }

    /// The outputs of all steps from a zero state, by the fused kernel where `ops` allows it
    /// (one op for the whole sequence), else by [`Cell::seq`].
    ///
    /// # Shapes
    /// `x`: `[T, B, in]` -> `[T, B, H]`.
    pub fn outputs(&self, ops: Ops, x: &Tensor) -> Result<Tensor> {
        if !ops.fuses(x) {
            return Ok(self.seq(x)?.0);
        }
        let kind = match self {
            Cell::Rnn(_) => fused::RecurrentCell::Rnn,
            Cell::Lstm(_) => fused::RecurrentCell::Lstm,
            Cell::Gru(_) => fused::RecurrentCell::Gru,
        };
        Ok(fused::recurrent(kind, x, self.weights())?.0)
    }

    /// All steps from a zero state.
    ///
    /// # Shapes
    /// `x`: `[T, B, in]` -> (outputs `[T, B, H]`, final state).
    pub fn seq(&self, x: &Tensor) -> Result<(Tensor, CellState)> {
        Ok(match self {
            Cell::Rnn(c) => {
                let (out, h) = c.seq(x)?;
                (out, CellState::Hidden(h))
            }
            Cell::Lstm(c) => {
                let (out, s) = c.seq(x)?;
                (out, CellState::Lstm(s))
            }
            Cell::Gru(c) => {
                let (out, h) = c.seq(x)?;
                (out, CellState::Hidden(h))
            }
        })
    }
}

/// Recurrent layers `l0, l1, ...`, each reading the previous layer's outputs.
#[derive(Debug, Clone)]
pub struct Stack {
    layers: Vec<Cell>,
    /// Dropout on every layer's outputs but the last's, in training.
    dropout: Dropout,
}

impl Stack {
    /// Builds from its layers (first reads the input), without dropout.
    pub fn new(layers: Vec<Cell>) -> Self {
        Stack {
            layers,
            dropout: Dropout::none(),
        }
    }

    /// Builds `cfg.layers` layers `l0, l1, ...` under `vb` reading `input` features per step;
    /// errors name `key` (e.g. `model.rnn`) when the config is empty.
    pub fn from_config(
        cfg: &RecurrentStack,
        input: usize,
        key: &str,
        vb: &VarBuilder,
    ) -> Result<Self> {
        if cfg.layers == 0 || cfg.hidden == 0 {
            candle_core::bail!(
                "{key}: layers ({}) and hidden ({}) must both be at least 1",
                cfg.layers,
                cfg.hidden
            );
        }
        let layers = (0..cfg.layers)
            .map(|i| {
                let k = if i == 0 { input } else { cfg.hidden };
                Cell::new(cfg.cell, k, cfg.hidden, &vb.pp(format!("l{i}")))
            })
            .collect::<Result<_>>()?;
        Ok(Stack {
            layers,
            dropout: Dropout::new(cfg.dropout, 0)?,
        })
    }

    /// The layers, first to last.
    pub fn layers(&self) -> &[Cell] {
        &self.layers
    }

    /// Runs every layer over the whole sequence in turn, from zero states, with plain ops
    /// (the reference for [`Stack::forward_with`]).
    ///
    /// # Shapes
    /// `x`: `[T, B, in]` -> (last layer's outputs `[T, B, H]`, its final hidden state `[B, H]`).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        self.forward_with(Ops::Plain, x)
    }

    /// As [`Stack::forward`], each layer one fused op where `ops` allows it.
    ///
    /// # Shapes
    /// `x`: `[T, B, in]` -> (last layer's outputs `[T, B, H]`, its final hidden state `[B, H]`).
    pub fn forward_with(&self, ops: Ops, x: &Tensor) -> Result<(Tensor, Tensor)> {
        self.forward_t(ops, x, None)
    }

    /// As [`Stack::forward_with`], in training when `seed` (the batch's) is given: every
    /// layer's outputs but the last's pass through the stack's dropout, layer `i` with masks
    /// of its own.
    ///
    /// # Shapes
    /// `x`: `[T, B, in]` -> (last layer's outputs `[T, B, H]`, its final hidden state `[B, H]`).
    pub fn forward_t(&self, ops: Ops, x: &Tensor, seed: Option<u64>) -> Result<(Tensor, Tensor)> {
        if self.layers.is_empty() {
            candle_core::bail!("a recurrent stack needs at least one layer");
        }
        let mut x = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            if i > 0 {
                x = self.dropout.at(i as u64).forward_with(ops, &x, seed)?;
            }
            x = layer.outputs(ops, &x)?;
        }
        let last = x.dim(0)? - 1;
        let h = x.get(last)?;
        Ok((x, h))
    }
}
