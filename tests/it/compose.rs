use autoresearch::config::{ModelConfig, OptimizerConfig};
use autoresearch::{Error, Experiment};

use crate::{store, tempdir};

fn compose(overrides: &[&str]) -> autoresearch::Result<Experiment> {
    Experiment::compose_in(&store(), "mnist_ffnn_adam", overrides)
}

#[test]
fn experiment_defaults_are_the_reference_settings() -> autoresearch::Result<()> {
    let cfg = compose(&[])?.config().clone();
    assert_eq!(cfg.name, "mnist_ffnn_adam");
    assert_eq!(cfg.variant, "default");
    assert_eq!((cfg.epochs, cfg.batch_size, cfg.seed), (50, 128, 0));
    assert_eq!(cfg.data.images().map(|(_, d)| d.val_fraction), Some(0.1));
    assert!(matches!(&cfg.model, ModelConfig::Ffnn(f) if f.hidden == [256, 128]));
    assert!(matches!(cfg.optimizer, OptimizerConfig::Adam { lr, .. } if lr == 1e-3));
    let cnn = Experiment::compose_in(&store(), "mnist_cnn_adam", [""; 0])?
        .config()
        .clone();
    assert!(
        matches!(&cnn.model, ModelConfig::Cnn(c) if c.channels == [32, 64] && c.kernel_size == 3)
    );
    Ok(())
}

#[test]
fn dotted_and_group_overrides_apply_and_name_the_variant() -> autoresearch::Result<()> {
    let cfg = compose(&[
        "seed=3",
        "epochs=2",
        "optimizer.lr=3e-4",
        "model.hidden=[512,256]",
    ])?
    .config()
    .clone();
    assert_eq!((cfg.seed, cfg.epochs), (3, 2));
    assert_eq!(cfg.optimizer.lr(), 3e-4);
    assert!(matches!(&cfg.model, ModelConfig::Ffnn(f) if f.hidden == [512, 256]));
    assert_eq!(
        cfg.variant,
        "epochs=2,model.hidden=[512,256],optimizer.lr=0.0003"
    );
    // order of overrides does not change the variant; seed never enters it
    let again = compose(&[
        "optimizer.lr=0.0003",
        "model.hidden=[512, 256]",
        "epochs=2",
        "seed=4",
    ])?;
    assert_eq!(again.config().variant, cfg.variant);
    let cnn = compose(&["model=cnn", "optimizer=sgd", "optimizer.lr=0.1"])?
        .config()
        .clone();
    assert!(matches!(cnn.model, ModelConfig::Cnn(_)));
    assert!(matches!(cnn.optimizer, OptimizerConfig::Sgd { lr, nesterov: true, .. } if lr == 0.1));
    Ok(())
}

/// A variant named by many overrides stays a valid directory name: its first part and a hash
/// of the whole, distinct for distinct values.
#[test]
fn a_long_variant_name_is_shortened_with_a_hash_of_the_whole() -> autoresearch::Result<()> {
    let long = |lr: &str| -> autoresearch::Result<String> {
        let overrides = [
            "model.hidden=[512, 256, 128, 64]",
            "data.limit=1000",
            "data.val_fraction=0.2",
            "epochs=3",
            "batch_size=64",
            "eval_batch_size=500",
            "clip_grad_norm=1.0",
            "scheduler=cosine",
            lr,
        ];
        Ok(compose(&overrides)?.config().variant.clone())
    };
    let (a, b) = (long("optimizer.lr=0.001")?, long("optimizer.lr=0.002")?);
    assert!(a.len() <= autoresearch::config::MAX_VARIANT_BYTES, "{a}");
    assert!(
        a.starts_with("batch_size=64,clip_grad_norm=1.0") && a.contains('~'),
        "{a}"
    );
    assert_ne!(a, b);
    Ok(())
}

