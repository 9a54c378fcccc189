//! Typed model configs: one struct per network `kind`, every choice a serde enum.

use serde::{Deserialize, Serialize};

use super::spiking::{
    EncoderConfig, LeakyConfig, NeuronConfig, Readout, Recurrence, SlstmNeuronConfig,
};

/// Network architecture, chosen by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelConfig {
    /// Fully connected network.
    Ffnn(FfnnConfig),
    /// Convolutional network: conv-activation-maxpool blocks, then fully connected layers.
    Cnn(CnnConfig),
    /// Spiking fully connected network: `[Linear -> Leaky]*` over the encoder's time steps.
    SnnFfnn(SnnFfnnConfig),
    /// Spiking convolutional network: a Leaky layer after each conv and each fc layer.
    SnnCnn(SnnCnnConfig),
    /// Recurrent spiking network (RLeaky layers), e.g. over the rows of an image.
    Srnn(SrnnConfig),
    /// Spiking LSTM (SLSTM layers), e.g. over the rows of an image.
    Slstm(SlstmConfig),
    /// A Leaky spiking encoder whose windowed spike counts drive a non-spiking RNN.
    Hybrid(HybridConfig),
    /// Non-spiking RNN / LSTM / GRU over a sequence (row-wise sequential MNIST).
    Rnn(RnnConfig),
    /// Tanh rate RNN `x_t = J tanh(x_{t-1}) + b + W_s s_t` with a linear readout of `x_t` per
    /// step and a learnable initial state (GradientFlossing's network).
    RateRnn(RateRnnConfig),
    /// RNN / LSTM / GRU stack over a sequence task's inputs with a linear readout per step.
    SequenceRnn(SequenceRnnConfig),
    /// A learnable output per time step, the same for every input: the mean predictor.
    MeanPredictor(MeanPredictorConfig),
    /// A connectome (or a matched control) as a frozen recurrent core between trained
    /// adapters (pathintegrationBPU).
    Bpu(Box<super::BpuConfig>),
    /// A lattice of analog filter cells trained by its own local rule (grid-neurons).
    Grid(super::GridConfig),
    /// A predictive-coding network trained by relaxation and its energy (PC-FFNN, PC-CNN,
    /// PC-EncDec).
    Pc(super::PcConfig),
    /// A residual network with batch norm (ResNet-18, CIFAR stem).
    Resnet(super::ResnetConfig),
    /// A network defined outside this crate, built by the function given to
    /// `train::train_with` (e.g. from a notebook cell).
    Custom(CustomModelConfig),
}

/// Which input a model reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// Images `[B, C, H, W]` (encoded inside the model where it spikes).
    Image,
    /// Time-first sequences `[T, B, S]`.
    Sequence,
    /// Whatever the data gives (checked by the model's builder).
    Any,
}

impl ModelConfig {
    /// The model kind as written in configs and `metrics.json`.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelConfig::Ffnn(_) => "ffnn",
            ModelConfig::Cnn(_) => "cnn",
            ModelConfig::SnnFfnn(_) => "snn_ffnn",
            ModelConfig::SnnCnn(_) => "snn_cnn",
            ModelConfig::Srnn(_) => "srnn",
            ModelConfig::Slstm(_) => "slstm",
            ModelConfig::Hybrid(_) => "hybrid",
            ModelConfig::Rnn(_) => "rnn",
            ModelConfig::RateRnn(_) => "rate_rnn",
            ModelConfig::SequenceRnn(_) => "sequence_rnn",
            ModelConfig::MeanPredictor(_) => "mean_predictor",
            ModelConfig::Bpu(_) => "bpu",
            ModelConfig::Grid(_) => "grid",
            ModelConfig::Pc(_) => "pc",
            ModelConfig::Resnet(_) => "resnet",
            ModelConfig::Custom(_) => "custom",
        }
    }

    /// The input this model reads.
    pub fn input_kind(&self) -> InputKind {
        match self {
            ModelConfig::RateRnn(_)
            | ModelConfig::SequenceRnn(_)
            | ModelConfig::MeanPredictor(_)
            | ModelConfig::Bpu(_) => InputKind::Sequence,
            ModelConfig::Custom(_) => InputKind::Any,
            _ => InputKind::Image,
        }
    }

    /// How images become the network's input; `None` for models that take images as they are.
    pub fn encoder(&self) -> Option<&EncoderConfig> {
        match self {
            ModelConfig::Ffnn(_)
            | ModelConfig::Cnn(_)
            | ModelConfig::RateRnn(_)
            | ModelConfig::SequenceRnn(_)
            | ModelConfig::MeanPredictor(_)
            | ModelConfig::Bpu(_)
            | ModelConfig::Grid(_)
            | ModelConfig::Pc(_)
            | ModelConfig::Resnet(_)
            | ModelConfig::Custom(_) => None,
            ModelConfig::SnnFfnn(c) => Some(&c.encoder),
            ModelConfig::SnnCnn(c) => Some(&c.encoder),
            ModelConfig::Srnn(c) => Some(&c.encoder),
            ModelConfig::Slstm(c) => Some(&c.encoder),
            ModelConfig::Hybrid(c) => Some(&c.encoder),
            ModelConfig::Rnn(c) => Some(&c.encoder),
        }
    }
}

