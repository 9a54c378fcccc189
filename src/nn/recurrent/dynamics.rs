//! A [`Stack`] of RNN / LSTM / GRU layers with a linear readout seen as one dynamical system
//! `h_t = F(h_{t-1}, u_t)` (see [`crate::dynamics::Dynamics`]).
//!
//! The state is the concatenation over layers, first to last, of each layer's state: `h` for
//! RNN and GRU layers, `[h, c]` for LSTM layers. The drive is the first layer's projected input
//! `x·W_ihᵀ + b_ih`; one step runs every layer once, layer `l + 1` reading layer `l`'s new `h`,
//! and the tangent map is the exact Jacobian of that whole step (the layers chained inside it).
//! Parameters are cast to the requested dtype, so autograd reaches the network's own tensors
//! through trajectories and tangents alike.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::ops::sigmoid;
use candle_nn::Linear;

use super::{Cell, CellWeights, Gru, Lstm, LstmState, Rnn, Stack};
use crate::dynamics::{Dynamics, DynamicsOptions};

/// Which steps the readout `fc` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackReadout {
    /// `fc` on the top layer's `h` at every step: `[T, B, N]` -> `[T, B, R]`.
    EveryStep,
    /// `fc` on the top layer's `h` at the last step: `[T, B, N]` -> `[B, R]`.
    LastStep,
}

/// A recurrent [`Stack`] and its linear readout as a dynamical system on the layers' states.
///
/// `recurrent_weight` is the first layer's `weight_hh` (`[G·H, H]`, all gates): the only one in
/// a one-layer stack, and the matrix the input-driven dynamics enter first in a deeper one.
#[derive(Debug, Clone)]
pub struct StackDynamics {
    /// The layers with their weights cast to `dtype`.
    layers: Vec<Cell>,
    /// Where each layer's state starts in the flat state.
    offsets: Vec<usize>,
    /// The readout cast to `dtype`.
    fc: Linear,
    readout: StackReadout,
    dtype: DType,
    /// The first layer's own `weight_hh`.
    recurrent: Tensor,
}

/// `w` with every tensor cast to `dtype`.
fn cast_weights(w: &CellWeights, dtype: DType) -> Result<CellWeights> {
    CellWeights::from_tensors(
        w.weight_ih().to_dtype(dtype)?,
        w.weight_hh().to_dtype(dtype)?,
        w.bias_ih().to_dtype(dtype)?,
        w.bias_hh().to_dtype(dtype)?,
    )
}

/// `cell` with its weights cast to `dtype`.
fn cast_cell(cell: &Cell, dtype: DType) -> Result<Cell> {
    Ok(match cell {
        Cell::Rnn(c) => Cell::Rnn(Rnn {
            weights: cast_weights(&c.weights, dtype)?,
        }),
        Cell::Lstm(c) => Cell::Lstm(Lstm {
            weights: cast_weights(&c.weights, dtype)?,
        }),
        Cell::Gru(c) => Cell::Gru(Gru {
            weights: cast_weights(&c.weights, dtype)?,
        }),
    })
}

/// The weights of any cell.
fn weights(cell: &Cell) -> &CellWeights {
    match cell {
        Cell::Rnn(c) => &c.weights,
        Cell::Lstm(c) => &c.weights,
        Cell::Gru(c) => &c.weights,
    }
}

/// The width of a layer's state: `H`, or `2H` for an LSTM (`[h, c]`).
fn state_width(cell: &Cell) -> Result<usize> {
    let h = weights(cell).hidden()?;
    Ok(match cell {
        Cell::Lstm(_) => 2 * h,
        Cell::Rnn(_) | Cell::Gru(_) => h,
    })
}

/// `x·W_ihᵀ + b_ih` of one step.
///
/// # Shapes
/// `x`: `[B, in]` -> `[B, G·H]`.
fn project(w: &CellWeights, x: &Tensor) -> Result<Tensor> {
    x.matmul(&w.weight_ih().t()?)?.broadcast_add(w.bias_ih())
}

/// A `[1, n]` row as an `[n, 1]` column (scales the rows of tangents by broadcasting).
fn col(row: &Tensor) -> Result<Tensor> {
    row.t()
}

