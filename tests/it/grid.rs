//! The grid-neuron family through the trainer: its parameters, its own gradient behind the
//! `Network` interface, one declared readout, config errors, the no-op perturbation, batch-1
//! SGD with parameter groups, and upstream's quick recipe on a real MNIST slice.

use autoresearch::candle_core::{Device, Tensor};
use autoresearch::train::{build_run, BuiltRun};
use autoresearch::{Error, TrainOptions};

use crate::{compose, tempdir};

fn quiet() -> TrainOptions {
    TrainOptions::default().with_quiet(true)
}

fn built(experiment: &str, overrides: &[&str]) -> BuiltRun {
    let runs = tempdir();
    let exp = compose(experiment, runs.path(), overrides).unwrap();
    build_run(exp.config(), None).unwrap()
}

fn train_batch(run: &BuiltRun, n: usize) -> (Tensor, Tensor) {
    let idx: Vec<usize> = (0..n).collect();
    let b = run.data.train.batch(&idx, &Device::Cpu).unwrap();
    (b.input, b.target)
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn the_28_by_10_grid_has_1120_parameters_four_per_cell() {
    let run = built(
        "mnist_grid_adam",
        &["data.limit=300", "data.test_limit=100"],
    );
    let names: Vec<&str> = run.params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["bias", "log_tau", "w_left", "w_top"]);
    for (_, v) in &run.params {
        assert_eq!(v.dims(), [28, 10]);
    }
    let total: usize = run.params.iter().map(|(_, v)| v.elem_count()).sum();
    assert_eq!(total, 1_120);
    // log τ uniform in [log 1 ms, log 20 ms]
    let log_tau = flat(run.params[1].1.as_tensor());
    assert!(log_tau
        .iter()
        .all(|v| (1e-3f32.ln()..=20e-3f32.ln()).contains(v)));
}

#[test]
fn a_grid_of_other_height_reads_the_image_through_a_fixed_sparse_projection() {
    let run = built(
        "mnist_grid_adam",
        &["data.limit=300", "data.test_limit=100", "model.rows=16"],
    );
    for (_, v) in &run.params {
        assert_eq!(v.dims(), [16, 10]);
    }
    let (x, y) = train_batch(&run, 4);
    let step = run.net.train_step(&x, &y, &*run.data.task, 0).unwrap();
    assert!(step.loss.is_finite());
    assert_eq!(step.output.dims(), [4, 10]);
    // the projection is drawn from the run seed: the same network gives the same scores
    let again = built(
        "mnist_grid_adam",
        &["data.limit=300", "data.test_limit=100", "model.rows=16"],
    );
    assert_eq!(flat(&again.net.forward(&x).unwrap()), flat(&step.output));
}

#[test]
fn the_step_loss_and_scores_are_the_declared_readouts() {
    for readout in ["sum", "per_step"] {
        let run = built(
            "mnist_grid_adam",
            &[
                "data.limit=300",
                "data.test_limit=100",
                &format!("model.readout={readout}"),
            ],
        );
        let (x, y) = train_batch(&run, 9);
        let step = run.net.train_step(&x, &y, &*run.data.task, 0).unwrap();
        let out = run.net.forward(&x).unwrap();
        let loss = run
            .net
            .loss(&out, &y, &*run.data.task)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            (step.loss - f64::from(loss)).abs() < 1e-5 * step.loss,
            "{readout}: step loss {} vs evaluated loss {loss}",
            step.loss
        );
        let (a, b) = (flat(&step.output), flat(&out));
        assert!(
            a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-5),
            "{readout}"
        );
        for (_, v) in &run.params {
            assert!(step.grads.get(v.as_tensor()).is_some());
        }
    }
}

/// Cosine similarity of two gradients (all parameters).
fn cosine(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    let dot = |x: &[Vec<f32>], y: &[Vec<f32>]| -> f64 {
        x.iter()
            .zip(y)
            .flat_map(|(p, q)| p.iter().zip(q).map(|(u, v)| f64::from(*u) * f64::from(*v)))
            .sum()
    };
    dot(a, b) / (dot(a, a) * dot(b, b)).sqrt()
}

