//! Max pooling with the gradient routed to each window's first maximum.

use autoresearch_kernels::pool::{max_pool_backward, max_pool_forward, PoolDims};
use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::linear::{check_cpu_f32, keep_freed_memory, kernel_err, read, slice, tensor};

/// The fused pooling op with `k x k` windows.
struct MaxPool {
    k: usize,
}

impl MaxPool {
    fn dims(&self, x: &[usize]) -> Result<(PoolDims, [usize; 4])> {
        let &[b, c, h, w] = x else {
            bail!("fused max_pool2d: input {x:?} must have rank 4");
        };
        let d = PoolDims {
            planes: b * c,
            height: h,
            width: w,
            k: self.k,
        };
        let (oh, ow) = d.out_hw();
        if self.k == 0 || oh == 0 || ow == 0 {
            bail!(
                "fused max_pool2d: a {h}x{w} map does not hold a {0}x{0} window",
                self.k
            );
        }
        Ok((d, [b, c, oh, ow]))
    }
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "fused-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (d, out_dims) = self.dims(l.dims())?;
        let mut out = vec![0.0f32; out_dims.iter().product()];
        max_pool_forward(slice(s, l, "fused max_pool2d")?, d, &mut out).map_err(kernel_err)?;
        Ok((CpuStorage::F32(out), Shape::from(out_dims.to_vec())))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (d, _) = self.dims(x.dims())?;
        let mut dx = vec![0.0f32; x.elem_count()];
        let op = "fused max_pool2d backward";
        read(grad, op, |g| {
            read(x, op, |xs| {
                max_pool_backward(xs, g, d, &mut dx).map_err(kernel_err)
            })
        })?;
        Ok(Some(tensor(dx, x.shape())?))
    }
}

/// Non-overlapping `k x k` max pooling (trailing rows/columns dropped, like PyTorch); the
/// gradient goes to the first maximum of each window in row-major order, as PyTorch's does.
///
/// # Shapes
/// `x`: `[B, C, H, W]` -> `[B, C, H / k, W / k]`.
pub fn max_pool2d(x: &Tensor, k: usize) -> Result<Tensor> {
    keep_freed_memory();
    check_cpu_f32(x, "fused max_pool2d", "x")?;
    if k <= 1 {
        return Ok(x.clone());
    }
    let pool = MaxPool { k };
    pool.dims(x.dims())?;
    x.contiguous()?.apply_op1(pool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn forward_and_gradient_match_the_plain_pool_with_ties() {
        // (B, C, H, W, k) with odd sides; values on a coarse grid so windows hold ties
        for (b, c, h, w, k) in [
            (2, 3, 5, 7, 2),
            (3, 2, 11, 11, 2),
            (1, 4, 9, 8, 3),
            (2, 1, 4, 4, 2),
        ] {
            let n = b * c * h * w;
            for values in [
                (0..n).map(|i| ((i * 7919) % 5) as f32).collect::<Vec<_>>(),
                (0..n).map(|i| ((i * 7919 / 3) % 2) as f32).collect(),
                (0..n).map(|i| ((i * 7919) % 101) as f32 / 7.0).collect(),
            ] {
                let x = Var::from_vec(values, (b, c, h, w), &Device::Cpu).unwrap();
                let fused = max_pool2d(&x, k).unwrap();
                let plain = crate::nn::pool::max_pool2d(&x, k).unwrap();
                assert_eq!(
                    fused.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    plain.flatten_all().unwrap().to_vec1::<f32>().unwrap()
                );
                let up: Vec<f32> = (0..fused.elem_count()).map(|i| i as f32 + 1.0).collect();
                let up = Tensor::from_vec(up, fused.dims(), &Device::Cpu).unwrap();
                let gf = (&fused * &up)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                let gp = (&plain * &up)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                let to_vec = |g: &Tensor| g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert_eq!(to_vec(gf.get(&x).unwrap()), to_vec(gp.get(&x).unwrap()));
            }
        }
        let x = Tensor::zeros((1, 1, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(max_pool2d(&x, 4).is_err());
    }
}
