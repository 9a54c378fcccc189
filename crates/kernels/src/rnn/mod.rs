//! Fused recurrent layers over whole sequences, forward and backward through time: Elman RNN
//! (tanh or ReLU), LSTM, GRU and the spiking LSTM, with PyTorch's weight layout.
//!
//! The input projection of all `T` steps is one large product. The batch is then split into
//! row blocks, one per thread, and each block runs the whole sequence on its own (batch rows
//! never interact): per step one product of its hidden state with `W_hhᵀ` (packed once per
//! call, [`crate::sgemm_packed`]) and one pass of gate arithmetic while the step's rows are in
//! cache. Backward runs the blocks back through time the same way, keeping the gradients of
//! the pre-activations, and forms the weight gradients afterwards as three large products
//! over all steps. Each value is summed in a fixed order, so results do not depend on the
//! number of threads.
//!
//! Layouts: time-first `[T, B, X]`; `w_ih` `[G·H, K]`, `w_hh` `[G·H, H]`, biases `[G·H]`.

mod gates;
mod rleaky;
#[cfg(test)]
mod tests;

pub use rleaky::{rleaky_backward, rleaky_forward, RLeakySpec, RLeakyTrace};

use std::ops::Range;

use crate::gemm::MatRef;
use crate::lif::Reset;
use crate::par;
use crate::sgemm::sgemm;
use crate::sgemm_packed::{sgemm_packed, PackedB};
use crate::surrogate::Surrogate;
use gates::{backward_impl, forward_impl, StepBwd, StepFwd};

/// The spiking part of an SLSTM: threshold, reset of the membrane, surrogate gradient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpikeSpec {
    /// Firing threshold θ.
    pub threshold: f32,
    /// What a spike does to the next membrane (`h - R·θ`, `(1 - R)·h` or `h`).
    pub reset: Reset,
    /// The spike's gradient.
    pub surrogate: Surrogate,
}

/// Which recurrent cell a layer is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    /// `h' = tanh(x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh)`.
    Tanh,
    /// As `Tanh` with `max(0, ·)`.
    Relu,
    /// LSTM (gates i, f, g, o).
    Lstm,
    /// GRU (gates r, z, n).
    Gru,
    /// snnTorch's SLSTM: an LSTM whose `h` is a membrane, reset by its spikes.
    Slstm(SpikeSpec),
}

impl Cell {
    /// Gate blocks `G` of the weights (1, 4 or 3).
    pub fn gates(self) -> usize {
        match self {
            Cell::Tanh | Cell::Relu => 1,
            Cell::Lstm | Cell::Slstm(_) => 4,
            Cell::Gru => 3,
        }
    }

    /// Activations kept per unit and step for the backward pass.
    fn acts(self) -> usize {
        match self {
            Cell::Tanh | Cell::Relu => 0,
            Cell::Lstm | Cell::Slstm(_) | Cell::Gru => 4,
        }
    }

    fn has_cell_state(self) -> bool {
        matches!(self, Cell::Lstm | Cell::Slstm(_))
    }
}

/// Sizes of one layer's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Time steps T.
    pub steps: usize,
    /// Batch rows B.
    pub batch: usize,
    /// Input features K.
    pub input: usize,
    /// Hidden units H.
    pub hidden: usize,
}

/// A layer's weights (PyTorch layout).
#[derive(Debug, Clone, Copy)]
pub struct Weights<'a> {
    /// `[G·H, K]`.
    pub w_ih: &'a [f32],
    /// `[G·H, H]`.
    pub w_hh: &'a [f32],
    /// `[G·H]`.
    pub b_ih: &'a [f32],
    /// `[G·H]`.
    pub b_hh: &'a [f32],
}

/// What a forward pass keeps for its backward pass, all time-first `[T, B, ·]`.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// Recurrent state after each step `[T, B, H]` (`h`; SLSTM: the membrane).
    pub states: Vec<f32>,
    acts: Vec<f32>,
    cells: Vec<f32>,
}

