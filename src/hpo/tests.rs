use std::collections::BTreeMap;

use super::design::{latin_hypercube, random};
use super::space::{Param, ParamValue, Space};
use crate::error::Error;

const SPACE: &str = "
optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
model.neuron.beta: {type: float, low: 0.5, high: 0.99}
model.hidden: {type: int, low: 32, high: 256, log: true}
batch_size: {type: categorical, choices: ['32', '64', '128']}
model.neuron.kind: {type: categorical, choices: [leaky, synaptic]}
model.neuron.alpha: {type: float, low: 0.5, high: 0.95, when: {param: model.neuron.kind, in: [synaptic]}}
data.steps: {type: int, low: 8, high: 24, step: 4}
";

fn key_of(e: Error) -> String {
    match e {
        Error::InvalidConfig { key, .. } => key,
        other => panic!("not a config error: {other}"),
    }
}

#[test]
fn a_uniform_unit_coordinate_gives_each_parameter_its_own_distribution() {
    let space = Space::from_yaml(SPACE).unwrap();
    assert_eq!(space.dims(), 7);
    let n = 20_000;
    let p = |k: &str| space.params[k].clone();
    let (lr, hidden, steps, batch) = (
        p("optimizer.lr"),
        p("model.hidden"),
        p("data.steps"),
        p("batch_size"),
    );
    let (mut log_lr, mut counts_steps, mut counts_batch) = (0.0, BTreeMap::new(), BTreeMap::new());
    let (mut hidden_lo, mut hidden_hi, mut hidden_small) = (false, false, 0);
    for u in random(n, 1, 7).into_iter().map(|v| v[0]) {
        match lr.from_unit(u) {
            ParamValue::Float(x) => {
                assert!((1e-4..=1e-2).contains(&x));
                log_lr += x.log10();
            }
            v => panic!("{v:?}"),
        }
        match hidden.from_unit(u) {
            ParamValue::Int(h) => {
                assert!((32..=256).contains(&h), "{h}");
                hidden_lo |= h == 32;
                hidden_hi |= h == 256;
                hidden_small += usize::from(h < 90);
            }
            v => panic!("{v:?}"),
        }
        *counts_steps
            .entry(steps.from_unit(u).text())
            .or_insert(0usize) += 1;
        *counts_batch
            .entry(batch.from_unit(u).text())
            .or_insert(0usize) += 1;
    }
    // log-uniform: the mean of log10(lr) is the middle of [-4, -2]
    assert!(
        (log_lr / n as f64 + 3.0).abs() < 0.02,
        "{}",
        log_lr / n as f64
    );
    // log int: both ends reachable, and about half the mass below the geometric middle (~90.5)
    assert!(hidden_lo && hidden_hi);
    assert!(
        (hidden_small as f64 / n as f64 - 0.5).abs() < 0.03,
        "{hidden_small}"
    );
    // a step grid: 8, 12, 16, 20, 24 equally often (no truncation bias, nothing past high)
    assert_eq!(
        counts_steps.keys().collect::<Vec<_>>(),
        ["12", "16", "20", "24", "8"]
    );
    let shares = |counts: &BTreeMap<String, usize>, want: f64| {
        for (v, c) in counts {
            let share = *c as f64 / n as f64;
            assert!((share - want).abs() < 0.02, "{v}: {share}");
        }
    };
    shares(&counts_steps, 0.2);
    shares(&counts_batch, 1.0 / 3.0);
}

#[test]
fn unit_coordinates_round_trip() {
    let space = Space::from_yaml(SPACE).unwrap();
    for u in [0.0, 0.13, 0.5, 0.77, 0.999] {
        for (key, p) in &space.params {
            let v = p.from_unit(u);
            let back = p.to_unit(&v).unwrap();
            assert_eq!(p.from_unit(back), v, "{key} at {u}");
            if matches!(p, Param::Float { .. }) {
                assert!((back - u).abs() < 1e-9, "{key}: {u} -> {back}");
            }
        }
    }
    let lr = &space.params["optimizer.lr"];
    assert_eq!(lr.to_unit(&ParamValue::Float(0.5)), None);
    assert_eq!(lr.to_unit(&ParamValue::Int(1)), None);
}

