//! Times one training step and one inference step of the SNN-FFNN 784-512-256-10 (T = 25,
//! batch 128, Leaky β = 0.95 atan, CE on spike counts, Adam 1e-3) built from the fused ops
//! (`sparse_linear` + `lif`) against the same network from plain candle ops (matmul +
//! `Leaky::scan`), with the rate encoding inside the timed loop, plus a per-kernel profile.
//!
//! `cargo run --example bench_snn [-- --iters N --plain-iters N --no-plain --no-kernels
//! --default-malloc]`

use std::time::Instant;

use autoresearch::config::{Normalize, Reset, Surrogate};
use autoresearch::data::ImageSet;
use autoresearch::nn::fused;
use autoresearch::nn::neuron::Leaky;
use autoresearch::train::optim::{Adam, AdamParams, AnyOptimizer};
use autoresearch_kernels::encode;
use autoresearch_kernels::lif::{Lif, LifGrads, Output, Reset as KReset};
use autoresearch_kernels::spike::{column_sums, SpikeLinear};
use autoresearch_kernels::surrogate::Surrogate as KSurrogate;
use candle_core::{DType, Device, Result, Tensor, Var, D};
use candle_nn::Optimizer;
use rand::{Rng, SeedableRng};

const T: usize = 25;
const B: usize = 128;
const SIZES: [usize; 4] = [784, 512, 256, 10];
const BETA: f32 = 0.95;

/// (minor page faults, CPU ms used by the process so far: user + system, all threads).
fn proc_counters() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // fields after the command name (which ends with ')'): state is field 3
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let field = |i: usize| f.get(i - 3).copied().unwrap_or(0.0);
    (field(10), (field(14) + field(15)) * 10.0)
}

/// Milliseconds since `t`.
fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Median, min and max of a sample.
fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    (s[s.len() / 2], s[0], s[s.len() - 1])
}

/// Named phase timings collected over iterations.
#[derive(Default)]
struct Phases(Vec<(&'static str, Vec<f64>)>);

impl Phases {
    fn add(&mut self, name: &'static str, v: f64) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, xs)) => xs.push(v),
            None => self.0.push((name, vec![v])),
        }
    }

    fn median(&self, name: &str) -> f64 {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(f64::NAN, |(_, v)| stats(v).0)
    }

    fn print(&self, title: &str) {
        println!("{title}");
        for (name, v) in &self.0 {
            let (med, lo, hi) = stats(v);
            println!(
                "  {name:<28} {med:9.2} ms  (min {lo:8.2}, max {hi:8.2}, n={})",
                v.len()
            );
        }
    }
}

struct Net {
    w: Vec<Var>,
    b: Vec<Var>,
    leaky: Leaky,
}

impl Net {
    /// PyTorch's default Linear init, U(±1/sqrt(fan_in)), from a fixed seed.
    fn new(fused: bool, dev: &Device) -> Result<Net> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (mut w, mut b) = (vec![], vec![]);
        for l in 0..3 {
            let (k, n) = (SIZES[l], SIZES[l + 1]);
            let bound = 1.0 / (k as f32).sqrt();
            let mut draw =
                |len| -> Vec<f32> { (0..len).map(|_| rng.random_range(-bound..bound)).collect() };
            w.push(Var::from_vec(draw(n * k), (n, k), dev)?);
            b.push(Var::from_vec(draw(n), n, dev)?);
        }
        let scalar = |v: f32| Tensor::new(v, dev);
        let leaky = Leaky::new(
            scalar(BETA)?,
            scalar(1.0)?,
            Reset::Subtract,
            Surrogate::default(),
            fused,
        );
        Ok(Net { w, b, leaky })
    }

    fn vars(&self) -> Vec<Var> {
        self.w.iter().chain(&self.b).cloned().collect()
    }

    /// Spike counts `[B, 10]` from input spikes `[T, B, 784]`; `track`: build the autograd graph.
    fn forward(&self, x: &Tensor, fused: bool, track: bool, ph: &mut Phases) -> Result<Tensor> {
        let mut h = x.clone();
        for l in 0..3 {
            let (w, b) = (self.w[l].as_tensor(), self.b[l].as_tensor());
            let (w, b) = if track {
                (w.clone(), b.clone())
            } else {
                (w.detach(), b.detach())
            };
            let t0 = Instant::now();
            // fused: [T, B, K] in, [T, B, N] out, no reshape nodes in the graph
            let cur = if fused {
                fused::sparse_linear(&h, &w, Some(&b))?
            } else {
                let x2 = h.reshape((T * B, SIZES[l]))?;
                x2.matmul(&w.t()?)?
                    .broadcast_add(&b)?
                    .reshape((T, B, SIZES[l + 1]))?
            };
            ph.add(["fwd linear1", "fwd linear2", "fwd linear3"][l], ms(t0));
            let t0 = Instant::now();
            h = self.leaky.forward(&cur)?;
            ph.add(["fwd lif1", "fwd lif2", "fwd lif3"][l], ms(t0));
        }
        h.sum(0)
    }
}

