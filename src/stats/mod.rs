//! Statistics across seeds: per-group summaries (mean, sample std, 95% t interval, best seed)
//! and seed-paired comparisons (mean delta with its interval, paired t-test, Wilcoxon
//! signed-rank test, Cohen's d), on plain slices here and on the `runs` frame
//! ([`summarize`], [`paired_comparisons`]), and Welch's test of two samples' summaries
//! ([`welch`]: ours against a published mean ± std).

mod frames;
mod welch;
mod wilcoxon;

use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::error::{Error, Result};
use crate::metric::Mode;

pub use frames::{paired_comparisons, summarize, Group, Pair, PAIRED_COLUMNS, SUMMARY_COLUMNS};
pub use welch::{welch, SampleSummary, Welch};
pub use wilcoxon::{wilcoxon_signed_rank, Wilcoxon};

/// The median of the finite values in `values` (the mean of the middle two for an even
/// count); `None` when there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[mid]),
        _ => Some(0.5 * (v[mid - 1] + v[mid])),
    }
}

/// Mean, sample spread and 95% interval of one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Describe {
    /// Number of values.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (ddof 1); `None` for fewer than two values.
    pub std: Option<f64>,
    /// Lower end of the 95% Student-t interval of the mean; `None` for fewer than two values.
    pub ci95_low: Option<f64>,
    /// Upper end of the 95% Student-t interval of the mean.
    pub ci95_high: Option<f64>,
}

/// The best of `items` by `(value, seed)` in direction `mode`: the highest value for
/// [`Mode::Max`], the lowest for [`Mode::Min`] (NaN never wins over a number), and among equal
/// values the lowest seed, so every table names the same best seed.
pub fn best_by_seed<T>(
    items: impl IntoIterator<Item = T>,
    mode: Mode,
    value_and_seed: impl Fn(&T) -> (f64, u64),
) -> Option<T> {
    items.into_iter().min_by(|a, b| {
        let ((va, sa), (vb, sb)) = (value_and_seed(a), value_and_seed(b));
        mode.better_first(va, vb).then(sa.cmp(&sb))
    })
}

/// Summarises `values` (at least one).
pub fn describe(values: &[f64]) -> Result<Describe> {
    let n = values.len();
    if n == 0 {
        return Err(Error::Analysis("describe: no values".into()));
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Ok(Describe {
            n,
            mean,
            std: None,
            ci95_low: None,
            ci95_high: None,
        });
    }
    let std = sample_std(values, mean);
    let half = t_quantile_975(n - 1)? * std / (n as f64).sqrt();
    Ok(Describe {
        n,
        mean,
        std: Some(std),
        ci95_low: Some(mean - half),
        ci95_high: Some(mean + half),
    })
}

/// A seed-paired comparison of a model against a baseline (`delta = model - baseline`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedTest {
    /// Number of pairs.
    pub n: usize,
    /// Mean of the deltas.
    pub mean_delta: f64,
    /// Sample standard deviation of the deltas (ddof 1).
    pub std_delta: Option<f64>,
    /// Standard error of the mean delta.
    pub se_delta: Option<f64>,
    /// Lower end of the 95% Student-t interval of the mean delta.
    pub ci95_low: Option<f64>,
    /// Upper end of that interval.
    pub ci95_high: Option<f64>,
    /// Paired t statistic (mean delta over its standard error).
    pub t_statistic: Option<f64>,
    /// Two-sided p-value of the paired t-test.
    pub t_pvalue: Option<f64>,
    /// Wilcoxon signed-rank test of the deltas (zero deltas dropped).
    pub wilcoxon: Option<Wilcoxon>,
    /// Cohen's d of the paired deltas (d_z: mean delta over their standard deviation).
    pub cohens_d: Option<f64>,
}

/// Compares `model[i]` with `baseline[i]` (the same seed at each index).
pub fn paired(model: &[f64], baseline: &[f64]) -> Result<PairedTest> {
    if model.len() != baseline.len() || model.is_empty() {
        return Err(Error::Analysis(format!(
            "paired comparison needs equally many values, at least one; got {} and {}",
            model.len(),
            baseline.len()
        )));
    }
    let deltas: Vec<f64> = model.iter().zip(baseline).map(|(a, b)| a - b).collect();
    let d = describe(&deltas)?;
    let n = d.n;
    let se = d.std.map(|s| s / (n as f64).sqrt());
    // a zero spread leaves t and d undefined rather than infinite
    let usable = |x: f64| (x.is_finite() && x > 0.0).then_some(x);
    let t = se.and_then(usable).map(|se| d.mean / se);
    let t_pvalue = match t {
        Some(t) => Some(2.0 * (1.0 - students_t(n - 1)?.cdf(t.abs()))),
        None => None,
    };
    Ok(PairedTest {
        n,
        mean_delta: d.mean,
        std_delta: d.std,
        se_delta: se,
        ci95_low: d.ci95_low,
        ci95_high: d.ci95_high,
        t_statistic: t,
        t_pvalue,
        wilcoxon: wilcoxon_signed_rank(&deltas),
        cohens_d: d.std.and_then(usable).map(|s| d.mean / s),
    })
}

/// Sample standard deviation (ddof 1) of `values` around `mean`.
fn sample_std(values: &[f64], mean: f64) -> f64 {
    let ss: f64 = values.iter().map(|x| (x - mean) * (x - mean)).sum();
    (ss / (values.len() - 1) as f64).sqrt()
}

/// Student's t distribution with `dof` degrees of freedom.
fn students_t(dof: usize) -> Result<StudentsT> {
    StudentsT::new(0.0, 1.0, dof as f64)
        .map_err(|e| Error::Analysis(format!("Student t with {dof} degrees of freedom: {e}")))
}

/// The 97.5% quantile of Student's t with `dof` degrees of freedom (the 95% two-sided value).
fn t_quantile_975(dof: usize) -> Result<f64> {
    Ok(students_t(dof)?.inverse_cdf(0.975))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_tables() -> Result<()> {
        // two-sided 95% critical values from standard tables
        for (dof, want) in [(1, 12.706), (4, 2.776), (9, 2.262), (30, 2.042)] {
            assert!((t_quantile_975(dof)? - want).abs() < 1e-3, "dof {dof}");
        }
        Ok(())
    }

    #[test]
    fn one_value_has_no_spread() -> Result<()> {
        let d = describe(&[0.5])?;
        assert_eq!((d.n, d.mean, d.std, d.ci95_low), (1, 0.5, None, None));
        assert!(describe(&[]).is_err());
        Ok(())
    }

    #[test]
    fn the_best_seed_follows_the_direction_and_ties_go_to_the_lowest_seed() {
        let runs = [(0.3, 4), (0.1, 2), (0.1, 1), (f64::NAN, 0), (0.5, 3)];
        let best = |mode| best_by_seed(runs, mode, |r| (r.0, r.1)).map(|r| r.1);
        assert_eq!(best(Mode::Min), Some(1));
        assert_eq!(best(Mode::Max), Some(3));
        assert_eq!(
            best_by_seed([(0.2, 5), (0.2, 3)], Mode::Max, |r| (r.0, r.1)),
            Some((0.2, 3))
        );
    }

    #[test]
    fn identical_pairs_have_no_test_statistic() -> Result<()> {
        let p = paired(&[0.9, 0.8], &[0.9, 0.8])?;
        assert_eq!(p.mean_delta, 0.0);
        assert_eq!(p.t_statistic, None);
        assert_eq!(p.cohens_d, None);
        assert!(paired(&[1.0], &[1.0, 2.0]).is_err());
        Ok(())
    }
}
