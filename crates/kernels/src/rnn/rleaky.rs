//! snnTorch's `RLeaky` with all-to-all feedback over a whole sequence, forward and backward
//! through time: `U[t] = β·U[t-1] + I[t] + S[t-1]·Vᵀ + b - R·θ` with `R = H(U[t-1] - θ)`
//! detached (zero reset: `β·(1 - R)·U[t-1] + ...`; none: no reset term) and
//! `S[t] = H(U[t] - θ)` with a surrogate gradient; β and θ are constants.
//!
//! The input current `I` `[T, B, N]` is computed outside (the layer's input map). As in
//! [`super::forward`], each thread runs its block of batch rows through every step, one
//! product of the previous spikes with `Vᵀ` (packed once) per step; backward keeps the
//! membrane gradients of all steps and forms `dV` as one product over all steps.

use super::{blocks, check, run_blocks, split};
use crate::gemm::MatRef;
use crate::lif::Reset;
use crate::sgemm::sgemm;
use crate::sgemm_packed::{sgemm_packed, PackedB};
use crate::surrogate::Surrogate;

/// The neuron's constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RLeakySpec {
    /// Membrane decay β (used as given: clamp it to [0, 1] before).
    pub beta: f32,
    /// Firing threshold θ.
    pub threshold: f32,
    /// What a spike does to the next membrane.
    pub reset: Reset,
    /// The spike's gradient.
    pub surrogate: Surrogate,
}

/// Spikes `[T, B, N]` and membranes `[T, B, N]` of a forward pass.
#[derive(Debug, Clone, Default)]
pub struct RLeakyTrace {
    /// `S[t]`.
    pub spikes: Vec<f32>,
    /// `U[t]`.
    pub mem: Vec<f32>,
}

/// The membrane update and spikes of one step of one block (`rec` holds `S[t-1]·Vᵀ`, or is
/// empty at the first step); `mem` holds `U[t-1]` on entry.
#[inline(always)]
fn step_impl(
    spec: RLeakySpec,
    current: &[f32],
    rec: &[f32],
    bias: &[f32],
    mem: &mut [f32],
    spikes: &mut [f32],
) {
    let n = bias.len();
    let th = spec.threshold;
    for (r, (m, s)) in mem
        .chunks_exact_mut(n)
        .zip(spikes.chunks_exact_mut(n))
        .enumerate()
    {
        let cur = &current[r * n..(r + 1) * n];
        let rec = rec.get(r * n..(r + 1) * n);
        for j in 0..n {
            let fired = if m[j] - th > 0.0 { 1.0 } else { 0.0 };
            let drive = cur[j] + bias[j] + rec.map_or(0.0, |v| v[j]);
            m[j] = match spec.reset {
                Reset::Subtract => spec.beta * m[j] + drive - fired * th,
                Reset::Zero => spec.beta * ((1.0 - fired) * m[j]) + drive,
                Reset::None => spec.beta * m[j] + drive,
            };
            s[j] = if m[j] - th > 0.0 { 1.0 } else { 0.0 };
        }
    }
}

dispatch!(fn step<'a>(spec: RLeakySpec, current: &'a [f32], rec: &'a [f32], bias: &'a [f32], mem: &'a mut [f32], spikes: &'a mut [f32]) => step_impl);

fn check_shapes(
    d: (usize, usize, usize),
    current: &[f32],
    w: &[f32],
    bias: &[f32],
) -> Result<(), String> {
    let (t, b, n) = d;
    if t == 0 || b == 0 || n == 0 {
        return Err(format!("rleaky kernel: empty shape T={t} B={b} N={n}"));
    }
    check("current", current.len(), t * b * n)?;
    check("feedback weight", w.len(), n * n)?;
    check("feedback bias", bias.len(), n)
}

/// Runs the layer over `current` `[T, B, N]` from zero membranes and spikes, with feedback
/// weight `w` `[N, N]` and bias `[N]`; fills `trace` with spikes and membranes.
pub fn rleaky_forward(
    spec: RLeakySpec,
    (t_len, b, n): (usize, usize, usize),
    current: &[f32],
    (w, bias): (&[f32], &[f32]),
    trace: &mut RLeakyTrace,
) -> Result<(), String> {
    check_shapes((t_len, b, n), current, w, bias)?;
    let wt = PackedB::new(MatRef::row_major(w, n, n).t())?;
    for v in [&mut trace.spikes, &mut trace.mem] {
        v.clear();
        v.resize(t_len * b * n, 0.0);
    }
    let bl = blocks(b);
    let data: Vec<_> = split(&mut trace.spikes, (t_len, b, n), &bl)
        .into_iter()
        .zip(split(&mut trace.mem, (t_len, b, n), &bl))
        .collect();
    run_blocks(&bl, data, |rows, (mut spk, mut mem)| {
        let nb = rows.len();
        let (mut m, mut s) = (vec![0f32; nb * n], vec![0f32; nb * n]);
        let mut rec = vec![0f32; nb * n];
        for t in 0..t_len {
            let cur = &current[(t * b + rows.start) * n..(t * b + rows.end) * n];
            let rec_t: &[f32] = if t == 0 {
                &[]
            } else {
                sgemm_packed(&mut rec, n, MatRef::row_major(&s, nb, n), &wt, false)?;
                &rec
            };
            step(spec, cur, rec_t, bias, &mut m, &mut s);
            spk[t].copy_from_slice(&s);
            mem[t].copy_from_slice(&m);
        }
        Ok(())
    })
}

