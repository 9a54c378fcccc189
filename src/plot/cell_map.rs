//! A value per cell of a 2-D lattice as coloured squares (the grid-neuron family's time
//! constants, weights or activity), with the value range in the caption.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{err, plane, Chart, FONT};

/// `values[i][j]` of a `rows x cols` lattice, row 0 drawn on top; blue-white-red when the values
/// change sign, else white to blue.
#[derive(Debug, Clone, PartialEq)]
pub struct CellMap {
    /// Chart title (the value range is appended).
    pub title: String,
    /// Values `[rows][cols]`.
    pub values: Vec<Vec<f64>>,
}

impl CellMap {
    /// A map of `values` (`rows x cols`, row-major) titled `title`.
    pub fn new(title: &str, values: &[f64], cols: usize) -> CellMap {
        CellMap {
            title: title.to_string(),
            values: values.chunks(cols.max(1)).map(<[f64]>::to_vec).collect(),
        }
    }

    fn range(&self) -> (f64, f64) {
        let finite = self.values.iter().flatten().filter(|v| v.is_finite());
        finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        })
    }
}

/// `v` with about three significant digits.
fn short(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e4 || v.abs() < 1e-2) {
        return format!("{v:.2e}");
    }
    let text = format!("{v:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The colour of `v` in `lo..=hi`: diverging around 0 when the range spans it.
fn colour(v: f64, lo: f64, hi: f64) -> RGBColor {
    let mix = |a: (f64, f64, f64), b: (f64, f64, f64), t: f64| {
        let t = t.clamp(0.0, 1.0);
        let c = |x: f64, y: f64| (x + (y - x) * t).round() as u8;
        RGBColor(c(a.0, b.0), c(a.1, b.1), c(a.2, b.2))
    };
    let (white, blue, red) = (
        (255.0, 255.0, 255.0),
        (33.0, 102.0, 172.0),
        (178.0, 24.0, 43.0),
    );
    if !v.is_finite() {
        return RGBColor(200, 200, 200);
    }
    if lo < 0.0 && hi > 0.0 {
        let m = lo.abs().max(hi);
        if v < 0.0 {
            mix(white, blue, -v / m)
        } else {
            mix(white, red, v / m)
        }
    } else {
        mix(
            white,
            blue,
            if hi > lo { (v - lo) / (hi - lo) } else { 1.0 },
        )
    }
}

impl Chart for CellMap {
    fn size(&self) -> (u32, u32) {
        let rows = self.values.len().max(1) as u32;
        let cols = self.values.iter().map(Vec::len).max().unwrap_or(1).max(1) as u32;
        let cell = (640 / cols.max(rows)).clamp(12, 60);
        ((cols * cell + 140).max(720), rows * cell + 130)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let rows = self.values.len();
        let cols = self.values.iter().map(Vec::len).max().unwrap_or(0);
        let (lo, hi) = self.range();
        let title = format!("{} (min {}, max {})", self.title, short(lo), short(hi));
        let mut chart = plane(
            root,
            &title,
            -0.5..(cols as f64 - 0.5),
            -0.5..(rows as f64 - 0.5),
        )?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(cols.min(30))
            .y_labels(rows.min(30))
            .x_desc("column j")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("row i (0 on top)")
            .y_label_formatter(&|y| format!("{:.0}", rows as f64 - 1.0 - y))
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        let squares = self.values.iter().enumerate().flat_map(|(i, row)| {
            row.iter().enumerate().map(move |(j, v)| {
                let (x, y) = (j as f64, (rows - 1 - i) as f64);
                Rectangle::new(
                    [(x - 0.48, y - 0.48), (x + 0.48, y + 0.48)],
                    colour(*v, lo, hi).filled(),
                )
            })
        });
        chart.draw_series(squares).map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_diverge_around_zero_and_renders() {
        assert_eq!(colour(0.0, -1.0, 1.0), RGBColor(255, 255, 255));
        assert_eq!(colour(-1.0, -1.0, 2.0).0, 144); // halfway to blue (33) on a symmetric scale of 2
        assert_eq!(colour(2.0, -1.0, 2.0), RGBColor(178, 24, 43));
        assert_eq!(colour(5.0, 5.0, 9.0), RGBColor(255, 255, 255));
        let map = CellMap::new("tau (ms)", &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3);
        assert_eq!(map.values.len(), 2);
        let fig = crate::plot::Figure::render(&map).unwrap();
        assert!(fig.svg().contains("min 1, max 6"));
    }
}
