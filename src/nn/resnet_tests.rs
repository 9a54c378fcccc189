//! Batch norm against PyTorch's numbers, and ResNet-18's shape, size, init, modes and
//! gradients.

use candle_core::{DType, Device, Module, Tensor};

use super::*;
use crate::config::{BatchNormConfig, ResnetConfig};
use crate::nn::batch_norm::BatchNorm2d;
use crate::nn::{Network, SeededVarMap};

fn cfg(width: usize) -> ResnetConfig {
    crate::config::from_yaml_str(&format!("width: {width}")).unwrap()
}

fn build(width: usize, ops: Ops, dtype: DType, vars: &SeededVarMap) -> Resnet {
    Resnet::from_config(
        &cfg(width),
        [3, 32, 32],
        10,
        ops,
        vars.var_builder(dtype, &Device::Cpu),
    )
    .unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

/// PyTorch 2.15, float64: BatchNorm2d(3, eps 1e-5, momentum 0.1), weight [1, 2, 0.5], bias
/// [0, -1, 0.25], x = arange(24).reshape(2,3,2,2) ** 1.5 / 7.
#[test]
fn batch_norm_matches_torch_in_train_and_eval_mode() {
    let vars = SeededVarMap::new(0);
    let vb = vars.var_builder(DType::F64, &Device::Cpu);
    let bn = BatchNorm2d::new(3, 1.0, BatchNormConfig::default(), vb.pp("bn")).unwrap();
    vars.var("bn.weight")
        .unwrap()
        .set(&Tensor::new(&[1.0f64, 2.0, 0.5], &Device::Cpu).unwrap())
        .unwrap();
    vars.var("bn.bias")
        .unwrap()
        .set(&Tensor::new(&[0.0f64, -1.0, 0.25], &Device::Cpu).unwrap())
        .unwrap();
    let x = ((Tensor::arange(0f64, 24.0, &Device::Cpu)
        .unwrap()
        .reshape((2, 3, 2, 2))
        .unwrap()
        .powf(1.5)
        .unwrap())
        / 7.0)
        .unwrap();
    let y = bn.forward_train(&x, Ops::Fused).unwrap();
    let want_y = [
        -1.0752616387288076,
        -1.0338942683997641,
        -0.95825704641072018,
        -0.86031047717254572,
        -3.2981313398201166,
        -3.0905505950062815,
        -2.8610222502293055,
        -2.6114741544437878,
        -0.33649585275635385,
        -0.27541516438973535,
        -0.21083951725740549,
        -0.14294875001451909,
        0.64434765372128788,
        0.86371663435335511,
        1.0916937359542964,
        1.3279654066828981,
        0.35698796213487255,
        0.75466465731672938,
        1.1642166456414387,
        1.5853090744064529,
        0.59684826990980189,
        0.69171704302138914,
        0.78887235749941176,
        0.88826161398741177,
    ];
    close(&values(&y), &want_y, 1e-12, "train output");
    let (mean, var) = bn.running_stats().unwrap();
    close(
        &values(&mean),
        &[0.37132842699657892, 0.61728025973673262, 0.9230413334641695],
        1e-12,
        "running mean 1",
    );
    close(
        &values(&var),
        &[2.2629492165383263, 3.0899216247296182, 3.8881609653918834],
        1e-12,
        "running var 1 (unbiased)",
    );
    bn.forward_train(&((&x * 2.0).unwrap() + 1.0).unwrap(), Ops::Fused)
        .unwrap();
    let (mean, var) = bn.running_stats().unwrap();
    close(
        &values(&mean),
        &[1.1768524382900787, 1.8901127532365247, 2.776819867046092],
        1e-12,
        "running mean 2",
    );
    close(
        &values(&var),
        &[7.4884511610377977, 11.54061596117513, 15.451988730420229],
        1e-12,
        "running var 2",
    );
    let eval = bn.forward_eval(&x, Ops::Fused).unwrap();
    let want_eval = [
        -0.43005670254865552,
        -0.37785247558377777,
        -0.28240085097478873,
        -0.158795582129579,
        -1.4399309305460628,
        -1.1724512418737958,
        -0.8766908125648708,
        -0.5551337865057826,
        0.30795974494681794,
        0.38741409777672559,
        0.47141472692280795,
        0.55972769651529619,
        1.7400322608039565,
        2.0168685199830905,
        2.3045679376667603,
        2.602734822000401,
        3.269899809408741,
        3.7823290268434095,
        4.3100602402102668,
        4.8526619726075957,
        1.5220628472059912,
        1.6454690689254567,
        1.7718496458682702,
        1.9011361562805449,
    ];
    close(&values(&eval), &want_eval, 1e-12, "eval output");
    // the fused CPU ops (f32) give the same numbers to f32 precision
    let vars = SeededVarMap::new(0);
    let bn = BatchNorm2d::new(
        3,
        1.0,
        BatchNormConfig::default(),
        vars.var_builder(DType::F32, &Device::Cpu).pp("bn"),
    )
    .unwrap();
    vars.var("bn.weight")
        .unwrap()
        .set(&Tensor::new(&[1.0f32, 2.0, 0.5], &Device::Cpu).unwrap())
        .unwrap();
    vars.var("bn.bias")
        .unwrap()
        .set(&Tensor::new(&[0.0f32, -1.0, 0.25], &Device::Cpu).unwrap())
        .unwrap();
    let x = x.to_dtype(DType::F32).unwrap();
    close(
        &values(&bn.forward_train(&x, Ops::Fused).unwrap()),
        &want_y,
        2e-6,
        "fused train output",
    );
    bn.forward_train(&((&x * 2.0).unwrap() + 1.0).unwrap(), Ops::Fused)
        .unwrap();
    let (mean, var) = bn.running_stats().unwrap();
    close(
        &values(&mean),
        &[1.1768524382900787, 1.8901127532365247, 2.776819867046092],
        2e-6,
        "fused running mean",
    );
    close(
        &values(&var),
        &[7.4884511610377977, 11.54061596117513, 15.451988730420229],
        2e-6,
        "fused running var",
    );
    close(
        &values(&bn.forward_eval(&x, Ops::Fused).unwrap()),
        &want_eval,
        2e-6,
        "fused eval output",
    );
}

#[test]
fn resnet18_has_torchvision_size_names_and_init() {
    let vars = SeededVarMap::new(0);
    let net = build(64, Ops::Fused, DType::F32, &vars);
    let named = vars.named_vars().unwrap();
    let count: usize = named.iter().map(|(_, v)| v.elem_count()).sum();
    assert_eq!(count, 11_173_962);
    assert_eq!(named.len(), 62);
    let buffers = net.extra_state();
    assert_eq!(buffers.len(), 40);
    assert_eq!(
        buffers.iter().map(|(_, t)| t.elem_count()).sum::<usize>(),
        9_600
    );
    for name in [
        "conv1.weight",
        "bn1.weight",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer4.1.bn2.bias",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(named.iter().any(|(n, _)| n == name), "{name}");
    }
    assert!(buffers
        .iter()
        .any(|(n, _)| n == "layer3.0.downsample.1.running_var"));
    let std = |name: &str| {
        let v = values(vars.var(name).unwrap().as_tensor());
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    };
    let max_abs = |name: &str| {
        values(vars.var(name).unwrap().as_tensor())
            .iter()
            .fold(0f64, |m, x| m.max(x.abs()))
    };
    // kaiming normal, fan out: sqrt(2 / (128·9)) = 1/24 for layer2's 3x3, sqrt(2/128) for its 1x1
    assert!((std("layer2.0.conv1.weight") / (1.0 / 24.0) - 1.0).abs() < 0.02);
    assert!((std("layer2.0.downsample.0.weight") / 0.125 - 1.0).abs() < 0.03);
    // PyTorch's default: U(±1/sqrt(fan_in)) for conv1 (27) and fc (512)
    assert!(
        max_abs("conv1.weight") <= 1.0 / 27f64.sqrt()
            && max_abs("conv1.weight") > 0.9 / 27f64.sqrt()
    );
    assert!(
        max_abs("fc.weight") <= 1.0 / 512f64.sqrt() && max_abs("fc.bias") <= 1.0 / 512f64.sqrt()
    );
    assert_eq!(
        values(vars.var("layer1.1.bn2.weight").unwrap().as_tensor()),
        vec![1.0; 64]
    );
    let x = Tensor::randn(0f32, 1.0, (2, 3, 32, 32), &Device::Cpu).unwrap();
    assert_eq!(net.forward(&x).unwrap().dims(), &[2, 10]);
}

#[test]
fn small_resnets_have_their_parameter_counts() {
    for (width, want) in [(16, 701_466), (4, 44_622)] {
        let vars = SeededVarMap::new(0);
        build(width, Ops::Fused, DType::F32, &vars);
        let count: usize = vars
            .named_vars()
            .unwrap()
            .iter()
            .map(|(_, v)| v.elem_count())
            .sum();
        assert_eq!(count, want, "width {width}");
    }
}

#[test]
fn training_mode_uses_batch_statistics_and_moves_the_running_ones() {
    let vars = SeededVarMap::new(3);
    let net = build(4, Ops::Fused, DType::F32, &vars);
    let x = Tensor::randn(1f32, 3.0, (8, 3, 32, 32), &Device::Cpu).unwrap();
    let eval_before = values(&net.forward(&x).unwrap());
    let before: Vec<(String, Tensor)> = net
        .extra_state()
        .into_iter()
        .map(|(n, t)| (n, t.copy().unwrap()))
        .collect();
    let train = values(&net.forward_t(&x, true).unwrap());
    assert_ne!(train, eval_before, "train mode normalises by the batch");
    let after = net.extra_state();
    let (mean0, mean1) = (values(&before[0].1), values(&after[0].1));
    assert_eq!(before[0].0, "bn1.running_mean");
    // the stem's running mean moves 10% of the way from 0 to the batch mean
    let stem = net.stem.conv.forward(&x).unwrap();
    let batch_mean = values(&stem.mean((0, 2, 3)).unwrap());
    close(
        &mean1,
        &batch_mean.iter().map(|m| 0.1 * m).collect::<Vec<_>>(),
        1e-4,
        "running mean",
    );
    assert_eq!(mean0, vec![0.0; 4]);
    assert_ne!(
        values(&net.forward(&x).unwrap()),
        eval_before,
        "eval mode reads the running statistics"
    );
    // eval mode is deterministic and batch-independent: one image alone scores as in the batch
    let all = values(&net.forward(&x).unwrap());
    let one = values(&net.forward(&x.narrow(0, 2, 1).unwrap()).unwrap());
    close(&one, &all[20..30], 1e-4, "image 2 alone");
    // the running statistics round-trip through the checkpoint's extra state
    let saved = net
        .extra_state()
        .into_iter()
        .map(|(n, t)| (n, t.copy().unwrap()))
        .collect::<Vec<_>>();
    let mut fresh = build(4, Ops::Fused, DType::F32, &vars);
    fresh.load_extra_state(&saved).unwrap();
    assert_eq!(
        values(&fresh.forward(&x).unwrap()),
        values(&net.forward(&x).unwrap())
    );
    let err = fresh.load_extra_state(&saved[1..]).unwrap_err().to_string();
    assert!(err.contains("bn1.running_mean"), "{err}");
}

#[test]
fn fused_and_plain_ops_agree_and_gradients_match_finite_differences_in_f64() {
    // f32: the fused stride-1 convs against candle's, forward and gradients
    let x = Tensor::randn(0f32, 1.0, (4, 3, 8, 8), &Device::Cpu).unwrap();
    let labels = Tensor::new(&[1u32, 7, 3, 0], &Device::Cpu).unwrap();
    let mut grads = Vec::new();
    for ops in [Ops::Fused, Ops::Plain] {
        let vars = SeededVarMap::new(5);
        let net = build(4, ops, DType::F32, &vars);
        let loss =
            candle_nn::loss::cross_entropy(&net.forward_t(&x, true).unwrap(), &labels).unwrap();
        let g = loss.backward().unwrap();
        grads.push(
            vars.named_vars()
                .unwrap()
                .into_iter()
                .map(|(n, v)| (n, values(g.get(&v).unwrap())))
                .collect::<Vec<_>>(),
        );
    }
    for ((name, fused), (_, plain)) in grads[0].iter().zip(&grads[1]) {
        let scale = plain.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        for (a, b) in fused.iter().zip(plain) {
            assert!((a - b).abs() <= 1e-3 * scale, "{name}: {a} vs {b}");
        }
    }
    // f64: central differences of the training-mode loss on a sample of every parameter
    let vars = SeededVarMap::new(7);
    let net = build(4, Ops::Fused, DType::F64, &vars);
    let x = x.to_dtype(DType::F64).unwrap();
    let loss = || candle_nn::loss::cross_entropy(&net.forward_t(&x, true)?, &labels);
    let g = loss().unwrap().backward().unwrap();
    let mut worst = 0f64;
    for (name, var) in vars.named_vars().unwrap() {
        let analytic = values(g.get(&var).unwrap());
        let base = values(var.as_tensor());
        let stride = (base.len() / 6).max(1);
        for i in (0..base.len()).step_by(stride) {
            let at = |d: f64| {
                let mut p = base.clone();
                p[i] += d;
                var.set(&Tensor::from_vec(p, var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                loss().unwrap().to_scalar::<f64>().unwrap()
            };
            let fd = (at(1e-6) - at(-1e-6)) / 2e-6;
            var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            let err = (fd - analytic[i]).abs() / analytic[i].abs().max(1e-2);
            assert!(
                err < 1e-5,
                "{name}[{i}]: finite difference {fd} vs autograd {}",
                analytic[i]
            );
            worst = worst.max(err);
        }
    }
    assert!(worst < 1e-5);
}
