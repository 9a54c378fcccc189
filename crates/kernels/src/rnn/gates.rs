//! The element-wise part of one step of each cell, on one block of batch rows: forward from
//! the step's pre-activations, backward to their gradients. Row-major `[rows, X]` slices;
//! gate order as PyTorch (LSTM i, f, g, o; GRU r, z, n).

use super::{Cell, SpikeSpec};
use crate::fastmath::{sigmoid, tanh};
use crate::lif::Reset;

/// One step's buffers of a block of `rows` rows, `n` hidden units, `gh = gates·n`.
pub(super) struct StepFwd<'a> {
    /// Pre-activations `[rows, gh]`: input projection plus (not GRU) the recurrent product.
    pub pre: &'a [f32],
    /// GRU only: the recurrent product `h·W_hhᵀ` `[rows, gh]`.
    pub hp: &'a [f32],
    /// Bias added to `pre` `[gh]` (`b_ih + b_hh`; GRU: `b_ih`).
    pub b_pre: &'a [f32],
    /// GRU only: bias added to `hp` `[gh]` (`b_hh`).
    pub b_hp: &'a [f32],
    /// Recurrent state `[rows, n]`: the previous one in, the new one out.
    pub state: &'a mut [f32],
    /// LSTM cell state `[rows, n]`: previous in, new out.
    pub cell: &'a mut [f32],
    /// Kept activations `[rows, acts·n]` (see [`Cell::acts`]).
    pub acts: &'a mut [f32],
    /// SLSTM only: spikes `[rows, n]`.
    pub spikes: &'a mut [f32],
}

fn map(out: &mut [f32], x: &[f32], b: &[f32], f: impl Fn(f32) -> f32) {
    for ((o, &x), &b) in out.iter_mut().zip(x).zip(b) {
        *o = f(x + b);
    }
}

/// The new state (and cell, acts, spikes) of every row from the step's pre-activations.
#[inline(always)]
pub(super) fn forward_impl(cell: Cell, n: usize, s: StepFwd<'_>) {
    let gh = cell.gates() * n;
    let rows = s.state.len() / n;
    for r in 0..rows {
        let pre = &s.pre[r * gh..(r + 1) * gh];
        let state = &mut s.state[r * n..(r + 1) * n];
        match cell {
            Cell::Tanh => map(state, pre, s.b_pre, tanh),
            Cell::Relu => map(state, pre, s.b_pre, |v| v.max(0.0)),
            Cell::Lstm | Cell::Slstm(_) => {
                let a = &mut s.acts[r * 4 * n..(r + 1) * 4 * n];
                let (ai, rest) = a.split_at_mut(n);
                let (af, rest) = rest.split_at_mut(n);
                let (ag, ao) = rest.split_at_mut(n);
                map(ai, &pre[..n], &s.b_pre[..n], sigmoid);
                map(af, &pre[n..2 * n], &s.b_pre[n..2 * n], sigmoid);
                map(ag, &pre[2 * n..3 * n], &s.b_pre[2 * n..3 * n], tanh);
                map(ao, &pre[3 * n..], &s.b_pre[3 * n..], sigmoid);
                let c = &mut s.cell[r * n..(r + 1) * n];
                if let Cell::Slstm(spec) = cell {
                    let spikes = &mut s.spikes[r * n..(r + 1) * n];
                    slstm_out(spec, (ai, af, ag, ao), c, state, spikes);
                } else {
                    let gates = ai.iter().zip(af.iter()).zip(ag.iter()).zip(ao.iter());
                    for ((cv, hv), (((&i, &f), &g), &o)) in
                        c.iter_mut().zip(state.iter_mut()).zip(gates)
                    {
                        *cv = f * *cv + i * g;
                        *hv = o * tanh(*cv);
                    }
                }
            }
            Cell::Gru => {
                let hp = &s.hp[r * gh..(r + 1) * gh];
                let a = &mut s.acts[r * 4 * n..(r + 1) * 4 * n];
                let (ar, rest) = a.split_at_mut(n);
                let (az, rest) = rest.split_at_mut(n);
                let (an, ahn) = rest.split_at_mut(n);
                let (bp, bh) = (s.b_pre, s.b_hp);
                for (out, g) in [(&mut *ar, 0), (&mut *az, n)] {
                    let sums = pre[g..g + n]
                        .iter()
                        .zip(&bp[g..g + n])
                        .zip(&hp[g..g + n])
                        .zip(&bh[g..g + n]);
                    for (o, (((&x, &b), &h), &c)) in out.iter_mut().zip(sums) {
                        *o = sigmoid(x + b + h + c);
                    }
                }
                for ((o, &h), &c) in ahn.iter_mut().zip(&hp[2 * n..]).zip(&bh[2 * n..]) {
                    *o = h + c;
                }
                let xs = pre[2 * n..]
                    .iter()
                    .zip(&bp[2 * n..])
                    .zip(ar.iter())
                    .zip(ahn.iter());
                for (o, (((&x, &b), &rg), &hn)) in an.iter_mut().zip(xs) {
                    *o = tanh(x + b + rg * hn);
                }
                for ((h, &nn), &z) in state.iter_mut().zip(an.iter()).zip(az.iter()) {
                    *h = nn + z * (*h - nn);
                }
            }
        }
    }
}

