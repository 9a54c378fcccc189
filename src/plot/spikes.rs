//! Spiking activity of one sample: a raster (a mark per neuron and step that spiked) and the
//! membrane potentials of a few neurons over time with the firing threshold.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{err, legend, padded_range, plane, Chart, FONT, PALETTE};

/// Spike raster: `spikes[t][n]` non-zero where neuron `n` spiked at step `t`.
#[derive(Debug, Clone, PartialEq)]
pub struct SpikeRaster {
    /// Chart title.
    pub title: String,
    /// Spikes `[T][N]`.
    pub spikes: Vec<Vec<f32>>,
}

impl Chart for SpikeRaster {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let steps = self.spikes.len();
        let neurons = self.spikes.iter().map(Vec::len).max().unwrap_or(0);
        let x = -0.5..(steps as f64 - 0.5);
        let mut chart = plane(root, &self.title, x, -0.5..(neurons as f64 - 0.5))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("time step")
            .y_desc("neuron")
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        let marks = self.spikes.iter().enumerate().flat_map(|(t, row)| {
            row.iter()
                .enumerate()
                .filter(|(_, s)| **s != 0.0)
                .map(move |(n, _)| {
                    let (t, n) = (t as f64, n as f64);
                    Rectangle::new([(t - 0.4, n - 0.4), (t + 0.4, n + 0.4)], BLACK.filled())
                })
        });
        chart.draw_series(marks).map_err(err)?;
        Ok(())
    }
}

/// Membrane traces: `membrane[t][n]` for a few neurons, with the threshold as a dashed line.
#[derive(Debug, Clone, PartialEq)]
pub struct MembraneTrace {
    /// Chart title.
    pub title: String,
    /// Membrane potentials `[T][N]` (each neuron one line).
    pub membrane: Vec<Vec<f32>>,
    /// Firing threshold, drawn when given.
    pub threshold: Option<f32>,
}

impl Chart for MembraneTrace {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let steps = self.membrane.len();
        let neurons = self.membrane.iter().map(Vec::len).max().unwrap_or(0);
        let values = self
            .membrane
            .iter()
            .flatten()
            .map(|v| f64::from(*v))
            .chain(self.threshold.map(f64::from));
        let (y0, y1) = padded_range(values);
        let mut chart = plane(root, &self.title, 0.0..(steps.max(2) as f64 - 1.0), y0..y1)?;
        chart
            .configure_mesh()
            .x_desc("time step")
            .y_desc("membrane potential")
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for n in 0..neurons {
            let color = PALETTE[n % PALETTE.len()];
            let line: Vec<(f64, f64)> = self
                .membrane
                .iter()
                .enumerate()
                .filter_map(|(t, row)| row.get(n).map(|v| (t as f64, f64::from(*v))))
                .collect();
            chart
                .draw_series(LineSeries::new(line, color.stroke_width(2)))
                .map_err(err)?
                .label(format!("neuron {n}"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        if let Some(th) = self.threshold {
            let th = f64::from(th);
            let end = steps.max(2) as f64 - 1.0;
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(0.0, th), (end, th)],
                    6,
                    4,
                    RED.stroke_width(1),
                ))
                .map_err(err)?
                .label("threshold")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}
