//! The Wilcoxon signed-rank test of paired deltas: for up to 50 non-zero deltas the exact null
//! distribution of the positive rank sum (over all sign assignments, with tied ranks averaged),
//! above that the normal approximation with the tie correction; zero deltas are dropped. This is
//! what SciPy's `wilcoxon(x, y)` computes with its defaults.

use statrs::distribution::{ContinuousCDF, Normal};

/// Largest sample for which the exact distribution is used (SciPy's cut-off).
const EXACT_MAX_N: usize = 50;

/// Result of [`wilcoxon_signed_rank`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wilcoxon {
    /// Number of non-zero deltas ranked.
    pub n: usize,
    /// The smaller of the positive and negative rank sums.
    pub statistic: f64,
    /// Two-sided p-value.
    pub pvalue: f64,
    /// Whether the p-value comes from the exact distribution (else the normal approximation).
    pub exact: bool,
}

/// Two-sided signed-rank test of `deltas` against a zero median; zero deltas are dropped.
/// `None` when no delta is non-zero.
pub fn wilcoxon_signed_rank(deltas: &[f64]) -> Option<Wilcoxon> {
    let nonzero: Vec<f64> = deltas.iter().copied().filter(|d| *d != 0.0).collect();
    let n = nonzero.len();
    if n == 0 {
        return None;
    }
    let (ranks, tie_groups) = average_ranks(&nonzero);
    let plus: f64 = nonzero
        .iter()
        .zip(&ranks)
        .filter(|(d, _)| **d > 0.0)
        .map(|(_, r)| r)
        .sum();
    let total = (n * (n + 1)) as f64 / 2.0;
    let statistic = plus.min(total - plus);
    if n <= EXACT_MAX_N {
        // ranks are multiples of 1/2: count sign assignments over doubled (integer) ranks
        let doubled: Vec<usize> = ranks.iter().map(|r| (2.0 * r).round() as usize).collect();
        let pvalue =
            (2.0 * exact_lower_tail(&doubled, (2.0 * statistic).round() as usize)).min(1.0);
        return Some(Wilcoxon {
            n,
            statistic,
            pvalue,
            exact: true,
        });
    }
    let mean = total / 2.0;
    let tie_term: f64 = tie_groups
        .iter()
        .map(|&t| (t * t * t - t) as f64)
        .sum::<f64>();
    let var = (n * (n + 1) * (2 * n + 1)) as f64 / 24.0 - tie_term / 48.0;
    let pvalue = if var > 0.0 {
        let z = (statistic - mean) / var.sqrt();
        let normal = Normal::standard();
        (2.0 * normal.cdf(-z.abs())).min(1.0)
    } else {
        1.0
    };
    Some(Wilcoxon {
        n,
        statistic,
        pvalue,
        exact: false,
    })
}

/// Ranks of `|values|` (1-based, ties sharing their average rank) and the size of each tie
/// group.
fn average_ranks(values: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].abs().total_cmp(&values[b].abs()));
    let mut ranks = vec![0.0; values.len()];
    let mut groups = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]].abs() == values[order[i]].abs() {
            j += 1;
        }
        let rank = (i + j + 2) as f64 / 2.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        groups.push(j - i + 1);
        i = j + 1;
    }
    (ranks, groups)
}

/// `P(S <= w)` where `S` sums a random subset of `weights` (each in with probability 1/2): the
/// null distribution of the positive rank sum, by counting subsets per sum.
fn exact_lower_tail(weights: &[usize], w: usize) -> f64 {
    let max: usize = weights.iter().sum();
    // counts[s]: subsets summing to s (as f64: 2^50 is exact in a double)
    let mut counts = vec![0.0f64; max + 1];
    counts[0] = 1.0;
    for &k in weights {
        for s in (k..=max).rev() {
            counts[s] += counts[s - k];
        }
    }
    let below: f64 = counts[..=w.min(max)].iter().sum();
    below / 2f64.powi(weights.len() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_tail_of_small_samples_by_enumeration() {
        // n = 3: subset sums of {1,2,3} are 0,1,2,3,3,4,5,6
        assert_eq!(exact_lower_tail(&[1, 2, 3], 0), 1.0 / 8.0);
        assert_eq!(exact_lower_tail(&[1, 2, 3], 3), 5.0 / 8.0);
        assert_eq!(exact_lower_tail(&[1, 2, 3], 6), 1.0);
    }

    #[test]
    fn all_positive_deltas_of_five_give_the_smallest_exact_p() -> Result<(), String> {
        let w = wilcoxon_signed_rank(&[0.1, 0.2, 0.3, 0.4, 0.5]).ok_or("no test")?;
        assert!(w.exact);
        assert_eq!(w.statistic, 0.0);
        assert_eq!(w.pvalue, 2.0 / 32.0);
        Ok(())
    }

    #[test]
    fn ties_share_ranks_and_zeros_are_dropped() -> Result<(), String> {
        let (ranks, groups) = average_ranks(&[1.0, -1.0, 2.0]);
        assert_eq!(ranks, vec![1.5, 1.5, 3.0]);
        assert_eq!(groups, vec![2, 1]);
        // SciPy 1.16: wilcoxon([1, -1, 2, 0]) -> statistic 1.5, p 0.75;
        // wilcoxon([.3, -.1, .2, .3, .5, -.4, .6, .3]) -> statistic 7, p 0.1484375
        let w = wilcoxon_signed_rank(&[1.0, -1.0, 2.0, 0.0]).ok_or("no test")?;
        assert_eq!((w.n, w.statistic, w.pvalue, w.exact), (3, 1.5, 0.75, true));
        let w =
            wilcoxon_signed_rank(&[0.3, -0.1, 0.2, 0.3, 0.5, -0.4, 0.6, 0.3]).ok_or("no test")?;
        assert_eq!((w.statistic, w.pvalue), (7.0, 0.1484375));
        assert!(wilcoxon_signed_rank(&[0.0, 0.0]).is_none());
        Ok(())
    }

    #[test]
    fn large_samples_use_the_normal_approximation() -> Result<(), String> {
        // 60 deltas 1..=60 with alternating signs; SciPy 1.16: statistic 900, p-value
        // 0.9120730845618369
        let deltas: Vec<f64> = (1..=60)
            .map(|i| if i % 2 == 0 { i as f64 } else { -(i as f64) })
            .collect();
        let w = wilcoxon_signed_rank(&deltas).ok_or("no test")?;
        assert!(!w.exact);
        assert_eq!(w.statistic, 900.0);
        let (mean, sd) = (915.0f64, (60.0f64 * 61.0 * 121.0 / 24.0).sqrt());
        let z: f64 = (900.0 - mean) / sd;
        let want = 2.0 * Normal::standard().cdf(z);
        assert!((w.pvalue - want).abs() < 1e-12, "{} vs {want}", w.pvalue);
        assert!((w.pvalue - 0.9120730845618369).abs() < 1e-9);
        Ok(())
    }
}
