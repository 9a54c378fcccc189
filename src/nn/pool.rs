//! Max pooling with a correct gradient.
//!
//! candle 0.11's `Tensor::max_pool2d` backward scales the gradient by the mean of the max mask
//! (a unique maximum gets `grad / k²`) and upsamples it with nearest-neighbour interpolation,
//! which misaligns windows when a side is not a multiple of `k` (11x11 -> 5x5 in the MNIST CNN).
//! This version crops to whole windows and takes `max` over reshaped window axes, whose backward
//! routes the full gradient to each window's maximum.

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
    cropped
        .reshape((b, c, oh, k, ow, k))?
        .max(D::Minus1)?
        .max(3)
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
}
