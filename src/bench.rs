//! Throughput benchmark, protocol-for-protocol with the PyTorch/snnTorch reference script
//! (`shared/bench/snntorch_baseline.py`): the same models (`a`-`i`), batch 128, Adam 1e-3, a shuffled
//! stream of full batches gathered from the in-memory training images, rate encoding inside the
//! timed loop, `warmup` untimed batches, then `repeats` timings of `iters` batches (median).
//! The JSON it writes uses the script's keys (`a` FFNN, `b` CNN, `c` SNN-FFNN, `d` SNN-CNN,
//! `e`-`g` row-wise LSTM/GRU/RNN, `h` SRNN, `i` SLSTM) so the two files compare directly; given
//! the script's JSON it also writes the ratios.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use autoresearch_kernels::par::on_pool;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::config::{
    Activation, CellKind, CnnConfig, ConvOrder, DatasetName, EncoderConfig, FfnnConfig,
    ImageDataConfig, Kernels, LeakyConfig, ModelConfig, NeuronConfig, Normalize, OptimizerConfig,
    Readout, Recurrence, RecurrentStack, Reset, RnnConfig, SlstmConfig, SlstmNeuronConfig,
    SnnCnnConfig, SnnFfnnConfig, SrnnConfig, Surrogate,
};
use std::sync::Arc;

use crate::data::{encode::batch_seed, load_splits, Classification, ImageSet, InputShape};
use crate::error::{Error, Result};
use crate::nn::{BuildCtx, Model, Network, SeededVarMap};
use crate::train::optim::AnyOptimizer;

#[path = "bench_experiment.rs"]
pub mod experiment;
#[path = "bench_resnet.rs"]
mod resnet;

/// One of the reference script's models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BenchModel {
    /// `a`: FFNN 784-256-128-10 ReLU.
    Ffnn,
    /// `b`: CNN 32c3-p2-64c3-p2-fc10.
    Cnn,
    /// `c`: SNN-FFNN 784-512-256-10, Leaky(β = 0.95, atan), T steps.
    SnnFfnn,
    /// `d`: SNN-CNN with the CNN's shapes, conv -> Leaky -> pool, T steps.
    SnnCnn,
    /// `e`: row-wise LSTM, 2 layers of 256, Linear on the last step.
    Lstm,
    /// `f`: row-wise GRU, as `e`.
    Gru,
    /// `g`: row-wise Elman RNN (tanh), as `e`.
    Rnn,
    /// `h`: SRNN 28-256(RLeaky, β = 0.9)-10(Leaky), rate-coded rows at gain 2.
    Srnn,
    /// `i`: SLSTM 28-256 (θ = 0.1, no reset) -> Linear -> Leaky(β = 0.9), rate-coded rows.
    Slstm,
    /// `r`: ResNet-18 with the CIFAR stem on random 3x32x32 batches, SGD (`benches/resnet_twin.py`).
    Resnet18,
}

