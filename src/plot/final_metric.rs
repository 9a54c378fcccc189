//! A final metric per group: the seed mean as a point with a ±1 std error bar, and each seed
//! as a small dot.

use plotters::coord::Shift;
use plotters::prelude::*;
use polars::prelude::DataFrame;

use super::labels::{axis_label, short_labels, ShortLabels};
use super::{err, padded_range, plane_with_x_area, Chart, FONT, PALETTE};
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
    /// The metric's unit (`""` for none), shown in the axis label.
    pub unit: String,
    /// The groups, in axis order.
    pub points: Vec<MetricPoint>,
    /// A range of the metric shaded behind the points (e.g. within one reference std).
    pub band: Option<(f64, f64)>,
}

/// Pixels per group along the x axis.
const SLOT_PX: u32 = 110;
/// Approximate width of one label character at 13 px.
const CHAR_PX: u32 = 7;

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
        let labels: Vec<String> = points.iter().map(|p| p.label.clone()).collect();
        let ShortLabels {
            experiment,
            labels: short,
        } = short_labels(&labels);
        for (p, label) in points.iter_mut().zip(short) {
            p.label = label;
        }
        let of = experiment.map_or_else(|| " per experiment".to_string(), |e| format!(" of {e}"));
        Ok(FinalMetric {
            title: format!("{metric}{of} (mean ± std over seeds)"),
            metric,
            unit: String::new(),
            points,
            band: None,
        })
    }

    /// Sets the metric's unit (shown in the axis label).
    pub fn with_unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = unit.into();
        self
    }

    /// Whether the group labels are too wide for their slots and are drawn vertically.
    fn rotated(&self) -> bool {
        self.longest_label() * CHAR_PX > SLOT_PX - 10
    }

    fn longest_label(&self) -> u32 {
        self.points
            .iter()
            .map(|p| p.label.chars().count() as u32)
            .max()
            .unwrap_or(0)
    }
}

impl Chart for FinalMetric {
    fn size(&self) -> (u32, u32) {
        let extra = if self.rotated() {
            self.longest_label().min(60) * CHAR_PX
        } else {
            0
        };
        (200 + SLOT_PX * self.points.len().max(4) as u32, 520 + extra)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let n = self.points.len();
        let ys = self.points.iter().flat_map(|p| {
            let s = p.std.unwrap_or(0.0);
            [p.mean - s, p.mean + s]
                .into_iter()
                .chain(p.values.iter().copied())
        });
        let band = self.band.into_iter().flat_map(|(lo, hi)| [lo, hi]);
        let (y0, y1) = padded_range(ys.chain(band));
        let labels: Vec<String> = self.points.iter().map(|p| p.label.clone()).collect();
        let rotated = self.rotated();
        let x_area = if rotated {
            20 + self.longest_label().min(60) * CHAR_PX
        } else {
            50
        };
        let mut chart =
            plane_with_x_area(root, &self.title, -0.5..(n as f64 - 0.5), y0..y1, x_area)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n.max(1))
            .x_label_formatter(&|x| {
                let i = x.round();
                if rotated || (x - i).abs() > 1e-6 || i < 0.0 {
                    return String::new();
                }
                labels.get(i as usize).cloned().unwrap_or_default()
            })
            .x_label_style((FONT, 13))
            .y_desc(axis_label(&self.metric, &self.unit))
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        if rotated {
            // vertical group labels below the axis, read bottom to top
            let style = TextStyle::from((FONT, 13).into_font()).transform(FontTransform::Rotate270);
            for (i, label) in labels.iter().enumerate() {
                let (px, py) = chart.backend_coord(&(i as f64, y0));
                let text: String = label.chars().take(60).collect();
                let width = text.chars().count() as i32 * 6;
                root.draw(&Text::new(text, (px - 7, py + 10 + width), style.clone()))
                    .map_err(err)?;
            }
        }
        if let Some((lo, hi)) = self.band {
            let shade = RGBColor(225, 225, 225).filled();
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(-0.5, lo), (n as f64 - 0.5, hi)],
                    shade,
                )))
                .map_err(err)?;
        }
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
