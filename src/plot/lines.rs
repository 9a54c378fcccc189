//! Plain x-y line plots of named series, for what has no dedicated chart: surrogate gradient
//! shapes, an input current, a neuron driven by hand in a notebook.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{err, legend, padded_range, plane, Chart, FONT, PALETTE};

/// Named series of `(x, y)` points drawn as lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Lines {
    /// Chart title.
    pub title: String,
    /// x axis label.
    pub x_label: String,
    /// y axis label.
    pub y_label: String,
    /// `(name, points)` per series.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// Half-width of an error bar at each point of the series of the same index (none: no
    /// bars).
    pub errors: Vec<Option<Vec<f64>>>,
}

impl Lines {
    /// An empty chart with a title and axis labels; add series with [`Lines::with`].
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Lines {
        Lines {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Adds the series `name` with `y[i]` at `x[i]`.
    pub fn with(mut self, name: &str, x: &[f64], y: &[f64]) -> Lines {
        let points = x.iter().copied().zip(y.iter().copied()).collect();
        self.series.push((name.into(), points));
        self.errors.push(None);
        self
    }

    /// Adds the series `name` with `y[i] ± err[i]` at `x[i]` (drawn as error bars).
    pub fn with_errors(mut self, name: &str, x: &[f64], y: &[f64], err: &[f64]) -> Lines {
        self = self.with(name, x, y);
        if let Some(last) = self.errors.last_mut() {
            *last = Some(err.to_vec());
        }
        self
    }
}

impl Lines {
    /// The error bar half-width at point `j` of series `i` (0 without bars).
    fn error(&self, i: usize, j: usize) -> f64 {
        self.errors
            .get(i)
            .and_then(Option::as_ref)
            .and_then(|e| e.get(j))
            .copied()
            .filter(|e| e.is_finite())
            .unwrap_or(0.0)
    }
}

impl Chart for Lines {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let all = || self.series.iter().flat_map(|(_, p)| p.iter());
        let (x0, x1) = padded_range(all().map(|p| p.0));
        let ends = self.series.iter().enumerate().flat_map(|(i, (_, p))| {
            p.iter().enumerate().flat_map(move |(j, &(_, y))| {
                let e = self.error(i, j);
                [y - e, y + e]
            })
        });
        let (y0, y1) = padded_range(ends);
        let mut chart = plane(root, &self.title, x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (i, (name, points)) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(err)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            if self.errors.get(i).is_some_and(Option::is_some) {
                chart
                    .draw_series(points.iter().enumerate().map(|(j, &(x, y))| {
                        let e = self.error(i, j);
                        ErrorBar::new_vertical(x, y - e, y, y + e, color.stroke_width(1), 6)
                    }))
                    .map_err(err)?;
            }
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}