/// One backward step of a block: `d_spk` (in: the spikes' gradient from above plus the
/// feedback's) becomes the membrane gradient `d_mem`; `carry` (in: the part of `dU[t]` coming
/// from `U[t+1]`) becomes the part of `dU[t-1]` coming from `U[t]`.
#[inline(always)]
fn back_impl(
    spec: RLeakySpec,
    d_spk: &[f32],
    d_mem_out: &[f32],
    mem: &[f32],
    mem_prev: &[f32],
    carry: &mut [f32],
    d_mem: &mut [f32],
) {
    let th = spec.threshold;
    for j in 0..d_mem.len() {
        let mut g = carry[j] + d_spk[j] * spec.surrogate.grad(mem[j] - th);
        if let Some(v) = d_mem_out.get(j) {
            g += v;
        }
        d_mem[j] = g;
        let kept = match spec.reset {
            Reset::Zero if mem_prev[j] - th > 0.0 => 0.0,
            _ => spec.beta,
        };
        carry[j] = kept * g;
    }
}

dispatch!(fn back<'a>(spec: RLeakySpec, d_spk: &'a [f32], d_mem_out: &'a [f32], mem: &'a [f32], mem_prev: &'a [f32], carry: &'a mut [f32], d_mem: &'a mut [f32]) => back_impl);

/// Gradients of [`rleaky_forward`]: given the gradient of the spikes `d_spikes` (and of the
/// membranes, when given), writes the gradient of the current `d_current` `[T, B, N]`, of the
/// feedback weight `d_w` `[N, N]` and bias `d_bias` `[N]`.
pub fn rleaky_backward(
    spec: RLeakySpec,
    (t_len, b, n): (usize, usize, usize),
    w: &[f32],
    trace: &RLeakyTrace,
    (d_spikes, d_mem_out): (&[f32], Option<&[f32]>),
    (d_current, d_w, d_bias): (&mut [f32], &mut [f32], &mut [f32]),
) -> Result<(), String> {
    let tbn = t_len * b * n;
    check_shapes((t_len, b, n), d_spikes, w, d_bias)?;
    check("trace spikes", trace.spikes.len(), tbn)?;
    check("trace membranes", trace.mem.len(), tbn)?;
    check("d_current", d_current.len(), tbn)?;
    check("d_w", d_w.len(), n * n)?;
    if let Some(m) = d_mem_out {
        check("d_mem", m.len(), tbn)?;
    }
    let wp = PackedB::new(MatRef::row_major(w, n, n))?;
    let bl = blocks(b);
    let data = split(d_current, (t_len, b, n), &bl);
    run_blocks(&bl, data, |rows, mut dcur| {
        let nb = rows.len();
        let zeros = vec![0f32; nb * n];
        let (mut carry, mut d_spk) = (vec![0f32; nb * n], vec![0f32; nb * n]);
        let at = |t: usize| (t * b + rows.start) * n..(t * b + rows.end) * n;
        for t in (0..t_len).rev() {
            for (d, g) in d_spk.iter_mut().zip(&d_spikes[at(t)]) {
                *d += g;
            }
            let mem_prev = if t == 0 {
                &zeros[..]
            } else {
                &trace.mem[at(t - 1)]
            };
            let dmo = d_mem_out.map_or(&[][..], |m| &m[at(t)]);
            back(
                spec,
                &d_spk,
                dmo,
                &trace.mem[at(t)],
                mem_prev,
                &mut carry,
                &mut *dcur[t],
            );
            if t > 0 {
                // the feedback's share of the previous spikes' gradient: dU[t]·V
                let g = MatRef::row_major(&*dcur[t], nb, n);
                sgemm_packed(&mut d_spk, n, g, &wp, false)?;
            }
        }
        Ok(())
    })?;
    // dV = Σ_{t ≥ 1} dU[t]ᵀ·S[t-1]; db = Σ_t dU[t]
    if t_len > 1 {
        let rows = (t_len - 1) * b;
        sgemm(
            d_w,
            n,
            MatRef::row_major(&d_current[b * n..], rows, n).t(),
            MatRef::row_major(&trace.spikes[..rows * n], rows, n),
            false,
            true,
        )?;
    } else {
        d_w.fill(0.0);
    }
    super::column_sums(d_current, n, d_bias);
    Ok(())
}