fn message(result: autoresearch::Result<Experiment>) -> String {
    match result {
        Ok(e) => panic!("expected an error, composed {:?}", e.config().variant),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unknown_key_names_the_path_and_the_valid_keys() {
    let m = message(compose(&["optimizer.lrr=1"]));
    assert!(
        m.contains("optimizer") && m.contains("lrr") && m.contains("`lr`"),
        "{m}"
    );
    let m = message(compose(&["epochz=1"]));
    assert!(m.contains("epochz") && m.contains("epochs"), "{m}");
    let m = message(compose(&["model.hidden.width=3"]));
    assert!(m.contains("model.hidden"), "{m}");
}

#[test]
fn wrong_type_names_the_key() {
    let m = message(compose(&["epochs=abc"]));
    assert!(m.contains("`epochs`") && m.contains("invalid type"), "{m}");
    let m = message(compose(&["model.hidden=[a,b]"]));
    assert!(m.contains("model"), "{m}");
}

#[test]
fn unknown_group_option_and_experiment_list_the_choices() {
    let e = compose(&["model=transformer"]);
    assert!(
        matches!(&e, Err(Error::UnknownGroupOption { group, valid, .. }) if group == "model" && valid == "binary_rnn, bpu_celegans, cnn, ffnn, grid, gru, hybrid_gru, hybrid_lstm, hybrid_rnn, lstm, mean_predictor, pc_cnn, pc_cnn_v2, pc_enc_dec, pc_ffnn, rate_rnn, resnet18_cifar, rnn, sequence_gru, slstm, snn_cnn, snn_ffnn, srnn")
    );
    let e = Experiment::compose_in(&store(), "nope", [""; 0]);
    assert!(
        matches!(&e, Err(Error::UnknownGroupOption { group, valid, .. }) if group == "experiment" && valid.contains("mnist_ffnn_adam"))
    );
    let m = message(compose(&["optimizer.kind=adagrad"]));
    assert!(m.contains("adagrad") && m.contains("sgd"), "{m}");
}

#[test]
fn malformed_override_and_yaml_are_reported_with_their_source() -> autoresearch::Result<()> {
    assert!(matches!(
        compose(&["no_equals_sign"]),
        Err(Error::Override { .. })
    ));
    assert!(
        matches!(compose(&["seed=0,1"]), Err(Error::Override { message, .. }) if message.contains("--multirun"))
    );
    let dir = tempdir();
    let configs = dir.path().join("configs");
    for group in ["experiment", "model"] {
        std::fs::create_dir_all(configs.join(group)).map_err(Error::io("mkdir", &configs))?;
    }
    std::fs::write(
        configs.join("experiment/broken.yaml"),
        "defaults: [unclosed\n",
    )
    .map_err(Error::io("write", &configs))?;
    let store = autoresearch::config::ConfigStore::new(&configs)?;
    match Experiment::compose_in(&store, "broken", [""; 0]) {
        Err(Error::ConfigParse { path, .. }) => assert!(path.ends_with("experiment/broken.yaml")),
        other => panic!("expected ConfigParse, got {other:?}"),
    }
    Ok(())
}

#[test]
fn multirun_expands_cartesian_product_and_sweep_block() -> autoresearch::Result<()> {
    let runs = Experiment::multirun_in(
        &store(),
        "mnist_ffnn_adam",
        ["seed=0,1,2", "optimizer.lr=1e-3,3e-4"],
    )?;
    assert_eq!(runs.len(), 6);
    let mut points: Vec<(u64, String)> = runs
        .iter()
        .map(|e| (e.config().seed, e.config().variant.clone()))
        .collect();
    points.sort();
    points.dedup();
    assert_eq!(points.len(), 6);
    assert!(points
        .iter()
        .any(|(s, v)| *s == 2 && v == "optimizer.lr=0.0003"));
    // no seeds given: the experiment's `sweep: {seed: range(0,5)}` is used
    let runs = Experiment::multirun_in(&store(), "mnist_ffnn_adam", ["epochs=2"])?;
    assert_eq!(
        runs.iter().map(|e| e.config().seed).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert!(runs.iter().all(|e| e.config().variant == "epochs=2"));
    Ok(())
}

#[test]
fn saved_config_reads_back_identically() -> autoresearch::Result<()> {
    let dir = tempdir();
    let exp = compose(&[
        "optimizer=adamw",
        "scheduler=cosine",
        "clip_grad_norm=1.0",
        "early_stopping={patience: 3}",
    ])?;
    let run = autoresearch::RunDir::at(dir.path());
    run.write_config(exp.config())?;
    assert_eq!(&run.read_config()?, exp.config());
    Ok(())
}

/// Out-of-range model values and shapes that do not fit the data are refused when the config
/// is composed, each naming its key, not when the network is built at train time.
#[test]
fn model_values_and_shapes_are_checked_at_compose_time() {
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "mnist_snn_ffnn_rate",
            &["model.neuron.beta=1.5"],
            "model.neuron.beta",
        ),
        (
            "mnist_snn_ffnn_rate",
            &["model.neuron.threshold=0"],
            "model.neuron.threshold",
        ),
        (
            "mnist_snn_ffnn_rate",
            &["model.neuron.surrogate={kind: fast_sigmoid, slope: -1}"],
            "model.neuron.surrogate.slope",
        ),
        (
            "mnist_snn_ffnn_rate",
            &["model.hidden=[64,0]"],
            "model.hidden[1]",
        ),
        ("mnist_cnn_adam", &["model.pool=0"], "model.pool"),
        (
            "mnist_cnn_adam",
            &["model.channels=[8,8,8,8,8]"],
            "model.channels",
        ),
        (
            "mnist_cnn_adam",
            &["model.kernel_size=40"],
            "model.channels",
        ),
        (
            "mnist_snn_ffnn_rate",
            &["model=hybrid_gru", "model.window=7"],
            "model.window",
        ),
        (
            "mnist_snn_cnn_rate",
            &["model.encoder={kind: rows}"],
            "model.encoder",
        ),
        ("copy_rate_rnn", &["model.gain=-1"], "model.gain"),
        ("copy_rate_rnn", &["model.hidden=0"], "model.hidden"),
    ];
    for (experiment, overrides, key) in cases {
        match Experiment::compose_in(&store(), experiment, *overrides) {
            Err(Error::InvalidConfig { key: got, message }) => {
                assert_eq!(got, *key, "{experiment} {overrides:?}: {message}")
            }
            other => panic!("{experiment} {overrides:?}: {other:?}"),
        }
    }
    for experiment in ["mnist_cnn_adam", "mnist_hybrid_gru_rate", "copy_rate_rnn"] {
        assert!(Experiment::compose_in(&store(), experiment, [""; 0]).is_ok());
    }
}