impl BenchModel {
    /// The reference script's key.
    pub fn key(self) -> &'static str {
        match self {
            BenchModel::Ffnn => "a",
            BenchModel::Cnn => "b",
            BenchModel::SnnFfnn => "c",
            BenchModel::SnnCnn => "d",
            BenchModel::Lstm => "e",
            BenchModel::Gru => "f",
            BenchModel::Rnn => "g",
            BenchModel::Srnn => "h",
            BenchModel::Slstm => "i",
            BenchModel::Resnet18 => "r",
        }
    }

    /// Parses a key (`a`..`i`, `r`) or a name (`ffnn`, `cnn`, `snn_ffnn`, ...).
    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text.trim() {
            "a" | "ffnn" => BenchModel::Ffnn,
            "b" | "cnn" => BenchModel::Cnn,
            "c" | "snn_ffnn" => BenchModel::SnnFfnn,
            "d" | "snn_cnn" => BenchModel::SnnCnn,
            "e" | "lstm" => BenchModel::Lstm,
            "f" | "gru" => BenchModel::Gru,
            "g" | "rnn" => BenchModel::Rnn,
            "h" | "srnn" => BenchModel::Srnn,
            "i" | "slstm" => BenchModel::Slstm,
            "r" | "resnet18" => BenchModel::Resnet18,
            other => {
                return Err(Error::invalid(
                    "bench model",
                    format!(
                        "`{other}` is not one of a|ffnn, b|cnn, c|snn_ffnn, d|snn_cnn, e|lstm, \
                         f|gru, g|rnn, h|srnn, i|slstm, r|resnet18"
                    ),
                ))
            }
        })
    }

    /// The model's config, as the reference script builds it (ResNet-18 at full width; the
    /// row models `e`..`i` always run the 28 rows, whatever `steps`).
    pub fn config(self, steps: usize) -> ModelConfig {
        // snnTorch's defaults for rows h and i: β 0.9, threshold 1, subtract, atan surrogate
        let row_neuron = LeakyConfig {
            beta: 0.9,
            ..LeakyConfig::default()
        };
        let seq = |cell| {
            ModelConfig::Rnn(RnnConfig {
                stack: RecurrentStack {
                    cell,
                    hidden: 256,
                    layers: 2,
                    dropout: 0.0,
                },
                encoder: EncoderConfig::Rows,
            })
        };
        let neuron = NeuronConfig::Leaky(LeakyConfig {
            beta: 0.95,
            surrogate: Surrogate::default(),
            ..LeakyConfig::default()
        });
        let encoder = EncoderConfig::Rate { steps, gain: 1.0 };
        match self {
            BenchModel::Ffnn => ModelConfig::Ffnn(FfnnConfig {
                hidden: vec![256, 128],
                activation: Activation::Relu,
                dropout: 0.0,
            }),
            BenchModel::Cnn => ModelConfig::Cnn(CnnConfig {
                channels: vec![32, 64],
                kernel_size: 3,
                padding: 0,
                pool: 2,
                fc_hidden: vec![],
                activation: Activation::Relu,
                dropout: 0.0,
            }),
            BenchModel::SnnFfnn => ModelConfig::SnnFfnn(SnnFfnnConfig {
                hidden: vec![512, 256],
                neuron,
                encoder,
                readout: Readout::SpikeCountCe,
            }),
            BenchModel::SnnCnn => ModelConfig::SnnCnn(SnnCnnConfig {
                channels: vec![32, 64],
                kernel_size: 3,
                padding: 0,
                pool: 2,
                order: ConvOrder::ConvLifPool,
                fc_hidden: vec![],
                neuron,
                encoder,
                readout: Readout::SpikeCountCe,
            }),
            BenchModel::Lstm => seq(CellKind::Lstm),
            BenchModel::Gru => seq(CellKind::Gru),
            BenchModel::Rnn => seq(CellKind::Rnn),
            BenchModel::Srnn => ModelConfig::Srnn(SrnnConfig {
                hidden: vec![256],
                neuron: row_neuron,
                recurrence: Recurrence::Linear,
                encoder: EncoderConfig::RateRows { gain: 2.0 },
                readout: Readout::SpikeCountCe,
            }),
            BenchModel::Slstm => ModelConfig::Slstm(SlstmConfig {
                hidden: vec![256],
                cell: SlstmNeuronConfig {
                    threshold: 0.1,
                    reset: Reset::None,
                    surrogate: Surrogate::default(),
                },
                neuron: row_neuron,
                encoder: EncoderConfig::RateRows { gain: 1.0 },
                readout: Readout::SpikeCountCe,
            }),
            BenchModel::Resnet18 => ModelConfig::Resnet(crate::config::ResnetConfig {
                blocks: vec![2, 2, 2, 2],
                width: 64,
                batch_norm: Default::default(),
                zero_init_residual: false,
            }),
        }
    }
}