/// The gradients reaching a layer's outputs, `[T, B, H]` each.
#[derive(Debug, Clone, Copy)]
pub struct OutGrads<'a> {
    /// Of the outputs (SLSTM: of the spikes).
    pub out: &'a [f32],
    /// SLSTM only, when given: of the membranes (`Trace::states`).
    pub mem: Option<&'a [f32]>,
}

impl Trace {
    /// Sizes the buffers for a forward pass of `cell` over `d` (empty when nothing is kept).
    fn prepare(&mut self, cell: Cell, d: Dims, keep: bool) {
        let tbn = if keep {
            d.steps * d.batch * d.hidden
        } else {
            0
        };
        let sized = |v: &mut Vec<f32>, len: usize| {
            v.clear();
            v.resize(len, 0.0);
        };
        sized(&mut self.states, tbn);
        sized(&mut self.acts, tbn * cell.acts());
        sized(&mut self.cells, if cell.has_cell_state() { tbn } else { 0 });
    }

    /// Checks the buffers against a forward pass of `cell` over `d`.
    fn check(&self, cell: Cell, d: Dims) -> Result<(), String> {
        let tbn = d.steps * d.batch * d.hidden;
        check("trace states", self.states.len(), tbn)?;
        check("trace acts", self.acts.len(), tbn * cell.acts())?;
        let cells = if cell.has_cell_state() { tbn } else { 0 };
        check("trace cells", self.cells.len(), cells)
    }
}

/// Where the gradients go; each is overwritten. `x` is skipped when `None`.
#[derive(Debug)]
pub struct Grads<'a> {
    /// `[T, B, K]`.
    pub x: Option<&'a mut [f32]>,
    /// `[G·H, K]`.
    pub w_ih: &'a mut [f32],
    /// `[G·H, H]`.
    pub w_hh: &'a mut [f32],
    /// `[G·H]`.
    pub b_ih: &'a mut [f32],
    /// `[G·H]`.
    pub b_hh: &'a mut [f32],
}

fn check(what: &str, got: usize, want: usize) -> Result<(), String> {
    if got != want {
        return Err(format!(
            "recurrent kernel: `{what}` has {got} values, expected {want}"
        ));
    }
    Ok(())
}

fn check_dims(cell: Cell, d: Dims, x: &[f32], w: &Weights<'_>) -> Result<(), String> {
    if d.steps == 0 || d.batch == 0 || d.input == 0 || d.hidden == 0 {
        return Err(format!("recurrent kernel: empty shape {d:?}"));
    }
    let gh = cell.gates() * d.hidden;
    check("x", x.len(), d.steps * d.batch * d.input)?;
    check("w_ih", w.w_ih.len(), gh * d.input)?;
    check("w_hh", w.w_hh.len(), gh * d.hidden)?;
    check("b_ih", w.b_ih.len(), gh)?;
    check("b_hh", w.b_hh.len(), gh)
}

/// The batch's row blocks, one per worker (starts aligned to the product's register tile).
fn blocks(batch: usize) -> Vec<Range<usize>> {
    par::ranges(batch, par::workers(batch, 8), 6)
}

/// For each row block, its slice of each step of a time-first `[T, B, width]` buffer (empty
/// slices when the buffer is empty).
fn split<'a>(
    buf: &'a mut [f32],
    (steps, batch, width): (usize, usize, usize),
    blocks: &[Range<usize>],
) -> Vec<Vec<&'a mut [f32]>> {
    let mut out: Vec<Vec<&'a mut [f32]>> = blocks.iter().map(|_| Vec::new()).collect();
    if buf.is_empty() {
        for v in &mut out {
            v.extend((0..steps).map(|_| <&mut [f32]>::default()));
        }
        return out;
    }
    for step in buf.chunks_exact_mut(batch * width) {
        let mut rest = step;
        for (r, dst) in blocks.iter().zip(out.iter_mut()) {
            let (mine, tail) = rest.split_at_mut(r.len() * width);
            dst.push(mine);
            rest = tail;
        }
    }
    out
}

