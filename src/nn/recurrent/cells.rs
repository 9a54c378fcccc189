//! The three cells: each `zero_state`, `step` on a projected input, and `seq` over `[T, B, in]`.

use candle_core::{Result, Tensor};
use candle_nn::ops::sigmoid;
use candle_nn::VarBuilder;

use super::CellWeights;

/// LSTM gate arithmetic (PyTorch order i, f, g, o): `c' = σ(f)·c + σ(i)·tanh(g)`,
/// `h' = σ(o)·tanh(c')`. Shared by [`Lstm`] and the spiking LSTM.
///
/// # Shapes
/// `gates`: pre-activations `[B, 4H]`, `c`: `[B, H]` -> (`h'`, `c'`), each `[B, H]`.
pub fn lstm_gates(gates: &Tensor, c: &Tensor) -> Result<(Tensor, Tensor)> {
    let h = c.dim(1)?;
    if gates.dim(1)? != 4 * h {
        candle_core::bail!(
            "lstm gates {:?} do not hold 4 x {h} pre-activations for a cell state {:?}",
            gates.dims(),
            c.dims()
        );
    }
    let i = sigmoid(&gates.narrow(1, 0, h)?)?;
    let f = sigmoid(&gates.narrow(1, h, h)?)?;
    let g = gates.narrow(1, 2 * h, h)?.tanh()?;
    let o = sigmoid(&gates.narrow(1, 3 * h, h)?)?;
    let c = ((f * c)? + (i * g)?)?;
    let h = (o * c.tanh()?)?;
    Ok((h, c))
}

/// Runs `step` over every projected step from `state`, collecting `out(state)` per step.
fn run<S>(
    xp: &Tensor,
    mut state: S,
    step: impl Fn(&Tensor, &S) -> Result<S>,
    out: impl Fn(&S) -> Tensor,
) -> Result<(Tensor, S)> {
    let steps = xp.dim(0)?;
    let mut outs = Vec::with_capacity(steps);
    for t in 0..steps {
        state = step(&xp.get(t)?, &state)?;
        outs.push(out(&state));
    }
    Ok((Tensor::stack(&outs, 0)?, state))
}

/// A zero hidden state `[B, H]` for projected inputs `[B, G·H]`.
fn zeros(weights: &CellWeights, xp_step: &Tensor) -> Result<Tensor> {
    let b = xp_step.dim(0)?;
    Tensor::zeros((b, weights.hidden()?), xp_step.dtype(), xp_step.device())
}

/// Elman RNN cell: `h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`.
#[derive(Debug, Clone)]
pub struct Rnn {
    /// Weights with one gate.
    pub weights: CellWeights,
}

impl Rnn {
    /// Creates the weights under `vb` (PyTorch names and init).
    pub fn new(input: usize, hidden: usize, vb: &VarBuilder) -> Result<Self> {
        Ok(Rnn {
            weights: CellWeights::new(1, input, hidden, vb)?,
        })
    }

    /// A zero hidden state for a projected step `[B, H]`.
    pub fn zero_state(&self, xp_step: &Tensor) -> Result<Tensor> {
        zeros(&self.weights, xp_step)
    }

    /// One step.
    ///
    /// # Shapes
    /// `xp`: projected input `[B, H]`, `h`: `[B, H]` -> `[B, H]`.
    pub fn step(&self, xp: &Tensor, h: &Tensor) -> Result<Tensor> {
        (xp + self.weights.recur(h)?)?.tanh()
    }

    /// All steps from a zero state.
    ///
    /// # Shapes
    /// `x`: `[T, B, in]` -> (outputs `[T, B, H]`, final `h` `[B, H]`).
    pub fn seq(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let xp = self.weights.project(x)?;
        let h0 = self.zero_state(&xp.get(0)?)?;
        run(&xp, h0, |x, h| self.step(x, h), Tensor::clone)
    }
}

