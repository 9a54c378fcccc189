//! Compose-time checks of the `model:` section: every value in range (neuron decays and
//! thresholds, surrogate slopes, widths, kernel and pool sizes, RNN gain), then a dry build of
//! the network for the data's input shape and one forward pass of a zero sample, so a shape
//! that does not fit (a conv stack that shrinks the image to nothing, a window that does not
//! divide the encoder's steps) is an error naming the key before anything trains.

use candle_core::{DType, Device, Tensor};

use super::spiking::{LeakyConfig, NeuronConfig, SlstmNeuronConfig, Surrogate, SynapticConfig};
use super::validate::{at_least_one, non_negative, positive};
use super::{ExperimentConfig, ModelConfig, RecurrentStack};
use crate::data::{InputShape, Task};
use crate::error::{Error, Result};
use crate::nn::{BuildCtx, Network, SeededVarMap};

/// Checks the values of `model` (see the module doc), each error naming its key path.
pub fn values(model: &ModelConfig) -> Result<()> {
    match model {
        ModelConfig::Ffnn(c) => {
            widths("model.hidden", &c.hidden)?;
            dropout("model.dropout", c.dropout)
        }
        ModelConfig::Cnn(c) => {
            dropout("model.dropout", c.dropout)?;
            widths("model.channels", &c.channels)?;
            widths("model.fc_hidden", &c.fc_hidden)?;
            conv_sizes(c.kernel_size, c.pool)
        }
        ModelConfig::SnnFfnn(c) => {
            widths("model.hidden", &c.hidden)?;
            neuron("model.neuron", &c.neuron)
        }
        ModelConfig::SnnCnn(c) => {
            widths("model.channels", &c.channels)?;
            widths("model.fc_hidden", &c.fc_hidden)?;
            conv_sizes(c.kernel_size, c.pool)?;
            neuron("model.neuron", &c.neuron)
        }
        ModelConfig::Srnn(c) => {
            widths("model.hidden", &c.hidden)?;
            leaky("model.neuron", &c.neuron)
        }
        ModelConfig::Slstm(c) => {
            widths("model.hidden", &c.hidden)?;
            slstm("model.cell", &c.cell)?;
            leaky("model.neuron", &c.neuron)
        }
        ModelConfig::Hybrid(c) => {
            at_least_one("model.spiking_hidden", c.spiking_hidden)?;
            at_least_one("model.window", c.window)?;
            stack("model.rnn", &c.rnn)?;
            leaky("model.neuron", &c.neuron)
        }
        ModelConfig::Rnn(c) => stack("model", &c.stack),
        ModelConfig::SequenceRnn(c) => stack("model", &c.stack),
        ModelConfig::RateRnn(c) => {
            at_least_one("model.hidden", c.hidden)?;
            non_negative("model.gain", c.gain)?;
            non_negative("model.bias_max", c.bias_max)
        }
        ModelConfig::Bpu(c) => {
            positive("model.spectral_radius", c.spectral_radius)?;
            positive(
                "model.connectome.gap_junctions.factor",
                c.connectome.gap_junctions.factor,
            )?;
            if !(0.0..=1.0).contains(&c.connectome.signs.coverage) {
                return Err(Error::invalid(
                    "model.connectome.signs.coverage",
                    format!("{}: use a share in [0, 1]", c.connectome.signs.coverage),
                ));
            }
            match c.microsteps {
                super::Microsteps::Fixed(0) => at_least_one("model.microsteps", 0),
                _ => Ok(()),
            }
        }
        ModelConfig::Grid(c) => grid(c),
        ModelConfig::Pc(c) => pc(c),
        ModelConfig::Resnet(c) => resnet(c),
        ModelConfig::MeanPredictor(_) | ModelConfig::Custom(_) => Ok(()),
    }
}

/// Builds the network of `cfg` for `input` (on the CPU, parameters drawn from the run seed)
/// and runs one zero sample through it; a failure is an error on `model` (or on the key the
/// network's own check names, `model.window: ...`). Custom models are built by the caller's
/// builder and are not checked here.
pub fn dry_build(
    cfg: &ExperimentConfig,
    task: std::sync::Arc<dyn Task>,
    input: InputShape,
    outputs: usize,
) -> Result<()> {
    if matches!(cfg.model, ModelConfig::Custom(_)) {
        return Ok(());
    }
    let vars = SeededVarMap::new(cfg.seed);
    let ctx = BuildCtx {
        input,
        outputs,
        task,
        ops: cfg.kernels.into(),
        device: Device::Cpu,
        vars: &vars,
    };
    let net = crate::nn::build(&cfg.model, &ctx, None).map_err(as_model_error)?;
    let steps = one_sample(&*net, input).map_err(as_model_error)?;
    if let Some(d) = &cfg.dynamics {
        if cfg.device != super::DeviceConfig::Cpu {
            return Err(crate::Error::invalid(
                "dynamics",
                "spectra and flossing run in f64 on the CPU; use device: cpu",
            ));
        }
        crate::dynamics::validate(d, &*net, steps, &vars.named_vars()?)?;
    }
    Ok(())
}

