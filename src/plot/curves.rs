//! Learning curves: per group, the seed mean of a metric per epoch with a ±1 std band.

use std::collections::BTreeMap;

use plotters::coord::Shift;
use plotters::prelude::*;
use polars::prelude::DataFrame;

use super::labels::{axis_label, integer_tick, short_labels, ShortLabels};
use super::{err, legend, padded_range, plane, Chart, FONT, PALETTE};
use crate::error::{Error, Result};
use crate::frame::{f64_column, str_column};
use crate::stats::{describe, Group};

/// One group's curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// Legend label (`experiment` or `experiment/variant`).
    pub label: String,
    /// Epochs, ascending.
    pub epochs: Vec<f64>,
    /// Seed mean at each epoch.
    pub mean: Vec<f64>,
    /// Sample std across seeds at each epoch (`None` where one seed reached it).
    pub std: Vec<Option<f64>>,
    /// Number of seeds (runs) in the group.
    pub seeds: usize,
}

/// Learning curves of one metric, one [`Curve`] per group.
#[derive(Debug, Clone, PartialEq)]
pub struct LearningCurves {
    /// Chart title.
    pub title: String,
    /// The metric's column name (y axis label).
    pub metric: String,
    /// The metric's unit (`""` for none), shown in the axis label.
    pub unit: String,
    /// The curves.
    pub curves: Vec<Curve>,
}

impl LearningCurves {
    /// Curves of `metric` (e.g. `val_acc`) from the `history` frame of [`crate::runs::scan`],
    /// one per experiment and variant, averaging the runs (seeds) at each epoch.
    pub fn from_history(history: &DataFrame, metric: &str) -> Result<LearningCurves> {
        let experiment = str_column(history, "experiment")?;
        let variant = str_column(history, "variant")?;
        let path = str_column(history, "path")?;
        let epoch = f64_column(history, "epoch")?;
        let value = f64_column(history, metric)?;
        // group -> epoch -> values; group -> runs
        let mut points: BTreeMap<String, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
        let mut runs: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for i in 0..history.height() {
            let (Some(e), Some(v), Some(ep), Some(x)) =
                (&experiment[i], &variant[i], epoch[i], value[i])
            else {
                continue;
            };
            let label = Group::label(e, v);
            points
                .entry(label.clone())
                .or_default()
                .entry(ep as u64)
                .or_default()
                .push(x);
            runs.entry(label)
                .or_default()
                .insert(path[i].clone().unwrap_or_default());
        }
        let mut curves = Vec::new();
        for (label, by_epoch) in points {
            let mut curve = Curve {
                seeds: runs.get(&label).map_or(0, |r| r.len()),
                label,
                epochs: Vec::new(),
                mean: Vec::new(),
                std: Vec::new(),
            };
            for (ep, values) in by_epoch {
                let d = describe(&values)?;
                curve.epochs.push(ep as f64);
                curve.mean.push(d.mean);
                curve.std.push(d.std);
            }
            curves.push(curve);
        }
        if curves.is_empty() {
            return Err(Error::Analysis(format!(
                "no `{metric}` values in the history frame to plot"
            )));
        }
        let labels: Vec<String> = curves.iter().map(|c| c.label.clone()).collect();
        let ShortLabels {
            experiment,
            labels: short,
        } = short_labels(&labels);
        for (c, label) in curves.iter_mut().zip(short) {
            c.label = label;
        }
        let of = experiment.map_or_else(String::new, |e| format!(" of {e}"));
        Ok(LearningCurves {
            title: format!("{metric} per epoch{of} (seed mean ± std)"),
            metric: metric.to_string(),
            unit: String::new(),
            curves,
        })
    }

    /// Sets the metric's unit (shown in the axis label).
    pub fn with_unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = unit.into();
        self
    }
}

impl LearningCurves {
    /// Where the legend hides the least: the right-hand corner away from where the curves end
    /// (upper right when most curves end in the lower half of the y range `y`).
    fn legend_corner(&self, (y0, y1): (f64, f64)) -> SeriesLabelPosition {
        let middle = 0.5 * (y0 + y1);
        let low = self
            .curves
            .iter()
            .filter(|c| c.mean.last().is_some_and(|v| *v < middle))
            .count();
        if 2 * low > self.curves.len() {
            SeriesLabelPosition::UpperRight
        } else {
            SeriesLabelPosition::LowerRight
        }
    }
}

impl Chart for LearningCurves {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let xs = self.curves.iter().flat_map(|c| c.epochs.iter().copied());
        let (x0, x1) = padded_range(xs);
        let ys = self.curves.iter().flat_map(|c| {
            c.mean
                .iter()
                .zip(&c.std)
                .flat_map(|(m, s)| [m - s.unwrap_or(0.0), m + s.unwrap_or(0.0)])
        });
        let (y0, y1) = padded_range(ys);
        let mut chart = plane(root, &self.title, x0..x1, y0..y1)?;
        // one tick per epoch up to 12, labelled only at whole epochs
        let span = (x1.floor() - x0.ceil()).max(0.0) as usize + 1;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_labels(span.min(12))
            .x_label_formatter(&integer_tick)
            .y_desc(axis_label(&self.metric, &self.unit))
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (i, c) in self.curves.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let upper = c.epochs.iter().zip(&c.mean).zip(&c.std);
            let band: Vec<(f64, f64)> = upper
                .clone()
                .map(|((x, m), s)| (*x, m + s.unwrap_or(0.0)))
                .chain(upper.rev().map(|((x, m), s)| (*x, m - s.unwrap_or(0.0))))
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(band, color.mix(0.2).filled())))
                .map_err(err)?;
            let line: Vec<(f64, f64)> = c
                .epochs
                .iter()
                .copied()
                .zip(c.mean.iter().copied())
                .collect();
            chart
                .draw_series(LineSeries::new(line, color.stroke_width(2)))
                .map_err(err)?
                .label(format!("{} (n={})", c.label, c.seeds))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        legend(&mut chart, self.legend_corner((y0, y1)))
    }
}
