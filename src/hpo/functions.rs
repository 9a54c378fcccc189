//! Test functions with known minima, in the unit cube (each maps `u` in `[0, 1]^d` to its
//! usual domain), for checking samplers: Branin (2-D), Hartmann-6 and Rosenbrock-5 on
//! `[-5, 10]^5`.

use std::f64::consts::PI;

/// A test function: its dimension, its minimum and its value at unit coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestFunction {
    /// Branin on `[-5, 10] x [0, 15]`; minimum 0.397887 at three points.
    Branin,
    /// Hartmann-6 on `[0, 1]^6`; minimum -3.32237.
    Hartmann6,
    /// Rosenbrock in 5 dimensions on `[-5, 10]^5`; minimum 0 at `(1, ..., 1)`.
    Rosenbrock5,
}

const HARTMANN_A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];
const HARTMANN_P: [[f64; 6]; 4] = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
];
const HARTMANN_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];

impl TestFunction {
    /// Number of coordinates.
    pub fn dims(self) -> usize {
        match self {
            TestFunction::Branin => 2,
            TestFunction::Hartmann6 => 6,
            TestFunction::Rosenbrock5 => 5,
        }
    }

    /// The global minimum.
    pub fn minimum(self) -> f64 {
        match self {
            TestFunction::Branin => 0.397_887_357_729_738,
            TestFunction::Hartmann6 => -3.322_368_011_415_51,
            TestFunction::Rosenbrock5 => 0.0,
        }
    }

    /// The value at unit coordinates `u` (`dims()` of them).
    pub fn at_unit(self, u: &[f64]) -> f64 {
        match self {
            TestFunction::Branin => {
                let (x1, x2) = (-5.0 + 15.0 * u[0], 15.0 * u[1]);
                let (b, c, t) = (5.1 / (4.0 * PI * PI), 5.0 / PI, 1.0 / (8.0 * PI));
                (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
            }
            TestFunction::Hartmann6 => -(0..4)
                .map(|i| {
                    let r: f64 = (0..6)
                        .map(|j| HARTMANN_A[i][j] * (u[j] - HARTMANN_P[i][j]).powi(2))
                        .sum();
                    HARTMANN_ALPHA[i] * (-r).exp()
                })
                .sum::<f64>(),
            TestFunction::Rosenbrock5 => {
                let x: Vec<f64> = u.iter().map(|v| -5.0 + 15.0 * v).collect();
                x.windows(2)
                    .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (w[0] - 1.0).powi(2))
                    .sum()
            }
        }
    }
}
