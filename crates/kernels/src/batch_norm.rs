//! Batch normalisation over the channels of `[B, C, H·W]` maps: the training forward pass
//! (batch statistics), its backward pass, and a per-channel affine map (the evaluation mode).
//!
//! Channel statistics sum each `H·W` plane in `f32` with eight partial sums, then the planes in
//! `f64`, in a fixed order: results do not depend on the number of threads.

use crate::par;

/// Sizes of a batch-norm operand `[B, C, P]` (`P = H·W`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BnDims {
    /// Images `B`.
    pub batch: usize,
    /// Channels `C`.
    pub channels: usize,
    /// Values per channel and image `P`.
    pub plane: usize,
}

impl BnDims {
    fn len(&self) -> usize {
        self.batch * self.channels * self.plane
    }

    /// Values per channel: `B·P`.
    pub fn count(&self) -> usize {
        self.batch * self.plane
    }

    fn check(&self, what: &str, name: &str, len: usize, want: usize) -> Result<(), String> {
        if len != want {
            return Err(format!(
                "{what}: `{name}` holds {len} values, {self:?} needs {want}"
            ));
        }
        Ok(())
    }
}

fn sum8(v: impl Iterator<Item = f32>) -> f64 {
    let mut acc = [0.0f32; 8];
    for (i, x) in v.enumerate() {
        acc[i & 7] += x;
    }
    acc.iter().map(|&a| f64::from(a)).sum()
}

/// `f(c)` for every channel, in parallel, collected in channel order.
fn per_channel<T: Send + Default + Clone>(
    channels: usize,
    f: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let mut out = vec![T::default(); channels];
    let parts = par::ranges(channels, par::workers(channels, 1), 1);
    if parts.len() <= 1 {
        for (c, o) in out.iter_mut().enumerate() {
            *o = f(c);
        }
        return out;
    }
    rayon::scope(|s| {
        let mut rest = out.as_mut_slice();
        for r in parts {
            let (head, tail) = rest.split_at_mut(r.len());
            rest = tail;
            let f = &f;
            s.spawn(move |_| {
                for (o, c) in head.iter_mut().zip(r) {
                    *o = f(c);
                }
            });
        }
    });
    out
}

/// The planes of channel `c`.
fn planes<'a>(x: &'a [f32], d: &BnDims, c: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
    let (ch, p) = (d.channels, d.plane);
    (0..d.batch).map(move |b| &x[(b * ch + c) * p..(b * ch + c + 1) * p])
}

/// Writes `out[(b, c, i)] = f(c, i, value at (b, c, i))` over all planes in parallel.
fn map_planes(out: &mut [f32], d: &BnDims, f: impl Fn(usize, usize) -> f32 + Sync) {
    let p = d.plane.max(1);
    let planes = d.batch * d.channels;
    let out_ptr = SendPtr(out.as_mut_ptr());
    par::for_ranges(planes, 8, 1, |r| {
        let ptr = &out_ptr;
        for plane in r {
            // SAFETY: each plane index belongs to exactly one range, so the slices are disjoint
            let dst = unsafe { std::slice::from_raw_parts_mut(ptr.0.add(plane * p), p) };
            let c = plane % d.channels;
            for (i, o) in dst.iter_mut().enumerate() {
                *o = f(c, plane * p + i);
            }
        }
    });
}

struct SendPtr(*mut f32);
// SAFETY: the pointer is only used to build disjoint slices (see `map_planes`)
unsafe impl Sync for SendPtr {}

