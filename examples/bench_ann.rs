//! Microbenchmark of the ANN train step, plain candle ops vs the fused CPU kernels.
//!
//! Times, at batch 128 on random MNIST-shaped data, the FFNN (784-256-128-10 ReLU) and the CNN
//! (conv32-pool-conv64-pool-fc10): a train step (gather the batch from an in-memory tensor,
//! forward, cross-entropy, backward, Adam 1e-3) and inference (gather + forward). Prints the
//! median, 10th and 90th percentile ms/batch over `REPEATS` timed steps after a warm-up.
//!
//! `cargo run --example bench_ann [all|ffnn|cnn] [repeats] [both|fused|plain]`

use std::time::Instant;

use autoresearch::config::{
    Activation, CnnConfig, FfnnConfig, Kernels, ModelConfig, OptimizerConfig,
};
use autoresearch::nn::{Model, SeededVarMap};
use autoresearch::train::optim::AnyOptimizer;
use candle_core::{DType, Device, Module, Tensor};

const BATCH: usize = 128;
const POOL: usize = 4096;

fn percentiles(mut t: Vec<f64>) -> (f64, f64, f64) {
    t.sort_by(f64::total_cmp);
    let at = |q: f64| t[((t.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.1), at(0.9))
}

fn bench(
    name: &str,
    cfg: &ModelConfig,
    kernels: Kernels,
    images: &Tensor,
    labels: &Tensor,
    repeats: usize,
) -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let vars = SeededVarMap::new(0);
    let model = Model::from_config(
        cfg,
        [1, 28, 28],
        10,
        kernels,
        vars.var_builder(DType::F32, &dev),
    )?;
    let params = vars.named_vars()?.into_iter().map(|(_, v)| v).collect();
    let opt_cfg = OptimizerConfig::Adam {
        lr: 1e-3,
        betas: [0.9, 0.999],
        eps: 1e-8,
        weight_decay: 0.0,
    };
    let mut opt = AnyOptimizer::from_config(&opt_cfg, params)?;
    opt.set_fused(kernels == Kernels::Fused);
    let mut batch_no = 0u32;
    let mut gather = || -> candle_core::Result<(Tensor, Tensor)> {
        let idx: Vec<u32> = (0..BATCH as u32)
            .map(|i| {
                i.wrapping_mul(2_654_435_761)
                    .wrapping_add(batch_no.wrapping_mul(97))
                    % POOL as u32
            })
            .collect();
        batch_no += 1;
        let idx = Tensor::new(idx, &dev)?;
        Ok((images.index_select(&idx, 0)?, labels.index_select(&idx, 0)?))
    };
    let mut train = Vec::new();
    let mut infer = Vec::new();
    for i in 0..repeats + 5 {
        let t = Instant::now();
        let (x, y) = gather()?;
        let logits = model.forward(&x)?;
        let loss = model.loss(&logits, &y)?;
        let grads = loss.backward()?;
        opt.step(&grads)?;
        let _ = loss.to_scalar::<f32>()?;
        let train_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let (x, _) = gather()?;
        let _ = model.forward(&x)?.detach().argmax(1)?.to_vec1::<u32>()?;
        let infer_ms = t.elapsed().as_secs_f64() * 1e3;
        if i >= 5 {
            train.push(train_ms);
            infer.push(infer_ms);
        }
    }
    let (tm, t10, t90) = percentiles(train);
    let (im, i10, i90) = percentiles(infer);
    println!(
        "{name:5} {:6}  train {tm:7.2} ms/batch (p10 {t10:6.2}, p90 {t90:6.2}) {:7.0} samples/s   \
         infer {im:6.2} ms/batch (p10 {i10:6.2}, p90 {i90:6.2}) {:7.0} samples/s",
        format!("{kernels:?}").to_lowercase(),
        BATCH as f64 / tm * 1e3,
        BATCH as f64 / im * 1e3,
    );
    Ok(())
}

fn main() -> candle_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map(String::as_str).unwrap_or("all");
    let repeats = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(30);
    let paths = args.get(3).map(String::as_str).unwrap_or("both");
    let dev = Device::Cpu;
    let images = Tensor::rand(0f32, 1.0, (POOL, 1, 28, 28), &dev)?;
    let labels = Tensor::from_vec(
        (0..POOL as u32).map(|i| (i * 7) % 10).collect::<Vec<_>>(),
        POOL,
        &dev,
    )?;
    let ffnn = ModelConfig::Ffnn(FfnnConfig {
        hidden: vec![256, 128],
        activation: Activation::Relu,
    });
    let cnn = ModelConfig::Cnn(CnnConfig {
        channels: vec![32, 64],
        kernel_size: 3,
        padding: 0,
        pool: 2,
        fc_hidden: vec![],
        activation: Activation::Relu,
    });
    println!(
        "threads: {}, machine check {:.0} GFLOP/s",
        rayon_threads(),
        calibrate()
    );
    for kernels in [Kernels::Fused, Kernels::Plain] {
        if paths != "both" && paths != format!("{kernels:?}").to_lowercase() {
            continue;
        }
        if which == "all" || which == "ffnn" {
            bench("ffnn", &ffnn, kernels, &images, &labels, repeats)?;
        }
        if which == "all" || which == "cnn" {
            // the plain CNN takes ~1 s per step: fewer repeats
            let r = if kernels == Kernels::Plain {
                repeats.min(5)
            } else {
                repeats
            };
            bench("cnn", &cnn, kernels, &images, &labels, r)?;
        }
    }
    println!("machine check {:.0} GFLOP/s", calibrate());
    Ok(())
}

/// Single-thread GFLOP/s of a 256³ product (median of 20): this VM's speed drifts by up to 2x
/// over minutes, so timings are only comparable alongside this number.
fn calibrate() -> f64 {
    use autoresearch_kernels::gemm::MatRef;
    let a: Vec<f32> = (0..256 * 256).map(|i| (i % 17) as f32 * 0.1).collect();
    let mut c = vec![0.0f32; 256 * 256];
    let mut t: Vec<f64> = (0..20)
        .map(|_| {
            let s = Instant::now();
            let m = MatRef::row_major(&a, 256, 256);
            let _ = autoresearch_kernels::sgemm::sgemm(&mut c, 256, m, m, false, false);
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    2.0 * 256f64.powi(3) / t[10] / 1e9
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
