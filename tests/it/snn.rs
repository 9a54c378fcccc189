//! Spiking networks end to end: learning on real MNIST slices, the fused kernels against the
//! plain tensor ops, exact resume with seeded spike encoding, firing rates and traces.

use autoresearch::config::ModelConfig;
use autoresearch::data::{load_splits, ImageSet};
use autoresearch::nn::{Model, Ops, SeededVarMap};
use autoresearch::rundir::parse_history_csv;
use autoresearch::{Error, RunStatus, TrainOptions};
use candle_core::{DType, Device, Module, Tensor, Var};

use crate::{compose, shared_mnist, store, tempdir};

fn quiet() -> TrainOptions {
    TrainOptions::default().with_quiet(true)
}

#[test]
fn snn_ffnn_reaches_85_percent_on_a_5k_slice_in_two_epochs() {
    let runs = tempdir();
    let out = compose(
        "mnist_snn_ffnn_rate",
        runs.path(),
        &["data.limit=5000", "data.test_limit=2000", "epochs=2"],
    )
    .unwrap()
    .train_with(&quiet())
    .unwrap();
    let m = &out.metrics;
    assert_eq!(m.status, RunStatus::Completed);
    assert!(
        m.best_val_acc.unwrap() >= 0.85,
        "val acc {:?}",
        m.best_val_acc
    );
    assert!(m.test_acc.unwrap() >= 0.83, "test acc {:?}", m.test_acc);
    // history.csv carries each spiking layer's validation firing rate
    let text = std::fs::read_to_string(out.dir.history_path()).unwrap();
    let rows = parse_history_csv(&text).unwrap();
    let names: Vec<&str> = rows[0].extra.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["rate_lif1", "rate_lif2", "rate_lif3"]);
    for c in &rows[1].extra {
        assert!(c.value > 0.0 && c.value < 1.0, "{} = {}", c.name, c.value);
    }
}

/// A model of `experiment` (with `overrides`) and its parameters, under `ops`.
fn model(experiment: &str, overrides: &[&str], ops: Ops) -> (Model, SeededVarMap) {
    let exp = compose(experiment, std::path::Path::new("/tmp"), overrides).unwrap();
    let cfg: &ModelConfig = &exp.config().model;
    let vars = SeededVarMap::new(3);
    let model = Model::from_config(
        cfg,
        [1, 28, 28],
        10,
        ops,
        vars.var_builder(DType::F32, &Device::Cpu),
    )
    .unwrap();
    (model, vars)
}

/// Rounds every parameter to a multiple of 1/1024 so that sums of spikes times weights are exact
/// in f32 whatever the order of summation: the fused and plain paths then fire identically.
fn quantize(vars: &SeededVarMap) {
    for (_, var) in vars.named_vars().unwrap() {
        let q = ((var.as_tensor() * 1024.0).unwrap().round().unwrap() / 1024.0).unwrap();
        var.set(&q).unwrap();
    }
}

fn mnist_batch(n: usize) -> (Tensor, Tensor) {
    let exp = compose(
        "mnist_snn_ffnn_rate",
        std::path::Path::new("/tmp"),
        &[
            &format!("data.root={}", shared_mnist().display()),
            "data.limit=200",
        ],
    )
    .unwrap();
    let (name, images) = exp.config().data.images().unwrap();
    let set: ImageSet = load_splits(name, images, 0).unwrap().train;
    let idx: Vec<usize> = (0..n).collect();
    let batch = set.batch(&idx, &Device::Cpu).unwrap();
    (batch.input, batch.target)
}

/// Loss and gradients (by parameter name) of one batch.
fn loss_and_grads(
    model: &Model,
    vars: &SeededVarMap,
    x: &Tensor,
    y: &Tensor,
) -> (f32, Vec<(String, Vec<f32>)>) {
    let input = model.encode(x, 11).unwrap();
    let loss = model.loss(&model.forward(&input).unwrap(), y).unwrap();
    let grads = loss.backward().unwrap();
    let named = vars
        .named_vars()
        .unwrap()
        .into_iter()
        .map(|(name, var): (String, Var)| {
            // a parameter the loss does not depend on (the output threshold under a membrane
            // readout with zero reset) may get no gradient on one path and zeros on the other
            let g = match grads.get(&var) {
                Some(g) => g.flatten_all().unwrap().to_vec1().unwrap(),
                None => vec![0.0; var.elem_count()],
            };
            (name, g)
        })
        .collect();
    (loss.to_scalar().unwrap(), named)
}