/// Rate code of the batch's pixels: `[T, B, 784]` spikes.
fn encode_batch(pixels: &[f32], seed: u64, dev: &Device) -> Result<Tensor> {
    let mut out = vec![0.0f32; T * pixels.len()];
    encode::rate(pixels, T, 1.0, seed, &mut out).map_err(candle_core::Error::Msg)?;
    Tensor::from_vec(out, (T, B, SIZES[0]), dev)
}

/// MNIST training images (or, without the files, pixels that fire with probability ~0.13).
fn load_pixels(batches: usize) -> (Vec<f32>, Vec<u32>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist");
    let read = ImageSet::read(
        &dir.join("train-images-idx3-ubyte.gz"),
        &dir.join("train-labels-idx1-ubyte.gz"),
        Some(batches * B),
        Normalize::None,
    );
    match read {
        Ok(set) => (set.images, set.labels),
        Err(e) => {
            println!("(MNIST not found: {e}; synthetic pixels)");
            let mut rng = rand::rngs::StdRng::seed_from_u64(1);
            let px = (0..batches * B * 784)
                .map(|_| {
                    if rng.random_bool(0.19) {
                        rng.random_range(0.4f32..1.0)
                    } else {
                        0.0
                    }
                })
                .collect();
            (px, (0..batches * B).map(|i| (i % 10) as u32).collect())
        }
    }
}

fn density(t: &Tensor) -> Result<f32> {
    t.ne(0f32)?
        .to_dtype(DType::F32)?
        .mean_all()?
        .to_scalar::<f32>()
}

fn run(
    fused: bool,
    iters: usize,
    data: &(Vec<f32>, Vec<u32>),
    dev: &Device,
) -> Result<(Phases, Phases)> {
    let net = Net::new(fused, dev)?;
    let adam = Adam::new(
        net.vars(),
        AdamParams {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        },
    )?;
    let mut opt = AnyOptimizer::Adam(adam);
    opt.set_fused(fused);
    let batches = data.1.len() / B;
    let (mut train, mut infer) = (Phases::default(), Phases::default());
    let warmup = 2;
    for it in 0..warmup + iters {
        let i = it % batches;
        let px = &data.0[i * B * 784..(i + 1) * B * 784];
        let labels = Tensor::from_vec(data.1[i * B..(i + 1) * B].to_vec(), B, dev)?;
        let mut ph = Phases::default();
        let (faults0, cpu0) = proc_counters();
        let start = Instant::now();
        let t0 = Instant::now();
        let x = encode_batch(px, it as u64, dev)?;
        ph.add("encode", ms(t0));
        let t0 = Instant::now();
        let counts = net.forward(&x, fused, true, &mut ph)?;
        let loss = candle_nn::loss::cross_entropy(&counts, &labels)?;
        ph.add("forward + loss", ms(t0));
        if it == 0 {
            println!(
                "{}: loss of the first batch {:.6}",
                if fused { "fused" } else { "plain" },
                loss.to_scalar::<f32>()?
            );
        }
        let t0 = Instant::now();
        let grads = loss.backward()?;
        ph.add("backward", ms(t0));
        let t0 = Instant::now();
        opt.step(&grads)?;
        ph.add("adam", ms(t0));
        ph.add("TOTAL train step", ms(start));
        let (faults1, cpu1) = proc_counters();
        ph.add("(page faults, thousands)", (faults1 - faults0) / 1e3);
        ph.add("(CPU ms, all threads)", cpu1 - cpu0);
        drop(grads);
        // inference: encode + forward without a graph + prediction
        let mut iph = Phases::default();
        let (faults0, cpu0) = proc_counters();
        let start = Instant::now();
        let x = encode_batch(px, 1000 + it as u64, dev)?;
        iph.add("encode", ms(start));
        let counts = net.forward(&x, fused, false, &mut iph)?;
        let _pred = counts.argmax(D::Minus1)?.to_vec1::<u32>()?;
        iph.add("TOTAL inference", ms(start));
        let (faults1, cpu1) = proc_counters();
        iph.add("(page faults, thousands)", (faults1 - faults0) / 1e3);
        iph.add("(CPU ms, all threads)", cpu1 - cpu0);
        if it >= warmup {
            for (n, v) in ph.0 {
                train.add(n, v[0]);
            }
            for (n, v) in iph.0 {
                infer.add(n, v[0]);
            }
        }
        if it == warmup + iters - 1 && fused {
            print_densities(&net, &x)?;
        }
    }
    Ok((train, infer))
}

