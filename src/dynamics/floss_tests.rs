//! The flossing gradient against central finite differences, and flossing from initialisation
//! pulling the first k exponents to zero with a cliff after the k-th.

use candle_core::{DType, Device, Tensor};

use super::lyapunov::{exponents, flossing_loss};
use super::lyapunov_tests::rate_net;
use super::system::DynamicsOptions;
use crate::config::SpectrumConfig;
use crate::nn::Network;

fn settings() -> SpectrumConfig {
    SpectrumConfig {
        exponents: 5,
        steps: 30,
        transient_steps: Some(8),
        reorthonormalise_every: 1,
        frame_seed: 3,
        sequences: 1,
        reset_in_jacobian: false,
    }
}

/// The flossing loss of `net` on `input` (f64 dynamics), tracked.
fn loss(net: &dyn Network, input: &Tensor) -> crate::Result<Tensor> {
    let sys = super::system_of(net, &DynamicsOptions::f64())?;
    let drive = sys.drive(input)?;
    let e = exponents(&*sys, &sys.initial_state()?, &drive, &settings(), true)?;
    Ok(flossing_loss(&e, 0.0)?)
}

/// The parameters are f32; a step of 2^-17 is exact for every |p| < 64, so central differences
/// of the f64 loss are exact up to the truncation error.
#[test]
fn the_flossing_gradient_matches_central_finite_differences() -> crate::Result<()> {
    let (net, vars) = rate_net(10, 1.5, 7)?;
    let bits: Vec<f32> = (0..40).map(|i| ((i * 7 + 3) % 5 % 2) as f32).collect();
    let input = Tensor::from_vec(bits, (40, 1, 1), &Device::Cpu)?;
    let grads = loss(&net, &input)?.backward()?;
    let h = 2f64.powi(-17);
    let mut checked = 0;
    for (name, var) in vars.named_vars()? {
        let Some(g) = grads.get(var.as_tensor()) else {
            continue;
        };
        let g: Vec<f64> = g.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        let p0 = var.as_tensor().copy()?;
        let shape = p0.shape().clone();
        let base: Vec<f32> = p0.flatten_all()?.to_vec1()?;
        let mut fd = Vec::with_capacity(base.len());
        for i in 0..base.len() {
            let at = |delta: f64| -> crate::Result<f64> {
                let mut v = base.clone();
                v[i] = (f64::from(v[i]) + delta) as f32;
                var.set(&Tensor::from_vec(v, &shape, &Device::Cpu)?)?;
                Ok(loss(&net, &input)?.to_scalar::<f64>()?)
            };
            fd.push((at(h)? - at(-h)?) / (2.0 * h));
        }
        var.set(&p0)?;
        let scale = fd.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
        let err = g
            .iter()
            .zip(&fd)
            .fold(0f64, |m, (a, b)| m.max((a - b).abs()))
            / scale;
        assert!(err < 1e-6, "{name}: relative error {err} (scale {scale})");
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} parameters reached");
    Ok(())
}

/// The schedule: steps before training once, periodic episodes up to their count, adaptive
/// episodes only when `|λ_1 - target|` exceeds the threshold at a check.
#[test]
fn the_schedule_runs_what_it_declares() -> crate::Result<()> {
    use crate::config::{AdaptiveFlossing, FlossingConfig, PeriodicFlossing};
    let (net, vars) = rate_net(10, 1.0, 1)?;
    let params = vars.named_vars()?;
    let input = Tensor::zeros((40, 1, 1), DType::F32, &Device::Cpu)?;
    let cfg = |threshold: f64| -> crate::Result<FlossingConfig> {
        let mut c: FlossingConfig =
            crate::config::from_yaml_str("{spectrum: {exponents: 2, steps: 30}}")?;
        c.steps_before_training = 7;
        c.periodic = Some(PeriodicFlossing {
            every_training_steps: 3,
            steps_per_episode: 2,
            episodes: 2,
        });
        c.adaptive = Some(AdaptiveFlossing {
            check_every_training_steps: 4,
            threshold,
            steps_per_episode: 5,
        });
        Ok(c)
    };
    for (threshold, adaptive) in [(1e9, 0), (0.0, 5)] {
        let mut f = super::Flosser::new(&cfg(threshold)?, &params)?;
        let due: Vec<usize> = (0..10)
            .map(|s| f.due(s, &net, || Ok(input.clone())))
            .collect::<crate::Result<_>>()?;
        // steps 0 (before training), 3 and 6 (periodic, then its 2 episodes are spent), 4 and 8 (checks)
        let want = [7, 0, 0, 2, adaptive, 0, 2, 0, adaptive, 0];
        assert_eq!(due, want, "threshold {threshold}");
        assert_eq!(f.counters.periodic_episodes, 2);
        assert_eq!(
            f.counters.adaptive_episodes,
            if adaptive > 0 { 2 } else { 0 }
        );
    }
    Ok(())
}
