//! Small numerical helpers of the samplers: normal tail logarithms and log-sum-exp.

use statrs::function::erf::erfc;

/// `log Phi(z)` of the standard normal, accurate far into the lower tail.
pub fn log_norm_cdf(z: f64) -> f64 {
    if z > -30.0 {
        (0.5 * erfc(-z / std::f64::consts::SQRT_2)).ln()
    } else {
        // Phi(z) ~ phi(z) / |z| (1 - 1 / z^2) below -30
        log_norm_pdf(z) - (-z).ln() + (1.0 - 1.0 / (z * z)).ln()
    }
}

/// `log phi(z)` of the standard normal density.
pub fn log_norm_pdf(z: f64) -> f64 {
    -0.5 * z * z - 0.5 * (2.0 * std::f64::consts::PI).ln()
}

/// `log(phi(z) + z Phi(z))`: the log of expected improvement per unit of standard deviation
/// at standardised improvement `z`, stable for very negative `z` (Ament et al. 2023).
pub fn log_h(z: f64) -> f64 {
    if z > -20.0 {
        let phi = log_norm_pdf(z).exp();
        let cdf = 0.5 * erfc(-z / std::f64::consts::SQRT_2);
        (phi + z * cdf).max(f64::MIN_POSITIVE).ln()
    } else {
        // phi(z) + z Phi(z) = phi(z) / z^2 (1 - 3 / z^2 + 15 / z^4 - 105 / z^6 + ...)
        let u = 1.0 / (z * z);
        log_norm_pdf(z) + u.ln() + (1.0 - 3.0 * u + 15.0 * u * u - 105.0 * u * u * u).ln()
    }
}

/// `log(sum(exp(v)))` without overflow (`-inf` for an empty slice).
pub fn log_sum_exp(v: &[f64]) -> f64 {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + v.iter().map(|x| (x - max).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_are_continuous_and_match_direct_values() {
        // log h on both sides of its switch, against numeric integration of E[max(Z + z, 0)]
        for z in [-25.0f64, -20.0001, -19.9999, -8.0, -2.0, 0.0, 1.5] {
            let steps = 200_000;
            let (lo, hi) = (-z, (-z).max(0.0) + 10.0);
            let dx = (hi - lo) / steps as f64;
            let ei: f64 = (0..steps)
                .map(|i| {
                    let t = lo + (i as f64 + 0.5) * dx;
                    (t + z) * log_norm_pdf(t).exp() * dx
                })
                .sum();
            assert!(
                (log_h(z) - ei.ln()).abs() < 2e-3,
                "z={z}: {} vs {}",
                log_h(z),
                ei.ln()
            );
        }
        assert!((log_norm_cdf(-29.999) - log_norm_cdf(-30.001)).abs() < 0.07);
        assert!((log_norm_cdf(0.0) - 0.5f64.ln()).abs() < 1e-12);
        assert!((log_sum_exp(&[1000.0, 1000.0]) - (1000.0 + 2f64.ln())).abs() < 1e-9);
    }
}
