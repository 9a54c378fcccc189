//! Surrogate derivatives `S'(x)` of the spike non-linearity, as small `Copy` types so that a
//! scan generic over [`SurrogateFn`] is compiled (and vectorised) once per surrogate.

/// Which surrogate gradient a spiking kernel uses, with its parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Surrogate {
    /// `S'(x) = α/2 / (1 + (π/2·α·x)²)`.
    Atan {
        /// Steepness α.
        alpha: f32,
    },
    /// `S'(x) = 1 / (1 + k|x|)²`.
    FastSigmoid {
        /// Slope k.
        slope: f32,
    },
    /// `S'(x) = max(0, 1 - |x|/w) / w`.
    Triangle {
        /// Half-width w (> 0).
        width: f32,
    },
    /// `S'(x) = 1`.
    StraightThrough,
}

impl Surrogate {
    /// `S'(x)` (scalar reference; the kernels use the monomorphised [`SurrogateFn`]s).
    pub fn grad(self, x: f32) -> f32 {
        match self {
            Surrogate::Atan { alpha } => Atan::new(alpha).grad(x),
            Surrogate::FastSigmoid { slope } => FastSigmoid::new(slope).grad(x),
            Surrogate::Triangle { width } => Triangle::new(width).grad(x),
            Surrogate::StraightThrough => StraightThrough.grad(x),
        }
    }
}

/// A surrogate derivative evaluated element by element in a hot loop.
pub trait SurrogateFn: Copy + Send + Sync {
    /// `S'(x)`.
    fn grad(&self, x: f32) -> f32;
}

/// Arctangent surrogate with precomputed constants.
#[derive(Debug, Clone, Copy)]
pub struct Atan {
    half_alpha: f32,
    scale: f32,
}

impl Atan {
    /// For steepness `alpha`.
    pub fn new(alpha: f32) -> Self {
        Atan {
            half_alpha: alpha / 2.0,
            scale: std::f32::consts::FRAC_PI_2 * alpha,
        }
    }
}

impl SurrogateFn for Atan {
    #[inline(always)]
    fn grad(&self, x: f32) -> f32 {
        let u = x * self.scale;
        self.half_alpha / (u * u + 1.0)
    }
}

/// Fast-sigmoid (SuperSpike) surrogate.
#[derive(Debug, Clone, Copy)]
pub struct FastSigmoid {
    slope: f32,
}

impl FastSigmoid {
    /// For slope `slope`.
    pub fn new(slope: f32) -> Self {
        FastSigmoid { slope }
    }
}

impl SurrogateFn for FastSigmoid {
    #[inline(always)]
    fn grad(&self, x: f32) -> f32 {
        let d = x.abs() * self.slope + 1.0;
        1.0 / (d * d)
    }
}

/// Triangle surrogate.
#[derive(Debug, Clone, Copy)]
pub struct Triangle {
    inv_width: f32,
}

impl Triangle {
    /// For half-width `width`.
    pub fn new(width: f32) -> Self {
        Triangle {
            inv_width: 1.0 / width,
        }
    }
}

impl SurrogateFn for Triangle {
    #[inline(always)]
    fn grad(&self, x: f32) -> f32 {
        (1.0 - x.abs() * self.inv_width).max(0.0) * self.inv_width
    }
}

/// Straight-through surrogate.
#[derive(Debug, Clone, Copy)]
pub struct StraightThrough;

impl SurrogateFn for StraightThrough {
    #[inline(always)]
    fn grad(&self, _x: f32) -> f32 {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivatives_match_their_formulas() {
        let pi = std::f64::consts::PI;
        for i in 0..41 {
            let x = -2.0 + 0.1 * i as f64 + 0.003;
            let xf = x as f32;
            let atan = 2.5 / (1.0 + (pi / 2.0 * 5.0 * x).powi(2));
            let fs = 1.0 / (1.0 + 25.0 * x.abs()).powi(2);
            let tri = (1.0 - x.abs() / 0.7).max(0.0) / 0.7;
            let got = [
                Surrogate::Atan { alpha: 5.0 }.grad(xf) as f64,
                Surrogate::FastSigmoid { slope: 25.0 }.grad(xf) as f64,
                Surrogate::Triangle { width: 0.7 }.grad(xf) as f64,
                Surrogate::StraightThrough.grad(xf) as f64,
            ];
            for (g, w) in got.iter().zip([atan, fs, tri, 1.0]) {
                assert!((g - w).abs() < 1e-5 * (1.0 + w.abs()), "x={x}: {g} vs {w}");
            }
        }
    }
}
