//! Metrics a task declares: a name, a direction (higher or lower is better) and a unit.
//!
//! A task (see `data::task`) declares its metrics once; the trainer records each of them per
//! split, the objective (one declared metric on one split, with its direction) picks the best
//! checkpoint and drives early stopping, and analysis ranks runs in the objective's direction.
//! This module is shared by the config, the trainer and analysis, so it imports none of them.

use serde::{Deserialize, Serialize};

/// A value under its column name (`train_acc`, `val_position_rmse`, `rate_lif1`); stored as a
/// `[name, value]` pair in checkpoints and JSON, a NaN as `null` (JSON has no NaN).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "(String, Option<f64>)", into = "(String, Option<f64>)")]
pub struct NamedValue {
    /// The column (or metric) name.
    pub name: String,
    /// Its value.
    pub value: f64,
}

impl NamedValue {
    /// `value` under `name`.
    pub fn new(name: impl Into<String>, value: f64) -> NamedValue {
        NamedValue {
            name: name.into(),
            value,
        }
    }
}

impl From<(String, Option<f64>)> for NamedValue {
    fn from((name, value): (String, Option<f64>)) -> Self {
        NamedValue {
            name,
            value: value.unwrap_or(f64::NAN),
        }
    }
}

impl From<NamedValue> for (String, Option<f64>) {
    fn from(v: NamedValue) -> Self {
        (v.name, (!v.value.is_nan()).then_some(v.value))
    }
}

/// Reads a number written by serde_json, where a NaN was written as `null`.
pub(crate) fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Direction of improvement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Larger is better.
    #[default]
    Max,
    /// Smaller is better.
    Min,
}

impl Mode {
    /// `max` or `min`, as written in configs and `metrics.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Max => "max",
            Mode::Min => "min",
        }
    }

    /// Parses `max` / `min`.
    pub fn parse(text: &str) -> Option<Mode> {
        match text {
            "max" => Some(Mode::Max),
            "min" => Some(Mode::Min),
            _ => None,
        }
    }

    /// Whether `value` is better than `best` by more than `min_delta` (any value beats `None`;
    /// NaN never does).
    pub fn improves(self, value: f64, best: Option<f64>, min_delta: f64) -> bool {
        if value.is_nan() {
            return false;
        }
        match best {
            None => true,
            Some(b) if b.is_nan() => true,
            Some(b) => match self {
                Mode::Max => value > b + min_delta,
                Mode::Min => value < b - min_delta,
            },
        }
    }

    /// Orders `a` before `b` when `a` is better (NaN last).
    pub fn better_first(self, a: f64, b: f64) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (a.is_nan(), b.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => match self {
                Mode::Max => b.total_cmp(&a),
                Mode::Min => a.total_cmp(&b),
            },
        }
    }
}

/// One metric a task declares (without a split prefix: `acc`, `loss`, `position_rmse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricSpec {
    /// Name, a valid column-name part (`[a-z0-9_]`).
    pub name: String,
    /// Whether higher or lower is better.
    pub mode: Mode,
    /// Unit shown next to values (`""` for a plain number, `fraction`, `rad`, `deg`, ...).
    pub unit: String,
}

impl MetricSpec {
    /// A metric named `name` improving in direction `mode`, measured in `unit`.
    pub fn new(name: &str, mode: Mode, unit: &str) -> Self {
        MetricSpec {
            name: name.to_string(),
            mode,
            unit: unit.to_string(),
        }
    }
}

/// The split-qualified metric that picks the best checkpoint (e.g. `val_acc`, `val_loss`), and
/// its best value so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// Column name: `<split>_<metric>` (`val_acc`, `val_position_rmse`).
    pub metric: String,
    /// Whether higher or lower is better.
    pub mode: Mode,
    /// Unit of the metric (`""` for a plain number).
    #[serde(default)]
    pub unit: String,
    /// Best value over the epochs done.
    pub best: Option<f64>,
    /// Epoch (1-based) of `best`.
    pub best_epoch: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn improvement_follows_the_direction() {
        assert!(Mode::Max.improves(0.5, None, 0.0));
        assert!(Mode::Max.improves(0.6, Some(0.5), 0.0));
        assert!(!Mode::Max.improves(0.5, Some(0.5), 0.0));
        assert!(Mode::Min.improves(0.4, Some(0.5), 0.0));
        assert!(!Mode::Min.improves(0.45, Some(0.5), 0.1));
        assert!(!Mode::Min.improves(f64::NAN, None, 0.0));
        let mut v = [0.3, f64::NAN, 0.1, 0.2];
        v.sort_by(|a, b| Mode::Min.better_first(*a, *b));
        assert_eq!(&v[..3], &[0.1, 0.2, 0.3]);
        v.sort_by(|a, b| Mode::Max.better_first(*a, *b));
        assert_eq!(&v[..3], &[0.3, 0.2, 0.1]);
        assert!(v[3].is_nan());
    }
}