#[test]
fn a_conditional_parameter_is_set_only_under_its_choice() {
    let space = Space::from_yaml(SPACE).unwrap();
    // axes in key order: batch_size, data.steps, model.hidden, model.neuron.alpha,
    // model.neuron.beta, model.neuron.kind, optimizer.lr
    let leaky = space.point(&[0.0, 0.0, 0.0, 0.5, 0.5, 0.2, 0.5]);
    assert!(!leaky.contains_key("model.neuron.alpha"));
    let synaptic = space.point(&[0.0, 0.0, 0.0, 0.5, 0.5, 0.8, 0.5]);
    match synaptic["model.neuron.alpha"] {
        ParamValue::Float(a) => assert!((a - 0.725).abs() < 1e-12, "{a}"),
        ref v => panic!("{v:?}"),
    }
    let overrides = Space::overrides(&synaptic);
    assert_eq!(overrides[0], "batch_size=32");
    assert!(overrides.contains(&"model.neuron.kind=synaptic".to_string()));
    assert!(overrides.contains(&"data.steps=8".to_string()));
}

#[test]
fn bad_spaces_are_refused_naming_the_key() {
    let cases = [
        ("lr: {type: float, low: 1.0, high: 0.1}", "space.lr.high"),
        ("lr: {type: float, low: 0.0, high: 0.1, log: true}", "space.lr.low"),
        ("lr: {type: float, low: 0.1, high: 0.5, step: 1.0}", "space.lr.step"),
        ("h: {type: int, low: 0, high: 9, log: true}", "space.h.low"),
        ("h: {type: int, low: 1, high: 9, step: 0}", "space.h.step"),
        ("b: {type: categorical, choices: []}", "space.b.choices"),
        ("b: {type: categorical, choices: [a, a]}", "space.b.choices"),
        ("lr: {type: float, low: 0.1, high: 0.5, scale: log}", "space.lr"),
        ("lr: {type: uniform, low: 0.1, high: 0.5}", "space.lr.type"),
        (
            "a: {type: float, low: 0.1, high: 0.5, when: {param: b, in: [x]}}",
            "space.a.when.param",
        ),
        (
            "k: {type: categorical, choices: [x, y]}\na: {type: float, low: 0.1, high: 0.5, when: {param: k, in: [z]}}",
            "space.a.when.in",
        ),
        ("{}", "space"),
    ];
    for (yaml, key) in cases {
        assert_eq!(key_of(Space::from_yaml(yaml).unwrap_err()), key, "{yaml}");
    }
}

#[test]
fn designs_are_seeded_and_a_latin_hypercube_hits_every_stratum_once() {
    assert_eq!(random(5, 3, 1), random(5, 3, 1));
    assert_ne!(random(5, 3, 1), random(5, 3, 2));
    let n = 16;
    let lhs = latin_hypercube(n, 4, 3);
    assert_eq!(lhs, latin_hypercube(n, 4, 3));
    for d in 0..4 {
        let mut strata: Vec<usize> = lhs.iter().map(|p| (p[d] * n as f64) as usize).collect();
        strata.sort_unstable();
        assert_eq!(strata, (0..n).collect::<Vec<_>>(), "axis {d}");
    }
}

pub(super) fn store() -> crate::config::ConfigStore {
    crate::config::ConfigStore::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs"),
    )
    .unwrap()
}

#[test]
fn the_repository_study_loads_and_names_its_objective() {
    use super::study::StudyConfig;
    use crate::metric::Mode;
    let study = StudyConfig::load(&store(), "snn_ffnn_rate").unwrap();
    assert_eq!(study.space.dims(), 7);
    assert_eq!(
        study.check(&store()).unwrap(),
        ("val_acc".to_string(), Mode::Max)
    );
}