/// Training forward pass: per channel the batch mean and biased variance, then
/// `y = γ·(x - mean)/√(var + eps) + β`. Writes `y`, and `mean` and `var` (`[C]`).
#[allow(clippy::too_many_arguments)]
pub fn bn_train_forward(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    d: BnDims,
    eps: f64,
    y: &mut [f32],
    mean: &mut [f32],
    var: &mut [f32],
) -> Result<(), String> {
    let what = "batch norm";
    d.check(what, "x", x.len(), d.len())?;
    d.check(what, "y", y.len(), d.len())?;
    for (name, v) in [
        ("gamma", gamma.len()),
        ("beta", beta.len()),
        ("mean", mean.len()),
        ("var", var.len()),
    ] {
        d.check(what, name, v, d.channels)?;
    }
    let n = d.count() as f64;
    let stats = per_channel(d.channels, |c| {
        let m = planes(x, &d, c)
            .map(|pl| sum8(pl.iter().copied()))
            .sum::<f64>()
            / n;
        let mf = m as f32;
        let v = planes(x, &d, c)
            .map(|pl| sum8(pl.iter().map(|&v| (v - mf) * (v - mf))))
            .sum::<f64>()
            / n;
        (m, v)
    });
    let coef: Vec<(f32, f32)> = stats
        .iter()
        .zip(gamma.iter().zip(beta))
        .map(|(&(m, v), (&g, &b))| {
            let scale = f64::from(g) / (v + eps).sqrt();
            (scale as f32, (f64::from(b) - m * scale) as f32)
        })
        .collect();
    map_planes(y, &d, |c, i| x[i] * coef[c].0 + coef[c].1);
    for (c, &(m, v)) in stats.iter().enumerate() {
        mean[c] = m as f32;
        var[c] = v as f32;
    }
    Ok(())
}

/// Backward pass of [`bn_train_forward`] from the output gradient `g`, with the forward pass's
/// `mean` and biased `var`: `dβ = Σ g`, `dγ = Σ g·x̂` and, when `dx` is given,
/// `dx = γ/σ·(g - Σg/N - x̂·Σ(g·x̂)/N)` with `x̂ = (x - mean)/σ`, `σ = √(var + eps)`.
#[allow(clippy::too_many_arguments)]
pub fn bn_train_backward(
    x: &[f32],
    g: &[f32],
    gamma: &[f32],
    mean: &[f32],
    var: &[f32],
    d: BnDims,
    eps: f64,
    dx: Option<&mut [f32]>,
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) -> Result<(), String> {
    let what = "batch norm backward";
    d.check(what, "x", x.len(), d.len())?;
    d.check(what, "g", g.len(), d.len())?;
    for (name, v) in [
        ("gamma", gamma.len()),
        ("mean", mean.len()),
        ("var", var.len()),
        ("dgamma", dgamma.len()),
        ("dbeta", dbeta.len()),
    ] {
        d.check(what, name, v, d.channels)?;
    }
    let n = d.count() as f64;
    let sums = per_channel(d.channels, |c| {
        let m = mean[c];
        let sg: f64 = planes(g, &d, c).map(|pl| sum8(pl.iter().copied())).sum();
        let sgx: f64 = planes(g, &d, c)
            .zip(planes(x, &d, c))
            .map(|(gp, xp)| sum8(gp.iter().zip(xp).map(|(&gv, &xv)| gv * (xv - m))))
            .sum();
        (sg, sgx)
    });
    let inv_std: Vec<f64> = var
        .iter()
        .map(|&v| 1.0 / (f64::from(v) + eps).sqrt())
        .collect();
    for c in 0..d.channels {
        dbeta[c] = sums[c].0 as f32;
        dgamma[c] = (sums[c].1 * inv_std[c]) as f32;
    }
    if let Some(dx) = dx {
        d.check(what, "dx", dx.len(), d.len())?;
        // dx = a·g + b·(x - mean) + k per channel
        let coef: Vec<(f32, f32, f32, f32)> = (0..d.channels)
            .map(|c| {
                let a = f64::from(gamma[c]) * inv_std[c];
                let b = -a * inv_std[c] * inv_std[c] * sums[c].1 / n;
                let k = -a * sums[c].0 / n;
                (a as f32, b as f32, k as f32, mean[c])
            })
            .collect();
        map_planes(dx, &d, |c, i| {
            let (a, b, k, m) = coef[c];
            a * g[i] + b * (x[i] - m) + k
        });
    }
    Ok(())
}

/// `y = x·scale[c] + shift[c]` (evaluation-mode batch norm with folded running statistics).
pub fn channel_affine(
    x: &[f32],
    scale: &[f32],
    shift: &[f32],
    d: BnDims,
    y: &mut [f32],
) -> Result<(), String> {
    let what = "channel affine";
    d.check(what, "x", x.len(), d.len())?;
    d.check(what, "y", y.len(), d.len())?;
    d.check(what, "scale", scale.len(), d.channels)?;
    d.check(what, "shift", shift.len(), d.channels)?;
    map_planes(y, &d, |c, i| x[i] * scale[c] + shift[c]);
    Ok(())
}