fn assert_fused_matches_plain(experiment: &str, overrides: &[&str], batch: usize) {
    let (x, y) = mnist_batch(batch);
    let (plain, plain_vars) = model(experiment, overrides, Ops::Plain);
    let (fused, fused_vars) = model(experiment, overrides, Ops::Fused);
    quantize(&plain_vars);
    quantize(&fused_vars);
    let (lp, gp) = loss_and_grads(&plain, &plain_vars, &x, &y);
    let (lf, gf) = loss_and_grads(&fused, &fused_vars, &x, &y);
    assert!(
        (lp - lf).abs() <= 1e-5 * lp.abs().max(1.0),
        "loss plain {lp} fused {lf}"
    );
    for ((name, a), (_, b)) in gp.iter().zip(&gf) {
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
        let worst = a.iter().zip(b).fold(0f32, |m, (p, f)| m.max((p - f).abs()));
        assert!(
            worst <= 1e-5 * scale.max(1.0),
            "{experiment} {name}: max |plain - fused| {worst} (scale {scale})"
        );
        if name.ends_with("weight") {
            assert!(
                a.iter().any(|v| *v != 0.0),
                "{experiment} {name}: gradient is all zero"
            );
        }
    }
}

#[test]
fn fused_snn_ffnn_gives_the_plain_losses_and_gradients() {
    assert_fused_matches_plain("mnist_snn_ffnn_rate", &[], 16);
    // membrane readout, zero reset, atan surrogate and learned beta/threshold on the fused path
    assert_fused_matches_plain(
        "mnist_snn_ffnn_rate",
        &[
            "model.readout={kind: max_membrane_ce}",
            "model.neuron.reset=zero",
            "model.neuron.surrogate={kind: atan, alpha: 2.0}",
            "model.neuron.learn_beta=true",
            "model.neuron.learn_threshold=true",
        ],
        8,
    );
}

#[test]
fn fused_snn_cnn_gives_the_plain_losses_and_gradients() {
    // the reference's SNN-CNN (pad 1, a 128-unit hidden Leaky layer) over 12 steps, so the
    // hidden layer fires and every weight gets a gradient; then the bench's shape (no hidden
    // fc) with pooling before the Leaky
    assert_fused_matches_plain("mnist_snn_cnn_rate", &["model.encoder.steps=12"], 6);
    assert_fused_matches_plain(
        "mnist_snn_cnn_rate",
        &[
            "model.encoder.steps=5",
            "model.order=conv_pool_lif",
            "model.padding=0",
            "model.fc_hidden=[]",
        ],
        3,
    );
}

