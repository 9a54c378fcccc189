//! A study's figures, each a plain struct of the numbers it shows (drawn by
//! [`crate::plot::Figure::render`]): the optimisation history with the best value so far,
//! parallel coordinates of the parameters, each parameter's importance, the workers'
//! timeline, and the objective per epoch of every trial (where the pruner stopped them).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::journal::{StudyLog, TrialStatus};
use crate::metric::Mode;
use crate::plot::labels::integer_tick;
use crate::plot::{err, legend, padded_range, plane, Chart, FONT, PALETTE};

/// Axis names without their shared config path (`model.neuron.beta` -> `beta`), unless two
/// would then read the same.
fn short_names(keys: &[String]) -> Vec<String> {
    let last: Vec<String> = keys
        .iter()
        .map(|k| k.rsplit('.').next().unwrap_or(k).to_string())
        .collect();
    let unique = last
        .iter()
        .enumerate()
        .all(|(i, a)| last.iter().skip(i + 1).all(|b| a != b));
    if unique {
        last
    } else {
        keys.to_vec()
    }
}

/// Colour of a trial's status: completed blue, pruned orange, infeasible or failed grey.
fn status_color(status: TrialStatus, feasible: bool) -> RGBColor {
    match (status, feasible) {
        (TrialStatus::Completed, true) => PALETTE[0],
        (TrialStatus::Pruned, true) => PALETTE[1],
        _ => RGBColor(150, 150, 150),
    }
}

/// Each finished trial's value by trial number, and the best feasible value so far.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// The objective's name.
    pub metric: String,
    /// `(trial, value, status, feasible)` of every told trial.
    pub points: Vec<(usize, f64, TrialStatus, bool)>,
    /// `(trial, best so far)` steps.
    pub best: Vec<(usize, f64)>,
}

impl History {
    /// The history of `log` for an objective `metric` optimised in `mode`.
    pub fn new(log: &StudyLog, metric: &str, mode: Mode) -> History {
        let mut steps = Vec::new();
        let mut points = Vec::new();
        for (t, best) in log.trials.iter().zip(log.best_so_far(mode)) {
            let Some(v) = t.value else { continue };
            points.push((t.id, v, t.status, t.feasible()));
            if let Some(b) = best {
                steps.push((t.id, b));
            }
        }
        History {
            metric: metric.into(),
            points,
            best: steps,
        }
    }
}

impl Chart for History {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (x0, x1) = padded_range(self.points.iter().map(|p| p.0 as f64));
        let (y0, y1) = padded_range(self.points.iter().map(|p| p.1));
        let mut chart = plane(root, "Optimisation history", x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc("trial")
            .y_desc(self.metric.as_str())
            .x_label_formatter(&integer_tick)
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (status, feasible, name) in [
            (TrialStatus::Completed, true, "completed"),
            (TrialStatus::Pruned, true, "pruned"),
            (TrialStatus::Failed, false, "infeasible"),
        ] {
            let color = status_color(status, feasible);
            let pts: Vec<(f64, f64)> = self
                .points
                .iter()
                .filter(|p| status_color(p.2, p.3) == color)
                .map(|p| (p.0 as f64, p.1))
                .collect();
            if pts.is_empty() {
                continue;
            }
            chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.filled())))
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
        }
        let mut steps = Vec::new();
        for (i, (t, b)) in self.best.iter().enumerate() {
            if i > 0 {
                steps.push((*t as f64, self.best[i - 1].1));
            }
            steps.push((*t as f64, *b));
        }
        let black = RGBColor(0, 0, 0);
        chart
            .draw_series(LineSeries::new(steps, black.stroke_width(2)))
            .map_err(err)?
            .label("best feasible so far")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], black.stroke_width(2))
            });
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    }
}

/// One polyline per told trial through its unit coordinates, coloured from poor (light) to
/// good (dark) objective values.
#[derive(Debug, Clone, PartialEq)]
pub struct ParallelCoordinates {
    /// Axis names: the parameters, then the objective.
    pub axes: Vec<String>,
    /// Per trial, its coordinates in `[0, 1]` on each axis (the objective scaled to its range).
    pub lines: Vec<Vec<f64>>,
    /// Per trial, its quality in `[0, 1]` (1 = best).
    pub quality: Vec<f64>,
}

