//! Convolutional classifier.

use candle_core::{Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, VarBuilder};

use super::dropout::Dropout;
use super::layers::{conv2d, forward_stack_t, linear_stack};

use super::activation::apply;
use super::{fused, Ops};
use crate::config::{Activation, CnnConfig};

/// `[conv -> activation -> maxpool]* -> flatten -> [fc -> activation]* -> fc`; layers named
/// `conv1`, `conv2`, ..., `fc1`, `fc2`, ...
#[derive(Debug, Clone)]
pub struct Cnn {
    convs: Vec<Conv2d>,
    fcs: Vec<Linear>,
    pool: usize,
    activation: Activation,
    /// Channel dropout after each conv block, value dropout after each hidden fc layer.
    dropout: Dropout,
    ops: Ops,
}

impl Cnn {
    /// Builds from conv layers, fully connected layers (the last is the classifier) and pool
    /// size, run under `ops`.
    pub fn new(
        convs: Vec<Conv2d>,
        fcs: Vec<Linear>,
        pool: usize,
        activation: Activation,
        ops: Ops,
    ) -> Self {
        Cnn {
            convs,
            fcs,
            pool,
            activation,
            dropout: Dropout::none(),
            ops,
        }
    }

    /// The execution policy the network runs under.
    pub fn ops(&self) -> Ops {
        self.ops
    }

    /// Creates the layers under `vb` for `[C, H, W]` inputs and `classes` outputs.
    pub fn from_config(
        cfg: &CnnConfig,
        input: [usize; 3],
        classes: usize,
        ops: Ops,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let [mut c, mut h, mut w] = input;
        let conv_cfg = Conv2dConfig {
            padding: cfg.padding,
            ..Default::default()
        };
        let pool = cfg.pool.max(1);
        let mut convs = Vec::new();
        for (i, &out) in cfg.channels.iter().enumerate() {
            convs.push(conv2d(
                c,
                out,
                cfg.kernel_size,
                conv_cfg,
                vb.pp(format!("conv{}", i + 1)),
            )?);
            let side = |s: usize| {
                (s + 2 * cfg.padding + 1)
                    .checked_sub(cfg.kernel_size)
                    .map(|o| o / pool)
            };
            match (side(h), side(w)) {
                (Some(nh), Some(nw)) if nh > 0 && nw > 0 => (h, w) = (nh, nw),
                _ => candle_core::bail!(
                    "model.channels: conv block {} shrinks a {h}x{w} map to nothing",
                    i + 1
                ),
            }
            c = out;
        }
        let mut widths = vec![c * h * w];
        widths.extend(&cfg.fc_hidden);
        widths.push(classes);
        let fcs = linear_stack(&widths, &vb)?;
        Ok(Cnn {
            dropout: Dropout::new(cfg.dropout, 0)?,
            ..Cnn::new(convs, fcs, pool, cfg.activation, ops)
        })
    }
}

impl Cnn {
    /// The forward pass, in training when `seed` (the batch's) is given: whole channels
    /// dropped after each conv block (torch's `Dropout2d`), values after each hidden fc layer.
    ///
    /// # Shapes
    /// `x`: `[B, C, H, W]` -> logits `[B, classes]`.
    pub fn forward_t(&self, x: &Tensor, seed: Option<u64>) -> candle_core::Result<Tensor> {
        let fuse_pool = self.ops.fuses(x) && self.activation == Activation::Relu;
        let mut h = x.clone();
        for (i, conv) in self.convs.iter().enumerate() {
            let c = conv.config();
            if fuse_pool && c.stride == 1 && c.dilation == 1 && c.groups == 1 {
                let (w, b) = (conv.weight(), conv.bias());
                h = fused::conv2d_pool(&h, w, b, c.padding, true, self.pool)?;
            } else {
                h = apply(self.activation, &self.ops.conv2d(conv, &h)?)?;
                if self.pool > 1 {
                    h = self.ops.max_pool2d(&h, self.pool)?;
                }
            }
            h = self.dropout.at(i as u64).forward_channels(&h, seed)?;
        }
        let fc_dropout = seed.map(|s| (self.dropout.at(self.convs.len() as u64), s));
        forward_stack_t(
            self.ops,
            &self.fcs,
            self.activation,
            &h.flatten_from(1)?,
            fc_dropout,
        )
    }
}

impl Module for Cnn {
    /// Under fused ops, conv + bias + ReLU + first-maximum pooling run as one op (no full-size
    /// map is allocated); other activations go between a fused conv and a fused pooling, and a
    /// conv layer with stride, dilation or groups falls back to candle's conv.
    ///
    /// # Shapes
    /// `x`: `[B, C, H, W]` -> logits `[B, classes]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_t(x, None)
    }
}