#[test]
fn grad_selects_snap1_or_exact_bptt_for_the_same_forward() {
    let grads = |method: &str| {
        let run = built(
            "mnist_grid_adam",
            &[
                "data.limit=300",
                "data.test_limit=100",
                &format!("model.grad={method}"),
            ],
        );
        let (x, y) = train_batch(&run, 32);
        let step = run.net.train_step(&x, &y, &*run.data.task, 0).unwrap();
        let g: Vec<Vec<f32>> = run
            .params
            .iter()
            .map(|(_, v)| flat(step.grads.get(v.as_tensor()).unwrap()))
            .collect();
        (step.loss, g)
    };
    let (loss_local, local) = grads("snap1");
    let (loss_exact, exact) = grads("bptt");
    assert_eq!(loss_local, loss_exact, "the same forward");
    assert_ne!(local, exact, "SnAP-1 truncates over 28 rows");
    let cos = cosine(&local, &exact);
    // measured at init on this batch: 0.94
    assert!(cos > 0.8, "cosine {cos}");
}

fn compose_error(experiment: &str, overrides: &[&str]) -> (String, String) {
    let runs = tempdir();
    let err = compose(experiment, runs.path(), overrides)
        .and_then(|e| e.train_with(&quiet()).map(|_| ()))
        .unwrap_err();
    match err {
        Error::InvalidConfig { key, message } => (key, message),
        other => panic!("expected an invalid-config error, got {other}"),
    }
}

#[test]
fn bad_grid_settings_are_errors_naming_their_key() {
    let base = ["data.limit=300", "data.test_limit=100"];
    fn with<'a>(base: &[&'a str], extra: &'a str) -> Vec<&'a str> {
        base.iter().copied().chain([extra]).collect()
    }
    let (key, message) = compose_error("mnist_grid_adam", &with(&base, "model.cols=5"));
    assert_eq!(key, "model.cols");
    assert!(message.contains("one column per class (10)"), "{message}");
    let mut both = with(&base, "model.grad=bptt");
    both.push("model.perturbation.leak=0.2");
    assert_eq!(
        compose_error("mnist_grid_adam", &both).0,
        "model.perturbation"
    );
    assert_eq!(
        compose_error("mnist_grid_adam", &with(&base, "model.tau_ms=[20,1]")).0,
        "model.tau_ms"
    );
    assert_eq!(
        compose_error("mnist_grid_adam", &with(&base, "data.val_fraction=0")).0,
        "data.val_fraction"
    );
    let (key, message) = compose_error("mnist_grid_adam", &with(&base, "lr_scale.tau=4"));
    assert_eq!(key, "lr_scale.tau");
    assert!(message.contains("log_tau"), "{message}");
}

/// `(val_loss, val_acc)` of every epoch of a run.
fn history(experiment: &str, overrides: &[&str]) -> Vec<(f64, f64)> {
    let runs = tempdir();
    let out = compose(experiment, runs.path(), overrides)
        .unwrap()
        .train_with(&quiet())
        .unwrap();
    let text = std::fs::read_to_string(out.dir.path().join("history.csv")).unwrap();
    let frame: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    let col = |name: &str| frame[0].iter().position(|c| *c == name).unwrap();
    let (loss, acc) = (col("val_loss"), col("val_acc"));
    frame[1..]
        .iter()
        .map(|r| (r[loss].parse().unwrap(), r[acc].parse().unwrap()))
        .collect()
}

#[test]
fn the_no_op_perturbation_is_the_unperturbed_run_and_noise_is_reproducible() {
    let base = ["data.limit=640", "data.test_limit=200", "epochs=1"];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let run = |extra: &[&str]| {
        let all = with(extra);
        history(
            "mnist_grid_adam",
            &all.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    let plain = run(&[]);
    let no_op = run(&[
        "model.perturbation.leak=0",
        "model.perturbation.gain_positive=1",
        "model.perturbation.gain_negative=1",
        "model.perturbation.subtraction=0",
        "model.perturbation.trace_noise=0",
        "model.perturbation.message_noise=0",
    ]);
    assert_eq!(plain, no_op);
    let noisy = [
        "model.perturbation.message_noise=0.01",
        "model.perturbation.trace_noise=0.5",
    ];
    let (a, b) = (run(&noisy), run(&noisy));
    assert_eq!(a, b, "noise draws are seeded");
    assert_ne!(a, plain);
}

#[test]
fn upstreams_quick_recipe_reaches_its_accuracy_over_three_seeds() {
    // grid-neurons' robustness baseline: 6k training images, 5 epochs, Adam 3e-3, batch 32,
    // validated on 2,000 test images: 0.269 +- 0.02 (one seed)
    let finals: Vec<f64> = (0..3)
        .map(|seed| {
            let seed = format!("seed={seed}");
            let h = history(
                "mnist_grid_upstream",
                &["data.limit=6000", "epochs=5", &seed],
            );
            h.last().unwrap().1
        })
        .collect();
    let mean = finals.iter().sum::<f64>() / 3.0;
    assert!(
        (mean - 0.269).abs() <= 0.04,
        "final val_acc {finals:?}, mean {mean}"
    );
}