#[test]
fn spiking_run_resumes_to_the_same_result_and_records_traces() {
    let quick = [
        "data.limit=1000",
        "data.test_limit=300",
        "epochs=2",
        "model.hidden=[64]",
    ];
    let (straight, interrupted) = (tempdir(), tempdir());
    let full = compose("mnist_snn_ffnn_rate", straight.path(), &quick)
        .unwrap()
        .train_with(&quiet())
        .unwrap();
    let exp = compose("mnist_snn_ffnn_rate", interrupted.path(), &quick).unwrap();
    exp.train_with(&quiet().with_stop_after_epochs(1)).unwrap();
    let resumed = exp.train_with(&quiet()).unwrap();
    assert!(resumed.resumed);
    let strip = |dir: &std::path::Path| -> Vec<Vec<f64>> {
        let text = std::fs::read_to_string(dir.join("history.csv")).unwrap();
        parse_history_csv(&text)
            .unwrap()
            .iter()
            .map(|r| {
                let mut v = vec![
                    r.train_loss,
                    r.value("train_acc").unwrap(),
                    r.val_loss,
                    r.value("val_acc").unwrap(),
                ];
                v.extend(r.extra.iter().map(|c| c.value));
                v
            })
            .collect()
    };
    assert_eq!(strip(resumed.dir.path()), strip(full.dir.path()));
    assert_eq!(resumed.metrics.test_acc, full.metrics.test_acc);

    // traces of the trained network on 3 validation images: [T, 3, N] per layer, and the
    // spikes are exactly the threshold crossings of the recorded membrane
    let traces = exp.record_traces(3).unwrap();
    let names: Vec<&str> = traces.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["lif1", "lif2"]);
    for layer in &traces.layers {
        assert_eq!(layer.spikes.dims()[..2], [25, 3]);
        assert_eq!(layer.spikes.dims(), layer.membrane.dims());
        let spikes: Vec<f32> = layer.spikes.flatten_all().unwrap().to_vec1().unwrap();
        let mem: Vec<f32> = layer.membrane.flatten_all().unwrap().to_vec1().unwrap();
        for (s, m) in spikes.iter().zip(&mem) {
            assert_eq!(*s, if *m > 1.0 { 1.0 } else { 0.0 });
        }
    }

    // the first sample's lif1 activity plots as a raster and as membrane traces
    let (spikes, membrane) = traces.layers[0].sample(0, 64).unwrap();
    assert_eq!((spikes.len(), spikes[0].len()), (25, 64));
    let raster = autoresearch::plot::SpikeRaster {
        title: "lif1 spikes, sample 0".into(),
        spikes,
    };
    let png = autoresearch::plot::Figure::render(&raster).unwrap();
    assert!(png.png().starts_with(b"\x89PNG") && png.svg().contains("lif1 spikes"));
    let trace = autoresearch::plot::MembraneTrace {
        title: "lif1 membrane, sample 0".into(),
        membrane: membrane.iter().map(|row| row[..4].to_vec()).collect(),
        threshold: Some(1.0),
    };
    assert!(
        autoresearch::plot::Figure::render(&trace)
            .unwrap()
            .png()
            .len()
            > 5_000
    );
    assert!(
        traces.layers[0].sample(3, 8).is_err(),
        "only 3 samples were recorded"
    );
}

#[test]
fn spike_encoders_refuse_standardized_pixels_at_compose_time() {
    let runs = tempdir();
    // refused when the config is composed, before any training
    let Err(err) = compose(
        "mnist_snn_ffnn_rate",
        runs.path(),
        &[
            "data.normalize={kind: standardize, mean: 0.1307, std: 0.3081}",
            "epochs=1",
        ],
    ) else {
        panic!("a spike encoder over standardized pixels composed");
    };
    match err {
        Error::InvalidConfig { key, message } => {
            assert_eq!(key, "model.encoder");
            assert!(message.contains("data.normalize"), "{message}");
        }
        other => panic!("expected an invalid-config error, got {other:?}"),
    }
    assert!(store()
        .options("experiment")
        .unwrap()
        .contains(&"mnist_snn_cnn_ttfs".to_string()));
}

/// The README's neuron example, kept compiling and checked by hand: input 0.5 reaches the
/// threshold at step 3 (0.5, 0.95, 1.355), input 1.2 spikes at once and then every step.
#[test]
fn readme_leaky_steps_by_hand() {
    use autoresearch::{
        config::LeakyConfig,
        nn::neuron::{Leaky, NeuronDynamics},
    };
    let dev = Device::Cpu;
    let vb = candle_nn::VarBuilder::zeros(DType::F32, &dev);
    let lif = Leaky::from_config(&LeakyConfig::default(), &[3], vb).unwrap();
    let input = Tensor::new(&[[0.5f32, 1.2, 0.0]], &dev).unwrap();
    let mut state = lif.zero_state(&input).unwrap();
    let mut raster = Vec::new();
    for _ in 0..3 {
        let (spikes, next) = lif.step(&input, &state).unwrap();
        raster.push(spikes.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        state = next;
    }
    assert_eq!(raster, [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]]);
    // scanning on from the last state equals stepping on: one scan of 7 steps, split 3 + 4
    let seq = input.unsqueeze(0).unwrap().repeat((4, 1, 1)).unwrap();
    let more = lif.scan_from(&seq, state).unwrap();
    let whole = lif
        .scan_from(&input.unsqueeze(0).unwrap().repeat((7, 1, 1)).unwrap(), {
            lif.zero_state(&input).unwrap()
        })
        .unwrap();
    let tail = whole.membrane.narrow(0, 3, 4).unwrap();
    assert_eq!(
        more.membrane
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap(),
        tail.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    assert_eq!(
        more.last
            .mem
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap(),
        whole
            .last
            .mem
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    );
}
