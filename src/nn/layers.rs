//! Layer constructors with PyTorch's default initialisation, so results are comparable with the
//! PyTorch reference: weights and biases uniform in `±1/sqrt(fan_in)` (kaiming_uniform, a=√5).

use candle_nn::{Conv2d, Conv2dConfig, Init, Linear, VarBuilder};

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