/// Fully connected network: input -> hidden... -> classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FfnnConfig {
    /// Width of each hidden layer.
    pub hidden: Vec<usize>,
    /// Non-linearity after each hidden layer.
    #[serde(default)]
    pub activation: Activation,
    /// Dropout probability after each hidden layer's non-linearity, in training (0: none).
    #[serde(default)]
    pub dropout: f64,
}

/// Convolutional network: `[conv(k) -> act -> maxpool(p)]* -> flatten -> fc* -> classes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CnnConfig {
    /// Output channels of each conv block.
    pub channels: Vec<usize>,
    /// Square kernel size of every conv.
    #[serde(default = "default_kernel_size")]
    pub kernel_size: usize,
    /// Zero padding of every conv.
    #[serde(default)]
    pub padding: usize,
    /// Max-pool window (and stride) after every conv; 1 disables pooling.
    #[serde(default = "default_pool")]
    pub pool: usize,
    /// Hidden fully connected layers between the conv stack and the classifier.
    #[serde(default)]
    pub fc_hidden: Vec<usize>,
    /// Non-linearity after each conv and hidden fc layer.
    #[serde(default)]
    pub activation: Activation,
    /// Dropout probability in training (0: none): whole channels after each conv block's pool
    /// (torch's `Dropout2d`) and values after each hidden fc layer, as the reference's CNN.
    #[serde(default)]
    pub dropout: f64,
}

fn default_kernel_size() -> usize {
    3
}
fn default_pool() -> usize {
    2
}

/// Element-wise non-linearity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// max(0, x).
    #[default]
    Relu,
    /// Hyperbolic tangent.
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
    /// Gaussian error linear unit (tanh approximation).
    Gelu,
}

/// Spiking fully connected network: `encoder -> [Linear -> Leaky]* -> Linear -> Leaky -> readout`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnnFfnnConfig {
    /// Width of each hidden spiking layer (784-512-256-10 in the reference).
    pub hidden: Vec<usize>,
    /// The spiking neuron of every layer, output layer included.
    #[serde(default)]
    pub neuron: NeuronConfig,
    /// How images become spike trains (and how many time steps there are).
    pub encoder: EncoderConfig,
    /// How the output layer's activity becomes class scores and a loss.
    #[serde(default)]
    pub readout: Readout,
}

/// Where the Leaky layer of a conv block sits relative to its pooling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvOrder {
    /// conv -> Leaky -> maxpool (the Leaky layer replaces the ANN's ReLU; pools spikes).
    #[default]
    ConvLifPool,
    /// conv -> maxpool -> Leaky (snnTorch tutorial order; pools currents).
    ConvPoolLif,
}

/// Spiking CNN: `[conv -> Leaky -> pool]* -> flatten -> [fc -> Leaky]* -> fc -> Leaky -> readout`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnnCnnConfig {
    /// Output channels of each conv block.
    pub channels: Vec<usize>,
    /// Square kernel size of every conv.
    #[serde(default = "default_kernel_size")]
    pub kernel_size: usize,
    /// Zero padding of every conv.
    #[serde(default)]
    pub padding: usize,
    /// Max-pool window (and stride) of every conv block; 1 disables pooling.
    #[serde(default = "default_pool")]
    pub pool: usize,
    /// Order of conv, Leaky and pooling inside a block.
    #[serde(default)]
    pub order: ConvOrder,
    /// Hidden spiking fully connected layers before the output layer.
    #[serde(default)]
    pub fc_hidden: Vec<usize>,
    /// The spiking neuron of every layer.
    #[serde(default)]
    pub neuron: NeuronConfig,
    /// How images become spike trains.
    pub encoder: EncoderConfig,
    /// How the output layer's activity becomes class scores and a loss.
    #[serde(default)]
    pub readout: Readout,
}

/// Recurrent spiking network: `encoder -> [Linear -> RLeaky]* -> Linear -> Leaky -> readout`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SrnnConfig {
    /// Width of each recurrent spiking layer.
    pub hidden: Vec<usize>,
    /// The LIF dynamics of every layer (the output layer is a plain Leaky layer).
    #[serde(default)]
    pub neuron: LeakyConfig,
    /// How each recurrent layer feeds its spikes back to itself.
    #[serde(default)]
    pub recurrence: Recurrence,
    /// How images become sequences (row-wise for sequential MNIST).
    pub encoder: EncoderConfig,
    /// How the output layer's activity becomes class scores and a loss.
    #[serde(default)]
    pub readout: Readout,
}

