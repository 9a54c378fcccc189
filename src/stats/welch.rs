//! Welch's unequal-variance t-test from two samples' summaries (mean, sample std, size), so
//! our seeds can be compared with a published `mean ± std` when the per-seed values are not
//! published.

use statrs::distribution::{ContinuousCDF, StudentsT};

use super::describe;
use crate::error::Result;

/// One sample as its mean, sample standard deviation (ddof 1) and size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleSummary {
    /// Sample mean.
    pub mean: f64,
    /// Sample standard deviation (ddof 1).
    pub std: f64,
    /// Number of values.
    pub n: usize,
}

impl SampleSummary {
    /// The summary of `values` (at least one; one value has std 0).
    pub fn of(values: &[f64]) -> Result<SampleSummary> {
        let d = describe(values)?;
        Ok(SampleSummary {
            mean: d.mean,
            std: d.std.unwrap_or(0.0),
            n: d.n,
        })
    }

    /// The squared standard error of the mean.
    fn se2(self) -> f64 {
        self.std * self.std / self.n as f64
    }
}

/// Welch's test of `a - b`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Welch {
    /// `mean(a) - mean(b)`.
    pub diff: f64,
    /// The t statistic (the difference over its standard error).
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom (not an integer in general).
    pub dof: f64,
    /// Two-sided p-value.
    pub p_two_sided: f64,
}

/// Welch's t-test of `a` against `b`; `None` when either sample has fewer than two values or
/// both spreads are zero (the test is undefined).
pub fn welch(a: SampleSummary, b: SampleSummary) -> Option<Welch> {
    if a.n < 2 || b.n < 2 {
        return None;
    }
    let (va, vb) = (a.se2(), b.se2());
    let se2 = va + vb;
    if !(se2.is_finite() && se2 > 0.0) {
        return None;
    }
    let diff = a.mean - b.mean;
    let t = diff / se2.sqrt();
    let dof = se2 * se2 / (va * va / (a.n - 1) as f64 + vb * vb / (b.n - 1) as f64);
    let dist = StudentsT::new(0.0, 1.0, dof).ok()?;
    Some(Welch {
        diff,
        t,
        dof,
        p_two_sided: 2.0 * (1.0 - dist.cdf(t.abs())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_textbook_case_and_is_antisymmetric() -> Result<()> {
        // equal sizes and spreads: dof = 2(n - 1) = 8, se = 1, t = -2; Student's t with 8
        // degrees of freedom gives a two-sided p of 0.0805 at |t| = 2 (tables; scipy's
        // ttest_ind(equal_var=False) agrees)
        let a = SampleSummary::of(&[1.0, 2.0, 3.0, 4.0, 5.0])?;
        let b = SampleSummary::of(&[3.0, 4.0, 5.0, 6.0, 7.0])?;
        let w = welch(a, b).ok_or_else(|| crate::Error::Analysis("undefined".into()))?;
        assert!((w.t + 2.0).abs() < 1e-12 && (w.dof - 8.0).abs() < 1e-12);
        assert!((w.p_two_sided - 0.0805).abs() < 1e-4, "{}", w.p_two_sided);
        let r = welch(b, a).ok_or_else(|| crate::Error::Analysis("undefined".into()))?;
        assert_eq!((r.t, r.dof, r.p_two_sided), (-w.t, w.dof, w.p_two_sided));
        // unequal spreads pull the degrees of freedom towards the noisier sample's n - 1
        let wide = SampleSummary {
            mean: 0.0,
            std: 10.0,
            n: 5,
        };
        let narrow = SampleSummary {
            mean: 0.0,
            std: 0.1,
            n: 50,
        };
        let u = welch(wide, narrow).ok_or_else(|| crate::Error::Analysis("undefined".into()))?;
        assert!((u.dof - 4.0).abs() < 0.01 && u.p_two_sided > 0.999);
        Ok(())
    }

    #[test]
    fn undefined_without_spread_or_with_one_value() {
        let one = SampleSummary {
            mean: 1.0,
            std: 0.0,
            n: 1,
        };
        let flat = SampleSummary {
            mean: 1.0,
            std: 0.0,
            n: 5,
        };
        assert!(welch(one, flat).is_none());
        assert!(welch(flat, flat).is_none());
    }
}
