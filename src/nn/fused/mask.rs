//! Elementwise product with a fixed mask (dropout's), its gradient masked the same way.
//!
//! The plain chain, `x.broadcast_mul(&mask)`, costs candle's autograd a gradient for the mask
//! too (a product, a zero tensor and a sum the size of `x`, all thrown away); this op keeps only
//! the input's gradient and runs both passes multi-threaded. Values are bit-identical to the
//! plain product, forward and backward.

use std::sync::Arc;

use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::linear::{check_cpu_f32, keep_freed_memory, read, slice, tensor};

/// Values per parallel task.
const CHUNK: usize = 1 << 15;

/// The op, holding the mask (as many values as its input, row-major).
struct MaskMul {
    mask: Arc<Vec<f32>>,
}

impl MaskMul {
    /// `values * mask`, element by element, multi-threaded.
    fn product(&self, values: &[f32], op: &str) -> Result<Vec<f32>> {
        if values.len() != self.mask.len() {
            bail!(
                "{op}: a mask of {} values for {} inputs",
                self.mask.len(),
                values.len()
            );
        }
        let mut out = vec![0.0f32; values.len()];
        out.par_chunks_mut(CHUNK)
            .zip(values.par_chunks(CHUNK))
            .zip(self.mask.par_chunks(CHUNK))
            .for_each(|((o, v), m)| {
                for ((o, v), m) in o.iter_mut().zip(v).zip(m) {
                    *o = v * m;
                }
            });
        Ok(out)
    }
}

impl CustomOp1 for MaskMul {
    fn name(&self) -> &'static str {
        "fused-mask-mul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = self.product(slice(s, l, "fused mask_mul")?, "fused mask_mul")?;
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let op = "fused mask_mul backward";
        let dx = read(grad, op, |g| self.product(g, op))?;
        Ok(Some(tensor(dx, x.shape())?))
    }
}

/// `x * mask` element by element, the gradient of `x` masked alike (none for the mask).
///
/// # Shapes
/// `x`: any shape, `mask`: `x.elem_count()` values in `x`'s row-major order -> `x`'s shape.
pub fn mask_mul(x: &Tensor, mask: Vec<f32>) -> Result<Tensor> {
    keep_freed_memory();
    check_cpu_f32(x, "fused mask_mul", "x")?;
    if mask.len() != x.elem_count() {
        bail!(
            "fused mask_mul: a mask of {} values for `x` of shape {:?}",
            mask.len(),
            x.dims()
        );
    }
    let op = MaskMul {
        mask: Arc::new(mask),
    };
    x.contiguous()?.apply_op1(op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn forward_and_gradient_equal_the_plain_product() -> Result<()> {
        let dev = Device::Cpu;
        // more values than one chunk, and not a multiple of it
        let rows = 3 * CHUNK / 17 + 5;
        let n = rows * 17;
        assert_ne!(n % CHUNK, 0);
        let x = Var::from_vec(
            (0..n)
                .map(|i| ((i * 7919) % 97) as f32 / 13.0 - 3.0)
                .collect(),
            (rows, 17),
            &dev,
        )?;
        let mask: Vec<f32> = (0..n)
            .map(|i| if (i * 31) % 10 < 3 { 0.0 } else { 1.0 / 0.7 })
            .collect();
        let m = Tensor::from_vec(mask.clone(), x.dims(), &dev)?;
        let fused = mask_mul(&x, mask)?;
        let plain = x.broadcast_mul(&m)?;
        let flat = |t: &Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>());
        assert_eq!(flat(&fused)?, flat(&plain)?);
        let up = Tensor::rand(0f32, 1f32, x.dims(), &dev)?;
        let gf = (&fused * &up)?.sum_all()?.backward()?;
        let gp = (&plain * &up)?.sum_all()?.backward()?;
        let (gf, gp) = (gf.get(&x), gp.get(&x));
        assert_eq!(
            flat(gf.expect("fused grad"))?,
            flat(gp.expect("plain grad"))?
        );
        // a transposed (non-contiguous) input reads in its logical order
        let xt = x.t()?;
        let mt = m.t()?.contiguous()?;
        let mask_t = flat(&mt)?;
        assert_eq!(flat(&mask_mul(&xt, mask_t)?)?, flat(&(xt * mt)?)?);
        assert!(mask_mul(&x, vec![1.0; 3]).is_err());
        Ok(())
    }
}
