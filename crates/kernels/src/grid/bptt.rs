//! Exact backpropagation through time of the grid's forward (a hand-written adjoint): the
//! reference SnAP-1's truncation is measured against.

use super::lanes::{gather, lane_errors, store_outputs, BlockResult, Job, Lanes};
use super::Real;

/// BPTT on lanes `start..start + n`: the forward keeps every step's `s` and `y`, then the
/// adjoint runs backwards in time, each step in reverse raster order:
/// `g_s(t) = g_y(t)·(1 - y²) + a·g_s(t+1)`, messages `g_y(left) += g_s·c·w_L`,
/// `g_y(top) += g_s·c·w_T`, and `∂/∂log τ = g_s·τ·(a·dt/τ²)·(s(t-1) - u(t))`.
pub(crate) fn block<R: Real, const L: usize>(
    job: &Job<R>,
    start: usize,
    n: usize,
) -> BlockResult<R> {
    let (k, steps) = (job.k, job.steps);
    let (rows, cols) = (k.rows, k.cols);
    let cells = rows * cols;
    let labels = &job.labels[start..start + n];
    let mut lanes = Lanes::<R, L>::new(cells);
    // s before each step (index t) and after the last (index T); y after each step
    let mut s_hist = vec![[R::ZERO; L]; (steps + 1) * cells];
    let mut y_hist = vec![[R::ZERO; L]; steps * cells];
    let mut outputs = vec![R::ZERO; n * steps * cols];
    let mut inputs = Vec::with_capacity(steps);
    for t in 0..steps {
        let xt = gather::<R, L>(job.x, rows, steps, start, n, t);
        lanes.forward_step::<false>(k, &xt);
        s_hist[(t + 1) * cells..(t + 2) * cells].copy_from_slice(&lanes.s);
        y_hist[t * cells..(t + 1) * cells].copy_from_slice(&lanes.y);
        store_outputs(&lanes, k, &mut outputs, n, steps, t);
        inputs.push(xt);
    }
    let (loss_sum, err) = lane_errors::<R, L>(job.opts.readout, &outputs, labels, cols, steps);
    let mut carry = vec![[R::ZERO; L]; cells];
    let mut gy = vec![[R::ZERO; L]; cells];
    for t in (0..steps).rev() {
        for g in gy.iter_mut() {
            *g = [R::ZERO; L];
        }
        gy[(rows - 1) * cols..].copy_from_slice(&err[t]);
        let y = &y_hist[t * cells..(t + 1) * cells];
        let s_prev = &s_hist[t * cells..(t + 1) * cells];
        for c in (0..cells).rev() {
            let (i, j) = (c / cols, c % cols);
            let yl = if j > 0 { y[c - 1] } else { inputs[t][i] };
            let yt = if i > 0 { y[c - cols] } else { [R::ZERO; L] };
            let (a, cc, wl, wt, tq) = (k.a[c], k.c[c], k.wl[c], k.wt[c], k.tau[c] * k.q[c]);
            let mut g = [[R::ZERO; L]; 4];
            let mut gs = [R::ZERO; L];
            for l in 0..L {
                let gb = gy[c][l] * (R::ONE - y[c][l] * y[c][l]);
                gs[l] = gb + carry[c][l];
                let u = wl * yl[l] + wt * yt[l];
                g[0][l] = gs[l] * tq * (s_prev[c][l] - u);
                g[1][l] = gs[l] * cc * yl[l];
                g[2][l] = gs[l] * cc * yt[l];
                g[3][l] = gb;
                carry[c][l] = a * gs[l];
            }
            for (p, gp) in g.into_iter().enumerate() {
                lanes.add_grad(c, p, gp);
            }
            if j > 0 {
                for l in 0..L {
                    gy[c - 1][l] += gs[l] * cc * wl;
                }
            }
            if i > 0 {
                for l in 0..L {
                    gy[c - cols][l] += gs[l] * cc * wt;
                }
            }
        }
    }
    BlockResult {
        loss_sum,
        grads: lanes.take_grads(n),
        outputs,
    }
}
