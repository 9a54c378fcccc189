//! The samplers against random search on test functions with known minima (issue 17's
//! acceptance): median simple regret over 20 seeds at a fixed budget, and how many seeds each
//! sampler beats random search on.

use rayon::prelude::*;

use super::functions::TestFunction::{self, Branin, Hartmann6, Rosenbrock5};
use super::sampler::{build, Observation, Sampler};
use super::study::SamplerConfig;

const SEEDS: u64 = 20;

/// The best value `sampler` finds in `n` sequential evaluations of `f`, minus the minimum.
fn regret(f: TestFunction, n: usize, sampler: &dyn Sampler) -> f64 {
    let mut observed: Vec<Observation> = Vec::with_capacity(n);
    for trial in 0..n {
        let unit = sampler.ask(trial, 1, &observed, &[]).remove(0);
        assert!(unit.iter().all(|u| (0.0..=1.0).contains(u)), "{unit:?}");
        let loss = f.at_unit(&unit);
        observed.push(Observation {
            id: trial,
            unit,
            loss,
            constraints: Vec::new(),
        });
    }
    observed
        .iter()
        .map(|o| o.loss)
        .fold(f64::INFINITY, f64::min)
        - f.minimum()
}

/// Regrets of `cfg` and of random search over seeds `0..SEEDS`, in seed order.
fn regrets(f: TestFunction, n: usize, cfg: &SamplerConfig) -> (Vec<f64>, Vec<f64>) {
    let run = |cfg: &SamplerConfig| -> Vec<f64> {
        (0..SEEDS)
            .into_par_iter()
            .map(|seed| regret(f, n, build(cfg, f.dims(), n, seed).as_ref()))
            .collect()
    };
    (run(cfg), run(&SamplerConfig::Random))
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
}

/// Checks `cfg` on `f` at `n` evaluations: median regret at most `target` and at least
/// `ratio` times below random search's, and better than random on `min_wins` of 20 seeds.
fn check(f: TestFunction, n: usize, cfg: SamplerConfig, target: f64, ratio: f64, min_wins: usize) {
    let (ours, random) = regrets(f, n, &cfg);
    let (m, r) = (median(&ours), median(&random));
    let wins = ours.iter().zip(&random).filter(|(a, b)| a < b).count();
    eprintln!(
        "{cfg:?} on {f:?} n={n}: median regret {m:.4}, random {r:.4}, ratio {:.1}, wins {wins}/20",
        r / m
    );
    assert!(
        m <= target,
        "{cfg:?} on {f:?}: median regret {m} > {target}"
    );
    assert!(
        r / m >= ratio,
        "{cfg:?} on {f:?}: only {:.2}x below random",
        r / m
    );
    assert!(
        wins >= min_wins,
        "{cfg:?} on {f:?}: beats random on {wins}/20 seeds"
    );
}

#[test]
fn gp_bo_beats_random_search_tenfold_on_branin_at_50() {
    check(
        Branin,
        50,
        SamplerConfig::Gp {
            initial: 10,
            trust_region: false,
        },
        0.01,
        10.0,
        15,
    );
}

#[test]
fn gp_bo_beats_random_search_threefold_on_hartmann6_at_100() {
    check(
        Hartmann6,
        100,
        SamplerConfig::Gp {
            initial: 10,
            trust_region: false,
        },
        0.2,
        3.0,
        15,
    );
}

/// Measured: median 0.077 against random's 0.383 (5.0x), better on 14 of 20 seeds (TPE's
/// losses are its seeds that settle on one of Branin's three minima late).
#[test]
fn tpe_beats_random_search_threefold_on_branin_at_100() {
    check(
        Branin,
        100,
        SamplerConfig::Tpe {
            startup: 10,
            candidates: 24,
        },
        0.1,
        3.0,
        13,
    );
}

#[test]
fn cma_es_beats_random_search_tenfold_on_rosenbrock5_at_200() {
    check(
        Rosenbrock5,
        200,
        SamplerConfig::CmaEs {
            sigma0: 1.0 / 6.0,
            population: None,
        },
        50.0,
        10.0,
        15,
    );
}

/// Branin restricted to `x1 <= -0.5` (unit `u0 <= 0.3`), whose feasible minimum is still
/// 0.397887 at `(-pi, 12.275)`: the best feasible value found in `n` evaluations, minus it.
fn constrained_regret(n: usize, sampler: &dyn Sampler) -> f64 {
    let mut observed: Vec<Observation> = Vec::with_capacity(n);
    for trial in 0..n {
        let unit = sampler.ask(trial, 1, &observed, &[]).remove(0);
        let loss = Branin.at_unit(&unit);
        let constraints = vec![unit[0] - 0.3];
        observed.push(Observation {
            id: trial,
            unit,
            loss,
            constraints,
        });
    }
    observed
        .iter()
        .filter(|o| o.feasible())
        .map(|o| o.loss)
        .fold(f64::INFINITY, f64::min)
        - Branin.minimum()
}

#[test]
fn constrained_gp_bo_and_its_trust_region_find_the_feasible_minimum() {
    for trust_region in [false, true] {
        let cfg = SamplerConfig::Gp {
            initial: 10,
            trust_region,
        };
        let run = |cfg: &SamplerConfig| -> Vec<f64> {
            (0..10u64)
                .into_par_iter()
                .map(|seed| constrained_regret(40, build(cfg, 2, 40, seed).as_ref()))
                .collect()
        };
        let (ours, random) = (run(&cfg), run(&SamplerConfig::Random));
        let (m, r) = (median(&ours), median(&random));
        eprintln!("constrained Branin n=40, {cfg:?}: median feasible regret {m:.4}, random {r:.4}");
        assert!(m <= 0.05 && m * 3.0 <= r, "{cfg:?}: {m} vs random {r}");
    }
}
