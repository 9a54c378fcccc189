//! Learning curves: per group, the seed mean of a metric per epoch with a ±1 std band.

use std::collections::BTreeMap;

use plotters::coord::Shift;
use plotters::prelude::*;
use polars::prelude::DataFrame;

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
        Ok(LearningCurves {
            title: format!("{metric} per epoch (seed mean ± std)"),
            metric: metric.to_string(),
            curves,
        })
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
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc(self.metric.as_str())
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
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    }
}
