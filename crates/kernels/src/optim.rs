//! In-place optimizer updates (Adam/AdamW moments and step, SGD with momentum), element by
//! element, with the same f32 operations in the same order as the tensor formulation
//! (`x·a + b` products, no fused multiply-add), so both paths agree to rounding.

use crate::par;

/// Minimum number of elements per worker.
const MIN_PER_WORKER: usize = 1 << 15;

fn check(what: &str, dst: usize, srcs: &[usize]) -> Result<(), String> {
    if srcs.iter().any(|&n| n != dst) {
        return Err(format!(
            "{what}: operands hold {srcs:?} values, the updated tensor {dst}"
        ));
    }
    Ok(())
}

/// Runs `f(range, dst[range])` over disjoint ranges in parallel.
fn split<F: Fn(std::ops::Range<usize>, &mut [f32]) + Sync>(dst: &mut [f32], f: F) {
    par::for_row_chunks(dst, 1, MIN_PER_WORKER, f);
}

/// The gradient Adam and SGD use: `g + p·l2` (L2 weight decay added to the gradient).
#[inline(always)]
fn decayed_grad(g: f32, p: f32, l2: f32) -> f32 {
    if l2 != 0.0 {
        g + p * l2
    } else {
        g
    }
}

/// Constants of one Adam step, as f32 (computed in f64 by the caller, like the tensor path).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    /// `β₁`.
    pub beta1: f32,
    /// `1 - β₁`.
    pub one_minus_beta1: f32,
    /// `β₂`.
    pub beta2: f32,
    /// `1 - β₂`.
    pub one_minus_beta2: f32,
    /// L2 weight decay added to the gradient (Adam), 0 for none or for AdamW.
    pub l2: f32,
    /// `1 / (1 - β₁ᵗ)`.
    pub inv_bias1: f32,
    /// `1 / (1 - β₂ᵗ)`.
    pub inv_bias2: f32,
    /// Added to the denominator.
    pub eps: f32,
    /// Learning rate.
    pub lr: f32,
    /// Factor applied to the weights before the step: `1 - lr·wd` for AdamW, else 1.
    pub decay: f32,
}

#[inline(always)]
fn adam_m_impl(m: &mut [f32], g: &[f32], p: &[f32], s: AdamStep) {
    for ((m, &g), &p) in m.iter_mut().zip(g).zip(p) {
        *m = *m * s.beta1 + decayed_grad(g, p, s.l2) * s.one_minus_beta1;
    }
}

dispatch!(
    fn adam_m_unchecked(m: &mut [f32], g: &[f32], p: &[f32], s: AdamStep) => adam_m_impl
);

/// First moment: `m = m·β₁ + g'·(1 - β₁)` with `g' = g + p·l2`.
pub fn adam_m(m: &mut [f32], g: &[f32], p: &[f32], s: AdamStep) -> Result<(), String> {
    check("adam first moment", m.len(), &[g.len(), p.len()])?;
    split(m, |r, m| adam_m_unchecked(m, &g[r.clone()], &p[r], s));
    Ok(())
}

#[inline(always)]
fn adam_v_impl(v: &mut [f32], g: &[f32], p: &[f32], s: AdamStep) {
    for ((v, &g), &p) in v.iter_mut().zip(g).zip(p) {
        let g = decayed_grad(g, p, s.l2);
        *v = *v * s.beta2 + (g * g) * s.one_minus_beta2;
    }
}

dispatch!(
    fn adam_v_unchecked(v: &mut [f32], g: &[f32], p: &[f32], s: AdamStep) => adam_v_impl
);

/// Second moment: `v = v·β₂ + g'²·(1 - β₂)` with `g' = g + p·l2`.
pub fn adam_v(v: &mut [f32], g: &[f32], p: &[f32], s: AdamStep) -> Result<(), String> {
    check("adam second moment", v.len(), &[g.len(), p.len()])?;
    split(v, |r, v| adam_v_unchecked(v, &g[r.clone()], &p[r], s));
    Ok(())
}