fn print_densities(net: &Net, x: &Tensor) -> Result<()> {
    let mut h = x.clone();
    let mut d = vec![density(&h)?];
    for l in 0..2 {
        let cur = fused::sparse_linear(
            &h,
            &net.w[l].as_tensor().detach(),
            Some(&net.b[l].as_tensor().detach()),
        )?;
        h = net.leaky.forward(&cur)?;
        d.push(density(&h)?);
    }
    println!("active fraction: input {:.3}, hidden1 {:.3}, hidden2 {:.3} (last batch, after training steps)", d[0], d[1], d[2]);
    Ok(())
}

/// Backward kernels one by one, on the network's own activations.
fn kernel_profile(data: &(Vec<f32>, Vec<u32>), iters: usize, dev: &Device) -> Result<Phases> {
    let net = Net::new(true, dev)?;
    let x = encode_batch(&data.0[..B * 784], 3, dev)?;
    let mut acts = vec![x.flatten_all()?.to_vec1::<f32>()?];
    let mut h = x;
    for l in 0..2 {
        let cur = fused::sparse_linear(
            &h,
            &net.w[l].as_tensor().detach(),
            Some(&net.b[l].as_tensor().detach()),
        )?;
        h = net.leaky.forward(&cur)?;
        acts.push(h.flatten_all()?.to_vec1::<f32>()?);
    }
    let ws: Vec<Vec<f32>> = net
        .w
        .iter()
        .map(|w| w.flatten_all()?.to_vec1::<f32>())
        .collect::<Result<_>>()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut ph = Phases::default();
    let err = candle_core::Error::Msg;
    for _ in 0..iters {
        for l in 0..3 {
            let (k, n) = (SIZES[l], SIZES[l + 1]);
            let lin = SpikeLinear {
                x: &acts[l],
                rows: T * B,
                inputs: k,
                w: &ws[l],
                outputs: n,
            };
            let g: Vec<f32> = (0..T * B * n)
                .map(|_| rng.random_range(-1e-3f32..1e-3))
                .collect();
            let mut y = vec![0.0; T * B * n];
            let t0 = Instant::now();
            let sparse = lin.forward(None, &mut y).map_err(err)?;
            ph.add(
                ["k fwd linear1", "k fwd linear2", "k fwd linear3"][l],
                ms(t0),
            );
            let lif = Lif {
                current: &y,
                steps: T,
                neurons: n,
                beta: &[BETA],
                threshold: &[1.0],
                reset: KReset::Subtract,
            };
            let mut s = vec![0.0; y.len()];
            let t0 = Instant::now();
            lif.forward(Output::Spikes, &mut s).map_err(err)?;
            ph.add(["k fwd lif1", "k fwd lif2", "k fwd lif3"][l], ms(t0));
            let mut gc = vec![0.0; y.len()];
            let t0 = Instant::now();
            let grads = LifGrads {
                current: &mut gc,
                beta: None,
                threshold: None,
            };
            lif.backward(KSurrogate::Atan { alpha: 2.0 }, Output::Spikes, &g, grads)
                .map_err(err)?;
            ph.add(["k bwd lif1", "k bwd lif2", "k bwd lif3"][l], ms(t0));
            let mut dw = vec![0.0; n * k];
            let t0 = Instant::now();
            lin.weight_grad(sparse.as_ref(), &g, &mut dw, None)
                .map_err(err)?;
            ph.add(["k bwd dW1", "k bwd dW2", "k bwd dW3"][l], ms(t0));
            let mut db = vec![0.0; n];
            let t0 = Instant::now();
            lin.weight_grad(sparse.as_ref(), &g, &mut dw, Some(&mut db))
                .map_err(err)?;
            ph.add(
                ["k bwd dW1 + db1", "k bwd dW2 + db2", "k bwd dW3 + db3"][l],
                ms(t0),
            );
            let t0 = Instant::now();
            column_sums(&g, n, &mut db).map_err(err)?;
            ph.add(
                ["k bwd db1 alone", "k bwd db2 alone", "k bwd db3 alone"][l],
                ms(t0),
            );
            if l > 0 {
                let mut dx = vec![0.0; T * B * k];
                let t0 = Instant::now();
                lin.input_grad(&g, &mut dx).map_err(err)?;
                ph.add(["", "k bwd dx2 (gemm)", "k bwd dx3 (gemm)"][l], ms(t0));
                let t0 = Instant::now();
                let (gv, wv) = (
                    autoresearch_kernels::gemm::MatRef::row_major(&g, T * B, n),
                    autoresearch_kernels::gemm::MatRef::row_major(&ws[l], n, k),
                );
                autoresearch_kernels::sgemm::sgemm(&mut dx, k, gv, wv, false, true).map_err(err)?;
                ph.add(["", "k bwd dx2 (sgemm)", "k bwd dx3 (sgemm)"][l], ms(t0));
            }
        }
        // layer 1's pieces
        {
            use autoresearch_kernels::spike::{sparse_matmul, sparse_t_matmul, SparseRows};
            let (r, k, n) = (T * B, SIZES[0], SIZES[1]);
            let t0 = Instant::now();
            let sp = SparseRows::from_dense(&acts[0], r, k, 0.3)
                .map_err(err)?
                .ok_or(err("dense".into()))?;
            ph.add("k1 compress x", ms(t0));
            let mut y = vec![0.0; r * n];
            let t0 = Instant::now();
            sparse_matmul(&sp, &ws[0], n, None, &mut y).map_err(err)?;
            ph.add("k1 pack w + gather", ms(t0));
            let mut dw = vec![0.0; k * n];
            let t0 = Instant::now();
            sparse_t_matmul(&sp, &y, n, &mut dw, None).map_err(err)?;
            ph.add("k1 scatter dW", ms(t0));
        }
        let px = &data.0[..B * 784];
        let mut out = vec![0.0f32; T * px.len()];
        let t0 = Instant::now();
        encode::rate(px, T, 1.0, 5, &mut out).map_err(err)?;
        ph.add("k encode", ms(t0));
    }
    Ok(ph)
}

