//! The spike non-linearity with a surrogate gradient, written with plain tensor ops so it runs
//! on every candle device: forward `H(x) = [x > 0]`, backward `S'(x)` of the configured smooth
//! surrogate `S` (candle has no `atan`, and needs none: only the derivative is ever evaluated).

use std::f64::consts::PI;

use candle_core::{Result, Tensor};

use crate::config::Surrogate;

/// `S'(x)`, the surrogate's derivative, element-wise (no gradient flows through it).
///
/// # Shapes
/// `x`: any -> same shape.
pub fn surrogate_grad(x: &Tensor, surrogate: Surrogate) -> Result<Tensor> {
    surrogate_derivative(&x.detach(), surrogate)
}

/// `S'(x)` with the gradient of `x` kept (`S''` flows back): the surrogate Jacobian of a spiking
/// map, differentiated again by flossing.
///
/// # Shapes
/// `x`: any -> same shape.
pub fn surrogate_derivative(x: &Tensor, surrogate: Surrogate) -> Result<Tensor> {
    let x = x.clone();
    match surrogate {
        Surrogate::Atan { alpha } => {
            // α/2 / (1 + (π/2·α·x)²)
            ((x * (PI / 2.0 * alpha))?.sqr()? + 1.0)?.recip()? * (alpha / 2.0)
        }
        Surrogate::FastSigmoid { slope } => ((x.abs()? * slope)? + 1.0)?.sqr()?.recip(),
        Surrogate::Triangle { width } => {
            // max(0, 1 - |x|/w) / w
            ((x.abs()? * (-1.0 / width))? + 1.0)?.relu()? * (1.0 / width)
        }
        Surrogate::StraightThrough => x.ones_like(),
    }
}

/// Heaviside spikes `[x > 0]` whose gradient is `S'(x)`.
///
/// Computed as `H(x) + (x·g - (x·g).detach())` with `g = S'(x)` detached: the bracket is exactly
/// zero in the forward pass, and its derivative is `g`.
///
/// # Shapes
/// `x`: any -> same shape (0.0 / 1.0 in `x`'s dtype).
pub fn spike(x: &Tensor, surrogate: Surrogate) -> Result<Tensor> {
    let step = x.gt(0.0)?.to_dtype(x.dtype())?;
    let slope = surrogate_grad(x, surrogate)?;
    let tracked = (x * &slope)?;
    step + (&tracked - tracked.detach())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// The smooth surrogates themselves, for finite differences (straight-through: `S(x) = x`).
    fn smooth(s: Surrogate, x: f64) -> f64 {
        match s {
            Surrogate::Atan { alpha } => (PI / 2.0 * alpha * x).atan() / PI + 0.5,
            Surrogate::FastSigmoid { slope } => x / (1.0 + slope * x.abs()),
            Surrogate::Triangle { width } => {
                // integral of the triangle density: a piecewise quadratic CDF
                let u = (x / width).clamp(-1.0, 1.0);
                if u < 0.0 {
                    0.5 * (1.0 + u) * (1.0 + u)
                } else {
                    1.0 - 0.5 * (1.0 - u) * (1.0 - u)
                }
            }
            Surrogate::StraightThrough => x,
        }
    }

    #[test]
    fn backward_is_the_derivative_of_the_smooth_surrogate_and_forward_is_a_step() -> Result<()> {
        let surrogates = [
            Surrogate::Atan { alpha: 2.0 },
            Surrogate::Atan { alpha: 5.0 },
            Surrogate::FastSigmoid { slope: 25.0 },
            Surrogate::Triangle { width: 1.0 },
            Surrogate::Triangle { width: 0.3 },
            Surrogate::StraightThrough,
        ];
        // a grid that avoids the triangle's kinks at ±w and 0 for the finite differences
        let xs: Vec<f64> = (0..81).map(|i| -2.0 + 0.05 * i as f64 + 0.0123).collect();
        for s in surrogates {
            let x = Var::from_vec(xs.clone(), xs.len(), &Device::Cpu)?;
            let y = spike(x.as_tensor(), s)?;
            let forward = y.to_vec1::<f64>()?;
            let grads = y.sum_all()?.backward()?;
            let grad = match grads.get(&x) {
                Some(g) => g.to_vec1::<f64>()?,
                None => candle_core::bail!("no gradient for x"),
            };
            for (i, &xv) in xs.iter().enumerate() {
                assert_eq!(
                    forward[i],
                    if xv > 0.0 { 1.0 } else { 0.0 },
                    "{s:?} at {xv}"
                );
                let h = 1e-6;
                let fd = (smooth(s, xv + h) - smooth(s, xv - h)) / (2.0 * h);
                assert!(
                    (grad[i] - fd).abs() < 1e-6 * (1.0 + fd.abs()),
                    "{s:?} at {xv}: backward {} vs dS/dx {fd}",
                    grad[i]
                );
            }
        }
        // f32 works the same way
        let x = Tensor::new(&[-0.5f32, 0.0, 0.25], &Device::Cpu)?;
        let y = spike(&x, Surrogate::default())?;
        assert_eq!(y.dtype(), DType::F32);
        assert_eq!(y.to_vec1::<f32>()?, vec![0.0, 0.0, 1.0]);
        Ok(())
    }
}