/// Encodes and runs one zero-valued sample of `input`'s shape; returns the encoded input's
/// steps (its first dimension).
fn one_sample(net: &dyn Network, input: InputShape) -> Result<usize> {
    let x = match input {
        InputShape::Image([c, h, w]) => Tensor::zeros((1, c, h, w), DType::F32, &Device::Cpu)?,
        InputShape::Sequence { channels, steps } => {
            Tensor::zeros((steps, 1, channels), DType::F32, &Device::Cpu)?
        }
    };
    let encoded = net.encode(&x, 0)?;
    net.forward(&encoded)?;
    Ok(encoded.dim(0)?)
}

/// A build or forward failure as a config error: on the key a network's check names at the
/// start of its message (`model.channels: ...`), else on `model`.
fn as_model_error(e: Error) -> Error {
    match e {
        Error::InvalidConfig { .. } => e,
        other => {
            let text = match &other {
                Error::Tensor(t) => t.to_string(),
                _ => other.to_string(),
            };
            let first = text.lines().next().unwrap_or_default().to_string();
            match first.split_once(": ") {
                Some((key, rest)) if key.starts_with("model") && !key.contains(' ') => {
                    Error::invalid(key, rest.to_string())
                }
                _ => Error::invalid(
                    "model",
                    format!("does not fit the data's input shape: {first}"),
                ),
            }
        }
    }
}

/// The PC network's values: widths, the conv blocks only on `cnn`, the inference, the loss
/// weights, and a readout that exists.
fn pc(c: &super::PcConfig) -> Result<()> {
    use super::{PcArch, PcLoss, PcReadout};
    widths("model.hidden", &c.hidden)?;
    match c.arch {
        PcArch::Cnn => {
            widths("model.channels", &c.channels)?;
            conv_sizes(c.kernel_size, 2)?;
            if c.hidden.len() != 1 {
                return Err(Error::invalid(
                    "model.hidden",
                    format!("{:?}: a PC CNN has one fully connected layer after its conv blocks, e.g. [256]", c.hidden),
                ));
            }
        }
        _ if !c.channels.is_empty() => {
            return Err(Error::invalid(
                "model.channels",
                "only `arch: cnn` has conv blocks",
            ))
        }
        _ => {}
    }
    if c.arch != PcArch::EncDec && c.dec_weight != 0.5 {
        return Err(Error::invalid(
            "model.dec_weight",
            "only `arch: enc_dec` has decoders",
        ));
    }
    non_negative("model.dec_weight", c.dec_weight)?;
    positive("model.inference.rate", c.inference.rate)?;
    match c.loss {
        PcLoss::Sum {
            energy_weight,
            ce_weight,
        } => {
            non_negative("model.loss.energy_weight", energy_weight)?;
            non_negative("model.loss.ce_weight", ce_weight)?;
            if energy_weight == 0.0 && ce_weight == 0.0 {
                return Err(Error::invalid(
                    "model.loss",
                    "both weights are 0: nothing would train",
                ));
            }
        }
        PcLoss::Ramp { max, .. } => {
            if !(0.0..=1.0).contains(&max) {
                return Err(Error::invalid(
                    "model.loss.max",
                    format!("{max}: the ramp mixes F and CE convexly, use [0, 1]"),
                ));
            }
        }
    }
    if c.readout == PcReadout::Output && c.arch == PcArch::EncDec {
        return Err(Error::invalid(
            "model.readout",
            "enc_dec reads out through its head (`readout: head`)",
        ));
    }
    Ok(())
}

