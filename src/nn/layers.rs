//! Layer constructors with PyTorch's default initialisation, so results are comparable with the
//! PyTorch reference: weights and biases uniform in `±1/sqrt(fan_in)` (kaiming_uniform, a=√5).

use candle_core::Tensor;
use candle_nn::{Conv2d, Conv2dConfig, Init, Linear, VarBuilder};

use super::activation::apply;
use super::dropout::Dropout;
use super::Ops;
use crate::config::Activation;

fn torch_uniform(fan_in: usize) -> Init {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// A linear layer `in_dim -> out_dim` with `weight` `[out, in]` and `bias` `[out]` under `vb`.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> candle_core::Result<Linear> {
    let init = torch_uniform(in_dim);
    let weight = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
    let bias = vb.get_with_hints(out_dim, "bias", init)?;
    Ok(Linear::new(weight, Some(bias)))
}

/// A square-kernel 2-D convolution with `weight` `[out, in, k, k]` and `bias` `[out]` under `vb`.
pub fn conv2d(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    cfg: Conv2dConfig,
    vb: VarBuilder,
) -> candle_core::Result<Conv2d> {
    let init = torch_uniform(in_channels * kernel * kernel);
    let weight = vb.get_with_hints((out_channels, in_channels, kernel, kernel), "weight", init)?;
    let bias = vb.get_with_hints(out_channels, "bias", init)?;
    Ok(Conv2d::new(weight, Some(bias), cfg))
}

/// Linear layers `fc1, fc2, ...` between consecutive `widths` (`[in, hidden..., out]`).
pub fn linear_stack(widths: &[usize], vb: &VarBuilder) -> candle_core::Result<Vec<Linear>> {
    widths
        .windows(2)
        .enumerate()
        .map(|(i, w)| linear(w[0], w[1], vb.pp(format!("fc{}", i + 1))))
        .collect()
}

/// Applies `layers` in turn under `ops` with `activation` between them (none after the last;
/// ReLU is fused into the layer before it when `ops` fuses).
///
/// # Shapes
/// `x`: `[B, in]` -> `[B, out]`.
pub fn forward_stack(
    ops: Ops,
    layers: &[Linear],
    activation: Activation,
    x: &Tensor,
) -> candle_core::Result<Tensor> {
    forward_stack_t(ops, layers, activation, x, None)
}

/// [`forward_stack`] with `dropout` (and the training batch's seed) after every hidden
/// layer's activation, hidden layer `i` drawing masks as the dropout's layer `index + i`.
///
/// # Shapes
/// `x`: `[B, in]` -> `[B, out]`.
pub fn forward_stack_t(
    ops: Ops,
    layers: &[Linear],
    activation: Activation,
    x: &Tensor,
    dropout: Option<(Dropout, u64)>,
) -> candle_core::Result<Tensor> {
    let mut h = x.clone();
    for (i, layer) in layers.iter().enumerate() {
        let hidden = i + 1 < layers.len();
        let relu = hidden && activation == Activation::Relu;
        h = ops.linear(layer, &h, relu)?;
        if hidden && !relu {
            h = apply(activation, &h)?;
        }
        if let (true, Some((d, seed))) = (hidden, dropout) {
            h = d
                .at(d.index() + i as u64)
                .forward_with(ops, &h, Some(seed))?;
        }
    }
    Ok(h)
}