/// SLSTM: the LSTM's `c` and `h`, then the membrane `h` reset by the previous step's spikes
/// (`state` holds the previous membrane on entry) and this step's spikes.
#[inline(always)]
fn slstm_out(
    spec: SpikeSpec,
    (ai, af, ag, ao): (&[f32], &[f32], &[f32], &[f32]),
    c: &mut [f32],
    mem: &mut [f32],
    spikes: &mut [f32],
) {
    let th = spec.threshold;
    for j in 0..c.len() {
        c[j] = af[j] * c[j] + ai[j] * ag[j];
        let h = ao[j] * tanh(c[j]);
        let fired = if mem[j] - th > 0.0 { 1.0 } else { 0.0 };
        mem[j] = match spec.reset {
            Reset::Subtract => h - fired * th,
            Reset::Zero => (1.0 - fired) * h,
            Reset::None => h,
        };
        spikes[j] = if mem[j] - th > 0.0 { 1.0 } else { 0.0 };
    }
}

/// One step's buffers for the backward pass of a block.
pub(super) struct StepBwd<'a> {
    /// Gradient reaching the state of this step `[rows, n]` (from the recurrence); on return,
    /// the part of the previous state's gradient that bypasses `W_hh` (GRU `dh·z`, else 0).
    pub d_state: &'a mut [f32],
    /// Gradient of the step's outputs `[rows, n]` (SLSTM: of the spikes).
    pub d_out: &'a [f32],
    /// SLSTM only: gradient of the membrane output `[rows, n]` (empty when not given).
    pub d_mem: &'a [f32],
    /// LSTM: gradient of the cell state carried from the next step, updated in place.
    pub d_cell: &'a mut [f32],
    /// The forward pass's activations of this step `[rows, acts·n]`.
    pub acts: &'a [f32],
    /// This step's state and the previous one `[rows, n]` (zeros before the first step).
    pub state: &'a [f32],
    /// The previous state.
    pub state_prev: &'a [f32],
    /// This step's and the previous LSTM cell state (empty for other cells).
    pub cell: &'a [f32],
    /// The previous cell state.
    pub cell_prev: &'a [f32],
    /// Out: gradient of the input-side pre-activations `[rows, gh]`.
    pub d_pre: &'a mut [f32],
    /// Out, GRU only: gradient of the recurrent product `[rows, gh]`.
    pub d_hp: &'a mut [f32],
}