/// What to measure and how.
#[derive(Debug, Clone, Serialize)]
pub struct BenchOptions {
    /// Models timed for training (forward, backward, Adam step).
    #[serde(serialize_with = "keys")]
    pub train: Vec<BenchModel>,
    /// Models timed for inference (forward only, no graph).
    #[serde(serialize_with = "keys")]
    pub infer: Vec<BenchModel>,
    /// Batch size.
    pub batch: usize,
    /// Untimed batches before the timings.
    pub warmup: usize,
    /// Batches per timing.
    pub iters: usize,
    /// Timings per model (the median is reported).
    pub repeats: usize,
    /// Time steps of the spiking models.
    pub steps: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Seed of initialisation, shuffling and encoding.
    pub seed: u64,
    /// Fused kernels or plain tensor ops.
    pub kernels: Kernels,
    /// Channels of ResNet-18's first stage in row `r` (64: the real network).
    pub resnet_width: usize,
    /// Experiments whose own training step is timed too ([`experiment::train`]), by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub experiments: Vec<String>,
}

fn keys<S: serde::Serializer>(models: &[BenchModel], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(models.iter().map(|m| m.key()))
}

impl Default for BenchOptions {
    fn default() -> Self {
        use BenchModel::*;
        BenchOptions {
            train: vec![Ffnn, Cnn, SnnFfnn, SnnCnn],
            infer: vec![Ffnn, SnnFfnn],
            batch: 128,
            warmup: 20,
            iters: 100,
            repeats: 3,
            steps: 25,
            lr: 1e-3,
            seed: 0,
            kernels: Kernels::Fused,
            resnet_width: 64,
            experiments: Vec::new(),
        }
    }
}

/// Samples per second of one model in one mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Median over the repeats.
    pub median: f64,
    /// Slowest repeat.
    pub min: f64,
    /// Fastest repeat.
    pub max: f64,
    /// Every repeat.
    pub runs: Vec<f64>,
    /// Milliseconds per batch at the median.
    pub ms_per_batch: f64,
}

/// The machine and build a result was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct BenchEnv {
    /// CPU model name.
    pub cpu: String,
    /// Worker threads of the tensor and kernel thread pool.
    pub threads: usize,
    /// `release` or `debug` build of this binary.
    pub profile: &'static str,
    /// autoresearch version.
    pub version: &'static str,
    /// Load average when the benchmark started.
    pub loadavg_at_start: Option<String>,
    /// The git commit checked out where the benchmark ran (None outside a checkout).
    pub git_commit: Option<String>,
}

/// Everything one benchmark run measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// Machine and build.
    pub env: BenchEnv,
    /// The options used.
    pub args: BenchOptions,
    /// Training throughput by model key.
    pub train: BTreeMap<String, Rates>,
    /// Inference throughput by model key.
    pub infer: BTreeMap<String, Rates>,
    /// Cost of the rate encoding alone, per batch (included in every spiking number).
    pub rate_encode_ms_per_batch: f64,
    /// Our median divided by the baseline's, by mode and model key (when a baseline was given).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ratios: BTreeMap<String, BTreeMap<String, f64>>,
}

/// The parts of the reference script's JSON that are compared.
#[derive(Debug, Clone, Deserialize)]
pub struct Baseline {
    /// Training throughput by model key.
    #[serde(default)]
    pub train: BTreeMap<String, Rates>,
    /// Inference throughput by model key.
    #[serde(default)]
    pub infer: BTreeMap<String, Rates>,
}

impl Baseline {
    /// Reads the JSON written by `snntorch_baseline.py --json`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io("reading baseline", path))?;
        serde_json::from_str(&text).map_err(|e| Error::Data {
            path: path.to_path_buf(),
            message: format!("not a baseline JSON of snntorch_baseline.py ({e})"),
        })
    }
}

impl BenchResult {
    /// Fills [`BenchResult::ratios`] with ours / baseline for every model both measured.
    pub fn compare(&mut self, baseline: &Baseline) {
        for (mode, ours, theirs) in [
            ("train", &self.train, &baseline.train),
            ("infer", &self.infer, &baseline.infer),
        ] {
            let ratios: BTreeMap<String, f64> = ours
                .iter()
                .filter_map(|(k, r)| theirs.get(k).map(|b| (k.clone(), r.median / b.median)))
                .collect();
            if !ratios.is_empty() {
                self.ratios.insert(mode.to_string(), ratios);
            }
        }
    }
}

