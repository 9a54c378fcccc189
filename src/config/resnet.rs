//! Typed config of the residual network family (`kind: resnet`): ResNet-18 with the CIFAR stem.

use serde::{Deserialize, Serialize};

/// A residual network of BasicBlocks (torchvision's ResNet-18/34 block) with the CIFAR stem: a
/// 3x3 stride-1 conv, batch norm and ReLU, no max-pool; stage `i` has `blocks[i]` blocks of
/// `width · 2^i` channels, stages after the first start with stride 2 and a 1x1 conv + batch
/// norm shortcut; global average pooling and one linear layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResnetConfig {
    /// BasicBlocks per stage (`[2, 2, 2, 2]`: ResNet-18).
    #[serde(default = "default_blocks")]
    pub blocks: Vec<usize>,
    /// Channels of the stem and the first stage (64 in ResNet-18; 16 or 4 for small tests).
    #[serde(default = "default_width")]
    pub width: usize,
    /// Batch norm settings (PyTorch's defaults).
    #[serde(default)]
    pub batch_norm: BatchNormConfig,
    /// Start each block's last batch norm at γ = 0, so blocks begin as identities
    /// (torchvision's `zero_init_residual`; off in the reference).
    #[serde(default)]
    pub zero_init_residual: bool,
}

/// Batch normalisation: `eps` in the denominator, `momentum` of the running statistics
/// (`running = (1 - momentum)·running + momentum·batch`, PyTorch's convention).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNormConfig {
    /// Added to the variance.
    #[serde(default = "default_bn_eps")]
    pub eps: f64,
    /// Weight of the newest batch in the running statistics.
    #[serde(default = "default_bn_momentum")]
    pub momentum: f64,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        BatchNormConfig {
            eps: default_bn_eps(),
            momentum: default_bn_momentum(),
        }
    }
}

fn default_blocks() -> Vec<usize> {
    vec![2, 2, 2, 2]
}
fn default_width() -> usize {
    64
}
fn default_bn_eps() -> f64 {
    1e-5
}
fn default_bn_momentum() -> f64 {
    0.1
}