impl ParallelCoordinates {
    /// The lines of `log`'s told trials.
    pub fn new(log: &StudyLog, metric: &str, mode: Mode) -> ParallelCoordinates {
        let mut axes: Vec<String> = log.config.space.params.keys().cloned().collect();
        axes.push(metric.into());
        let told: Vec<_> = log.trials.iter().filter(|t| t.value.is_some()).collect();
        let (lo, hi) = told
            .iter()
            .filter_map(|t| t.value)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        let scale = |v: f64| if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        let lines = told
            .iter()
            .map(|t| {
                let mut l = t.unit.clone();
                l.push(scale(t.value.unwrap_or(lo)));
                l
            })
            .collect();
        let quality = told
            .iter()
            .map(|t| {
                let s = scale(t.value.unwrap_or(lo));
                if mode == Mode::Max {
                    s
                } else {
                    1.0 - s
                }
            })
            .collect();
        ParallelCoordinates {
            axes,
            lines,
            quality,
        }
    }
}

impl Chart for ParallelCoordinates {
    fn size(&self) -> (u32, u32) {
        (900, 500)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let n = self.axes.len().max(2) as f64;
        let mut chart = crate::plot::plane_with_x_area(
            root,
            "Parallel coordinates (unit scale; darker = better)",
            -0.3..n - 0.7,
            -0.05..1.05,
            60,
        )?;
        let names = short_names(&self.axes);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(self.axes.len())
            .x_label_formatter(&move |x| {
                let i = x.round() as usize;
                if (x - x.round()).abs() < 1e-6 {
                    names.get(i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("position in range")
            .label_style((FONT, 12))
            .draw()
            .map_err(err)?;
        let mut order: Vec<usize> = (0..self.lines.len()).collect();
        order.sort_by(|a, b| self.quality[*a].total_cmp(&self.quality[*b]));
        for i in order {
            let q = self.quality[i];
            let shade = |c: u8| (255.0 - (255.0 - c as f64) * (0.2 + 0.8 * q)) as u8;
            let color = RGBColor(
                shade(PALETTE[0].0),
                shade(PALETTE[0].1),
                shade(PALETTE[0].2),
            );
            let pts: Vec<(f64, f64)> = self.lines[i]
                .iter()
                .enumerate()
                .map(|(a, v)| (a as f64, *v))
                .collect();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(1)))
                .map_err(err)?;
        }
        Ok(())
    }
}

/// Each parameter's importance: the share of the objective's variance explained by its main
/// effect, estimated by cutting its axis into quantile bins (a one-dimensional functional
/// ANOVA); shares are normalised to sum to 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Importance {
    /// `(parameter, share)`, largest first.
    pub shares: Vec<(String, f64)>,
}

impl Importance {
    /// The importances in `log`'s told trials (`bins` quantile bins per axis).
    pub fn new(log: &StudyLog, bins: usize) -> Importance {
        let told: Vec<_> = log.trials.iter().filter(|t| t.value.is_some()).collect();
        let values: Vec<f64> = told.iter().filter_map(|t| t.value).collect();
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let total: f64 = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let mut raw: Vec<(String, f64)> = log
            .config
            .space
            .params
            .keys()
            .enumerate()
            .map(|(axis, key)| {
                let mut order: Vec<usize> = (0..told.len()).collect();
                order.sort_by(|a, b| told[*a].unit[axis].total_cmp(&told[*b].unit[axis]));
                let per_bin = told.len().div_ceil(bins.max(1)).max(1);
                let between: f64 = order
                    .chunks(per_bin)
                    .map(|chunk| {
                        let m = chunk.iter().map(|i| values[*i]).sum::<f64>() / chunk.len() as f64;
                        chunk.len() as f64 * (m - mean).powi(2)
                    })
                    .sum::<f64>()
                    / n;
                (key.clone(), if total > 0.0 { between / total } else { 0.0 })
            })
            .collect();
        let sum: f64 = raw.iter().map(|r| r.1).sum();
        if sum > 0.0 {
            raw.iter_mut().for_each(|r| r.1 /= sum);
        }
        raw.sort_by(|a, b| b.1.total_cmp(&a.1));
        Importance { shares: raw }
    }
}

impl Chart for Importance {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let n = self.shares.len().max(1) as f64;
        let top = self
            .shares
            .iter()
            .map(|s| s.1)
            .fold(0.0, f64::max)
            .max(1e-3)
            * 1.1;
        let mut chart = crate::plot::plane_with_x_area(
            root,
            "Parameter importance (main-effect share of variance)",
            -0.5..n - 0.5,
            0.0..top,
            60,
        )?;
        let names = short_names(&self.shares.iter().map(|s| s.0.clone()).collect::<Vec<_>>());
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(self.shares.len())
            .x_label_formatter(&move |x| {
                if (x - x.round()).abs() < 1e-6 {
                    names.get(x.round() as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("share")
            .label_style((FONT, 12))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(self.shares.iter().enumerate().map(|(i, (_, s))| {
                Rectangle::new(
                    [(i as f64 - 0.35, 0.0), (i as f64 + 0.35, *s)],
                    PALETTE[0].filled(),
                )
            }))
            .map_err(err)?;
        Ok(())
    }
}

/// When each worker ran which trial: one row per worker, a bar per trial from its start to
/// its end (seconds since the study started), coloured by status.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// Worker names, one row each.
    pub workers: Vec<String>,
    /// `(worker row, start s, end s, status)` per trial.
    pub bars: Vec<(usize, f64, f64, TrialStatus)>,
}

impl Timeline {
    /// The timeline of `log`'s finished trials.
    pub fn new(log: &StudyLog) -> Timeline {
        let mut workers: Vec<String> = Vec::new();
        let mut bars = Vec::new();
        for t in &log.trials {
            let (Some(w), Some(s), Some(e)) = (&t.worker, t.started_s, t.ended_s) else {
                continue;
            };
            let row = match workers.iter().position(|x| x == w) {
                Some(r) => r,
                None => {
                    workers.push(w.clone());
                    workers.len() - 1
                }
            };
            bars.push((row, s - log.started_s, e - log.started_s, t.status));
        }
        Timeline { workers, bars }
    }
}

impl Chart for Timeline {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (_, x1) = padded_range(self.bars.iter().map(|b| b.2));
        let rows = self.workers.len().max(1) as f64;
        let mut chart = plane(
            root,
            "Workers over time",
            0.0..x1.max(1.0),
            -0.5..rows - 0.5,
        )?;
        let names = self.workers.clone();
        chart
            .configure_mesh()
            .y_labels(self.workers.len().max(1))
            .y_label_formatter(&move |y| {
                if (y - y.round()).abs() < 1e-6 {
                    names.get(y.round() as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc("seconds since the study started")
            .label_style((FONT, 12))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(self.bars.iter().map(|(row, s, e, status)| {
                let c = status_color(*status, true);
                let y = *row as f64;
                Rectangle::new([(*s, y - 0.35), (*e, y + 0.35)], c.filled())
            }))
            .map_err(err)?;
        Ok(())
    }
}

/// The objective after each epoch of every trial: where the pruner stopped trials.
#[derive(Debug, Clone, PartialEq)]
pub struct Intermediate {
    /// The objective's name.
    pub metric: String,
    /// `(pruned, [(epoch, value)])` per trial.
    pub trials: Vec<(bool, Vec<(usize, f64)>)>,
}

impl Intermediate {
    /// The per-epoch reports of `log`.
    pub fn new(log: &StudyLog, metric: &str) -> Intermediate {
        let trials = log
            .trials
            .iter()
            .filter(|t| !t.reports.is_empty())
            .map(|t| {
                let mut r = t.reports.clone();
                r.sort_by_key(|p| p.0);
                (t.status == TrialStatus::Pruned, r)
            })
            .collect();
        Intermediate {
            metric: metric.into(),
            trials,
        }
    }
}

impl Chart for Intermediate {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let all = || self.trials.iter().flat_map(|(_, r)| r.iter());
        let (x0, x1) = padded_range(all().map(|p| p.0 as f64));
        let (y0, y1) = padded_range(all().map(|p| p.1));
        let mut chart = plane(root, "Objective per epoch (orange: pruned)", x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(self.metric.as_str())
            .x_label_formatter(&integer_tick)
            .label_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (pruned, r) in &self.trials {
            let c = if *pruned { PALETTE[1] } else { PALETTE[0] };
            let pts: Vec<(f64, f64)> = r.iter().map(|(e, v)| (*e as f64, *v)).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), c.mix(0.7).stroke_width(1)))
                .map_err(err)?;
            chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 2, c.filled())))
                .map_err(err)?;
        }
        Ok(())
    }
}