#[test]
fn a_study_that_could_not_run_is_refused_at_load_naming_the_key() {
    use super::study::StudyConfig;
    let base = "experiment: mnist_snn_ffnn_rate\nbudget: {trials: 4}\n";
    let cases = [
        (
            "space: {model.neuron.beta: {type: float, low: 0.5, high: 1.5}}",
            "space.model.neuron.beta",
        ),
        (
            "space: {optimizer.lr: {type: float, low: -1.0, high: 0.1}}",
            "space.optimizer.lr",
        ),
        (
            "space: {model.hiden: {type: int, low: 1, high: 4}}",
            "space.model.hiden",
        ),
        (
            "space: {seed: {type: int, low: 0, high: 4}}\nobjective: {metric: test_acc}",
            "objective.metric",
        ),
        (
            "space: {seed: {type: int, low: 0, high: 4}}\nconstraints: [{metric: val_loss}]",
            "constraints[0]",
        ),
        (
            "space: {seed: {type: int, low: 0, high: 4}}\nworkers: 5",
            "workers",
        ),
    ];
    for (extra, key) in cases {
        let text = format!("{base}{extra}\n");
        let got = StudyConfig::from_yaml(&text, std::path::Path::new("t.yaml"))
            .and_then(|s| s.check(&store()).map(|_| ()));
        match got {
            Err(Error::InvalidConfig { key: k, message }) => {
                assert_eq!(k, key, "{extra}: {message}")
            }
            other => panic!("{extra}: {other:?}"),
        }
    }
    let unknown = StudyConfig::from_yaml(
        &format!("{base}space: {{}}\nsampler: {{kind: bayes}}\n"),
        std::path::Path::new("t.yaml"),
    );
    assert!(
        matches!(unknown, Err(Error::ConfigParse { .. })),
        "{unknown:?}"
    );
}

/// Median over `seeds` of the best value `sampler(seed)` finds in `n` evaluations, minus the
/// minimum (simple regret).
fn median_regret(
    f: super::functions::TestFunction,
    n: usize,
    seeds: u64,
    sampler: impl Fn(u64) -> Box<dyn super::sampler::Sampler>,
) -> f64 {
    let mut regrets: Vec<f64> = (0..seeds)
        .map(|seed| {
            let points = sampler(seed).ask(0, n, &[], &[]);
            let best = points
                .iter()
                .map(|u| f.at_unit(u))
                .fold(f64::INFINITY, f64::min);
            best - f.minimum()
        })
        .collect();
    regrets.sort_by(f64::total_cmp);
    (regrets[regrets.len() / 2 - 1] + regrets[regrets.len() / 2]) / 2.0
}

#[test]
fn test_functions_have_their_minima_and_random_search_matches_the_anchor() {
    use super::functions::TestFunction::{Branin, Hartmann6, Rosenbrock5};
    use super::sampler::RandomSampler;
    // Branin's minimisers (-pi, 12.275), (pi, 2.275), (9.42478, 2.475) in unit coordinates
    for (x1, x2) in [
        (-std::f64::consts::PI, 12.275),
        (std::f64::consts::PI, 2.275),
        (9.42478, 2.475),
    ] {
        let v = Branin.at_unit(&[(x1 + 5.0) / 15.0, x2 / 15.0]);
        assert!((v - Branin.minimum()).abs() < 1e-5, "{v}");
    }
    let h = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573];
    assert!((Hartmann6.at_unit(&h) - Hartmann6.minimum()).abs() < 1e-5);
    assert_eq!(Rosenbrock5.at_unit(&[0.4; 5]), 0.0);
    // random search, 200 seeds (anchors file, section 4: 0.79, 0.36, 1.27, 2569)
    for (f, n, want, tol) in [
        (Branin, 50, 0.79, 0.2),
        (Branin, 100, 0.36, 0.2),
        (Hartmann6, 100, 1.27, 0.15),
        (Rosenbrock5, 200, 2569.0, 0.25),
    ] {
        let got = median_regret(f, n, 200, |seed| {
            Box::new(RandomSampler {
                dims: f.dims(),
                seed,
            })
        });
        eprintln!("random search, {f:?} n={n}: median regret {got:.4} (anchor {want})");
        assert!(
            (got / want - 1.0).abs() < tol,
            "{f:?} n={n}: median regret {got}, anchor {want}"
        );
    }
}

