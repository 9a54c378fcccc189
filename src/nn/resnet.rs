//! Residual networks with batch norm (`kind: resnet`): torchvision's ResNet-18 with the CIFAR
//! stem (3x3 stride-1 conv, no max-pool), parameters named as in its state dict (`conv1`,
//! `bn1`, `layer1.0.conv1`, `layer2.0.downsample.0`, `fc`, ...).
//!
//! `forward` is the evaluation mode (running statistics); the training step runs the training
//! mode (batch statistics, running statistics updated), so no mode flag exists to forget.

use candle_core::Tensor;
use candle_nn::{Conv2d, Conv2dConfig, Init, Linear, VarBuilder};

use super::batch_norm::BatchNorm2d;
use super::layers::linear;
use super::network::{BuildCtx, Network};
use super::probe::Probe;
use super::Ops;
use crate::config::ResnetConfig;
use crate::error::{Error, Result};

/// A bias-free square convolution initialised as torchvision's inner convs:
/// kaiming normal with fan-out and ReLU gain, `std = √(2 / (out·k·k))`.
fn kaiming_conv(
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    vb: VarBuilder,
) -> candle_core::Result<Conv2d> {
    let std = (2.0 / (c_out * k * k) as f64).sqrt();
    let weight = vb.get_with_hints(
        (c_out, c_in, k, k),
        "weight",
        Init::Randn {
            mean: 0.0,
            stdev: std,
        },
    )?;
    Ok(Conv2d::new(weight, None, conv_config(k, stride)))
}

fn conv_config(k: usize, stride: usize) -> Conv2dConfig {
    Conv2dConfig {
        padding: k / 2,
        stride,
        ..Default::default()
    }
}

/// A convolution followed by batch norm.
#[derive(Debug, Clone)]
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm2d,
    bn_name: String,
}

impl ConvBn {
    fn forward_t(&self, ops: Ops, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.bn.forward_t(&ops.conv2d(&self.conv, x)?, train, ops)
    }
}

/// torchvision's BasicBlock: `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`.
#[derive(Debug, Clone)]
struct BasicBlock {
    first: ConvBn,
    second: ConvBn,
    downsample: Option<ConvBn>,
}

impl BasicBlock {
    fn new(
        c_in: usize,
        c_out: usize,
        stride: usize,
        cfg: &ResnetConfig,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let bn = |c, gamma, name: &str| BatchNorm2d::new(c, gamma, cfg.batch_norm, vb.pp(name));
        let name = |s: &str| format!("{}.{s}", vb.prefix());
        let last_gamma = if cfg.zero_init_residual { 0.0 } else { 1.0 };
        let downsample = if stride != 1 || c_in != c_out {
            Some(ConvBn {
                conv: kaiming_conv(c_in, c_out, 1, stride, vb.pp("downsample.0"))?,
                bn: bn(c_out, 1.0, "downsample.1")?,
                bn_name: name("downsample.1"),
            })
        } else {
            None
        };
        Ok(BasicBlock {
            first: ConvBn {
                conv: kaiming_conv(c_in, c_out, 3, stride, vb.pp("conv1"))?,
                bn: bn(c_out, 1.0, "bn1")?,
                bn_name: name("bn1"),
            },
            second: ConvBn {
                conv: kaiming_conv(c_out, c_out, 3, 1, vb.pp("conv2"))?,
                bn: bn(c_out, last_gamma, "bn2")?,
                bn_name: name("bn2"),
            },
            downsample,
        })
    }

    fn forward_t(&self, ops: Ops, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let h = self.first.forward_t(ops, x, train)?.relu()?;
        let h = self.second.forward_t(ops, &h, train)?;
        let shortcut = match &self.downsample {
            Some(d) => d.forward_t(ops, x, train)?,
            None => x.clone(),
        };
        (h + shortcut)?.relu()
    }

    fn layers(&self) -> impl Iterator<Item = &ConvBn> {
        [&self.first, &self.second]
            .into_iter()
            .chain(self.downsample.as_ref())
    }
}

/// A residual network: stem, stages of BasicBlocks, global average pooling, linear classifier.
#[derive(Debug, Clone)]
pub struct Resnet {
    stem: ConvBn,
    blocks: Vec<BasicBlock>,
    fc: Linear,
    ops: Ops,
}