/// Runs `job(block_rows, block_data)` for every block, in parallel; the first error, if any.
fn run_blocks<D: Send>(
    blocks: &[Range<usize>],
    data: Vec<D>,
    job: impl Fn(Range<usize>, D) -> Result<(), String> + Sync,
) -> Result<(), String> {
    let mut jobs: Vec<(Range<usize>, D)> = blocks.iter().cloned().zip(data).collect();
    if jobs.len() == 1 {
        return match jobs.pop() {
            Some((r, d)) => job(r, d),
            None => Ok(()),
        };
    }
    let failed = std::sync::Mutex::new(Ok(()));
    rayon::scope(|s| {
        for (r, d) in jobs {
            let (job, failed) = (&job, &failed);
            s.spawn(move |_| {
                if let Err(e) = job(r, d) {
                    *failed.lock().unwrap_or_else(|p| p.into_inner()) = Err(e);
                }
            });
        }
    });
    failed.into_inner().unwrap_or_else(|p| p.into_inner())
}

dispatch!(fn step_forward<'a>(cell: Cell, n: usize, s: StepFwd<'a>) => forward_impl);
dispatch!(fn step_backward<'a>(cell: Cell, n: usize, s: StepBwd<'a>) => backward_impl);

/// Runs the layer over the sequence `x` `[T, B, K]` from zero states, writing its outputs
/// `out` `[T, B, H]` (the hidden states; SLSTM: the spikes) and, when given, what the
/// backward pass needs into `trace`.
pub fn forward(
    cell: Cell,
    d: Dims,
    x: &[f32],
    w: Weights<'_>,
    out: &mut [f32],
    trace: Option<&mut Trace>,
) -> Result<(), String> {
    check_dims(cell, d, x, &w)?;
    let (t_len, b, n) = (d.steps, d.batch, d.hidden);
    let gh = cell.gates() * n;
    check("out", out.len(), t_len * b * n)?;
    let mut pre = vec![0f32; t_len * b * gh];
    sgemm(
        &mut pre,
        gh,
        MatRef::row_major(x, t_len * b, d.input),
        MatRef::row_major(w.w_ih, gh, d.input).t(),
        false,
        true,
    )?;
    let whh = PackedB::new(MatRef::row_major(w.w_hh, gh, n).t())?;
    let (b_pre, b_hp): (Vec<f32>, &[f32]) = if cell == Cell::Gru {
        (w.b_ih.to_vec(), w.b_hh)
    } else {
        (w.b_ih.iter().zip(w.b_hh).map(|(a, c)| a + c).collect(), &[])
    };
    let keep = trace.is_some();
    let mut local = Trace::default();
    let tr = trace.unwrap_or(&mut local);
    tr.prepare(cell, d, keep);
    let bl = blocks(b);
    let data: Vec<_> = split(&mut pre, (t_len, b, gh), &bl)
        .into_iter()
        .zip(split(out, (t_len, b, n), &bl))
        .zip(split(&mut tr.states, (t_len, b, n), &bl))
        .zip(split(&mut tr.acts, (t_len, b, cell.acts() * n), &bl))
        .zip(split(&mut tr.cells, (t_len, b, n), &bl))
        .collect();
    run_blocks(&bl, data, |rows, ((((pre, out), states), acts), cells)| {
        let nb = rows.len();
        let mut state = vec![0f32; nb * n];
        let mut c = vec![0f32; if cell.has_cell_state() { nb * n } else { 0 }];
        let mut hp = vec![0f32; if cell == Cell::Gru { nb * gh } else { 0 }];
        let mut acts_tmp = vec![0f32; nb * cell.acts() * n];
        let mut spikes = vec![
            0f32;
            if matches!(cell, Cell::Slstm(_)) {
                nb * n
            } else {
                0
            }
        ];
        let (mut pre, mut out, mut states, mut acts, mut cells) = (pre, out, states, acts, cells);
        for t in 0..t_len {
            let g = &mut *pre[t];
            if t > 0 {
                let a = MatRef::row_major(&state, nb, n);
                if cell == Cell::Gru {
                    sgemm_packed(&mut hp, gh, a, &whh, false)
                } else {
                    sgemm_packed(g, gh, a, &whh, true)
                }?;
            }
            let acts_t: &mut [f32] = if keep { &mut *acts[t] } else { &mut acts_tmp };
            step_forward(
                cell,
                n,
                StepFwd {
                    pre: g,
                    hp: &hp,
                    b_pre: &b_pre,
                    b_hp,
                    state: &mut state,
                    cell: &mut c,
                    acts: acts_t,
                    spikes: &mut spikes,
                },
            );
            if let Cell::Slstm(_) = cell {
                out[t].copy_from_slice(&spikes);
            } else {
                out[t].copy_from_slice(&state);
            }
            if keep {
                states[t].copy_from_slice(&state);
                if cell.has_cell_state() {
                    cells[t].copy_from_slice(&c);
                }
            }
        }
        Ok(())
    })
}