/// Spiking LSTM network: `encoder -> [SLSTM]* -> Linear -> Leaky -> readout`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlstmConfig {
    /// Width of each SLSTM layer.
    pub hidden: Vec<usize>,
    /// Threshold, reset and surrogate of the SLSTM cells.
    #[serde(default)]
    pub cell: SlstmNeuronConfig,
    /// The LIF neuron of the output layer.
    #[serde(default)]
    pub neuron: LeakyConfig,
    /// How images become sequences.
    pub encoder: EncoderConfig,
    /// How the output layer's activity becomes class scores and a loss.
    #[serde(default)]
    pub readout: Readout,
}

/// A recurrent cell type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellKind {
    /// Elman RNN with tanh.
    Rnn,
    /// Long short-term memory (PyTorch gate order i, f, g, o).
    #[default]
    Lstm,
    /// Gated recurrent unit (PyTorch gate order r, z, n).
    Gru,
}

/// A stack of non-spiking recurrent layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecurrentStack {
    /// Cell type.
    pub cell: CellKind,
    /// Hidden size of every layer.
    pub hidden: usize,
    /// Number of stacked layers.
    #[serde(default = "default_layers")]
    pub layers: usize,
    /// Dropout probability on the outputs of every layer but the last, in training (torch's
    /// `nn.LSTM(dropout=...)`; 0: none).
    #[serde(default)]
    pub dropout: f64,
}

fn default_layers() -> usize {
    1
}

/// Non-spiking sequence classifier: `encoder (rows) -> RNN stack -> Linear(last hidden) -> logits`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RnnConfig {
    /// The recurrent layers.
    #[serde(flatten)]
    pub stack: RecurrentStack,
    /// How images become sequences (`rows` for sequential MNIST).
    pub encoder: EncoderConfig,
}

/// Hybrid: `encoder -> Linear -> Leaky -> spike counts per window -> RNN stack -> Linear -> logits`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HybridConfig {
    /// Width of the spiking encoder layer.
    pub spiking_hidden: usize,
    /// The LIF neuron of the spiking encoder layer.
    #[serde(default)]
    pub neuron: LeakyConfig,
    /// Spikes are summed over windows of this many time steps; each window is one RNN step.
    #[serde(default = "default_window")]
    pub window: usize,
    /// The recurrent layers reading the spike counts.
    pub rnn: RecurrentStack,
    /// How images become spike trains.
    pub encoder: EncoderConfig,
}

fn default_window() -> usize {
    1
}

/// Tanh rate RNN (GradientFlossing): state `x` `[B, N]`, `x_t = J tanh(x_{t-1}) + b + W_s s_t / S`,
/// readout `r_t = w_r x_t + o`.
///
/// Init: `J ~ gain·N(0, 1)/√N`, `W_s ~ N(0, 1)`, `w_r ~ N(0, 1)`, `b ~ U(0, bias_max)`, `o =
/// 0.001`; the initial state `x_0` `[N]` (shared by the batch) is one N(0, 1) draw relaxed by
/// `relax_steps` autonomous steps, and is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateRnnConfig {
    /// Units `N`.
    pub hidden: usize,
    /// Coupling gain `g` of `J` (chaotic above 1 in the large-N limit).
    #[serde(default = "default_gain")]
    pub gain: f64,
    /// Upper end of the uniform bias init `U(0, bias_max)`.
    #[serde(default = "default_bias_max")]
    pub bias_max: f64,
    /// Autonomous steps relaxing the initial state before training.
    #[serde(default = "default_relax_steps")]
    pub relax_steps: usize,
    /// Whether `x_0` is trained (upstream: yes).
    #[serde(default = "default_true")]
    pub learn_initial_state: bool,
    /// The rate function `φ`: tanh (upstream's rate net) or a binary step with a surrogate
    /// derivative (the binary net of surrogate gradient flossing).
    #[serde(default)]
    pub activation: RateActivation,
}

/// The rate function `φ` of a [`RateRnnConfig`] network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RateActivation {
    /// `φ = tanh`.
    #[default]
    Tanh,
    /// `φ(x) = H(x)` (0/1) in the forward pass; `S'(x)` of `surrogate` in every derivative,
    /// including the Jacobian of the Lyapunov spectrum ("surrogate Lyapunov exponents").
    Binary {
        /// The surrogate derivative (upstream: fast sigmoid, sharpness 5).
        surrogate: super::Surrogate,
    },
}

fn default_gain() -> f64 {
    1.0
}
fn default_bias_max() -> f64 {
    0.1
}
fn default_relax_steps() -> usize {
    100
}
fn default_true() -> bool {
    true
}

/// RNN / LSTM / GRU stack over a sequence with a linear readout at every step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceRnnConfig {
    /// The recurrent layers.
    #[serde(flatten)]
    pub stack: RecurrentStack,
}

/// The mean predictor has no settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeanPredictorConfig {}

/// A network defined outside the crate: a name and free parameters its builder reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomModelConfig {
    /// The network's name (recorded as the model in `metrics.json`).
    pub name: String,
    /// Free parameters for the builder.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub params: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
}