/// Gradients of one step's pre-activations from the gradient of its state and output.
#[inline(always)]
pub(super) fn backward_impl(cell: Cell, n: usize, s: StepBwd<'_>) {
    let gh = cell.gates() * n;
    let rows = s.d_state.len() / n;
    for r in 0..rows {
        let rn = r * n..(r + 1) * n;
        let dst = &mut s.d_state[rn.clone()];
        let dout = &s.d_out[rn.clone()];
        let h = &s.state[rn.clone()];
        let dpre = &mut s.d_pre[r * gh..(r + 1) * gh];
        match cell {
            Cell::Tanh => {
                for j in 0..n {
                    dpre[j] = (dst[j] + dout[j]) * (1.0 - h[j] * h[j]);
                    dst[j] = 0.0;
                }
            }
            Cell::Relu => {
                for j in 0..n {
                    dpre[j] = if h[j] > 0.0 { dst[j] + dout[j] } else { 0.0 };
                    dst[j] = 0.0;
                }
            }
            Cell::Lstm | Cell::Slstm(_) => {
                let a = &s.acts[r * 4 * n..(r + 1) * 4 * n];
                let (c, cp) = (&s.cell[rn.clone()], &s.cell_prev[rn.clone()]);
                let dc = &mut s.d_cell[rn.clone()];
                if let Cell::Slstm(spec) = cell {
                    let dmem = s.d_mem.get(rn.clone()).unwrap_or(&[]);
                    slstm_d_h(spec, dst, dout, dmem, h, &s.state_prev[rn.clone()]);
                } else {
                    for j in 0..n {
                        dst[j] += dout[j];
                    }
                }
                let [ai, af, ag, ao] = quarters(a, n);
                let (di, rest) = dpre.split_at_mut(n);
                let (df, rest) = rest.split_at_mut(n);
                let (dg, d_o) = rest.split_at_mut(n);
                let (c, cp, dc, dst) = (&c[..n], &cp[..n], &mut dc[..n], &mut dst[..n]);
                let (di, df, dg, d_o) = (&mut di[..n], &mut df[..n], &mut dg[..n], &mut d_o[..n]);
                for j in 0..n {
                    let (i, f, g, o) = (ai[j], af[j], ag[j], ao[j]);
                    let tc = tanh(c[j]);
                    let dh = dst[j];
                    let dcj = dc[j] + dh * o * (1.0 - tc * tc);
                    di[j] = dcj * g * i * (1.0 - i);
                    df[j] = dcj * cp[j] * f * (1.0 - f);
                    dg[j] = dcj * i * (1.0 - g * g);
                    d_o[j] = dh * tc * o * (1.0 - o);
                    dc[j] = dcj * f;
                    dst[j] = 0.0;
                }
            }
            Cell::Gru => {
                let a = &s.acts[r * 4 * n..(r + 1) * 4 * n];
                let [ar, az, an, ahn] = quarters(a, n);
                let (hprev, dout, dst) = (&s.state_prev[rn][..n], &dout[..n], &mut dst[..n]);
                let [xr, xz, xn] = thirds(dpre, n);
                let [hr, hz, hn_] = thirds(&mut s.d_hp[r * gh..(r + 1) * gh], n);
                for j in 0..n {
                    let (rg, z, nn, hn) = (ar[j], az[j], an[j], ahn[j]);
                    let dh = dst[j] + dout[j];
                    let dan = dh * (1.0 - z) * (1.0 - nn * nn);
                    let dar = dan * hn * rg * (1.0 - rg);
                    let daz = dh * (hprev[j] - nn) * z * (1.0 - z);
                    xr[j] = dar;
                    xz[j] = daz;
                    xn[j] = dan;
                    hr[j] = dar;
                    hz[j] = daz;
                    hn_[j] = dan * rg;
                    dst[j] = dh * z;
                }
            }
        }
    }
}

/// The four `n`-long gate blocks of a row of activations.
#[inline(always)]
fn quarters(a: &[f32], n: usize) -> [&[f32]; 4] {
    let (x, rest) = a.split_at(n);
    let (y, rest) = rest.split_at(n);
    let (z, w) = rest.split_at(n);
    [x, y, z, &w[..n]]
}

/// The three `n`-long gate blocks of a row of GRU gradients.
#[inline(always)]
fn thirds(a: &mut [f32], n: usize) -> [&mut [f32]; 3] {
    let (x, rest) = a.split_at_mut(n);
    let (y, z) = rest.split_at_mut(n);
    [&mut x[..n], &mut y[..n], &mut z[..n]]
}

/// SLSTM: turns the gradients of the spikes, the membrane output and the recurrence (in
/// `d`) into the gradient of the LSTM's `h` (in `d`).
#[inline(always)]
fn slstm_d_h(
    spec: SpikeSpec,
    d: &mut [f32],
    d_spk: &[f32],
    d_mem: &[f32],
    mem: &[f32],
    mem_prev: &[f32],
) {
    let th = spec.threshold;
    for j in 0..d.len() {
        let mut dm = d[j] + d_spk[j] * spec.surrogate.grad(mem[j] - th);
        if let Some(v) = d_mem.get(j) {
            dm += v;
        }
        if spec.reset == Reset::Zero && mem_prev[j] - th > 0.0 {
            dm = 0.0;
        }
        d[j] = dm;
    }
}
