//! 2-D convolution by im2col + gemm, with bias and ReLU fused.

use std::sync::Mutex;

use autoresearch_kernels::conv::{conv_backward, conv_forward, ConvDims};
use autoresearch_kernels::conv_pool::{conv_pool_backward, conv_pool_forward, pooled_hw};
use candle_core::{bail, CpuStorage, Layout, Result, Shape, Tensor};

use super::linear::{kernel_err, read, slice, tensor};
use super::weighted::{apply, WeightedOp};

/// The fused convolution op (stride 1, zero `padding`, ReLU after the bias when `relu`).
struct Conv {
    padding: usize,
    relu: bool,
}

impl Conv {
    fn dims(&self, x: &[usize], w: &[usize]) -> Result<ConvDims> {
        let (&[batch, channels, height, width], &[out_channels, wc, kh, kw]) = (x, w) else {
            bail!("fused conv2d: x {x:?} and w {w:?} must both have rank 4");
        };
        if wc != channels || kh != kw {
            bail!("fused conv2d: weight {w:?} does not fit input {x:?} (square kernels only)");
        }
        let d = ConvDims {
            batch,
            channels,
            height,
            width,
            out_channels,
            kernel: kh,
            padding: self.padding,
        };
        d.out_hw().map_err(kernel_err)?;
        Ok(d)
    }
}

impl WeightedOp for Conv {
    const NAME: &'static str = "fused conv2d";

    fn fwd(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let d = self.dims(x.1.dims(), w.1.dims())?;
        let (oh, ow) = d.out_hw().map_err(kernel_err)?;
        let op = "fused conv2d";
        let bias = b.map(|(s, l)| slice(s, l, op)).transpose()?;
        let mut out = vec![0.0f32; d.batch * d.out_channels * oh * ow];
        conv_forward(
            slice(x.0, x.1, op)?,
            slice(w.0, w.1, op)?,
            bias,
            self.relu,
            d,
            &mut out,
        )
        .map_err(kernel_err)?;
        let shape = Shape::from((d.batch, d.out_channels, oh, ow));
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = self.dims(x.dims(), w.dims())?;
        let mut dx = x.track_op().then(|| vec![0.0f32; x.elem_count()]);
        // a detached kernel (a relaxation of the input) needs no weight gradient
        let mut dw = w.track_op().then(|| vec![0.0f32; w.elem_count()]);
        let mut db = b.is_some().then(|| vec![0.0f32; d.out_channels]);
        let op = "fused conv2d backward";
        read(grad, op, |g| {
            read(x, op, |xs| {
                read(w, op, |ws| {
                    read(res, op, |y| {
                        conv_backward(
                            xs,
                            ws,
                            g,
                            self.relu.then_some(y),
                            d,
                            dx.as_deref_mut(),
                            dw.as_deref_mut(),
                            db.as_deref_mut(),
                        )
                        .map_err(kernel_err)
                    })
                })
            })
        })?;
        Ok((
            dx.map(|v| tensor(v, x.shape())).transpose()?,
            dw.map(|v| tensor(v, w.shape())).transpose()?,
            db.map(|v| tensor(v, d.out_channels)).transpose()?,
        ))
    }
}

/// Stride-1 convolution with zero `padding`, plus bias, followed by ReLU when `relu`; the
/// backward pass masks the gradient by the output (`y > 0`) and computes `dx` only when `x`
/// needs a gradient. Batches of any size run in bounded memory (the column buffers hold a
/// chunk of images).
///
/// # Shapes
/// `x`: `[B, C, H, W]`, `w`: `[O, C, k, k]`, `b`: `[O]` -> `[B, O, H + 2p - k + 1, W + 2p - k + 1]`.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    padding: usize,
    relu: bool,
) -> Result<Tensor> {
    let conv = Conv { padding, relu };
    conv.dims(x.dims(), w.dims())?;
    apply(conv, x, w, b)
}

/// The fused convolution + max pooling op; the forward pass keeps each window's winning
/// position for the backward pass.
struct ConvPool {
    conv: Conv,
    k: usize,
    arg: Mutex<Vec<u32>>,
}