/// `out = (a·b)ᵀ` (`out` row-major `b.cols x a.rows`).
fn transposed_product(a: MatRef<'_>, b: MatRef<'_>, out: &mut [f32]) -> Result<(), String> {
    let (m, n) = (a.rows, b.cols);
    let mut t = vec![0f32; m * n];
    sgemm(&mut t, n, a, b, false, true)?;
    check("weight gradient", out.len(), m * n)?;
    for (i, row) in t.chunks_exact(n).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            out[j * m + i] = v;
        }
    }
    Ok(())
}

/// Column sums of a row-major `[rows, cols]` matrix into `out` `[cols]` (split by columns).
fn column_sums(m: &[f32], cols: usize, out: &mut [f32]) {
    par::for_row_chunks(out, 1, 64, |range, chunk| {
        chunk.fill(0.0);
        for row in m.chunks_exact(cols) {
            for (o, v) in chunk.iter_mut().zip(&row[range.clone()]) {
                *o += v;
            }
        }
    });
}

/// Gradients of the layer given the gradients of its outputs, for the forward pass that
/// filled `trace` from the same `x` and weights.
pub fn backward(
    cell: Cell,
    d: Dims,
    x: &[f32],
    w: Weights<'_>,
    trace: &Trace,
    upstream: OutGrads<'_>,
    grads: Grads<'_>,
) -> Result<(), String> {
    let (d_out, d_mem) = (upstream.out, upstream.mem);
    check_dims(cell, d, x, &w)?;
    let (t_len, b, n, k) = (d.steps, d.batch, d.hidden, d.input);
    let gh = cell.gates() * n;
    let tbn = t_len * b * n;
    check("d_out", d_out.len(), tbn)?;
    trace.check(cell, d)?;
    if let Some(m) = d_mem {
        check("d_mem", m.len(), tbn)?;
    }
    check("grad w_ih", grads.w_ih.len(), gh * k)?;
    check("grad w_hh", grads.w_hh.len(), gh * n)?;
    check("grad b_ih", grads.b_ih.len(), gh)?;
    check("grad b_hh", grads.b_hh.len(), gh)?;
    let whh = PackedB::new(MatRef::row_major(w.w_hh, gh, n))?;
    let gru = cell == Cell::Gru;
    let mut d_pre = vec![0f32; t_len * b * gh];
    let mut d_hp = vec![0f32; if gru { t_len * b * gh } else { 0 }];
    let bl = blocks(b);
    let data: Vec<_> = split(&mut d_pre, (t_len, b, gh), &bl)
        .into_iter()
        .zip(split(&mut d_hp, (t_len, b, if gru { gh } else { 0 }), &bl))
        .collect();
    run_blocks(&bl, data, |rows, (mut dpre, mut dhp)| {
        let nb = rows.len();
        let zeros = vec![0f32; nb * n];
        let mut d_state = vec![0f32; nb * n];
        let mut d_cell = vec![0f32; nb * n];
        let an = cell.acts() * n;
        // this block's rows of step `t` in a `[T, B, width]` buffer
        let at = |t: usize, width: usize| {
            t * b * width + rows.start * width..t * b * width + rows.end * width
        };
        for t in (0..t_len).rev() {
            let r = at(t, n);
            let (state_prev, cell_prev) = if t == 0 {
                (&zeros[..], &zeros[..])
            } else {
                let rp = at(t - 1, n);
                let cp = if cell.has_cell_state() {
                    &trace.cells[rp.clone()]
                } else {
                    &zeros[..]
                };
                (&trace.states[rp], cp)
            };
            let mut no_hp: [f32; 0] = [];
            step_backward(
                cell,
                n,
                StepBwd {
                    d_state: &mut d_state,
                    d_out: &d_out[r.clone()],
                    d_mem: d_mem.map(|m| &m[r.clone()]).unwrap_or(&[]),
                    d_cell: &mut d_cell,
                    acts: &trace.acts[at(t, an)],
                    state: &trace.states[r.clone()],
                    state_prev,
                    cell: if cell.has_cell_state() {
                        &trace.cells[r.clone()]
                    } else {
                        &[]
                    },
                    cell_prev,
                    d_pre: &mut *dpre[t],
                    d_hp: if gru { &mut *dhp[t] } else { &mut no_hp },
                },
            );
            if t > 0 {
                let g: &[f32] = if gru { &*dhp[t] } else { &*dpre[t] };
                // GRU keeps its direct term `dh·z` in `d_state` and adds the product to it
                sgemm_packed(&mut d_state, n, MatRef::row_major(g, nb, gh), &whh, gru)?;
            }
        }
        Ok(())
    })?;
    weight_grads(cell, d, (x, w.w_ih), &trace.states, (&d_pre, &d_hp), grads)
}