/// Per-channel `(Σ g, Σ g·x)`: the scale and shift gradients of [`channel_affine`].
pub fn channel_affine_grads(x: &[f32], g: &[f32], d: BnDims) -> Result<Vec<(f32, f32)>, String> {
    let what = "channel affine backward";
    d.check(what, "x", x.len(), d.len())?;
    d.check(what, "g", g.len(), d.len())?;
    Ok(per_channel(d.channels, |c| {
        let sg: f64 = planes(g, &d, c).map(|pl| sum8(pl.iter().copied())).sum();
        let sgx: f64 = planes(g, &d, c)
            .zip(planes(x, &d, c))
            .map(|(gp, xp)| sum8(gp.iter().zip(xp).map(|(&gv, &xv)| gv * xv)))
            .sum();
        (sg as f32, sgx as f32)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) % 1000) as f32
                    / 250.0
                    - 2.0
            })
            .collect()
    }

    #[test]
    fn forward_and_backward_match_the_formulas_in_f64() {
        let d = BnDims {
            batch: 3,
            channels: 2,
            plane: 5,
        };
        let (x, g) = (data(30, 1), data(30, 7));
        let (gamma, beta) = ([1.5f32, -0.5], [0.25f32, 1.0]);
        let (mut y, mut mean, mut var) = (vec![0.0; 30], [0.0; 2], [0.0; 2]);
        bn_train_forward(&x, &gamma, &beta, d, 1e-5, &mut y, &mut mean, &mut var).unwrap();
        let (mut dx, mut dg, mut db) = (vec![0.0; 30], [0.0; 2], [0.0; 2]);
        bn_train_backward(
            &x,
            &g,
            &gamma,
            &mean,
            &var,
            d,
            1e-5,
            Some(&mut dx),
            &mut dg,
            &mut db,
        )
        .unwrap();
        for c in 0..2 {
            let idx: Vec<usize> = (0..3)
                .flat_map(|b| (0..5).map(move |i| (b * 2 + c) * 5 + i))
                .collect();
            let n = idx.len() as f64;
            let m = idx.iter().map(|&i| f64::from(x[i])).sum::<f64>() / n;
            let v = idx
                .iter()
                .map(|&i| (f64::from(x[i]) - m).powi(2))
                .sum::<f64>()
                / n;
            let s = (v + 1e-5).sqrt();
            assert!((f64::from(mean[c]) - m).abs() < 1e-6 && (f64::from(var[c]) - v).abs() < 1e-5);
            let xh = |i: usize| (f64::from(x[i]) - m) / s;
            let sg: f64 = idx.iter().map(|&i| f64::from(g[i])).sum();
            let sgx: f64 = idx.iter().map(|&i| f64::from(g[i]) * xh(i)).sum();
            assert!((f64::from(db[c]) - sg).abs() < 1e-5 && (f64::from(dg[c]) - sgx).abs() < 1e-5);
            for &i in &idx {
                let want_y = f64::from(gamma[c]) * xh(i) + f64::from(beta[c]);
                assert!((f64::from(y[i]) - want_y).abs() < 1e-5);
                let want = f64::from(gamma[c]) / s * (f64::from(g[i]) - sg / n - xh(i) * sgx / n);
                assert!(
                    (f64::from(dx[i]) - want).abs() < 1e-5,
                    "{} vs {want}",
                    dx[i]
                );
            }
        }
    }

    #[test]
    fn the_affine_map_and_its_sums() {
        let d = BnDims {
            batch: 2,
            channels: 3,
            plane: 4,
        };
        let (x, g) = (data(24, 3), data(24, 9));
        let mut y = vec![0.0; 24];
        channel_affine(&x, &[1.0, 2.0, -1.0], &[0.0, 0.5, 3.0], d, &mut y).unwrap();
        assert_eq!(y[4], x[4] * 2.0 + 0.5);
        assert_eq!(y[23], -x[23] + 3.0);
        let sums = channel_affine_grads(&x, &g, d).unwrap();
        let c1: Vec<usize> = vec![4, 5, 6, 7, 16, 17, 18, 19];
        let sg: f32 = c1.iter().map(|&i| g[i]).sum();
        assert!((sums[1].0 - sg).abs() < 1e-5);
        assert!(bn_train_forward(
            &x[1..],
            &[1.0; 3],
            &[0.0; 3],
            d,
            1e-5,
            &mut y,
            &mut [0.0; 3],
            &mut [0.0; 3]
        )
        .is_err());
    }
}