/// The grid's values: sizes, time constants, gain, density and perturbations in range.
fn grid(c: &super::GridConfig) -> Result<()> {
    at_least_one("model.cols", c.cols)?;
    if let Some(rows) = c.rows {
        at_least_one("model.rows", rows)?;
    }
    let [lo, hi] = c.tau_ms;
    if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi) {
        return Err(Error::invalid(
            "model.tau_ms",
            format!("[{lo}, {hi}]; use [min, max] with 0 < min <= max (ms)"),
        ));
    }
    positive("model.dt_ms", c.dt_ms)?;
    positive("model.input_gain", c.input_gain)?;
    if !(c.routing_density > 0.0 && c.routing_density <= 1.0) {
        return Err(Error::invalid(
            "model.routing_density",
            format!("{}; use a share in (0, 1]", c.routing_density),
        ));
    }
    let p = &c.perturbation;
    if !(0.0..1.0).contains(&p.leak) {
        return Err(Error::invalid(
            "model.perturbation.leak",
            format!("{}; use a value in [0, 1)", p.leak),
        ));
    }
    non_negative("model.perturbation.gain_positive", p.gain_positive)?;
    non_negative("model.perturbation.gain_negative", p.gain_negative)?;
    non_negative("model.perturbation.trace_noise", p.trace_noise)?;
    non_negative("model.perturbation.message_noise", p.message_noise)?;
    if !p.subtraction.is_finite() {
        return Err(Error::invalid(
            "model.perturbation.subtraction",
            "use a finite number",
        ));
    }
    if c.grad == super::GridGradient::Bptt && !p.is_none() {
        return Err(Error::invalid(
            "model.perturbation",
            "the perturbations act on SnAP-1's learning path; with `grad: bptt` leave them out",
        ));
    }
    Ok(())
}

fn widths(key: &str, list: &[usize]) -> Result<()> {
    match list.iter().position(|&n| n == 0) {
        Some(i) => Err(Error::invalid(
            format!("{key}[{i}]"),
            "0; a layer needs at least one unit",
        )),
        None => Ok(()),
    }
}

fn conv_sizes(kernel_size: usize, pool: usize) -> Result<()> {
    at_least_one("model.kernel_size", kernel_size)?;
    at_least_one("model.pool", pool)
}

fn stack(key: &str, s: &RecurrentStack) -> Result<()> {
    at_least_one(&format!("{key}.hidden"), s.hidden)?;
    at_least_one(&format!("{key}.layers"), s.layers)?;
    dropout(&format!("{key}.dropout"), s.dropout)
}

fn dropout(key: &str, p: f64) -> Result<()> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::invalid(
            key,
            format!("{p}; a dropout probability is in [0, 1)"),
        ))
    }
}

fn decay(key: &str, v: f64) -> Result<()> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(Error::invalid(
            key,
            format!("{v}; a decay per step is in [0, 1]"),
        ))
    }
}

fn surrogate(key: &str, s: &Surrogate) -> Result<()> {
    let (name, v) = match *s {
        Surrogate::Atan { alpha } => ("alpha", alpha),
        Surrogate::FastSigmoid { slope } => ("slope", slope),
        Surrogate::Triangle { width } => ("width", width),
        Surrogate::StraightThrough => return Ok(()),
    };
    positive(&format!("{key}.{name}"), v)
}

fn leaky(key: &str, c: &LeakyConfig) -> Result<()> {
    decay(&format!("{key}.beta"), c.beta)?;
    positive(&format!("{key}.threshold"), c.threshold)?;
    surrogate(&format!("{key}.surrogate"), &c.surrogate)
}

fn synaptic(key: &str, c: &SynapticConfig) -> Result<()> {
    decay(&format!("{key}.alpha"), c.alpha)?;
    decay(&format!("{key}.beta"), c.beta)?;
    positive(&format!("{key}.threshold"), c.threshold)?;
    surrogate(&format!("{key}.surrogate"), &c.surrogate)
}

fn neuron(key: &str, c: &NeuronConfig) -> Result<()> {
    match c {
        NeuronConfig::Leaky(c) => leaky(key, c),
        NeuronConfig::Synaptic(c) => synaptic(key, c),
    }
}

fn slstm(key: &str, c: &SlstmNeuronConfig) -> Result<()> {
    positive(&format!("{key}.threshold"), c.threshold)?;
    surrogate(&format!("{key}.surrogate"), &c.surrogate)
}

/// The residual network's stages, width and batch norm constants.
fn resnet(c: &super::ResnetConfig) -> Result<()> {
    if c.blocks.is_empty() {
        return Err(Error::invalid(
            "model.blocks",
            "empty; list the blocks per stage, e.g. [2, 2, 2, 2] for ResNet-18",
        ));
    }
    widths("model.blocks", &c.blocks)?;
    at_least_one("model.width", c.width)?;
    let bn = c.batch_norm;
    if !(bn.eps > 0.0 && bn.eps.is_finite()) {
        return Err(Error::invalid(
            "model.batch_norm.eps",
            format!("{}: use a small positive number such as 1e-5", bn.eps),
        ));
    }
    if !(0.0..=1.0).contains(&bn.momentum) {
        return Err(Error::invalid(
            "model.batch_norm.momentum",
            format!("{}: use a weight in [0, 1] such as 0.1", bn.momentum),
        ));
    }
    Ok(())
}
