//! A final metric per group: the seed mean as a point with a ±1 std error bar, and each seed
//! as a small dot.

use plotters::coord::Shift;
use plotters::prelude::*;
use polars::prelude::DataFrame;

use super::{err, padded_range, plane, Chart, FONT, PALETTE};
use crate::error::{Error, Result};
use crate::frame::{f64_column, str_column};
use crate::stats::Group;

/// One group's values.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    /// Axis label of the group.
    pub label: String,
    /// Seed mean.
    pub mean: f64,
    /// Sample std across seeds (`None` for one seed).
    pub std: Option<f64>,
    /// Every seed's value.
    pub values: Vec<f64>,
}

/// A metric per group, groups along the x axis.
#[derive(Debug, Clone, PartialEq)]
pub struct FinalMetric {
    /// Chart title.
    pub title: String,
    /// The metric's name (y axis label).
    pub metric: String,
    /// The groups, in axis order.
    pub points: Vec<MetricPoint>,
}

impl FinalMetric {
    /// Points from the summary frame of [`crate::stats::summarize`] (mean and std) and the
    /// `runs` frame (each completed seed's value), in the summary's order.
    pub fn from_frames(summary: &DataFrame, runs: &DataFrame) -> Result<FinalMetric> {
        let metric = str_column(summary, "metric")?
            .into_iter()
            .flatten()
            .next()
            .ok_or_else(|| Error::Analysis("the summary frame is empty: nothing to plot".into()))?;
        let (se, sv) = (
            str_column(summary, "experiment")?,
            str_column(summary, "variant")?,
        );
        let (mean, std) = (f64_column(summary, "mean")?, f64_column(summary, "std")?);
        let (re, rv, rs) = (
            str_column(runs, "experiment")?,
            str_column(runs, "variant")?,
            str_column(runs, "status")?,
        );
        let rx = f64_column(runs, &metric)?;
        let mut points = Vec::new();
        for i in 0..summary.height() {
            let (Some(e), Some(v), Some(m)) = (&se[i], &sv[i], mean[i]) else {
                continue;
            };
            let values = (0..runs.height())
                .filter(|&j| {
                    re[j].as_ref() == Some(e)
                        && rv[j].as_ref() == Some(v)
                        && rs[j].as_deref() == Some("completed")
                })
                .filter_map(|j| rx[j])
                .collect();
            points.push(MetricPoint {
                label: Group::label(e, v),
                mean: m,
                std: std[i],
                values,
            });
        }
        Ok(FinalMetric {
            title: format!("{metric} per experiment (mean ± std over seeds)"),
            metric,
            points,
        })
    }
}

impl Chart for FinalMetric {
    fn size(&self) -> (u32, u32) {
        (200 + 110 * self.points.len().max(4) as u32, 520)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let n = self.points.len();
        let ys = self.points.iter().flat_map(|p| {
            let s = p.std.unwrap_or(0.0);
            [p.mean - s, p.mean + s]
                .into_iter()
                .chain(p.values.iter().copied())
        });
        let (y0, y1) = padded_range(ys);
        let labels: Vec<String> = self.points.iter().map(|p| p.label.clone()).collect();
        let mut chart = plane(root, &self.title, -0.5..(n as f64 - 0.5), y0..y1)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n.max(1))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_label_style((FONT, 13))
            .y_desc(self.metric.as_str())
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (i, p) in self.points.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let x = i as f64;
            let s = p.std.unwrap_or(0.0);
            chart
                .draw_series(std::iter::once(ErrorBar::new_vertical(
                    x,
                    p.mean - s,
                    p.mean,
                    p.mean + s,
                    color.stroke_width(2),
                    16,
                )))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Circle::new((x, p.mean), 6, color.filled())))
                .map_err(err)?;
            chart
                .draw_series(
                    p.values
                        .iter()
                        .map(|&v| Circle::new((x + 0.18, v), 3, color.mix(0.6).filled())),
                )
                .map_err(err)?;
        }
        Ok(())
    }
}
