//! The in-place update passes of the fused optimizers: candle `InplaceOp`s whose loops are in
//! the kernels crate (one pass per updated tensor: Adam's `m`, `v`, then the parameter; SGD's
//! momentum buffer, then the parameter).

use autoresearch_kernels::optim::{self as kernels, AdamStep, SgdStep};
use candle_core::{CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Tensor};

/// Whether the in-place kernels can update these tensors: all CPU `f32` of one shape, the first
/// (the updated one) contiguous.
pub(super) fn fusable(ts: &[&Tensor]) -> bool {
    let Some(first) = ts.first() else {
        return false;
    };
    first.is_contiguous()
        && ts
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == DType::F32 && t.shape() == first.shape())
}

/// One in-place update pass of the fused optimizers (the updated tensor is the destination).
#[derive(Debug, Clone, Copy)]
pub(super) enum Update {
    /// Adam's first moment `m` from `(g, p)`.
    AdamM(AdamStep),
    /// Adam's second moment `v` from `(g, p)`.
    AdamV(AdamStep),
    /// Adam's parameter step `p` from `(m, v)`.
    AdamP(AdamStep),
    /// SGD's momentum buffer from `(g, p)`; `true` on its first step.
    SgdBuffer(SgdStep, bool),
    /// SGD's parameter step from `(g, buffer)` (`true`) or from `g` alone (`false`).
    SgdP(SgdStep, bool),
}

fn dst_f32<'a>(s: &'a mut CpuStorage, l: &Layout) -> candle_core::Result<&'a mut [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&mut v[a..b]),
        _ => candle_core::bail!(
            "fused optimizer: destination {:?} is not contiguous f32",
            l.dims()
        ),
    }
}

fn src_f32<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!(
            "fused optimizer: operand {:?} is not contiguous f32",
            l.dims()
        ),
    }
}

impl InplaceOp3 for Update {
    fn name(&self) -> &'static str {
        match self {
            Update::AdamM(_) => "fused-adam-m",
            Update::AdamV(_) => "fused-adam-v",
            Update::AdamP(_) => "fused-adam-step",
            Update::SgdBuffer(..) => "fused-sgd-momentum",
            Update::SgdP(..) => "fused-sgd-step",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<()> {
        let (dst, a, b) = (dst_f32(s1, l1)?, src_f32(s2, l2)?, src_f32(s3, l3)?);
        match *self {
            Update::AdamM(c) => kernels::adam_m(dst, a, b, c),
            Update::AdamV(c) => kernels::adam_v(dst, a, b, c),
            Update::AdamP(c) => kernels::adam_p(dst, a, b, c),
            Update::SgdBuffer(c, first) => kernels::sgd_buffer(dst, a, b, c, first),
            Update::SgdP(c, momentum) => kernels::sgd_p(dst, a, b, c, momentum),
        }
        .map_err(candle_core::Error::Msg)
    }
}

impl InplaceOp2 for Update {
    fn name(&self) -> &'static str {
        InplaceOp3::name(self)
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let (dst, g) = (dst_f32(s1, l1)?, src_f32(s2, l2)?);
        match *self {
            Update::SgdP(c, false) => kernels::sgd_p(dst, g, &[], c, false),
            _ => Err(format!("{}: needs two operands", InplaceOp3::name(self))),
        }
        .map_err(candle_core::Error::Msg)
    }
}
