//! How far SnAP-1 is from the exact gradient: the relative error of the local rule against
//! BPTT over random grids and sequences, as a frame, beside upstream's published numbers; and
//! a run's grid read back for pictures (its parameters, every cell's activity).

use autoresearch_kernels::grid::{self, GradientOptions, Method, Readout, PARAMS};
pub use autoresearch_kernels::grid::{GridParams, GridShape};
use candle_core::Var;
use polars::prelude::DataFrame;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use crate::error::{Error, Result};
use crate::frame::Frame;

/// grid-neurons' removed table (4 x 4, sum loss, one draw): the relative error of SnAP-1
/// against BPTT for `(T, parameter, error)`.
pub const UPSTREAM_TRUNCATION: [(usize, &str, f64); 9] = [
    (5, "w_left", 6.1e-3),
    (5, "bias", 1.1e-3),
    (5, "log_tau", 1.5e-2),
    (20, "w_left", 5.8e-2),
    (20, "bias", 1.3e-2),
    (20, "log_tau", 5.3e-2),
    (100, "w_left", 1.2e-1),
    (100, "bias", 9.2e-2),
    (100, "log_tau", 2.1e-1),
];

/// A trained grid's parameters (`log_tau`, `w_left`, `w_top`, `bias` of a run's parameter
/// list, e.g. `build_run(..)?.params` or a loaded run's) in f64, with its shape.
pub fn grid_params(params: &[(String, Var)], dt_ms: f64) -> Result<(GridShape, GridParams<f64>)> {
    let get = |name: &str| -> Result<(Vec<f64>, (usize, usize))> {
        let (_, var) = params.iter().find(|(n, _)| n == name).ok_or_else(|| {
            Error::Analysis(format!(
                "no grid parameter `{name}` among {} parameters",
                params.len()
            ))
        })?;
        let t = var.as_tensor();
        let dims = t.dims2()?;
        let values = t
            .flatten_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_vec1::<f64>()?;
        Ok((values, dims))
    };
    let (log_tau, (rows, cols)) = get("log_tau")?;
    let shape = GridShape {
        rows,
        cols,
        dt_s: dt_ms * 1e-3,
    };
    let p = GridParams {
        log_tau,
        w_left: get("w_left")?.0,
        w_top: get("w_top")?.0,
        bias: get("bias")?.0,
    };
    Ok((shape, p))
}

/// Every cell's output after each step `[T, cells]` for one image `[H, W]` (pixels in [0, 1],
/// row `t` entering at step `t`, scaled by `input_gain`; identity routing).
pub fn cell_activity(
    shape: &GridShape,
    params: &GridParams<f64>,
    image: &[f32],
    input_gain: f64,
) -> Result<Vec<f64>> {
    let x: Vec<f64> = image.iter().map(|p| f64::from(*p) * input_gain).collect();
    grid::cell_outputs(shape, params, &x).map_err(Error::Analysis)
}

/// A random grid as upstream's check draws it: `log τ ~ U(log τ_min, log τ_max)` (ms),
/// `w ~ N(0, 1/2)`, `b ~ N(0, 0.05²)`.
pub fn random_grid(
    shape: &GridShape,
    tau_ms: [f64; 2],
    rng: &mut impl Rng,
) -> Result<GridParams<f64>> {
    let n = shape.cells();
    let bad = |e: rand_distr::NormalError| Error::Analysis(e.to_string());
    let w = Normal::new(0.0, std::f64::consts::FRAC_1_SQRT_2).map_err(bad)?;
    let b = Normal::new(0.0, 0.05).map_err(bad)?;
    let (lo, hi) = ((tau_ms[0] * 1e-3).ln(), (tau_ms[1] * 1e-3).ln());
    Ok(GridParams {
        log_tau: (0..n).map(|_| rng.random_range(lo..=hi)).collect(),
        w_left: (0..n).map(|_| w.sample(rng)).collect(),
        w_top: (0..n).map(|_| w.sample(rng)).collect(),
        bias: (0..n).map(|_| b.sample(rng)).collect(),
    })
}

/// For each `T` in `steps` and each of `draws` random grids (τ in 5-200 ms, upstream's default),
/// sequences `0.5·N(0, 1)` and targets: `max |g_snap1 - g_bptt| / max |g_bptt|` per parameter
/// type, in f64. Columns: `steps`, `draw`, `parameter`, `rel_error`.
pub fn truncation_errors(
    shape: &GridShape,
    steps: &[usize],
    draws: usize,
    seed: u64,
) -> Result<DataFrame> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let input = Normal::new(0.0, 0.5).map_err(|e| Error::Analysis(e.to_string()))?;
    let (mut t_col, mut d_col, mut p_col, mut e_col) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &t in steps {
        for draw in 0..draws {
            let params = random_grid(shape, [5.0, 200.0], &mut rng)?;
            let x: Vec<f64> = (0..t * shape.rows)
                .map(|_| input.sample(&mut rng))
                .collect();
            let label = [rng.random_range(0..shape.cols as u32)];
            let grad = |method| {
                let opts = GradientOptions {
                    readout: Readout::Sum,
                    method,
                    ..Default::default()
                };
                grid::gradient(shape, &params, &x, &label, &opts).map_err(Error::Analysis)
            };
            let (local, exact) = (grad(Method::Snap1)?, grad(Method::Bptt)?);
            for (p, name) in PARAMS.iter().enumerate() {
                let diff = local.grads[p]
                    .iter()
                    .zip(&exact.grads[p])
                    .map(|(a, b)| (a - b).abs());
                let scale = exact.grads[p]
                    .iter()
                    .map(|v| v.abs())
                    .fold(f64::MIN_POSITIVE, f64::max);
                t_col.push(t as u64);
                d_col.push(draw as u64);
                p_col.push(name.to_string());
                e_col.push(diff.fold(0.0, f64::max) / scale);
            }
        }
    }
    Frame::new()
        .u64s("steps", t_col)
        .u64s("draw", d_col)
        .strs("parameter", p_col)
        .f64s("rel_error", e_col)
        .finish()
}

/// The median of `rel_error` for `(steps, parameter)` in a [`truncation_errors`] frame.
pub fn median_error(frame: &DataFrame, steps: usize, parameter: &str) -> Result<f64> {
    let t = crate::frame::f64_column(frame, "steps")?;
    let p = crate::frame::str_column(frame, "parameter")?;
    let e = crate::frame::f64_column(frame, "rel_error")?;
    let mut picked: Vec<f64> = (0..frame.height())
        .filter(|i| t[*i] == Some(steps as f64) && p[*i].as_deref() == Some(parameter))
        .filter_map(|i| e[i])
        .collect();
    if picked.is_empty() {
        return Err(Error::Analysis(format!(
            "no rows for T = {steps}, `{parameter}`"
        )));
    }
    picked.sort_by(f64::total_cmp);
    Ok(picked[picked.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snap1_is_exact_at_one_step_and_drifts_with_t() {
        let shape = GridShape {
            rows: 4,
            cols: 4,
            dt_s: 1e-3,
        };
        let frame = truncation_errors(&shape, &[1, 20], 5, 3).unwrap();
        assert_eq!(frame.height(), 2 * 5 * 4);
        for p in PARAMS {
            assert!(median_error(&frame, 1, p).unwrap() < 1e-13);
            assert!(median_error(&frame, 20, p).unwrap() > 1e-4);
        }
        assert!(median_error(&frame, 7, "bias").is_err());
    }
}
