//! Predictive-coding inference on dense layers: gradient descent of the energy
//! `F = Σ_terms s/2 ‖r_target − f(W r_source + b)‖²` on the free representations, with the
//! weights fixed, in closed form and without a graph (one pass per step over the terms).
//!
//! A term's gradient is `∂F/∂r_target += s·e` and `∂F/∂r_source −= s·(f'(a) ⊙ e)·W` with
//! `e = r_target − f(a)`, `a = r_source·Wᵀ + b` (`f` ReLU or the identity, `f'(a) = [a > 0]`
//! as torch takes it). A term whose source is clamped has a constant prediction, passed in once
//! per batch (`fixed_prediction`), so its product is never recomputed.

use crate::gemm::MatRef;
use crate::linear::{linear_forward, LinearDims};
use crate::sgemm::sgemm;

/// One energy term: representation `target` predicted from representation `source`.
#[derive(Debug, Clone, Copy)]
pub struct DenseTerm<'a> {
    /// Index of the predicted representation.
    pub target: usize,
    /// Index of the representation the prediction is made from.
    pub source: usize,
    /// `[dim(target), dim(source)]` row-major.
    pub weight: &'a [f32],
    /// `[dim(target)]`.
    pub bias: &'a [f32],
    /// ReLU (else identity) on the prediction.
    pub relu: bool,
    /// The term's weight `s` in `F`.
    pub scale: f32,
    /// `[B, dim(target)]`: the prediction when the source is clamped (computed once).
    pub fixed_prediction: Option<&'a [f32]>,
}

/// How to relax the representations.
#[derive(Debug, Clone, Copy)]
pub struct Relax {
    /// Gradient steps.
    pub steps: usize,
    /// Step size `η`.
    pub rate: f32,
    /// Undo a step that raised `F` and halve `η` (else only count it).
    pub backtrack: bool,
}

/// What a relaxation did: `F` per term before each step and after the last, summed over the
/// batch (`energies[t][term]`, `t = 0..=steps`), and how many steps raised `F`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RelaxTrace {
    /// `F` per term, summed over the batch, at every step (and after the last).
    pub energies: Vec<Vec<f64>>,
    /// Steps after which `F` was higher than before, by more than `1e-6` relative.
    pub rises: usize,
    /// The step size in use at the end (lower than asked after backtracking).
    pub final_rate: f32,
}

impl RelaxTrace {
    /// Total `F` at step `t`.
    pub fn total(&self, t: usize) -> f64 {
        self.energies[t].iter().sum()
    }
}

/// Scratch buffers of one term: pre-activation and error, `[B, dim(target)]`.
struct Scratch {
    pre: Vec<f32>,
    err: Vec<f32>,
}