impl Resnet {
    /// Builds from its config for `[C, H, W]` images and `classes` outputs; the stem conv and
    /// the classifier keep PyTorch's default init (the reference replaces them after
    /// torchvision's init), the inner convs get torchvision's.
    pub fn from_config(
        cfg: &ResnetConfig,
        input: [usize; 3],
        classes: usize,
        ops: Ops,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let [c_in, _, _] = input;
        let bound = 1.0 / ((c_in * 9) as f64).sqrt();
        let stem_w = vb.get_with_hints(
            (cfg.width, c_in, 3, 3),
            "conv1.weight",
            Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?;
        let stem = ConvBn {
            conv: Conv2d::new(stem_w, None, conv_config(3, 1)),
            bn: BatchNorm2d::new(cfg.width, 1.0, cfg.batch_norm, vb.pp("bn1"))?,
            bn_name: "bn1".to_string(),
        };
        let mut blocks = Vec::new();
        let mut c = cfg.width;
        for (stage, &n) in cfg.blocks.iter().enumerate() {
            let c_out = cfg.width << stage;
            for i in 0..n {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                let vb = vb.pp(format!("layer{}.{i}", stage + 1));
                blocks.push(BasicBlock::new(c, c_out, stride, cfg, vb)?);
                c = c_out;
            }
        }
        let fc = linear(c, classes, vb.pp("fc"))?;
        Ok(Resnet {
            stem,
            blocks,
            fc,
            ops,
        })
    }

    /// Builds for a run.
    pub fn new(cfg: &ResnetConfig, ctx: &BuildCtx) -> Result<Self> {
        let shape = ctx.image_shape("resnet")?;
        Ok(Resnet::from_config(
            cfg,
            shape,
            ctx.outputs,
            ctx.ops,
            ctx.vb(),
        )?)
    }

    /// Class scores in training (`train`: batch statistics, running ones updated) or
    /// evaluation mode.
    ///
    /// # Shapes
    /// `x`: `[B, C, H, W]` -> `[B, classes]`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let mut h = self.stem.forward_t(self.ops, x, train)?.relu()?;
        for block in &self.blocks {
            h = block.forward_t(self.ops, &h, train)?;
        }
        let pooled = h.mean((2, 3))?;
        self.ops.linear(&self.fc, &pooled, false)
    }

    fn batch_norms(&self) -> impl Iterator<Item = &ConvBn> {
        std::iter::once(&self.stem).chain(self.blocks.iter().flat_map(|b| b.layers()))
    }

    /// The batch norm layers by their state-dict prefix (`bn1`, `layer1.0.bn1`, ...).
    pub fn batch_norm_layers(&self) -> Vec<(&str, &BatchNorm2d)> {
        self.batch_norms()
            .map(|l| (l.bn_name.as_str(), &l.bn))
            .collect()
    }
}

impl Network for Resnet {
    fn forward_probed(
        &self,
        input: &Tensor,
        _probe: &mut dyn Probe,
    ) -> candle_core::Result<Tensor> {
        self.forward_t(input, false)
    }

    fn forward_train(&self, input: &Tensor, _seed: u64) -> candle_core::Result<Tensor> {
        self.forward_t(input, true)
    }

    fn extra_state(&self) -> Vec<(String, Tensor)> {
        self.batch_norms()
            .flat_map(|l| l.bn.buffers(&l.bn_name))
            .collect()
    }

    fn load_extra_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        let find = |name: &str| -> Result<&Tensor> {
            state
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
                .ok_or_else(|| {
                    Error::invalid(
                        "checkpoint",
                        format!("has no `{name}`: not a checkpoint of this network"),
                    )
                })
        };
        let mut known = Vec::new();
        for layer in self.batch_norms() {
            let mean = find(&format!("{}.running_mean", layer.bn_name))?;
            let var = find(&format!("{}.running_var", layer.bn_name))?;
            layer
                .bn
                .set_buffers(mean, var)
                .map_err(|e| Error::invalid("checkpoint", format!("{}: {e}", layer.bn_name)))?;
            known.push(format!("{}.running_mean", layer.bn_name));
            known.push(format!("{}.running_var", layer.bn_name));
        }
        if let Some((name, _)) = state.iter().find(|(n, _)| !known.contains(n)) {
            return Err(Error::invalid(
                "checkpoint",
                format!("holds extra state `{name}` that this network does not keep"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "resnet_tests.rs"]
mod tests;
