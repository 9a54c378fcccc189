use autoresearch::config::{Activation, CnnConfig, FfnnConfig, ModelConfig};
use autoresearch::nn::{Model, Ops, SeededVarMap};
use candle_core::{DType, Device, Module, Tensor};

/// Largest |central difference - autograd| over a sample of every parameter's entries.
fn worst_gradient_error(cfg: &ModelConfig, input: [usize; 3]) -> f64 {
    let dev = Device::Cpu;
    let vars = SeededVarMap::new(7);
    let model = Model::from_config(
        cfg,
        input,
        5,
        Ops::Plain,
        vars.var_builder(DType::F64, &dev),
    )
    .unwrap();
    let [c, h, w] = input;
    let x = Tensor::from_vec(
        (0..3 * c * h * w)
            .map(|i| ((i * 37 % 101) as f64 / 50.0) - 1.0)
            .collect::<Vec<_>>(),
        (3, c, h, w),
        &dev,
    )
    .unwrap();
    let y = Tensor::new(&[0u32, 3, 4], &dev).unwrap();
    let loss = |m: &Model| candle_nn::loss::cross_entropy(&m.forward(&x).unwrap(), &y).unwrap();
    let grads = loss(&model).backward().unwrap();
    let mut worst = 0f64;
    for (_, var) in vars.named_vars().unwrap() {
        let analytic = grads
            .get(&var)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let base = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let set = |v: Vec<f64>| {
            var.set(&Tensor::from_vec(v, var.shape(), &dev).unwrap())
                .unwrap()
        };
        for i in (0..base.len()).step_by(1 + base.len() / 9) {
            let eps = 1e-6;
            let mut p = base.clone();
            p[i] += eps;
            set(p.clone());
            let up = loss(&model).to_scalar::<f64>().unwrap();
            p[i] -= 2.0 * eps;
            set(p);
            let down = loss(&model).to_scalar::<f64>().unwrap();
            set(base.clone());
            worst = worst.max(((up - down) / (2.0 * eps) - analytic[i]).abs());
        }
    }
    worst
}

#[test]
fn ffnn_gradients_match_finite_differences() {
    let cfg = ModelConfig::Ffnn(FfnnConfig {
        hidden: vec![6, 4],
        activation: Activation::Tanh,
        dropout: 0.0,
    });
    let err = worst_gradient_error(&cfg, [1, 4, 4]);
    assert!(err < 1e-6, "max error {err}");
}

#[test]
fn cnn_gradients_match_finite_differences_with_odd_pooling() {
    // 13x13 -> conv3 -> 11x11 -> pool2 -> 5x5 (odd side, like the MNIST CNN) -> conv3 -> 3x3 -> pool2 -> 1x1
    let cfg = ModelConfig::Cnn(CnnConfig {
        channels: vec![3, 4],
        kernel_size: 3,
        padding: 0,
        pool: 2,
        fc_hidden: vec![6],
        activation: Activation::Tanh,
        dropout: 0.0,
    });
    let err = worst_gradient_error(&cfg, [1, 13, 13]);
    assert!(err < 1e-6, "max error {err}");
}