#[test]
fn samplers_are_pure_functions_of_seed_and_trial_number() {
    use super::sampler::{LatinHypercubeSampler, RandomSampler, Sampler};
    let random = RandomSampler { dims: 3, seed: 9 };
    let all = random.ask(0, 6, &[], &[]);
    assert_eq!(random.ask(4, 2, &[], &[]), all[4..].to_vec());
    let lhs = LatinHypercubeSampler::new(6, 3, 9);
    let rows = lhs.ask(0, 6, &[], &[]);
    assert_eq!(lhs.ask(2, 3, &[], &[]), rows[2..5].to_vec());
    assert_eq!(lhs.ask(6, 1, &[], &[]).len(), 1);
}

#[test]
fn an_ask_tell_loop_keeps_the_budget_and_finds_the_best_trial() {
    use super::asktell::{AskTell, TrialState};
    use super::functions::TestFunction::Branin;
    use super::sampler::RandomSampler;
    use crate::metric::Mode;
    let space = Space::from_yaml(
        "x1: {type: float, low: -5.0, high: 10.0}\nx2: {type: float, low: 0.0, high: 15.0}",
    )
    .unwrap();
    let mut study = AskTell::new(
        space,
        Box::new(RandomSampler { dims: 2, seed: 4 }),
        20,
        Mode::Min,
    );
    let branin = |t: &super::asktell::Trial| Branin.at_unit(&t.unit);
    let first = study.ask(8);
    assert_eq!(
        first.iter().map(|t| t.id).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    assert!(first[0].overrides()[0].starts_with("x1="));
    for t in &first[..5] {
        study.tell(t.id, branin(t)).unwrap();
    }
    assert_eq!(
        study
            .trials()
            .iter()
            .filter(|t| t.state == TrialState::Running)
            .count(),
        3
    );
    let rest = study.ask(100);
    assert_eq!(rest.len(), 12, "the budget caps what is asked");
    assert!(study.ask(1).is_empty());
    for t in first[5..].iter().chain(&rest) {
        let broken = if t.id == 7 { 1.0 } else { -1.0 };
        study.tell_constrained(t.id, branin(t), &[broken]).unwrap();
    }
    assert!(study.done());
    let feasible_min = study
        .trials()
        .iter()
        .filter(|t| t.id != 7)
        .map(branin)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(study.best().map(branin), Some(feasible_min));
    assert!(study.tell(3, 1.0).is_err(), "told twice");
    assert!(study.tell(99, 1.0).is_err(), "never asked");
}

#[test]
fn a_study_is_recorded_once_in_its_iteration_and_a_missing_iteration_is_refused() {
    use crate::state::ProjectStore;
    use crate::state::Timestamp;
    let tmp = tempfile::tempdir().unwrap();
    let store = ProjectStore::new(tmp.path());
    let now = Timestamp::now();
    store.init("snn", "", "", &now).unwrap();
    let it = store.new_iteration("snn", "tune the SNN", &now).unwrap();
    for _ in 0..2 {
        store
            .link_study("snn", it.number, "snn_ffnn_rate", "runs/hpo/snn_ffnn_rate")
            .unwrap();
    }
    let file = store.experiments("snn", it.number).unwrap();
    assert_eq!(file.studies.len(), 1);
    assert_eq!(file.studies[0].dir, "runs/hpo/snn_ffnn_rate");
    assert!(store.link_study("snn", 9, "x", "y").is_err());
    let study = super::study::StudyConfig::from_yaml(
        "experiment: mnist_ffnn_adam\nspace: {seed: {type: int, low: 0, high: 3}}\nbudget: {trials: 1}\niteration: {project: snn, number: 1}\n",
        std::path::Path::new("t.yaml"),
    )
    .unwrap();
    assert_eq!(study.iteration.map(|i| i.number), Some(1));
}
