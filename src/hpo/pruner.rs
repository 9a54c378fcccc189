//! Pruners: after each epoch a trial reports its objective, and a pruner compares it with what
//! the other trials reported at the same epoch (median rule; asynchronous successive halving,
//! ASHA). hpo_snn's activity rule is separate: a trial whose layer leaves more than
//! `max_fraction` of the validation samples with fewer than `below` spikes stops, and records
//! `fraction - max_fraction` as a constraint (feasible when `<= 0`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metric::Mode;

/// Which pruner compares trials.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PrunerConfig {
    /// Every trial trains to the end.
    #[default]
    None,
    /// Stop a trial whose best value so far is worse than the median of the other trials'
    /// best values at the same epoch.
    Median {
        /// Epochs before any decision.
        #[serde(default)]
        warmup_epochs: usize,
        /// Other trials that must have reached the epoch first.
        #[serde(default = "four")]
        startup_trials: usize,
    },
    /// Asynchronous successive halving: at epochs `min_epochs * eta^k`, a trial goes on only
    /// if it is in the best `1 / eta` of the trials that reached that epoch.
    Asha {
        /// The first rung, epochs.
        #[serde(default = "one")]
        min_epochs: usize,
        /// The reduction factor.
        #[serde(default = "three")]
        eta: usize,
    },
}

fn one() -> usize {
    1
}
fn three() -> usize {
    3
}
fn four() -> usize {
    4
}

/// hpo_snn's spike-activity rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityRule {
    /// The spiking layer watched (`lif2`, the output layer of a two-layer net).
    pub layer: String,
    /// A sample is silent when the layer fires fewer than this many spikes for it.
    pub below: usize,
    /// The largest fraction of silent samples allowed.
    pub max_fraction: f64,
}

impl ActivityRule {
    /// The `history.csv` column the rule reads.
    pub fn column(&self) -> String {
        format!("silent_lt{}_{}", self.below, self.layer)
    }
}

/// The best of `values` in `mode` up to and including `epoch`.
fn best_until(values: &[(usize, f64)], epoch: usize, mode: Mode) -> Option<f64> {
    values
        .iter()
        .filter(|(e, _)| *e <= epoch)
        .map(|(_, v)| *v)
        .fold(
            None,
            |b, v| {
                if mode.improves(v, b, 0.0) {
                    Some(v)
                } else {
                    b
                }
            },
        )
}

impl PrunerConfig {
    /// Whether trial `trial`, with `own` values so far (`(epoch, value)`, the last at
    /// `epoch`), stops now, given every trial's reports; the reason when it does.
    pub fn decide(
        &self,
        mode: Mode,
        trial: usize,
        epoch: usize,
        own: &[(usize, f64)],
        reports: &BTreeMap<usize, Vec<(usize, f64)>>,
    ) -> Option<String> {
        let mine = best_until(own, epoch, mode)?;
        let others: Vec<f64> = reports
            .iter()
            .filter(|(id, r)| **id != trial && r.iter().any(|(e, _)| *e == epoch))
            .filter_map(|(_, r)| best_until(r, epoch, mode))
            .collect();
        match *self {
            PrunerConfig::None => None,
            PrunerConfig::Median {
                warmup_epochs,
                startup_trials,
            } => {
                if epoch <= warmup_epochs || others.len() < startup_trials.max(1) {
                    return None;
                }
                let mut sorted = others.clone();
                sorted.sort_by(f64::total_cmp);
                let n = sorted.len();
                let median = if n % 2 == 1 {
                    sorted[n / 2]
                } else {
                    0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
                };
                let worse = match mode {
                    Mode::Max => mine < median,
                    Mode::Min => mine > median,
                };
                worse.then(|| {
                    format!("median rule: {mine:.4} at epoch {epoch} is worse than the median {median:.4} of {n} trials")
                })
            }
            PrunerConfig::Asha { min_epochs, eta } => {
                let eta = eta.max(2);
                let mut rung = min_epochs.max(1);
                while rung < epoch {
                    rung *= eta;
                }
                if rung != epoch {
                    return None;
                }
                let mut all = others.clone();
                all.push(mine);
                all.sort_by(|a, b| mode.better_first(*a, *b));
                let keep = (all.len() / eta).max(1);
                let cutoff = all[keep - 1];
                let promoted = match mode {
                    Mode::Max => mine >= cutoff,
                    Mode::Min => mine <= cutoff,
                };
                (!promoted).then(|| {
                    format!("successive halving: {mine:.4} at epoch {epoch} is not in the best {keep} of {} trials", all.len())
                })
            }
        }
    }
}

