//! A typed search space: each parameter is a config key (`optimizer.lr`, `model.hidden`) with a
//! float range (linear or log, optional step), an integer range (linear or log, optional step)
//! or a list of choices, and may be active only when a categorical parameter takes given values.
//!
//! Samplers work in the unit cube: [`Param::from_unit`] maps `u` in `[0, 1)` to a value so that
//! a uniform `u` gives each parameter its own distribution (uniform, log-uniform, every integer
//! or choice equally likely: no truncation bias, no `high + 1` leak), and [`Param::to_unit`]
//! maps a value back (the centre of its cell for discrete values).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A parameter that is active only when the categorical parameter `param` takes one of `in`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// The categorical parameter (its config key) this one depends on.
    pub param: String,
    /// The choices of `param` under which this parameter is active.
    #[serde(rename = "in")]
    pub values: Vec<String>,
}

/// One tunable parameter, by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Param {
    /// A real number in `[low, high]`.
    Float {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
        /// Log-uniform (both bounds > 0).
        #[serde(default)]
        log: bool,
        /// Values on the grid `low, low + step, ...` (linear scale only).
        #[serde(default)]
        step: Option<f64>,
        /// Active only under a categorical choice.
        #[serde(default)]
        when: Option<When>,
    },
    /// An integer in `[low, high]`.
    Int {
        /// Lower bound.
        low: i64,
        /// Upper bound.
        high: i64,
        /// Log-uniform (low >= 1).
        #[serde(default)]
        log: bool,
        /// Values on the grid `low, low + step, ...` (linear scale only).
        #[serde(default)]
        step: Option<i64>,
        /// Active only under a categorical choice.
        #[serde(default)]
        when: Option<When>,
    },
    /// One of `choices` (written into the config as YAML scalars).
    Categorical {
        /// The choices, as they are written into the config.
        choices: Vec<String>,
        /// Active only under a categorical choice.
        #[serde(default)]
        when: Option<When>,
    },
}

/// A parameter's value at one point of the space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// From a float parameter.
    Float(f64),
    /// From an int parameter.
    Int(i64),
    /// From a categorical parameter.
    Choice(String),
}

impl ParamValue {
    /// The value as an override's right-hand side (`1e-3`, `128`, `synaptic`).
    pub fn text(&self) -> String {
        match self {
            ParamValue::Float(x) => format!("{x:?}"),
            ParamValue::Int(n) => n.to_string(),
            ParamValue::Choice(c) => c.clone(),
        }
    }
}

impl Param {
    /// The condition under which the parameter is active, if any.
    pub fn when(&self) -> Option<&When> {
        match self {
            Param::Float { when, .. }
            | Param::Int { when, .. }
            | Param::Categorical { when, .. } => when.as_ref(),
        }
    }

    /// Checks the bounds, step, scale and choices; errors name `key` (`space.<param>.<field>`).
    pub fn check(&self, key: &str) -> Result<()> {
        let bad = |field: &str, msg: String| Err(Error::invalid(format!("{key}.{field}"), msg));
        match *self {
            Param::Float {
                low,
                high,
                log,
                step,
                ..
            } => {
                if !(low.is_finite() && high.is_finite() && low < high) {
                    return bad(
                        "high",
                        format!("{high}; use a finite number above low ({low})"),
                    );
                }
                if log && low <= 0.0 {
                    return bad("low", format!("{low}; a log scale needs low > 0"));
                }
                if let Some(s) = step {
                    if log {
                        return bad("step", "a step needs a linear scale (log: false)".into());
                    }
                    if !(s > 0.0 && s <= high - low) {
                        return bad("step", format!("{s}; use a number in (0, high - low]"));
                    }
                }
                Ok(())
            }
            Param::Int {
                low,
                high,
                log,
                step,
                ..
            } => {
                if low >= high {
                    return bad("high", format!("{high}; use an integer above low ({low})"));
                }
                if log && low < 1 {
                    return bad("low", format!("{low}; a log scale needs low >= 1"));
                }
                if let Some(s) = step {
                    if log {
                        return bad("step", "a step needs a linear scale (log: false)".into());
                    }
                    if s < 1 || s > high - low {
                        return bad("step", format!("{s}; use an integer in [1, high - low]"));
                    }
                }
                Ok(())
            }
            Param::Categorical { ref choices, .. } => {
                if choices.is_empty() {
                    return bad("choices", "empty; list at least one choice".into());
                }
                let mut seen = std::collections::BTreeSet::new();
                match choices.iter().find(|c| !seen.insert(c.as_str())) {
                    Some(dup) => bad("choices", format!("`{dup}` is listed twice")),
                    None => Ok(()),
                }
            }
        }
    }

    /// The value at `u` in `[0, 1)` (values of `u` outside are clamped).
    pub fn from_unit(&self, u: f64) -> ParamValue {
        let u = u.clamp(0.0, 1.0);
        match *self {
            Param::Float {
                low,
                high,
                log,
                step,
                ..
            } => ParamValue::Float(match (log, step) {
                (true, _) => (low.ln() + u * (high.ln() - low.ln()))
                    .exp()
                    .clamp(low, high),
                (false, Some(s)) => low + cell(u, grid_len(high - low, s)) as f64 * s,
                (false, None) => low + u * (high - low),
            }),
            Param::Int {
                low,
                high,
                log: true,
                ..
            } => {
                let (a, b) = log_int_span(low, high);
                let x = (a + u * (b - a)).exp().round() as i64;
                ParamValue::Int(x.clamp(low, high))
            }
            Param::Int {
                low, high, step, ..
            } => {
                let s = step.unwrap_or(1);
                ParamValue::Int(low + cell(u, int_cells(low, high, s)) as i64 * s)
            }
            Param::Categorical { ref choices, .. } => {
                ParamValue::Choice(choices[cell(u, choices.len())].clone())
            }
        }
    }