impl WeightedOp for ConvPool {
    const NAME: &'static str = "fused conv2d + max_pool2d";

    fn fwd(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let d = self.conv.dims(x.1.dims(), w.1.dims())?;
        let (ph, pw) = pooled_hw(&d, self.k).map_err(kernel_err)?;
        let op = "fused conv2d + max_pool2d";
        let bias = b.map(|(s, l)| slice(s, l, op)).transpose()?;
        let n = d.batch * d.out_channels * ph * pw;
        let (mut out, mut arg) = (vec![0.0f32; n], vec![0u32; n]);
        let (xs, ws) = (slice(x.0, x.1, op)?, slice(w.0, w.1, op)?);
        conv_pool_forward(xs, ws, bias, self.conv.relu, d, self.k, &mut out, &mut arg)
            .map_err(kernel_err)?;
        match self.arg.lock() {
            Ok(mut slot) => *slot = arg,
            Err(_) => bail!("{op}: window positions poisoned"),
        }
        let shape = Shape::from((d.batch, d.out_channels, ph, pw));
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = self.conv.dims(x.dims(), w.dims())?;
        let mut dx = x.track_op().then(|| vec![0.0f32; x.elem_count()]);
        // a detached kernel (a relaxation of the input) needs no weight gradient
        let mut dw = w.track_op().then(|| vec![0.0f32; w.elem_count()]);
        let mut db = b.is_some().then(|| vec![0.0f32; d.out_channels]);
        let op = "fused conv2d + max_pool2d backward";
        let arg = match self.arg.lock() {
            Ok(arg) => arg,
            Err(_) => bail!("{op}: window positions poisoned"),
        };
        read(grad, op, |g| {
            read(x, op, |xs| {
                read(w, op, |ws| {
                    let (dxs, dbs) = (dx.as_deref_mut(), db.as_deref_mut());
                    conv_pool_backward(xs, ws, g, &arg, d, self.k, dxs, dw.as_deref_mut(), dbs)
                        .map_err(kernel_err)
                })
            })
        })?;
        Ok((
            dx.map(|v| tensor(v, x.shape())).transpose()?,
            dw.map(|v| tensor(v, w.shape())).transpose()?,
            db.map(|v| tensor(v, d.out_channels)).transpose()?,
        ))
    }
}