/// A shuffled stream of full batches of indices into `len` samples, reshuffled every pass
/// (like the script's, and as `train` orders an epoch).
struct IndexStream {
    len: usize,
    batch: usize,
    seed: u64,
    pass: usize,
    order: Vec<usize>,
    next: usize,
}

impl IndexStream {
    fn new(len: usize, batch: usize, seed: u64) -> Self {
        IndexStream {
            len,
            batch,
            seed,
            pass: 0,
            order: Vec::new(),
            next: 0,
        }
    }

    /// The next `batch` indices (`batch` at most `len`).
    fn next_indices(&mut self) -> &[usize] {
        if self.next + self.batch > self.order.len() {
            self.order = crate::data::epoch_permutation(self.len, self.seed, self.pass);
            self.pass += 1;
            self.next = 0;
        }
        self.next += self.batch;
        &self.order[self.next - self.batch..self.next]
    }
}

/// A shuffled stream of full batches over `set`.
struct BatchStream<'a> {
    set: &'a ImageSet,
    indices: IndexStream,
}

impl<'a> BatchStream<'a> {
    fn new(set: &'a ImageSet, batch: usize, seed: u64) -> Self {
        BatchStream {
            set,
            indices: IndexStream::new(set.len(), batch, seed),
        }
    }

    fn next_batch(&mut self, device: &Device) -> Result<(Tensor, Tensor)> {
        let batch = self.set.batch(self.indices.next_indices(), device)?;
        Ok((batch.input, batch.target))
    }
}

/// Times `step` as the script does: `warmup` calls, then `repeats` x `iters` timed calls.
fn time_rates(opts: &BenchOptions, mut step: impl FnMut(usize) -> Result<()>) -> Result<Rates> {
    let mut call = 0;
    for _ in 0..opts.warmup {
        step(call)?;
        call += 1;
    }
    let mut runs = Vec::with_capacity(opts.repeats);
    for _ in 0..opts.repeats.max(1) {
        let started = Instant::now();
        for _ in 0..opts.iters.max(1) {
            step(call)?;
            call += 1;
        }
        let seconds = started.elapsed().as_secs_f64().max(1e-12);
        runs.push((opts.iters.max(1) * opts.batch) as f64 / seconds);
    }
    let mut sorted = runs.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    Ok(Rates {
        median,
        min: sorted[0],
        max: sorted[sorted.len() - 1],
        ms_per_batch: 1000.0 * opts.batch as f64 / median,
        runs,
    })
}

/// The benchmarked network, built by the trainer's registry (`nn::build`).
fn build(
    which: BenchModel,
    opts: &BenchOptions,
    set: &ImageSet,
    device: &Device,
) -> Result<(Box<dyn Network>, SeededVarMap)> {
    let vars = SeededVarMap::new(opts.seed);
    let ctx = BuildCtx {
        input: InputShape::Image(set.shape),
        outputs: set.classes,
        task: Arc::new(Classification {
            classes: set.classes,
        }),
        ops: opts.kernels.into(),
        device: device.clone(),
        vars: &vars,
    };
    let model = crate::nn::build(&which.config(opts.steps), &ctx, None)?;
    Ok((model, vars))
}

fn bench_train(which: BenchModel, opts: &BenchOptions, set: &ImageSet) -> Result<Rates> {
    if which == BenchModel::Resnet18 {
        return resnet::train(opts);
    }
    let device = Device::Cpu;
    let (model, vars) = build(which, opts, set, &device)?;
    let params = vars.named_vars()?.into_iter().map(|(_, v)| v).collect();
    let mut optimizer = AnyOptimizer::from_config(
        &OptimizerConfig::Adam {
            lr: opts.lr,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
        },
        params,
    )?;
    optimizer.set_fused(opts.kernels == Kernels::Fused);
    let mut stream = BatchStream::new(set, opts.batch, opts.seed);
    // on a pool worker, as `train` runs its loop
    on_pool(|| {
        time_rates(opts, |call| {
            let (x, y) = stream.next_batch(&device)?;
            let seed = batch_seed(opts.seed, 0, call);
            let input = model.encode(&x, seed)?;
            let step = model.train_step(
                &input,
                &y,
                &Classification {
                    classes: set.classes,
                },
                seed,
            )?;
            optimizer.step(&step.grads)?;
            Ok(())
        })
    })
}