    /// The unit coordinate of `value` (the centre of its cell for discrete values); `None` when
    /// the value does not belong to this parameter.
    pub fn to_unit(&self, value: &ParamValue) -> Option<f64> {
        match (self, value) {
            (
                &Param::Float {
                    low,
                    high,
                    log,
                    step,
                    ..
                },
                &ParamValue::Float(x),
            ) => {
                if !(low..=high).contains(&x) {
                    return None;
                }
                Some(match (log, step) {
                    (true, _) => (x.ln() - low.ln()) / (high.ln() - low.ln()),
                    (false, Some(s)) => {
                        let n = grid_len(high - low, s);
                        (((x - low) / s).round() + 0.5) / n as f64
                    }
                    (false, None) => (x - low) / (high - low),
                })
            }
            (
                &Param::Int {
                    low,
                    high,
                    log,
                    step,
                    ..
                },
                &ParamValue::Int(x),
            ) => {
                if !(low..=high).contains(&x) {
                    return None;
                }
                if log {
                    let (a, b) = log_int_span(low, high);
                    return Some(((x as f64).ln().clamp(a, b) - a) / (b - a));
                }
                let s = step.unwrap_or(1);
                Some((((x - low) / s) as f64 + 0.5) / int_cells(low, high, s) as f64)
            }
            (Param::Categorical { choices, .. }, ParamValue::Choice(c)) => {
                let i = choices.iter().position(|x| x == c)?;
                Some((i as f64 + 0.5) / choices.len() as f64)
            }
            _ => None,
        }
    }
}

/// The log-scale span of a log int parameter: the cells `[n - 1/2, n + 1/2)` of `low..=high`,
/// so both ends are as likely as their log width says and nothing falls outside the range.
fn log_int_span(low: i64, high: i64) -> (f64, f64) {
    ((low as f64 - 0.5).ln(), (high as f64 + 0.5).ln())
}

/// Values of the integer grid `low, low + step, ... <= high`.
fn int_cells(low: i64, high: i64, step: i64) -> usize {
    ((high - low) / step + 1) as usize
}

/// Points on the grid `0, s, 2s, ... <= span` (with a little slack for rounding).
fn grid_len(span: f64, s: f64) -> usize {
    (span / s + 1e-9).floor() as usize + 1
}

/// The cell of `u` among `n` equal cells of `[0, 1]`.
fn cell(u: f64, n: usize) -> usize {
    ((u * n as f64).floor() as usize).min(n - 1)
}

/// A search space: parameters by config key, in key order (the unit cube's axes).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Space {
    /// The parameters by config key.
    pub params: BTreeMap<String, Param>,
}

impl Space {
    /// Reads a space from YAML (a mapping of config keys to parameters) and checks it.
    pub fn from_yaml(text: &str) -> Result<Space> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let space: Space = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let key = if path == "." {
                "space".to_string()
            } else {
                format!("space.{path}")
            };
            Error::invalid(key, e.into_inner().to_string())
        })?;
        space.check()?;
        Ok(space)
    }

    /// Checks every parameter and every condition (it must name a categorical parameter of the
    /// space and some of its choices).
    pub fn check(&self) -> Result<()> {
        if self.params.is_empty() {
            return Err(Error::invalid(
                "space",
                "empty; name at least one parameter",
            ));
        }
        for (key, p) in &self.params {
            p.check(&format!("space.{key}"))?;
            let Some(w) = p.when() else { continue };
            let at = format!("space.{key}.when");
            match self.params.get(&w.param) {
                Some(Param::Categorical { choices, .. }) => {
                    if let Some(v) = w.values.iter().find(|v| !choices.contains(v)) {
                        return Err(Error::invalid(
                            format!("{at}.in"),
                            format!(
                                "`{v}` is not a choice of {} ({})",
                                w.param,
                                choices.join(", ")
                            ),
                        ));
                    }
                }
                _ => {
                    return Err(Error::invalid(
                        format!("{at}.param"),
                        format!("`{}` is not a categorical parameter of the space", w.param),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Number of axes of the unit cube.
    pub fn dims(&self) -> usize {
        self.params.len()
    }

    /// The point at unit coordinates `u` (one per parameter, in key order): the value of every
    /// active parameter by key.
    pub fn point(&self, u: &[f64]) -> BTreeMap<String, ParamValue> {
        let all: BTreeMap<&String, ParamValue> = self
            .params
            .iter()
            .zip(u)
            .map(|((k, p), &x)| (k, p.from_unit(x)))
            .collect();
        let active = |p: &Param| match p.when() {
            None => true,
            Some(w) => {
                matches!(all.get(&w.param), Some(ParamValue::Choice(c)) if w.values.contains(c))
            }
        };
        self.params
            .iter()
            .filter(|(_, p)| active(p))
            .map(|(k, _)| (k.clone(), all[k].clone()))
            .collect()
    }

    /// The overrides (`key=value`) that make a run of `point`.
    pub fn overrides(point: &BTreeMap<String, ParamValue>) -> Vec<String> {
        point
            .iter()
            .map(|(k, v)| format!("{k}={}", v.text()))
            .collect()
    }
}