#[inline(always)]
fn adam_p_impl(p: &mut [f32], m: &[f32], v: &[f32], s: AdamStep) {
    for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
        let update = (m * s.inv_bias1) / ((v * s.inv_bias2).sqrt() + s.eps);
        *p = *p * s.decay - update * s.lr;
    }
}

dispatch!(
    fn adam_p_unchecked(p: &mut [f32], m: &[f32], v: &[f32], s: AdamStep) => adam_p_impl
);

/// The step from updated moments: `p = p·decay - lr·(m/(1-β₁ᵗ)) / (sqrt(v/(1-β₂ᵗ)) + eps)`.
pub fn adam_p(p: &mut [f32], m: &[f32], v: &[f32], s: AdamStep) -> Result<(), String> {
    check("adam step", p.len(), &[m.len(), v.len()])?;
    split(p, |r, p| adam_p_unchecked(p, &m[r.clone()], &v[r], s));
    Ok(())
}

/// Constants of one SGD step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdStep {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor.
    pub momentum: f32,
    /// `1 - dampening`.
    pub one_minus_dampening: f32,
    /// L2 weight decay added to the gradient.
    pub l2: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
}

#[inline(always)]
fn sgd_buffer_impl(buf: &mut [f32], g: &[f32], p: &[f32], s: SgdStep, first: bool) {
    for ((b, &g), &p) in buf.iter_mut().zip(g).zip(p) {
        let d = decayed_grad(g, p, s.l2);
        *b = if first {
            d
        } else {
            *b * s.momentum + d * s.one_minus_dampening
        };
    }
}

dispatch!(
    fn sgd_buffer_unchecked(buf: &mut [f32], g: &[f32], p: &[f32], s: SgdStep, first: bool) => sgd_buffer_impl
);

/// Momentum buffer: `b = g'` on the first step, else `b = b·momentum + g'·(1 - dampening)`,
/// with `g' = g + p·l2`.
pub fn sgd_buffer(
    buf: &mut [f32],
    g: &[f32],
    p: &[f32],
    s: SgdStep,
    first: bool,
) -> Result<(), String> {
    check("sgd momentum", buf.len(), &[g.len(), p.len()])?;
    split(buf, |r, b| {
        sgd_buffer_unchecked(b, &g[r.clone()], &p[r], s, first)
    });
    Ok(())
}

#[inline(always)]
fn sgd_p_impl(p: &mut [f32], g: &[f32], buf: &[f32], s: SgdStep, momentum: bool) {
    if !momentum {
        for (p, &g) in p.iter_mut().zip(g) {
            *p -= decayed_grad(g, *p, s.l2) * s.lr;
        }
        return;
    }
    for ((p, &g), &b) in p.iter_mut().zip(g).zip(buf) {
        let d = if s.nesterov {
            decayed_grad(g, *p, s.l2) + b * s.momentum
        } else {
            b
        };
        *p -= d * s.lr;
    }
}

dispatch!(
    fn sgd_p_unchecked(p: &mut [f32], g: &[f32], buf: &[f32], s: SgdStep, momentum: bool) => sgd_p_impl
);

