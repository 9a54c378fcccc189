//! Figures with plotters, rendered to SVG and PNG with a bundled font (DejaVu Sans), so no
//! system font library is needed: learning curves ([`LearningCurves`]), a final metric per group
//! with error bars ([`FinalMetric`]), and spike rasters and membrane traces ([`SpikeRaster`],
//! [`MembraneTrace`]), a value per lattice cell ([`CellMap`]), and plain x-y [`Lines`]. Each chart is a plain struct of the numbers it shows; [`Figure::render`]
//! draws it once per backend.

mod cell_map;
mod curves;
mod final_metric;
pub mod labels;
mod lines;
mod spikes;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use std::ops::Range;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::{
    BitMapBackend, Cartesian2d, ChartBuilder, ChartContext, Color, DrawingArea, DrawingBackend,
    IntoDrawingArea, SVGBackend, SeriesLabelPosition, BLACK, WHITE,
};
use plotters::style::{FontStyle, RGBColor};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

pub use cell_map::CellMap;
pub use curves::{Curve, LearningCurves};
pub use final_metric::{FinalMetric, MetricPoint};
pub use labels::ShortLabels;
pub use lines::Lines;
pub use spikes::{MembraneTrace, SpikeRaster};

/// The font family every chart uses; registered from the bundled DejaVu Sans.
pub(crate) const FONT: &str = "sans-serif";

/// Colour cycle for series (colour-blind safe, Okabe-Ito).
pub(crate) const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];

/// Something drawable on any plotters backend.
pub trait Chart {
    /// Pixel size `(width, height)`.
    fn size(&self) -> (u32, u32) {
        (800, 500)
    }

    /// Draws the chart on `root` (already filled white).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// A rendered chart: the same drawing as SVG text and PNG bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    svg: String,
    png: Vec<u8>,
    size: (u32, u32),
}

impl Figure {
    /// Renders `chart` to SVG and PNG.
    pub fn render(chart: &impl Chart) -> Result<Figure> {
        register_font()?;
        let size = chart.size();
        let fail = |e: String| Error::Analysis(format!("drawing a figure: {e}"));
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
            root.fill(&plotters::style::WHITE)
                .map_err(|e| fail(e.to_string()))?;
            chart.draw(&root).map_err(fail)?;
            root.present().map_err(|e| fail(e.to_string()))?;
        }
        let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
            root.fill(&plotters::style::WHITE)
                .map_err(|e| fail(e.to_string()))?;
            chart.draw(&root).map_err(fail)?;
            root.present().map_err(|e| fail(e.to_string()))?;
        }
        Ok(Figure {
            svg,
            png: encode_png(&rgb, size)?,
            size,
        })
    }

    /// The SVG document.
    pub fn svg(&self) -> &str {
        &self.svg
    }

    /// The PNG file's bytes.
    pub fn png(&self) -> &[u8] {
        &self.png
    }

    /// Width in pixels.
    pub fn width_px(&self) -> u32 {
        self.size.0
    }

    /// Height in pixels.
    pub fn height_px(&self) -> u32 {
        self.size.1
    }

    /// Writes `<dir>/<stem>.svg` and `<dir>/<stem>.png` (atomically) and returns their paths.
    pub fn save(&self, dir: impl AsRef<Path>, stem: &str) -> Result<SavedFigure> {
        let dir = dir.as_ref();
        let saved = SavedFigure {
            svg: dir.join(format!("{stem}.svg")),
            png: dir.join(format!("{stem}.png")),
        };
        write_atomic(&saved.svg, self.svg.as_bytes())?;
        write_atomic(&saved.png, &self.png)?;
        Ok(saved)
    }
}

/// Where [`Figure::save`] wrote a figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedFigure {
    /// The vector file, `<stem>.svg`.
    pub svg: PathBuf,
    /// The raster file, `<stem>.png`.
    pub png: PathBuf,
}

/// Registers DejaVu Sans as [`FONT`] with plotters (once per process; plotters keeps fonts in
/// its own table).
fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::Analysis(
            "the bundled DejaVu Sans font could not be loaded".into(),
        ))
    }
}

/// PNG bytes of an 8-bit RGB image.
fn encode_png(rgb: &[u8], (width, height): (u32, u32)) -> Result<Vec<u8>> {
    let fail = |e: png::EncodingError| Error::Analysis(format!("encoding PNG: {e}"));
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(fail)?;
        writer.write_image_data(rgb).map_err(fail)?;
        writer.finish().map_err(fail)?;
    }
    Ok(out)
}

/// `(min, max)` of `values` padded by 5% of the span (by 1% of the value, at least 0.001, when
/// flat); `(0, 1)` when empty.
pub(crate) fn padded_range(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo {
        0.05 * (hi - lo)
    } else {
        (0.01 * lo.abs()).max(1e-3)
    };
    (lo - pad, hi + pad)
}

/// A chart with two `f64` axes on a drawing area.
pub(crate) type Plane<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The frame every figure shares: `title` on top, axis label areas, `x` by `y` axes.
pub(crate) fn plane<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    x: Range<f64>,
    y: Range<f64>,
) -> Result<Plane<'a, DB>, String> {
    plane_with_x_area(root, title, x, y, 50)
}

/// [`plane`] with an x label area of `x_area` pixels (room for rotated group labels).
pub(crate) fn plane_with_x_area<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    x: Range<f64>,
    y: Range<f64>,
    x_area: u32,
) -> Result<Plane<'a, DB>, String> {
    ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(x_area)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(err)
}

/// Draws the legend of the labelled series at `position`.
pub(crate) fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Plane<'a, DB>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(position)
        .draw()
        .map_err(err)
}

/// A plotters error as text.
pub(crate) fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}
