//! Fused CPU kernels as candle custom ops, each with a backward pass.
//!
//! Every op here computes what a chain of plain tensor ops computes (the layers keep that chain
//! as the reference path, used on other devices and with `kernels: plain`), in one pass over
//! memory and multi-threaded, with the loops in the `autoresearch-kernels` crate. Ops take and
//! return ordinary tensors, so they compose with candle's autograd. They run on CPU `f32`
//! tensors only: call [`available`] first.

mod batch_norm;
mod conv;
mod conv_lif_pool;
mod csr;
mod lif;
mod linear;
mod loss;
mod mask;
mod pool;
mod recurrent;
mod rleaky;
mod sparse_linear;
mod tanh_rnn;
#[cfg(test)]
mod test_util;
mod weighted;

pub use batch_norm::{batch_norm_train, channel_affine};
pub use conv::{conv2d, conv2d_pool};
pub use conv_lif_pool::{conv_lif_pool, ConvLifPoolOutput, ConvLifPoolSpec};
pub use csr::{csr_relu, CsrPlan};
pub use lif::{lif, LifOutput, LifSpec};
pub use linear::linear;
pub use loss::cross_entropy;
pub use mask::mask_mul;
pub use pool::max_pool2d;
pub use recurrent::{recurrent, RecurrentCell};
pub use rleaky::{rleaky, RLeakyConsts};
pub use sparse_linear::sparse_linear;
pub use tanh_rnn::tanh_rnn;

use candle_core::{DType, Tensor};

/// Whether the fused ops can run on `t`: a CPU tensor of `f32`.
pub fn available(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}