/// Keeps freed memory in the process (glibc): large blocks come from the heap, not fresh
/// `mmap`s, and the heap is never trimmed. A first touch of a fresh page costs microseconds
/// in this VM, and a training step allocates and frees ~60 MB, so without this about 15,000
/// page faults land in every step.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() -> bool {
    extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_THRESHOLD: i32 = -3;
    // SAFETY: `mallopt` only changes allocator parameters; called before any other thread
    // exists, with valid parameter codes (it returns 0 on a rejected value).
    unsafe { mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, i32::MAX) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() -> bool {
    false
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--default-malloc") {
        println!(
            "malloc tuned (no trimming, no mmap below 32 MiB): {}",
            keep_freed_memory()
        );
    }
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let iters = arg("--iters", 15);
    let plain_iters = arg("--plain-iters", 3);
    let dev = Device::Cpu;
    println!(
        "SNN-FFNN 784-512-256-10, T={T}, batch {B}, {} threads; load before: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let data = load_pixels(8);
    let (ft, fi) = run(true, iters, &data, &dev)?;
    ft.print("FUSED training step (ms/batch)");
    fi.print("FUSED inference (ms/batch)");
    if !args.iter().any(|a| a == "--no-kernels") {
        kernel_profile(&data, iters, &dev)?.print("FUSED kernels alone (ms/batch)");
    }
    if !args.iter().any(|a| a == "--no-plain") {
        let (pt, pi) = run(false, plain_iters, &data, &dev)?;
        pt.print("PLAIN training step (ms/batch)");
        pi.print("PLAIN inference (ms/batch)");
        let (a, b) = (pt.median("TOTAL train step"), ft.median("TOTAL train step"));
        let (c, d) = (pi.median("TOTAL inference"), fi.median("TOTAL inference"));
        println!(
            "speed-up fused vs plain: train {:.1}x, inference {:.1}x",
            a / b,
            c / d
        );
    }
    {
        // what candle's backward does per big gradient: zeros_like + add
        let mut ph = Phases::default();
        let a = Tensor::ones((T, B, 512), DType::F32, &dev)?;
        for _ in 0..10 {
            let t0 = Instant::now();
            let z = a.zeros_like()?;
            ph.add("candle zeros_like [25,128,512]", ms(t0));
            let t0 = Instant::now();
            let _s = z.add(&a)?;
            ph.add("candle add [25,128,512]", ms(t0));
            let t0 = Instant::now();
            let _v = vec![0.0f32; T * B * 512];
            ph.add("vec![0; 25*128*512]", ms(t0));
        }
        ph.print("candle overheads");
    }
    let (b, d) = (ft.median("TOTAL train step"), fi.median("TOTAL inference"));
    println!(
        "fused: train {b:.1} ms/batch = {:.0} samples/s (snnTorch 155 ms: {:.1}x); inference {d:.1} ms/batch = {:.0} samples/s",
        B as f64 * 1e3 / b,
        155.0 / b,
        B as f64 * 1e3 / d
    );
    println!(
        "load after: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    Ok(())
}