/// Relaxes `reps` (each `[B, dims[i]]` row-major) for `relax.steps` steps on the energy of
/// `terms`, moving only the representations marked in `free`; returns the energy trace.
pub fn relax_dense(
    reps: &mut [Vec<f32>],
    free: &[bool],
    terms: &[DenseTerm<'_>],
    batch: usize,
    relax: Relax,
) -> Result<RelaxTrace, String> {
    check(reps, free, terms, batch)?;
    let mut scratch: Vec<Scratch> = terms
        .iter()
        .map(|t| Scratch {
            pre: vec![0.0; reps[t.target].len()],
            err: vec![0.0; reps[t.target].len()],
        })
        .collect();
    let mut grads: Vec<Vec<f32>> = reps
        .iter()
        .zip(free)
        .map(|(r, &f)| if f { vec![0.0; r.len()] } else { Vec::new() })
        .collect();
    let mut saved: Vec<Vec<f32>> = Vec::new();
    let mut trace = RelaxTrace {
        final_rate: relax.rate,
        ..RelaxTrace::default()
    };
    let mut rate = relax.rate;
    let mut t = 0;
    while t <= relax.steps {
        let last = t == relax.steps;
        let energies = evaluate(reps, free, terms, &mut scratch, &mut grads, batch, !last)?;
        let total: f64 = energies.iter().sum();
        if let Some(prev) = trace.energies.last() {
            let before: f64 = prev.iter().sum();
            if total > before + 1e-6 * before.abs() {
                trace.rises += 1;
                if relax.backtrack {
                    // undo the step that raised F and retry it at half the rate
                    for (r, s) in reps.iter_mut().zip(&saved) {
                        if !s.is_empty() {
                            r.copy_from_slice(s);
                        }
                    }
                    rate *= 0.5;
                    evaluate(reps, free, terms, &mut scratch, &mut grads, batch, true)?;
                    step(reps, free, &grads, rate, &mut saved);
                    continue;
                }
            }
        }
        trace.energies.push(energies);
        if !last {
            step(reps, free, &grads, rate, &mut saved);
        }
        t += 1;
    }
    trace.final_rate = rate;
    Ok(trace)
}

/// `r_k ← r_k − η ∂F/∂r_k` for the free `k`, keeping the values before in `saved`.
fn step(
    reps: &mut [Vec<f32>],
    free: &[bool],
    grads: &[Vec<f32>],
    rate: f32,
    saved: &mut Vec<Vec<f32>>,
) {
    saved.resize(reps.len(), Vec::new());
    for (k, r) in reps.iter_mut().enumerate() {
        if !free[k] {
            continue;
        }
        saved[k].clone_from(r);
        for (v, g) in r.iter_mut().zip(&grads[k]) {
            *v -= rate * g;
        }
    }
}

/// The per-term energies held in the scratch errors.
fn energies_of(scratch: &[Scratch], terms: &[DenseTerm<'_>]) -> Vec<f64> {
    scratch
        .iter()
        .zip(terms)
        .map(|(s, t)| {
            let sq: f64 = s.err.iter().map(|&e| f64::from(e) * f64::from(e)).sum();
            0.5 * f64::from(t.scale) * sq
        })
        .collect()
}

/// Computes every term's error (and, with `with_grads`, `∂F/∂r` of the free representations);
/// returns the per-term energies.
fn evaluate(
    reps: &[Vec<f32>],
    free: &[bool],
    terms: &[DenseTerm<'_>],
    scratch: &mut [Scratch],
    grads: &mut [Vec<f32>],
    batch: usize,
    with_grads: bool,
) -> Result<Vec<f64>, String> {
    for g in grads.iter_mut() {
        g.iter_mut().for_each(|v| *v = 0.0);
    }
    for (term, s) in terms.iter().zip(scratch.iter_mut()) {
        let out = term.bias.len();
        let inp = term.weight.len() / out;
        match term.fixed_prediction {
            Some(mu) => s.pre.copy_from_slice(mu),
            // the same product as the fused forward's, so a bottom-up state has zero error
            None => linear_forward(
                &reps[term.source],
                term.weight,
                Some(term.bias),
                false,
                LinearDims {
                    rows: batch,
                    inputs: inp,
                    outputs: out,
                },
                &mut s.pre,
            )?,
        }
        // err = r_target − f(pre); pre becomes −s·f'(pre)·err, the source's error signal
        let relu = term.relu && term.fixed_prediction.is_none();
        for ((e, p), &r) in s
            .err
            .iter_mut()
            .zip(s.pre.iter_mut())
            .zip(&reps[term.target])
        {
            let mu = if relu { p.max(0.0) } else { *p };
            *e = r - mu;
            let slope = if relu && *p <= 0.0 { 0.0 } else { 1.0 };
            *p = -term.scale * slope * *e;
        }
        if !with_grads {
            continue;
        }
        if free[term.target] {
            for (g, &e) in grads[term.target].iter_mut().zip(&s.err) {
                *g += term.scale * e;
            }
        }
        if free[term.source] && term.fixed_prediction.is_none() {
            sgemm(
                &mut grads[term.source],
                inp,
                MatRef::row_major(&s.pre, batch, out),
                MatRef::row_major(term.weight, out, inp),
                true,
                true,
            )?;
        }
    }
    Ok(energies_of(scratch, terms))
}

fn check(
    reps: &[Vec<f32>],
    free: &[bool],
    terms: &[DenseTerm<'_>],
    batch: usize,
) -> Result<(), String> {
    if free.len() != reps.len() {
        return Err(format!(
            "pc: {} free flags for {} representations",
            free.len(),
            reps.len()
        ));
    }
    for (i, t) in terms.iter().enumerate() {
        let (Some(tgt), Some(src)) = (reps.get(t.target), reps.get(t.source)) else {
            return Err(format!("pc: term {i} names a representation out of range"));
        };
        let out = t.bias.len();
        if out == 0 || tgt.len() != batch * out || t.weight.len() * batch != out * src.len() {
            return Err(format!(
                "pc: term {i}: weight {} and bias {out} do not fit representations of {} and {} values (batch {batch})",
                t.weight.len(),
                tgt.len(),
                src.len()
            ));
        }
        if t.fixed_prediction.is_some_and(|m| m.len() != tgt.len()) {
            return Err(format!(
                "pc: term {i}: the fixed prediction has the wrong length"
            ));
        }
        if t.fixed_prediction.is_some() && free[t.source] {
            return Err(format!(
                "pc: term {i} has a fixed prediction but a free source"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect()
    }

    /// Energy of a 3-layer chain computed naively in f64.
    fn naive_energy(
        reps: &[Vec<f32>],
        ws: &[Vec<f32>],
        bs: &[Vec<f32>],
        dims: &[usize],
        b: usize,
    ) -> f64 {
        let mut f = 0.0;
        for l in 0..ws.len() {
            let (i, o) = (dims[l], dims[l + 1]);
            for n in 0..b {
                for j in 0..o {
                    let mut a = f64::from(bs[l][j]);
                    for k in 0..i {
                        a += f64::from(ws[l][j * i + k]) * f64::from(reps[l][n * i + k]);
                    }
                    let mu = if l + 1 < ws.len() { a.max(0.0) } else { a };
                    let e = f64::from(reps[l + 1][n * o + j]) - mu;
                    f += 0.5 * e * e;
                }
            }
        }
        f
    }

    /// Weights, biases and representations of a dense chain.
    type Chain = (Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<Vec<f32>>);

    /// A dense chain through `dims` with representations of batch `b`, drawn from `seed`.
    fn chain(dims: &[usize], b: usize, seed: u64) -> Chain {
        let layers = dims.len() - 1;
        let ws = (0..layers)
            .map(|l| lcg(dims[l] * dims[l + 1], seed + l as u64))
            .collect();
        let bs = (0..layers)
            .map(|l| lcg(dims[l + 1], seed + 10 + l as u64))
            .collect();
        let reps = (0..dims.len())
            .map(|l| lcg(b * dims[l], seed + 20 + l as u64))
            .collect();
        (ws, bs, reps)
    }

    /// The chain's terms, ReLU on the hidden layers when `relu`.
    fn chain_terms<'a>(ws: &'a [Vec<f32>], bs: &'a [Vec<f32>], relu: bool) -> Vec<DenseTerm<'a>> {
        (0..ws.len())
            .map(|l| DenseTerm {
                target: l + 1,
                source: l,
                weight: &ws[l],
                bias: &bs[l],
                relu: relu && l + 1 < ws.len(),
                scale: 1.0,
                fixed_prediction: None,
            })
            .collect()
    }

    #[test]
    fn energy_matches_a_naive_sum_and_descends() -> Result<(), String> {
        let dims = [6, 5, 4, 3];
        let b = 2;
        let (ws, bs, mut reps) = chain(&dims, b, 1);
        let terms = chain_terms(&ws, &bs, true);
        let want = naive_energy(&reps, &ws, &bs, &dims, b);
        let free = [false, true, true, false];
        let trace = relax_dense(
            &mut reps,
            &free,
            &terms,
            b,
            Relax {
                steps: 30,
                rate: 0.05,
                backtrack: false,
            },
        )?;
        assert!(
            (trace.total(0) - want).abs() < 1e-5 * want.max(1.0),
            "{} vs {want}",
            trace.total(0)
        );
        for t in 1..=30 {
            assert!(trace.total(t) <= trace.total(t - 1) * (1.0 + 1e-6));
        }
        assert_eq!(trace.rises, 0);
        Ok(())
    }

    #[test]
    fn backtracking_undoes_a_rising_step() -> Result<(), String> {
        let dims = [4, 3, 2];
        let b = 1;
        let (ws, bs, reps0) = chain(&dims, b, 3);
        let terms = chain_terms(&ws, &bs, false);
        let free = [false, true, true];
        // a rate far too large diverges without backtracking and descends with it
        let run = |backtrack: bool| {
            let mut reps = reps0.clone();
            let relax = Relax {
                steps: 10,
                rate: 3.0,
                backtrack,
            };
            relax_dense(&mut reps, &free, &terms, b, relax)
        };
        assert!(run(false)?.rises > 0);
        let tamed = run(true)?;
        for t in 1..tamed.energies.len() {
            assert!(tamed.total(t) <= tamed.total(t - 1) * (1.0 + 1e-6));
        }
        assert!(tamed.final_rate < 3.0);
        Ok(())
    }
}