/// The SGD step `p = p - lr·d`: `d = g'` without momentum (`buf` unused, may be empty), the
/// updated buffer `b` with it, `g' + b·momentum` for Nesterov.
pub fn sgd_p(
    p: &mut [f32],
    g: &[f32],
    buf: &[f32],
    s: SgdStep,
    momentum: bool,
) -> Result<(), String> {
    let buf_len = if momentum { buf.len() } else { p.len() };
    check("sgd step", p.len(), &[g.len(), buf_len])?;
    split(p, |r, p| {
        let b = if momentum { &buf[r.clone()] } else { &[] };
        sgd_p_unchecked(p, &g[r], b, s, momentum)
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 1009) as f32 / 504.5) - 1.0)
            .collect()
    }

    #[test]
    fn adam_passes_match_the_scalar_formula() {
        let n = 100_003; // several workers, odd tail
        let (g, p0) = (data(n, 1), data(n, 2));
        for (l2, decay) in [(0.0f32, 1.0f32), (0.01, 1.0), (0.0, 0.999)] {
            let s = AdamStep {
                beta1: 0.9,
                one_minus_beta1: 0.1,
                beta2: 0.999,
                one_minus_beta2: 0.001,
                l2,
                inv_bias1: 1.0 / 0.19,
                inv_bias2: 1.0 / 0.001999,
                eps: 1e-8,
                lr: 1e-3,
                decay,
            };
            let (mut m, mut v, mut p) = (
                data(n, 3),
                data(n, 4).iter().map(|x| x.abs()).collect::<Vec<_>>(),
                p0.clone(),
            );
            let (m0, v0) = (m.clone(), v.clone());
            adam_m(&mut m, &g, &p, s).unwrap();
            adam_v(&mut v, &g, &p, s).unwrap();
            adam_p(&mut p, &m, &v, s).unwrap();
            for i in 0..n {
                let gd = g[i] as f64 + p0[i] as f64 * l2 as f64;
                let wm = m0[i] as f64 * 0.9 + gd * 0.1;
                let wv = v0[i] as f64 * 0.999 + gd * gd * 0.001;
                let wp = p0[i] as f64 * decay as f64
                    - 1e-3 * (wm / 0.19) / ((wv / 0.001999).sqrt() + 1e-8);
                assert!((m[i] as f64 - wm).abs() < 1e-6);
                assert!((v[i] as f64 - wv).abs() < 1e-6);
                assert!((p[i] as f64 - wp).abs() < 1e-5, "{i}: {} vs {wp}", p[i]);
            }
        }
        assert!(adam_m(
            &mut [0.0; 3],
            &[0.0; 3],
            &[0.0; 2],
            AdamStep {
                beta1: 0.9,
                one_minus_beta1: 0.1,
                beta2: 0.9,
                one_minus_beta2: 0.1,
                l2: 0.0,
                inv_bias1: 1.0,
                inv_bias2: 1.0,
                eps: 1e-8,
                lr: 0.1,
                decay: 1.0,
            }
        )
        .is_err());
    }

    #[test]
    fn sgd_passes_match_the_scalar_formula() {
        let n = 70_001;
        let (g, p0, b0) = (data(n, 1), data(n, 2), data(n, 3));
        for nesterov in [false, true] {
            for first in [false, true] {
                let s = SgdStep {
                    lr: 0.1,
                    momentum: 0.9,
                    one_minus_dampening: 0.75,
                    l2: 0.01,
                    nesterov,
                };
                let (mut b, mut p) = (b0.clone(), p0.clone());
                sgd_buffer(&mut b, &g, &p, s, first).unwrap();
                sgd_p(&mut p, &g, &b, s, true).unwrap();
                for i in 0..n {
                    let d = g[i] as f64 + p0[i] as f64 * 0.01;
                    let wb = if first {
                        d
                    } else {
                        b0[i] as f64 * 0.9 + d * 0.75
                    };
                    let step = if nesterov { d + wb * 0.9 } else { wb };
                    assert!((b[i] as f64 - wb).abs() < 1e-6);
                    assert!((p[i] as f64 - (p0[i] as f64 - 0.1 * step)).abs() < 1e-6);
                }
            }
        }
        let s = SgdStep {
            lr: 0.5,
            momentum: 0.0,
            one_minus_dampening: 1.0,
            l2: 0.0,
            nesterov: false,
        };
        let mut p = p0.clone();
        sgd_p(&mut p, &g, &[], s, false).unwrap();
        assert!(p
            .iter()
            .zip(&p0)
            .zip(&g)
            .all(|((p, p0), g)| (p - (p0 - 0.5 * g)).abs() < 1e-6));
    }
}