/// A builder over detached copies of `vars`, so that a network rebuilt from it records no
/// autograd graph (inference timings).
fn frozen(vars: &SeededVarMap, device: &Device) -> Result<VarBuilder<'static>> {
    let tensors = vars
        .named_vars()?
        .into_iter()
        .map(|(name, var)| (name, var.as_tensor().detach()))
        .collect();
    Ok(VarBuilder::from_tensors(tensors, DType::F32, device))
}

fn bench_infer(which: BenchModel, opts: &BenchOptions, set: &ImageSet) -> Result<Rates> {
    if which == BenchModel::Resnet18 {
        return resnet::infer(opts);
    }
    let device = Device::Cpu;
    let (_, vars) = build(which, opts, set, &device)?;
    // a `BuildCtx` holds trainable variables, so this one image model is built directly
    let model = Model::from_config(
        &which.config(opts.steps),
        set.shape,
        set.classes,
        opts.kernels.into(),
        frozen(&vars, &device)?,
    )?;
    let mut stream = BatchStream::new(set, opts.batch, opts.seed + 1);
    // on a pool worker, as `evaluate` runs its loop
    on_pool(|| {
        time_rates(opts, |call| {
            let (x, _) = stream.next_batch(&device)?;
            let input = model.encode(&x, batch_seed(opts.seed, 1, call))?;
            Module::forward(&model, &input)?;
            Ok(())
        })
    })
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// Runs the benchmark on the MNIST training images found like a run's (`data_root` first).
pub fn run(opts: &BenchOptions, data_root: Option<&Path>) -> Result<BenchResult> {
    let env = BenchEnv {
        cpu: cpu_name(),
        threads: candle_core::utils::get_num_threads(),
        profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        version: env!("CARGO_PKG_VERSION"),
        loadavg_at_start: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .map(|s| s.trim().to_string()),
        git_commit: crate::train::git_commit(),
    };
    // MNIST is read only when an MNIST row is asked for (row r runs on random tensors)
    let mnist_rows = opts
        .train
        .iter()
        .chain(&opts.infer)
        .any(|&m| m != BenchModel::Resnet18);
    let data = ImageDataConfig {
        root: data_root.map(Path::to_path_buf),
        val_fraction: 1.0 / 60_000.0,
        split_seed: None,
        limit: if mnist_rows { None } else { Some(2) },
        test_limit: Some(1),
        normalize: Normalize::None,
        mirrors: Vec::new(),
    };
    let set = if mnist_rows {
        load_splits(DatasetName::Mnist, &data, opts.seed)?.train
    } else {
        ImageSet {
            images: vec![0.0; 2 * 784],
            labels: vec![0, 1],
            shape: [1, 28, 28],
            classes: 10,
        }
    };
    let encode_cost = if !mnist_rows {
        0.0
    } else {
        let stream_opts = BenchOptions {
            warmup: 5,
            iters: 50,
            repeats: 1,
            ..opts.clone()
        };
        let mut stream = BatchStream::new(&set, opts.batch, opts.seed);
        let (x, _) = stream.next_batch(&Device::Cpu)?;
        let encoder = EncoderConfig::Rate {
            steps: opts.steps,
            gain: 1.0,
        };
        let rates = time_rates(&stream_opts, |call| {
            encoder.encode(&x, call as u64)?;
            Ok(())
        })?;
        rates.ms_per_batch
    };
    let mut result = BenchResult {
        env,
        args: opts.clone(),
        train: BTreeMap::new(),
        infer: BTreeMap::new(),
        rate_encode_ms_per_batch: encode_cost,
        ratios: BTreeMap::new(),
    };
    for &m in &opts.train {
        result
            .train
            .insert(m.key().to_string(), bench_train(m, opts, &set)?);
    }
    for &m in &opts.infer {
        result
            .infer
            .insert(m.key().to_string(), bench_infer(m, opts, &set)?);
    }
    Ok(result)
}