/// `a + b` when there is a `b`.
fn add_opt(a: Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    match b {
        Some(b) => a + b,
        None => Ok(a),
    }
}

/// `σ'` from `σ`: `s·(1 - s)`.
fn sigmoid_prime(s: &Tensor) -> Result<Tensor> {
    s * s.affine(-1.0, 1.0)?
}

/// `tanh'` from `tanh`: `1 - t²`.
fn tanh_prime(t: &Tensor) -> Result<Tensor> {
    t.sqr()?.affine(-1.0, 1.0)
}

/// Tangent of an RNN layer: `dh' = (1 - h'²) ⊙ (W_hh dh + dxp)`.
///
/// # Shapes
/// `h_next`: `[1, H]`; `dxp`, `dh`: `[H, K]` -> `[H, K]`.
fn rnn_tangent(
    w: &CellWeights,
    h_next: &Tensor,
    dxp: Option<&Tensor>,
    dh: &Tensor,
) -> Result<Tensor> {
    let da = add_opt(w.weight_hh().matmul(dh)?, dxp)?;
    da.broadcast_mul(&tanh_prime(&col(h_next)?)?)
}

/// Tangent of an LSTM layer (gates i, f, g, o): `dc' = df·c + f·dc + di·g + i·dg`,
/// `dh' = do·tanh(c') + o·(1 - tanh²(c'))·dc'`.
///
/// # Shapes
/// `xp`: `[1, 4H]`; `h`, `c`, `c_next`: `[1, H]`; `dxp`: `[4H, K]`; `dh`, `dc`: `[H, K]`
/// -> (`dh'`, `dc'`), each `[H, K]`.
fn lstm_tangent(
    w: &CellWeights,
    xp: &Tensor,
    (h, c, c_next): (&Tensor, &Tensor, &Tensor),
    dxp: Option<&Tensor>,
    (dh, dc): (&Tensor, &Tensor),
) -> Result<(Tensor, Tensor)> {
    let n = h.dim(1)?;
    let a = col(&(xp + w.recur(h)?)?)?;
    let da = add_opt(w.weight_hh().matmul(dh)?, dxp)?;
    let gate = |k: usize| (a.narrow(0, k * n, n), da.narrow(0, k * n, n));
    let sig = |k: usize| -> Result<(Tensor, Tensor)> {
        let (a, da) = gate(k);
        let s = sigmoid(&a?)?;
        let ds = da?.broadcast_mul(&sigmoid_prime(&s)?)?;
        Ok((s, ds))
    };
    let ((i, di), (f, df), (o, d_o)) = (sig(0)?, sig(1)?, sig(3)?);
    let (a_g, da_g) = gate(2);
    let g = a_g?.tanh()?;
    let dg = da_g?.broadcast_mul(&tanh_prime(&g)?)?;
    let dc_next = (df.broadcast_mul(&col(c)?)? + dc.broadcast_mul(&f)?)?;
    let dc_next = ((dc_next + di.broadcast_mul(&g)?)? + dg.broadcast_mul(&i)?)?;
    let tc = col(c_next)?.tanh()?;
    let dh_next = (d_o.broadcast_mul(&tc)? + dc_next.broadcast_mul(&(o * tanh_prime(&tc)?)?)?)?;
    Ok((dh_next, dc_next))
}

