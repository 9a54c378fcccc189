//! Lyapunov exponents by QR re-orthonormalisation (Benettin's algorithm, GradientFlossing's
//! `calcLyapunovSpectrum`): `k` tangent vectors are carried along the trajectory by the exact
//! one-step Jacobian, re-orthonormalised every `m` steps, and `λ_i = Σ log R_ii / steps` over the
//! windows after the transient, per step.
//!
//! The estimate is a candle tensor: with `track` the graph reaches the network's parameters
//! through every step and every QR (the flossing gradient); without it each step is detached.

use candle_core::{DType, Device, Result, Tensor};
use rand::SeedableRng;

use super::qr::{qr, qr_plain};
use super::system::Dynamics;
use crate::config::SpectrumConfig;

/// The exponents along one trajectory.
#[derive(Debug, Clone)]
pub struct Exponents {
    /// `λ_1 ≥ .. ≥ λ_k` per step `[k]` (f64; part of the graph when tracked).
    pub values: Tensor,
    /// Steps averaged over (after the transient).
    pub steps_averaged: usize,
}

/// The random orthonormal frame `Q_0` `[n, k]` of `seed` (thin Q of a Gaussian matrix), f64.
pub fn initial_frame(n: usize, k: usize, seed: u64, device: &Device) -> Result<Tensor> {
    if k == 0 || k > n {
        candle_core::bail!("{k} exponents of a {n}-dimensional state: use 1..={n}");
    }
    use rand_distr::{Distribution, StandardNormal};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let values: Vec<f64> = (0..n * k)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let (q, _) = qr_plain(&nalgebra::DMatrix::from_row_slice(n, k, &values));
    let rows: Vec<f64> = (0..n)
        .flat_map(|i| (0..k).map(move |j| (i, j)))
        .map(|(i, j)| q[(i, j)])
        .collect();
    Tensor::from_vec(rows, (n, k), device)
}

/// Checks `cfg` against a system of `n` states and a drive of `available` steps, naming the key
/// at fault under `key`.
pub fn check(cfg: &SpectrumConfig, n: usize, available: usize, key: &str) -> crate::Result<()> {
    let bad = |field: &str, msg: String| Err(crate::Error::invalid(format!("{key}.{field}"), msg));
    if cfg.exponents == 0 || cfg.exponents > n {
        return bad(
            "exponents",
            format!(
                "{}: the state has {n} dimensions; use 1..={n}",
                cfg.exponents
            ),
        );
    }
    if cfg.steps == 0 || cfg.steps > available {
        return bad(
            "steps",
            format!(
                "{}: the input sequences have {available} steps; use 1..={available}",
                cfg.steps
            ),
        );
    }
    if cfg.reorthonormalise_every == 0 {
        return bad(
            "reorthonormalise_every",
            "0; use 1 (every step) or more".into(),
        );
    }
    if cfg.transient() + cfg.reorthonormalise_every > cfg.steps {
        return bad(
            "transient_steps",
            format!(
                "{} leaves no window to average in {} steps (windows of {}); shorten it or lengthen `steps`",
                cfg.transient(),
                cfg.steps,
                cfg.reorthonormalise_every
            ),
        );
    }
    if cfg.sequences == 0 {
        return bad("sequences", "0; use at least 1".into());
    }
    Ok(())
}

/// The first `cfg.exponents` exponents of `system` from `h0` `[1, N]` along `drive` `[T, 1, D]`
/// (the first `cfg.steps` steps), per step. `cfg` must pass [`check`].
pub fn exponents(
    system: &dyn Dynamics,
    h0: &Tensor,
    drive: &Tensor,
    cfg: &SpectrumConfig,
    track: bool,
) -> Result<Exponents> {
    let (n, k, m) = (
        system.state_size(),
        cfg.exponents,
        cfg.reorthonormalise_every,
    );
    let transient = cfg.transient();
    if let Err(e) = check(cfg, n, drive.dim(0)?, "spectrum") {
        candle_core::bail!("{e}");
    }
    let keep = |t: Tensor| if track { t } else { t.detach() };
    let diagonal = Tensor::arange_step(0u32, (k * k) as u32, (k + 1) as u32, h0.device())?;
    let mut q = initial_frame(n, k, cfg.frame_seed, h0.device())?.to_dtype(h0.dtype())?;
    let mut h = keep(h0.clone());
    let (mut sum, mut averaged, mut last_qr) = (None::<Tensor>, 0usize, 0usize);
    for t in 1..=cfg.steps {
        let u = drive.get(t - 1)?;
        let next = system.step(&h, &u)?;
        q = keep(system.tangent(&h, &next, &u, &q)?);
        h = keep(next);
        if t % m != 0 && t != cfg.steps {
            continue;
        }
        let (qn, r) = qr(&q)?;
        if last_qr >= transient {
            let logs = r.flatten_all()?.index_select(&diagonal, 0)?.log()?;
            sum = Some(match sum {
                Some(s) => (s + logs)?,
                None => logs,
            });
            averaged += t - last_qr;
        }
        last_qr = t;
        q = qn;
    }
    let values = match sum {
        Some(s) => (s / averaged as f64)?,
        None => candle_core::bail!("no window after the transient of {transient} steps"),
    };
    Ok(Exponents {
        values: values.to_dtype(DType::F64)?,
        steps_averaged: averaged,
    })
}

/// The flossing loss `mean_i (λ_i - target)²`.
pub fn flossing_loss(exponents: &Exponents, target: f64) -> Result<Tensor> {
    (&exponents.values - target)?.sqr()?.mean_all()
}
