//! Max pooling with a correct gradient.
//!
//! candle 0.11's `Tensor::max_pool2d` backward scales the gradient by the mean of the max mask
//! (a unique maximum gets `grad / k²`) and upsamples it with nearest-neighbour interpolation,
//! which misaligns windows when a side is not a multiple of `k` (11x11 -> 5x5 in the MNIST CNN).
//! This version crops to whole windows, moves each window's `k²` values to a last axis and
//! gathers them at their `argmax`: candle's argmax keeps the first maximum, and the gather's
//! backward scatters the full gradient to that one place. So ties (everywhere in binary spike
//! maps) send the gradient to the first maximum in row-major order, as PyTorch does, instead of
//! to every tied maximum as a `max` reduction's backward would.

use candle_core::{Tensor, D};

/// Non-overlapping `k x k` max pooling (stride `k`, trailing rows/columns dropped like PyTorch).
///
/// # Shapes
/// `x`: `[B, C, H, W]` -> `[B, C, H / k, W / k]`.
pub fn max_pool2d(x: &Tensor, k: usize) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (oh, ow) = (h / k, w / k);
    if k <= 1 {
        return Ok(x.clone());
    }
    if oh == 0 || ow == 0 {
        candle_core::bail!("max_pool2d: a {h}x{w} map is smaller than the {k}x{k} window");
    }
    let cropped = if oh * k != h || ow * k != w {
        x.narrow(2, 0, oh * k)?.narrow(3, 0, ow * k)?.contiguous()?
    } else {
        x.contiguous()?
    };
    let windows = cropped
        .reshape((b, c, oh, k, ow, k))?
        .permute((0, 1, 2, 4, 3, 5))?
        .reshape((b, c, oh, ow, k * k))?;
    let first_max = windows.argmax_keepdim(D::Minus1)?;
    windows.gather(&first_max, D::Minus1)?.squeeze(D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn forward_matches_candle_and_gradient_goes_to_the_max() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        // 5x5 map: pooled 2x2 windows drop the last row and column.
        let values: Vec<f32> = (0..25).map(|i| ((i * 7) % 11) as f32).collect();
        let x = Var::from_vec(values.clone(), (1, 1, 5, 5), &dev)?;
        let y = max_pool2d(x.as_tensor(), 2)?;
        assert_eq!(
            y.flatten_all()?.to_vec1::<f32>()?,
            x.as_tensor()
                .max_pool2d(2)?
                .flatten_all()?
                .to_vec1::<f32>()?
        );
        let grads = y.sum_all()?.backward()?;
        let g = grads
            .get(&x)
            .map(|g| g.flatten_all())
            .transpose()?
            .map(|g| g.to_vec1::<f32>())
            .transpose()?
            .unwrap_or_default();
        // each of the 4 windows sends exactly 1.0 to its (unique) maximum; cropped cells get 0
        assert_eq!(g.iter().sum::<f32>(), 4.0);
        for (wr, wc) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            let cells: Vec<usize> = [(0, 0), (0, 1), (1, 0), (1, 1)]
                .iter()
                .map(|(r, c)| (2 * wr + r) * 5 + 2 * wc + c)
                .collect();
            let max_cell = cells
                .iter()
                .copied()
                .max_by(|a, b| values[*a].total_cmp(&values[*b]))
                .unwrap_or(0);
            assert_eq!(g[max_cell], 1.0);
        }
        assert!(
            g[20..].iter().all(|&v| v == 0.0) && g.iter().skip(4).step_by(5).all(|&v| v == 0.0)
        );
        Ok(())
    }

    #[test]
    fn tied_maxima_send_the_gradient_to_the_first_one_only() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        // binary 2x5x7 map pooled by 2 and a 6x6 map pooled by 3: windows full of ties
        for (h, w, k) in [(5, 7, 2), (6, 6, 3)] {
            let values: Vec<f32> = (0..2 * h * w).map(|i| ((i * 7 / 3) % 2) as f32).collect();
            let x = Var::from_vec(values.clone(), (1, 2, h, w), &dev)?;
            let y = max_pool2d(x.as_tensor(), k)?;
            let (oh, ow) = (h / k, w / k);
            let up: Vec<f32> = (0..2 * oh * ow).map(|i| i as f32 + 1.0).collect();
            let up_t = Tensor::from_vec(up.clone(), (1, 2, oh, ow), &dev)?;
            let grads = (&y * &up_t)?.sum_all()?.backward()?;
            let g = match grads.get(&x) {
                Some(g) => g.flatten_all()?.to_vec1::<f32>()?,
                None => candle_core::bail!("no gradient for x"),
            };
            let mut want = vec![0.0f32; values.len()];
            let mut want_y = Vec::new();
            for p in 0..2 {
                for i in 0..oh {
                    for j in 0..ow {
                        let mut best = (p * h + i * k) * w + j * k;
                        for r in 0..k {
                            for c in 0..k {
                                let at = (p * h + i * k + r) * w + j * k + c;
                                if values[at] > values[best] {
                                    best = at;
                                }
                            }
                        }
                        want[best] = up[(p * oh + i) * ow + j];
                        want_y.push(values[best]);
                    }
                }
            }
            assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, want_y);
            assert_eq!(g, want);
        }
        Ok(())
    }
}