/// Tangent of a GRU layer (PyTorch's gates r, z, n with `n = tanh(x_n + r ⊙ (W_hn h + b_hn))`):
/// `dh' = (1 - z)·dn + (h - n)·dz + z·dh`.
///
/// # Shapes
/// `xp`: `[1, 3H]`; `h`: `[1, H]`; `dxp`: `[3H, K]`; `dh`: `[H, K]` -> `[H, K]`.
fn gru_tangent(
    w: &CellWeights,
    xp: &Tensor,
    h: &Tensor,
    dxp: Option<&Tensor>,
    dh: &Tensor,
) -> Result<Tensor> {
    let n = h.dim(1)?;
    let (xp, hp) = (col(xp)?, col(&w.recur(h)?)?);
    let dhp = w.weight_hh().matmul(dh)?;
    let part = |t: &Tensor, k: usize| t.narrow(0, k * n, n);
    let d_in = |k: usize| -> Result<Tensor> {
        match dxp {
            Some(dx) => part(dx, k)? + part(&dhp, k)?,
            None => part(&dhp, k),
        }
    };
    let r = sigmoid(&(part(&xp, 0)? + part(&hp, 0)?)?)?;
    let z = sigmoid(&(part(&xp, 1)? + part(&hp, 1)?)?)?;
    let hp_n = part(&hp, 2)?;
    let cand = (part(&xp, 2)? + (&r * &hp_n)?)?.tanh()?;
    let dr = d_in(0)?.broadcast_mul(&sigmoid_prime(&r)?)?;
    let dz = d_in(1)?.broadcast_mul(&sigmoid_prime(&z)?)?;
    let dx_n = match dxp {
        Some(dx) => Some(part(dx, 2)?),
        None => None,
    };
    let inner = (dr.broadcast_mul(&hp_n)? + part(&dhp, 2)?.broadcast_mul(&r)?)?;
    let dn = add_opt(inner, dx_n.as_ref())?.broadcast_mul(&tanh_prime(&cand)?)?;
    let dh_next = dn.broadcast_mul(&z.affine(-1.0, 1.0)?)?;
    let dh_next = (dh_next + dz.broadcast_mul(&(col(h)? - &cand)?)?)?;
    dh_next + dh.broadcast_mul(&z)?
}

impl StackDynamics {
    /// `stack` and its readout `fc` with every parameter cast to `opts.dtype`.
    pub fn new(
        stack: &Stack,
        fc: &Linear,
        readout: StackReadout,
        opts: &DynamicsOptions,
    ) -> Result<Self> {
        let dtype = opts.dtype;
        let first = match stack.layers().first() {
            Some(first) => first,
            None => candle_core::bail!("a recurrent stack needs at least one layer"),
        };
        let layers = stack
            .layers()
            .iter()
            .map(|c| cast_cell(c, dtype))
            .collect::<Result<Vec<_>>>()?;
        let mut offsets = Vec::with_capacity(layers.len() + 1);
        let mut end = 0;
        for layer in &layers {
            offsets.push(end);
            end += state_width(layer)?;
        }
        offsets.push(end);
        let bias = fc.bias().map(|b| b.to_dtype(dtype)).transpose()?;
        Ok(StackDynamics {
            fc: Linear::new(fc.weight().to_dtype(dtype)?, bias),
            recurrent: weights(first).weight_hh().clone(),
            layers,
            offsets,
            readout,
            dtype,
        })
    }

    /// Where the top layer's `h` sits in the flat state, and its width.
    fn top_hidden(&self) -> Result<(usize, usize)> {
        let last = self.layers.len() - 1;
        Ok((self.offsets[last], weights(&self.layers[last]).hidden()?))
    }

    /// Layer `l`'s state in a flat state `[B, N]` (contiguous).
    fn layer_state(&self, state: &Tensor, l: usize) -> Result<Tensor> {
        let width = self.offsets[l + 1] - self.offsets[l];
        state.narrow(1, self.offsets[l], width)?.contiguous()
    }
}

impl Dynamics for StackDynamics {
    fn state_size(&self) -> usize {
        self.offsets[self.layers.len()]
    }

    /// Zero states for every layer (as the stack starts), `[1, N]`.
    fn initial_state(&self) -> Result<Tensor> {
        Tensor::zeros(
            (1, self.state_size()),
            self.dtype,
            self.fc.weight().device(),
        )
    }

    /// # Shapes
    /// `input`: `[T, B, ...]` -> the first layer's projected input `[T, B, G·H]`.
    fn drive(&self, input: &Tensor) -> Result<Tensor> {
        let (t_len, batch) = (input.dim(0)?, input.dim(1)?);
        let x = input.reshape((t_len, batch, ()))?.to_dtype(self.dtype)?;
        weights(&self.layers[0]).project(&x)
    }