/// The state an LSTM carries: hidden `h` and cell `c`.
#[derive(Debug, Clone)]
pub struct LstmState {
    /// Hidden state `h` `[B, H]`.
    pub h: Tensor,
    /// Cell state `c` `[B, H]`.
    pub c: Tensor,
}

/// LSTM cell (PyTorch's `LSTMCell`, gate order i, f, g, o).
#[derive(Debug, Clone)]
pub struct Lstm {
    /// Weights with four gates.
    pub weights: CellWeights,
}

impl Lstm {
    /// Creates the weights under `vb` (PyTorch names and init).
    pub fn new(input: usize, hidden: usize, vb: &VarBuilder) -> Result<Self> {
        Ok(Lstm {
            weights: CellWeights::new(4, input, hidden, vb)?,
        })
    }

    /// Zero `h` and `c` for a projected step `[B, 4H]`.
    pub fn zero_state(&self, xp_step: &Tensor) -> Result<LstmState> {
        let h = zeros(&self.weights, xp_step)?;
        Ok(LstmState { c: h.clone(), h })
    }

    /// One step: see [`lstm_gates`].
    ///
    /// # Shapes
    /// `xp`: projected input `[B, 4H]` -> the new state (`[B, H]` each).
    pub fn step(&self, xp: &Tensor, state: &LstmState) -> Result<LstmState> {
        let gates = (xp + self.weights.recur(&state.h)?)?;
        let (h, c) = lstm_gates(&gates, &state.c)?;
        Ok(LstmState { h, c })
    }

    /// All steps from a zero state.
    ///
    /// # Shapes
    /// `x`: `[T, B, in]` -> (outputs `h` `[T, B, H]`, final state).
    pub fn seq(&self, x: &Tensor) -> Result<(Tensor, LstmState)> {
        let xp = self.weights.project(x)?;
        let s0 = self.zero_state(&xp.get(0)?)?;
        run(&xp, s0, |x, s| self.step(x, s), |s| s.h.clone())
    }
}

/// GRU cell (PyTorch's `GRUCell`, gate order r, z, n): `r = σ(x_r + h_r)`, `z = σ(x_z + h_z)`,
/// `n = tanh(x_n + r·(W_hn h + b_hn))`, `h' = (1 - z)·n + z·h`.
#[derive(Debug, Clone)]
pub struct Gru {
    /// Weights with three gates.
    pub weights: CellWeights,
}

impl Gru {
    /// Creates the weights under `vb` (PyTorch names and init).
    pub fn new(input: usize, hidden: usize, vb: &VarBuilder) -> Result<Self> {
        Ok(Gru {
            weights: CellWeights::new(3, input, hidden, vb)?,
        })
    }

    /// A zero hidden state for a projected step `[B, 3H]`.
    pub fn zero_state(&self, xp_step: &Tensor) -> Result<Tensor> {
        zeros(&self.weights, xp_step)
    }

    /// One step.
    ///
    /// # Shapes
    /// `xp`: projected input `[B, 3H]`, `h`: `[B, H]` -> `[B, H]`.
    pub fn step(&self, xp: &Tensor, h: &Tensor) -> Result<Tensor> {
        let n = h.dim(1)?;
        let hp = self.weights.recur(h)?;
        let rz = sigmoid(&(xp.narrow(1, 0, 2 * n)? + hp.narrow(1, 0, 2 * n)?)?)?;
        let (r, z) = (rz.narrow(1, 0, n)?, rz.narrow(1, n, n)?);
        let cand = (xp.narrow(1, 2 * n, n)? + (r * hp.narrow(1, 2 * n, n)?)?)?.tanh()?;
        // (1 - z)·n + z·h = n + z·(h - n)
        &cand + (z * (h - &cand)?)?
    }

    /// All steps from a zero state.
    ///
    /// # Shapes
    /// `x`: `[T, B, in]` -> (outputs `[T, B, H]`, final `h` `[B, H]`).
    pub fn seq(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let xp = self.weights.project(x)?;
        let h0 = self.zero_state(&xp.get(0)?)?;
        run(&xp, h0, |x, h| self.step(x, h), Tensor::clone)
    }
}
