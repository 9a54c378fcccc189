//! The tanh rate recurrence `x_t = tanh(x_{t-1})·Jᵀ + d_t` over a whole sequence, forward and
//! backward through time, one packed matrix product per step (`sgemm`).
//!
//! Layouts are row-major: drive and states `[T, B, N]`, `J` `[N, N]`, `x_0` `[N]` (shared by
//! the batch). The states returned are `x_1 .. x_T`.

use crate::gemm::MatRef;
use crate::sgemm::sgemm;

fn check(t: usize, b: usize, n: usize, lens: &[(&str, usize, usize)]) -> Result<(), String> {
    if t == 0 || b == 0 || n == 0 {
        return Err(format!("tanh_rnn: empty shape T={t} B={b} N={n}"));
    }
    for (name, got, want) in lens {
        if got != want {
            return Err(format!(
                "tanh_rnn: `{name}` has {got} values, expected {want}"
            ));
        }
    }
    Ok(())
}

/// `tanh(x_0)` repeated for each of `b` batch rows.
fn initial_h(x0: &[f32], b: usize) -> Vec<f32> {
    let h: Vec<f32> = x0.iter().map(|v| v.tanh()).collect();
    h.repeat(b)
}

/// States `out[t] = tanh(x_{t-1})·Jᵀ + drive[t]` for `t = 1..T` from `x_0`; `tanh_out`, when
/// given (`[T, B, N]`), receives `tanh(out)` for the backward pass.
pub fn tanh_rnn_forward(
    drive: &[f32],
    j: &[f32],
    x0: &[f32],
    (t_len, b, n): (usize, usize, usize),
    out: &mut [f32],
    mut tanh_out: Option<&mut [f32]>,
) -> Result<(), String> {
    let bn = b * n;
    check(
        t_len,
        b,
        n,
        &[
            ("drive", drive.len(), t_len * bn),
            ("j", j.len(), n * n),
            ("x0", x0.len(), n),
            ("out", out.len(), t_len * bn),
        ],
    )?;
    let j_t = MatRef::row_major(j, n, n).t();
    let mut h = initial_h(x0, b);
    for s in 0..t_len {
        let x = &mut out[s * bn..(s + 1) * bn];
        x.copy_from_slice(&drive[s * bn..(s + 1) * bn]);
        sgemm(x, n, MatRef::row_major(&h, b, n), j_t, true, false)?;
        for (hv, xv) in h.iter_mut().zip(x.iter()) {
            *hv = xv.tanh();
        }
        if let Some(keep) = tanh_out.as_deref_mut() {
            if keep.len() != t_len * bn {
                return Err(format!("tanh_rnn: `tanh_out` has {} values", keep.len()));
            }
            keep[s * bn..(s + 1) * bn].copy_from_slice(&h);
        }
    }
    Ok(())
}