/// [`conv2d`] followed by [`super::max_pool2d`] with `k x k` windows, in one op: the full-size
/// convolution output exists only image by image inside the kernel (and its gradient only
/// chunk by chunk in the backward pass), which saves allocating, writing and re-reading two
/// full-size tensors per layer. Same results and gradients as the two ops.
///
/// # Shapes
/// `x`: `[B, C, H, W]`, `w`: `[O, C, k', k']`, `b`: `[O]` ->
/// `[B, O, (H + 2p - k' + 1) / k, (W + 2p - k' + 1) / k]`.
pub fn conv2d_pool(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    padding: usize,
    relu: bool,
    k: usize,
) -> Result<Tensor> {
    if k <= 1 {
        return conv2d(x, w, b, padding, relu);
    }
    let conv = Conv { padding, relu };
    let d = conv.dims(x.dims(), w.dims())?;
    pooled_hw(&d, k).map_err(kernel_err)?;
    let fused = ConvPool {
        conv,
        k,
        arg: Mutex::new(Vec::new()),
    };
    apply(fused, x, w, b)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_same_grads, rand, rel};
    use super::*;
    use candle_core::Var;

    #[test]
    fn forward_and_gradients_match_plain_candle() {
        // (B, C, H, W, O, k, padding)
        for (bs, c, h, w, o, k, pad) in [
            (1, 1, 5, 5, 1, 1, 0),
            (2, 3, 7, 6, 4, 3, 1),
            (3, 2, 9, 8, 3, 2, 0),
            (11, 4, 13, 11, 5, 3, 0),
            (9, 2, 10, 10, 3, 2, 1),
        ] {
            for (relu, bias, x_var) in [
                (true, true, true),
                (false, true, true),
                (true, false, false),
            ] {
                let x = Var::from_tensor(&rand(&[bs, c, h, w], 1)).unwrap();
                let wt = Var::from_tensor(&rand(&[o, c, k, k], 2)).unwrap();
                let b = Var::from_tensor(&rand(&[o], 3)).unwrap();
                let xt = if x_var {
                    x.as_tensor().clone()
                } else {
                    x.as_tensor().detach()
                };
                let fused = conv2d(&xt, &wt, bias.then_some(b.as_tensor()), pad, relu).unwrap();
                let mut plain = xt.conv2d(&wt, pad, 1, 1, 1).unwrap();
                if bias {
                    plain = plain
                        .broadcast_add(&b.reshape((1, o, 1, 1)).unwrap())
                        .unwrap();
                }
                if relu {
                    plain = plain.relu().unwrap();
                }
                assert_eq!(fused.dims(), plain.dims());
                assert!(rel(&fused, &plain) < 1e-5);
                let up = rand(plain.dims(), 4);
                let vars = [
                    ("w", wt.as_tensor()),
                    ("b", b.as_tensor()),
                    ("x", x.as_tensor()),
                ];
                assert_same_grads(&fused, &plain, &up, &vars, &format!("{bs}x{c}x{h}x{w}"));
            }
        }
    }

    #[test]
    fn wrong_shapes_are_errors() {
        let x = rand(&[2, 3, 5, 5], 1);
        assert!(conv2d(&x, &rand(&[4, 2, 3, 3], 2), None, 0, false).is_err());
        assert!(conv2d(&x, &rand(&[4, 3, 7, 7], 2), None, 0, false).is_err());
        assert!(conv2d(&x, &rand(&[4, 3, 3, 3], 2), Some(&rand(&[3], 3)), 0, false).is_err());
        assert!(conv2d(
            &x.flatten_from(2).unwrap(),
            &rand(&[4, 3, 3, 3], 2),
            None,
            0,
            false
        )
        .is_err());
    }

    #[test]
    fn conv_pool_matches_conv_then_pool() {
        // (B, C, H, W, O, k, padding, pool)
        for (bs, c, h, w, o, k, pad, pool) in [
            (3, 1, 12, 11, 4, 3, 0, 2),
            (4, 3, 9, 10, 5, 3, 1, 2),
            (2, 2, 11, 11, 3, 2, 0, 3),
        ] {
            for (relu, bias, x_var) in [
                (true, true, true),
                (false, true, false),
                (true, false, true),
            ] {
                // quantised inputs: ties inside windows and windows cut to 0 by the ReLU
                let q = |t: Tensor| ((t * 2.0).unwrap().round().unwrap() / 2.0).unwrap();
                let x = Var::from_tensor(&q(rand(&[bs, c, h, w], 1))).unwrap();
                let wt = Var::from_tensor(&q(rand(&[o, c, k, k], 2))).unwrap();
                let b = Var::from_tensor(&rand(&[o], 3)).unwrap();
                let xt = if x_var {
                    x.as_tensor().clone()
                } else {
                    x.as_tensor().detach()
                };
                let bt = bias.then_some(b.as_tensor());
                let fused = conv2d_pool(&xt, &wt, bt, pad, relu, pool).unwrap();
                let two = super::super::max_pool2d(&conv2d(&xt, &wt, bt, pad, relu).unwrap(), pool)
                    .unwrap();
                assert_eq!(fused.dims(), two.dims());
                assert!(rel(&fused, &two) < 1e-5);
                let up = rand(two.dims(), 4);
                let gf = (&fused * &up)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                let gp = (&two * &up).unwrap().sum_all().unwrap().backward().unwrap();
                for (name, v) in [("w", &wt), ("b", &b), ("x", &x)] {
                    match (gf.get(v), gp.get(v)) {
                        (Some(a), Some(b)) => assert!(rel(a, b) < 1e-5, "d{name}"),
                        (None, None) => {}
                        (a, b) => panic!("d{name}: fused {} two ops {}", a.is_some(), b.is_some()),
                    }
                }
            }
        }
        let x = rand(&[1, 1, 4, 4], 1);
        assert!(conv2d_pool(&x, &rand(&[1, 1, 3, 3], 2), None, 0, true, 3).is_err());
    }
}
