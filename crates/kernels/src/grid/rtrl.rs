//! Full real-time recurrent learning for one sample: the influence matrix `∂s/∂θ`
//! (`cells x 4·cells`) carried forward in time. Exact, and `O(cells²)` per cell-step, so for
//! checks on small grids only.

use super::{forward, loss_and_error, Coeffs, GridParams, GridShape, Readout};

/// One sample's loss and its exact gradient `[4][cells]` by RTRL.
///
/// # Shapes
/// `x` `[T, N]`.
pub fn gradient(
    shape: &GridShape,
    params: &GridParams<f64>,
    x: &[f64],
    label: usize,
    readout: Readout,
) -> Result<(f64, [Vec<f64>; 4]), String> {
    let outputs = forward(shape, params, x, 1)?;
    let (loss, err) = loss_and_error(readout, &outputs, shape.cols, label);
    let k = Coeffs::new(shape, params, 0.0)?;
    let (rows, cols) = (shape.rows, shape.cols);
    let n = rows * cols;
    let steps = x.len() / rows;
    // influence[c][p·n + q] = ∂s_c/∂θ_{p,q}; dy[c] = ∂y_c/∂θ at the current step
    let mut influence = vec![vec![0.0f64; 4 * n]; n];
    let mut dy = vec![vec![0.0f64; 4 * n]; n];
    let (mut s, mut y) = (vec![0.0f64; n], vec![0.0f64; n]);
    let mut grad = vec![0.0f64; 4 * n];
    for t in 0..steps {
        for c in 0..n {
            let (i, j) = (c / cols, c % cols);
            let yl = if j > 0 { y[c - 1] } else { x[t * rows + i] };
            let yt = if i > 0 { y[c - cols] } else { 0.0 };
            let u = k.wl[c] * yl + k.wt[c] * yt;
            let mut row = std::mem::take(&mut influence[c]);
            for (q, v) in row.iter_mut().enumerate() {
                let from_left = if j > 0 { dy[c - 1][q] } else { 0.0 };
                let from_top = if i > 0 { dy[c - cols][q] } else { 0.0 };
                *v = k.a[c] * *v + k.c[c] * (k.wl[c] * from_left + k.wt[c] * from_top);
            }
            row[c] += k.tau[c] * k.q[c] * (s[c] - u);
            row[n + c] += k.c[c] * yl;
            row[2 * n + c] += k.c[c] * yt;
            s[c] = k.a[c] * s[c] + k.c[c] * u;
            y[c] = (s[c] + k.b[c]).tanh();
            let d = 1.0 - y[c] * y[c];
            for (o, v) in dy[c].iter_mut().zip(&row) {
                *o = d * v;
            }
            dy[c][3 * n + c] += d;
            influence[c] = row;
            if i == rows - 1 {
                let e = err[t * cols + j];
                for (g, v) in grad.iter_mut().zip(&dy[c]) {
                    *g += e * v;
                }
            }
        }
    }
    let grads = std::array::from_fn(|p| grad[p * n..(p + 1) * n].to_vec());
    Ok((loss, grads))
}