/// Gradients of the recurrence: given `tanh` of the states of [`tanh_rnn_forward`] and the
/// gradient of the loss with respect to each state, writes the gradients of the drive
/// (`[T, B, N]`), of `J` (`[N, N]`) and of `x_0` (`[N]`, summed over the batch).
pub fn tanh_rnn_backward(
    j: &[f32],
    x0: &[f32],
    tanh_states: &[f32],
    grad_states: &[f32],
    (t_len, b, n): (usize, usize, usize),
    (d_drive, d_j, d_x0): (&mut [f32], &mut [f32], &mut [f32]),
) -> Result<(), String> {
    let bn = b * n;
    check(
        t_len,
        b,
        n,
        &[
            ("j", j.len(), n * n),
            ("x0", x0.len(), n),
            ("tanh_states", tanh_states.len(), t_len * bn),
            ("grad_states", grad_states.len(), t_len * bn),
            ("d_drive", d_drive.len(), t_len * bn),
            ("d_j", d_j.len(), n * n),
            ("d_x0", d_x0.len(), n),
        ],
    )?;
    let j_m = MatRef::row_major(j, n, n);
    let h0 = initial_h(x0, b);
    let mut gx = vec![0f32; bn];
    let mut h_prev = vec![0f32; bn];
    d_j.fill(0.0);
    for s in (0..t_len).rev() {
        for (g, go) in gx.iter_mut().zip(&grad_states[s * bn..(s + 1) * bn]) {
            *g += go;
        }
        d_drive[s * bn..(s + 1) * bn].copy_from_slice(&gx);
        if s == 0 {
            h_prev.copy_from_slice(&h0);
        } else {
            h_prev.copy_from_slice(&tanh_states[(s - 1) * bn..s * bn]);
        }
        // dJ += gxᵀ·h_prev ([N, B]·[B, N])
        let gx_t = MatRef::row_major(&gx, b, n).t();
        sgemm(d_j, n, gx_t, MatRef::row_major(&h_prev, b, n), true, false)?;
        // the gradient reaching x_{s-1}: (gx·J) ⊙ (1 - h_prev²)
        let mut gh = vec![0f32; bn];
        sgemm(&mut gh, n, MatRef::row_major(&gx, b, n), j_m, false, false)?;
        for ((g, gh), h) in gx.iter_mut().zip(&gh).zip(&h_prev) {
            *g = gh * (1.0 - h * h);
        }
    }
    d_x0.fill(0.0);
    for row in gx.chunks_exact(n) {
        for (d, g) in d_x0.iter_mut().zip(row) {
            *d += g;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loss = Σ w·x over all states; its gradients by central differences in f64 arithmetic on
    /// the f32 forward.
    #[test]
    fn backward_matches_finite_differences() -> Result<(), String> {
        let (t, b, n) = (5, 2, 3);
        let val = |i: usize, s: f32| ((i * 37 % 23) as f32 / 23.0 - 0.5) * s;
        let drive: Vec<f32> = (0..t * b * n).map(|i| val(i, 0.6)).collect();
        let j: Vec<f32> = (0..n * n).map(|i| val(i + 5, 1.2)).collect();
        let x0: Vec<f32> = (0..n).map(|i| val(i + 11, 1.0)).collect();
        let w: Vec<f32> = (0..t * b * n).map(|i| val(i + 3, 1.0)).collect();
        let loss = |d: &[f32], j: &[f32], x0: &[f32]| -> Result<f64, String> {
            let mut out = vec![0f32; t * b * n];
            tanh_rnn_forward(d, j, x0, (t, b, n), &mut out, None)?;
            Ok(out.iter().zip(&w).map(|(a, b)| f64::from(a * b)).sum())
        };
        let mut states = vec![0f32; t * b * n];
        let mut h = vec![0f32; t * b * n];
        tanh_rnn_forward(&drive, &j, &x0, (t, b, n), &mut states, Some(&mut h))?;
        let (mut dd, mut dj, mut dx) = (vec![0f32; t * b * n], vec![0f32; n * n], vec![0f32; n]);
        tanh_rnn_backward(&j, &x0, &h, &w, (t, b, n), (&mut dd, &mut dj, &mut dx))?;
        let eps = 1e-2f32;
        let fd = |which: usize, i: usize| -> Result<f64, String> {
            let (mut d, mut jj, mut xx) = (drive.clone(), j.clone(), x0.clone());
            let v = match which {
                0 => &mut d[i],
                1 => &mut jj[i],
                _ => &mut xx[i],
            };
            *v += eps;
            let up = loss(&d, &jj, &xx)?;
            let (mut d, mut jj, mut xx) = (drive.clone(), j.clone(), x0.clone());
            let v = match which {
                0 => &mut d[i],
                1 => &mut jj[i],
                _ => &mut xx[i],
            };
            *v -= eps;
            Ok((up - loss(&d, &jj, &xx)?) / (2.0 * f64::from(eps)))
        };
        for (which, grads) in [(0, &dd), (1, &dj), (2, &dx)] {
            for (i, g) in grads.iter().enumerate() {
                let want = fd(which, i)?;
                assert!(
                    (f64::from(*g) - want).abs() < 2e-3,
                    "{which}[{i}]: {g} vs {want}"
                );
            }
        }
        Ok(())
    }
}