    /// # Shapes
    /// `state`: `[B, N]`, `drive`: `[B, G·H]` -> `[B, N]`.
    fn step(&self, state: &Tensor, drive: &Tensor) -> Result<Tensor> {
        let mut parts = Vec::with_capacity(2 * self.layers.len());
        let mut xp = drive.clone();
        for (l, cell) in self.layers.iter().enumerate() {
            let s = self.layer_state(state, l)?;
            let h = match cell {
                Cell::Rnn(c) => c.step(&xp, &s)?,
                Cell::Gru(c) => c.step(&xp, &s)?,
                Cell::Lstm(c) => {
                    let n = s.dim(1)? / 2;
                    let prev = LstmState {
                        h: s.narrow(1, 0, n)?.contiguous()?,
                        c: s.narrow(1, n, n)?.contiguous()?,
                    };
                    let next = c.step(&xp, &prev)?;
                    parts.push(next.h.clone());
                    parts.push(next.c);
                    next.h
                }
            };
            if !matches!(cell, Cell::Lstm(_)) {
                parts.push(h.clone());
            }
            if let Some(above) = self.layers.get(l + 1) {
                xp = project(weights(above), &h)?;
            }
        }
        Tensor::cat(&parts, 1)
    }

    /// # Shapes
    /// `prev`, `next`: `[1, N]`; `drive`: `[1, G·H]`; `tangents`: `[N, K]` -> `[N, K]`.
    fn tangent(&self, prev: &Tensor, next: &Tensor, drive: &Tensor, q: &Tensor) -> Result<Tensor> {
        let mut out = Vec::with_capacity(2 * self.layers.len());
        // the layer below's new `h` `[1, H]` and its tangent `[H, K]`
        let mut below: Option<(Tensor, Tensor)> = None;
        for (l, cell) in self.layers.iter().enumerate() {
            let w = weights(cell);
            let (xp, dxp) = match &below {
                None => (drive.clone(), None),
                Some((h, dh)) => (project(w, h)?, Some(w.weight_ih().matmul(dh)?)),
            };
            let (off, width) = (self.offsets[l], self.offsets[l + 1] - self.offsets[l]);
            let (s_prev, s_next) = (self.layer_state(prev, l)?, self.layer_state(next, l)?);
            let dq = q.narrow(0, off, width)?;
            let (h_next, dh) = match cell {
                Cell::Rnn(_) => (s_next.clone(), rnn_tangent(w, &s_next, dxp.as_ref(), &dq)?),
                Cell::Gru(_) => (
                    s_next.clone(),
                    gru_tangent(w, &xp, &s_prev, dxp.as_ref(), &dq)?,
                ),
                Cell::Lstm(_) => {
                    let n = width / 2;
                    let (h, c) = (s_prev.narrow(1, 0, n)?, s_prev.narrow(1, n, n)?);
                    let (h_next, c_next) = (s_next.narrow(1, 0, n)?, s_next.narrow(1, n, n)?);
                    let d = (&dq.narrow(0, 0, n)?, &dq.narrow(0, n, n)?);
                    let (dh, dc) = lstm_tangent(w, &xp, (&h, &c, &c_next), dxp.as_ref(), d)?;
                    out.push(dh.clone());
                    out.push(dc);
                    below = Some((h_next, dh));
                    continue;
                }
            };
            out.push(dh.clone());
            below = Some((h_next, dh));
        }
        Tensor::cat(&out, 0)
    }

    /// # Shapes
    /// `states`: `[T, B, N]` -> `[T, B, R]` ([`StackReadout::EveryStep`]) or `[B, R]`
    /// ([`StackReadout::LastStep`]).
    fn readout(&self, states: &Tensor) -> Result<Tensor> {
        let (t_len, batch, _) = states.dims3()?;
        let (off, h) = self.top_hidden()?;
        match self.readout {
            StackReadout::EveryStep => {
                let top = states.narrow(2, off, h)?.reshape((t_len * batch, h))?;
                self.fc.forward(&top)?.reshape((t_len, batch, ()))
            }
            StackReadout::LastStep => {
                let top = states.get(t_len - 1)?.narrow(1, off, h)?.contiguous()?;
                self.fc.forward(&top)
            }
        }
    }

    fn recurrent_weight(&self) -> Option<Tensor> {
        Some(self.recurrent.clone())
    }
}
