//! Direction (higher or lower is better) and unit of a `runs` column, read from the frame's
//! objective and declared-metric columns, so statistics and rankings need nothing but the frame.

use polars::prelude::DataFrame;

use crate::error::{Error, Result};
use crate::frame::{column, f64_column, str_column};
use crate::metric::{MetricSpec, Mode};

/// The `runs` column holding each run's best objective value, whatever the objective is.
pub const OBJECTIVE_BEST: &str = "objective_best";

/// The spec of `name` in each row of `runs` (the spec's `name` is `name` itself):
///
/// - the row's objective (`objective_mode`, `objective_unit`) when `name` is the row's
///   `objective` column or [`OBJECTIVE_BEST`];
/// - else the declared metric (column `declared`) that ends the name, the longest one
///   (`best_val_acc` -> `acc`, `test_t200_position_rmse` -> `position_rmse`);
/// - else `None` (`wall_time_s`, or a frame without those columns).
pub fn row_specs(runs: &DataFrame, name: &str) -> Result<Vec<Option<MetricSpec>>> {
    let n = runs.height();
    let optional = |c: &str| {
        if column(runs, c).is_ok() {
            str_column(runs, c)
        } else {
            Ok(vec![None; n])
        }
    };
    let objective = optional("objective")?;
    let modes = optional("objective_mode")?;
    let units = optional("objective_unit")?;
    let declared = optional("declared")?;
    (0..n)
        .map(|i| {
            let is_objective = name == OBJECTIVE_BEST || objective[i].as_deref() == Some(name);
            match (is_objective, modes[i].as_deref()) {
                (true, Some(mode)) => Ok(Some(MetricSpec::new(
                    name,
                    parse_mode(mode)?,
                    units[i].as_deref().unwrap_or(""),
                ))),
                _ => declared_spec(declared[i].as_deref(), name),
            }
        })
        .collect()
}

/// The spec of `name` over the rows of `runs` holding a value of it (see [`row_specs`]);
/// higher-is-better with no unit when no row says otherwise. An error when the column is
/// missing or the rows disagree on the direction (runs of different tasks).
pub fn metric_spec(runs: &DataFrame, name: &str) -> Result<MetricSpec> {
    let values = f64_column(runs, name)?;
    let specs = row_specs(runs, name)?;
    agreed_spec(
        name,
        specs.into_iter().zip(values).filter_map(|(s, v)| v.and(s)),
    )
}

/// The one spec of column `name` among `specs` (rows that say nothing are skipped; none at
/// all gives higher-is-better with no unit); an error when they disagree on the direction.
pub fn agreed_spec(name: &str, specs: impl IntoIterator<Item = MetricSpec>) -> Result<MetricSpec> {
    let mut found: Option<MetricSpec> = None;
    for spec in specs {
        match &found {
            None => found = Some(spec),
            Some(f) if f.mode != spec.mode => {
                return Err(Error::Analysis(format!(
                    "`{name}` is higher-is-better in some runs and lower-is-better in others \
                     (runs of different tasks): select the runs of one task"
                )))
            }
            Some(_) => {}
        }
    }
    Ok(found.unwrap_or_else(|| MetricSpec::new(name, Mode::Max, "")))
}

/// `higher is better` or `lower is better`.
pub fn direction_text(mode: Mode) -> &'static str {
    match mode {
        Mode::Max => "higher is better",
        Mode::Min => "lower is better",
    }
}

/// Parses an `objective_mode` cell.
fn parse_mode(text: &str) -> Result<Mode> {
    Mode::parse(text).ok_or_else(|| {
        Error::Analysis(format!(
            "column `objective_mode` holds `{text}`, expected `max` or `min`"
        ))
    })
}

/// The declared metric (a `declared` cell: JSON list of specs) that ends column `name`.
fn declared_spec(cell: Option<&str>, name: &str) -> Result<Option<MetricSpec>> {
    let Some(text) = cell else {
        return Ok(None);
    };
    let declared: Vec<MetricSpec> = serde_json::from_str(text).map_err(|e| {
        Error::Analysis(format!(
            "column `declared` holds `{text}`, expected a JSON list of {{name, mode, unit}}: {e}"
        ))
    })?;
    Ok(declared
        .into_iter()
        .filter(|spec| ends_with_metric(name, &spec.name))
        .max_by_key(|spec| spec.name.len())
        .map(|spec| MetricSpec::new(name, spec.mode, &spec.unit)))
}

/// Whether column `name` is metric `metric` itself or ends with `_<metric>`.
fn ends_with_metric(name: &str, metric: &str) -> bool {
    name == metric
        || name
            .strip_suffix(metric)
            .is_some_and(|head| head.ends_with('_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Frame, Values};

    fn frame() -> Result<DataFrame> {
        let declared = r#"[{"name":"loss","mode":"min","unit":""},{"name":"position_rmse","mode":"min","unit":"world units"},{"name":"rmse","mode":"max","unit":"x"}]"#;
        Frame::new()
            .strs("objective", ["val_position_rmse", "val_acc"])
            .strs("objective_mode", ["min", "max"])
            .strs("objective_unit", ["world units", "fraction"])
            .with("objective_best", Values::F64(vec![Some(0.2), Some(0.9)]))
            .with("declared", Values::Str(vec![Some(declared.into()), None]))
            .with(
                "test_t200_position_rmse",
                Values::F64(vec![Some(0.3), None]),
            )
            .with("wall_time_s", Values::F64(vec![Some(1.0), Some(2.0)]))
            .finish()
    }

    #[test]
    fn specs_come_from_the_objective_then_the_longest_declared_name() -> Result<()> {
        let runs = frame()?;
        let spec = metric_spec(&runs, "test_t200_position_rmse")?;
        assert_eq!((spec.mode, spec.unit.as_str()), (Mode::Min, "world units"));
        let best = row_specs(&runs, OBJECTIVE_BEST)?;
        assert_eq!(best[0].as_ref().map(|s| s.mode), Some(Mode::Min));
        assert_eq!(best[1].as_ref().map(|s| s.unit.as_str()), Some("fraction"));
        // the rows disagree on the direction of the objective's best value
        assert!(metric_spec(&runs, OBJECTIVE_BEST).is_err());
        // nothing says anything about wall time: higher is better, no unit
        assert_eq!(metric_spec(&runs, "wall_time_s")?.mode, Mode::Max);
        assert!(metric_spec(&runs, "nope").is_err());
        assert!(ends_with_metric("best_val_acc", "acc"));
        assert!(!ends_with_metric("val_xacc", "acc"));
        Ok(())
    }
}