impl ActivityRule {
    /// The constraint value `fraction - max_fraction` and, when it is positive, the reason
    /// to stop.
    pub fn check(&self, fraction: f64) -> (f64, Option<String>) {
        let c = fraction - self.max_fraction;
        let reason = (c > 0.0).then(|| {
            format!(
                "activity rule: {:.1}% of samples have fewer than {} spikes in {} (at most {:.1}%)",
                100.0 * fraction,
                self.below,
                self.layer,
                100.0 * self.max_fraction
            )
        });
        (c, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reports(rows: &[(usize, &[f64])]) -> BTreeMap<usize, Vec<(usize, f64)>> {
        rows.iter()
            .map(|(id, v)| {
                (
                    *id,
                    v.iter().enumerate().map(|(e, x)| (e + 1, *x)).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn the_median_rule_stops_trials_below_the_median_after_warm_up() {
        let median = PrunerConfig::Median {
            warmup_epochs: 0,
            startup_trials: 3,
        };
        let others = reports(&[(0, &[0.8, 0.9]), (1, &[0.7, 0.85]), (2, &[0.6, 0.8])]);
        assert!(median
            .decide(Mode::Max, 9, 1, &[(1, 0.65)], &others)
            .is_some());
        assert!(median
            .decide(Mode::Max, 9, 1, &[(1, 0.75)], &others)
            .is_none());
        // the best value so far counts, not the last
        assert!(median
            .decide(Mode::Max, 9, 2, &[(1, 0.9), (2, 0.5)], &others)
            .is_none());
        // too few trials at the epoch, or still warming up
        let few = reports(&[(0, &[0.8])]);
        assert!(median.decide(Mode::Max, 9, 1, &[(1, 0.1)], &few).is_none());
        let warm = PrunerConfig::Median {
            warmup_epochs: 1,
            startup_trials: 1,
        };
        assert!(warm.decide(Mode::Max, 9, 1, &[(1, 0.1)], &others).is_none());
        assert!(median
            .decide(Mode::Min, 9, 1, &[(1, 0.65)], &others)
            .is_none());
    }

    #[test]
    fn successive_halving_keeps_the_best_third_at_its_rungs() {
        let asha = PrunerConfig::Asha {
            min_epochs: 1,
            eta: 3,
        };
        let others = reports(&[
            (0, &[0.9, 0.9, 0.9, 0.9]),
            (1, &[0.8, 0.8, 0.8]),
            (2, &[0.7, 0.7, 0.7]),
            (3, &[0.6, 0.6, 0.6]),
            (4, &[0.5, 0.5, 0.5]),
        ]);
        // rung 1: 6 trials, the best 2 go on
        assert!(asha
            .decide(Mode::Max, 9, 1, &[(1, 0.85)], &others)
            .is_none());
        assert!(asha
            .decide(Mode::Max, 9, 1, &[(1, 0.75)], &others)
            .is_some());
        // epoch 2 is no rung; epoch 3 is
        assert!(asha.decide(Mode::Max, 9, 2, &[(2, 0.1)], &others).is_none());
        assert!(asha
            .decide(Mode::Max, 9, 3, &[(3, 0.75)], &others)
            .is_some());
        assert!(PrunerConfig::None
            .decide(Mode::Max, 9, 1, &[(1, 0.0)], &others)
            .is_none());
    }

    #[test]
    fn the_activity_rule_records_fraction_minus_bound() {
        let rule = ActivityRule {
            layer: "lif2".into(),
            below: 5,
            max_fraction: 0.05,
        };
        assert_eq!(rule.column(), "silent_lt5_lif2");
        let (c, stop) = rule.check(0.02);
        assert!((c + 0.03).abs() < 1e-12 && stop.is_none());
        let (c, stop) = rule.check(0.25);
        assert!((c - 0.2).abs() < 1e-12 && stop.is_some());
    }
}