/// The weight, bias and input gradients from the pre-activation gradients of every step
/// (`d_hp`: GRU's recurrent-side ones, else empty).
fn weight_grads(
    cell: Cell,
    d: Dims,
    (x, w_ih): (&[f32], &[f32]),
    states: &[f32],
    (d_pre, d_hp): (&[f32], &[f32]),
    grads: Grads<'_>,
) -> Result<(), String> {
    let (t_len, b, n, k) = (d.steps, d.batch, d.hidden, d.input);
    let gh = cell.gates() * n;
    let gru = cell == Cell::Gru;
    let d_h: &[f32] = if gru { d_hp } else { d_pre };
    // dW_hh = Σ_{t ≥ 1} dh_tᵀ · state_{t-1} and dW_ih = Σ_t dx_tᵀ · x_t, each formed transposed
    // (`[H, G·H]`, `[K, G·H]`): the product is then split over the long `G·H` side and every
    // thread packs only the small `state`/`x` operand whole
    if t_len > 1 {
        let rows = (t_len - 1) * b;
        let states = MatRef::row_major(&states[..rows * n], rows, n).t();
        transposed_product(
            states,
            MatRef::row_major(&d_h[b * gh..], rows, gh),
            grads.w_hh,
        )?;
    } else {
        grads.w_hh.fill(0.0);
    }
    let tb = t_len * b;
    let xs = MatRef::row_major(x, tb, k).t();
    transposed_product(xs, MatRef::row_major(d_pre, tb, gh), grads.w_ih)?;
    column_sums(d_pre, gh, grads.b_ih);
    if gru {
        column_sums(d_hp, gh, grads.b_hh);
    } else {
        // both biases enter the same sum
        grads.b_hh.copy_from_slice(grads.b_ih);
    }
    if let Some(dx) = grads.x {
        check("grad x", dx.len(), tb * k)?;
        sgemm(
            dx,
            k,
            MatRef::row_major(d_pre, tb, gh),
            MatRef::row_major(w_ih, gh, k),
            false,
            true,
        )?;
    }
    Ok(())
}
