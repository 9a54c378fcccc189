//! The frame every weighted fused op shares: an input, a weight and an optional bias, run as
//! candle's two-argument custom op without a bias and its three-argument op with one.

use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::linear::{check_cpu_f32, keep_freed_memory};

/// A CPU op `y = f(x, w, b?)` with its backward pass; [`apply`] runs it.
pub(super) trait WeightedOp: Send + Sync + 'static {
    /// The op's name in error messages and candle's graph.
    const NAME: &'static str;

    /// The output and its shape, from contiguous CPU `f32` operands.
    fn fwd(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)>;

    /// `(dx, dw, db)`, each where its operand exists and needs a gradient (at least `dw`
    /// and `db` may always be given), from the output `res` and its gradient.
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)>;
}

/// `op` as candle's two-argument op (no bias).
struct NoBias<T>(T);

/// `op` as candle's three-argument op (with a bias).
struct WithBias<T>(T);

impl<T: WeightedOp> CustomOp2 for NoBias<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.0.fwd((s1, l1), (s2, l2), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.0.bwd(x, w, None, res, grad)?;
        Ok((dx, dw))
    }
}

impl<T: WeightedOp> CustomOp3 for WithBias<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.0.fwd((s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.0.bwd(x, w, Some(b), res, grad)
    }
}

/// Runs `op` on CPU `f32` operands (made contiguous), checking that the bias has one value per
/// row of `w` (`w`'s first dimension: output units or channels).
pub(super) fn apply<T: WeightedOp>(
    op: T,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
) -> Result<Tensor> {
    if let Some(b) = b {
        if b.dims() != [w.dim(0)?] {
            bail!("{}: bias {:?} for weight {:?}", T::NAME, b.dims(), w.dims());
        }
    }
    apply_any(op, x, w, b)
}

/// [`apply`] for ops whose third operand is not a per-row bias (its shape is the op's to check).
pub(super) fn apply_any<T: WeightedOp>(
    op: T,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
) -> Result<Tensor> {
    keep_freed_memory();
    check_cpu_f32(x, T::NAME, "x")?;
    check_cpu_f32(w, T::NAME, "w")?;
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    match b {
        Some(b) => {
            check_cpu_f32(b, T::NAME, "b")?;
            x.apply_op3(&w, &b.contiguous()?, WithBias(op))
        }
        None => x.apply_op2(&w, NoBias(op)),
    }
}
