//! The fidelity report: for every experiment with a published reference value, our completed
//! seeds against it (`report.md`, `fidelity.csv`, `seeds.csv` and a figure), with the
//! distance in reference stds, Welch's test (against the published per-seed values where
//! there are some, else the published mean ± std), and why a row falls outside one
//! reference std (the recipe differences the reference file records, and the leaderboard's
//! notes).

use std::path::{Path, PathBuf};

use polars::prelude::DataFrame;
use serde::Serialize;

use super::reference::{ReferenceRow, ReferenceStatus, References};
use super::speed::run_speed;
use super::{is_percent, num, pvalue, render, value_pm, Annotations};
use crate::error::Result;
use crate::frame::{f64_column, read_csv, str_column, to_csv, Frame};
use crate::fsutil::write_atomic;
use crate::plot::{Figure, FinalMetric, MetricPoint};
use crate::stats::{median, welch, SampleSummary, Welch};

/// Where a row stands against its reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Our seed mean is within one reference std of the reference mean.
    Within,
    /// It is not.
    Outside,
    /// The upstream project planned the row and never ran it: ours is a new row.
    New,
    /// No completed runs of ours yet.
    NoRuns,
}

/// One completed run of ours.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedValue {
    /// The run's seed.
    pub seed: u64,
    /// Its value of the compared metric.
    pub value: f64,
    /// Its wall time in seconds.
    pub wall_time_s: f64,
    /// The median of its epochs' training times (`epoch_time_s`), in seconds.
    pub epoch_s: f64,
    /// Its training samples over `epoch_s` (validation and probes included), where the log
    /// gives the training set's size.
    pub train_samples_s: Option<f64>,
    /// Its run directory.
    pub path: String,
}

/// One reference row with our runs of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FidelityRow {
    /// The reference row.
    pub reference: ReferenceRow,
    /// The upstream project.
    pub project: String,
    /// Whether the values are fractions (shown in percent).
    pub percent: bool,
    /// Our completed seeds, by seed.
    pub ours: Vec<SeedValue>,
    /// Our seed mean and sample std (`None` without runs; std `None` for one seed).
    pub ours_mean: Option<f64>,
    /// Our sample std (ddof 1).
    pub ours_std: Option<f64>,
    /// Ours minus the reference mean, in reference stds.
    pub distance: Option<f64>,
    /// Welch's test of ours against the reference.
    #[serde(skip)]
    pub welch: Option<Welch>,
    /// Where the row stands.
    pub verdict: Verdict,
    /// The leaderboard's notes for the experiment (our explanation of a difference).
    pub notes: String,
    /// Training samples/s `autoresearch bench` measured for the same network, once
    /// [`Fidelity::with_bench`] was given the results.
    pub bench_samples_s: Option<f64>,
    /// Which bench row that is: `own` (the experiment's own training step, `bench
    /// --experiment`) or the reference script's row (`reference.bench`, `a`..`i`).
    pub bench_row: Option<String>,
    /// The median epoch time (s) and training samples/s of the experiment's runs on an idle
    /// machine, once [`Fidelity::with_idle`] was given them.
    pub idle: Option<(f64, Option<f64>)>,
}

impl FidelityRow {
    /// The median over our seeds of their end-to-end training samples/s.
    pub fn train_samples_s(&self) -> Option<f64> {
        let values: Vec<f64> = self.ours.iter().filter_map(|s| s.train_samples_s).collect();
        median(&values)
    }

    /// The median over our seeds of their median epoch times, in seconds.
    pub fn epoch_s(&self) -> Option<f64> {
        let values: Vec<f64> = self.ours.iter().map(|s| s.epoch_s).collect();
        median(&values)
    }

    /// End-to-end training samples/s over the bench's, where both are known: from the idle
    /// runs where given, else from the compared runs.
    pub fn train_over_bench(&self) -> Option<f64> {
        let train = match self.idle {
            Some((_, train)) => train?,
            None => self.train_samples_s()?,
        };
        Some(train / self.bench_samples_s?)
    }
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Fidelity {
    /// One row per reference row, by experiment and variant.
    pub rows: Vec<FidelityRow>,
    /// The `autoresearch bench` results the bench column comes from.
    pub bench_files: Vec<String>,
    /// Where the idle runs of the speed table come from ([`Fidelity::with_idle`]).
    pub idle_runs: Option<String>,
}

impl Fidelity {
    /// Matches the completed runs of the `runs` frame ([`crate::runs::scan`]) to
    /// `references` by experiment and variant, taking each row's statistic of validation
    /// accuracy from every run's `history.csv`.
    pub fn build(
        runs: &DataFrame,
        references: &References,
        annotations: &Annotations,
    ) -> Result<Fidelity> {
        let col = |name: &str| str_column(runs, name);
        let (exp, var, status, path) = (
            col("experiment")?,
            col("variant")?,
            col("status")?,
            col("path")?,
        );
        let (seed, wall) = (f64_column(runs, "seed")?, f64_column(runs, "wall_time_s")?);
        let mut rows = Vec::new();
        for (r, origin) in references.iter() {
            let mut ours = Vec::new();
            for i in 0..runs.height() {
                let mine = exp[i].as_deref() == Some(r.experiment.as_str())
                    && var[i].as_deref() == Some(r.variant.as_str())
                    && status[i].as_deref() == Some("completed");
                let (true, Some(seed), Some(dir)) = (mine, seed[i], &path[i]) else {
                    continue;
                };
                let h = validation_history(Path::new(dir))?;
                let (epoch_s, train_samples_s) =
                    run_speed(Path::new(dir), &h.epoch_s).unwrap_or((f64::NAN, None));
                let Some(value) = r.statistic.of_history(&h.acc, &h.loss) else {
                    continue;
                };
                ours.push(SeedValue {
                    seed: seed as u64,
                    value,
                    wall_time_s: wall[i].unwrap_or(f64::NAN),
                    epoch_s,
                    train_samples_s,
                    path: dir.clone(),
                });
            }
            ours.sort_by_key(|s| s.seed);
            let notes = annotations
                .entries
                .get(&format!("{}/{}", r.experiment, r.variant))
                .or_else(|| annotations.entries.get(&r.experiment))
                .and_then(|a| a.notes.clone())
                .unwrap_or_default();
            let percent = is_percent(&origin.unit);
            rows.push(compare(r.clone(), &origin.project, percent, ours, notes)?);
        }
        Ok(Fidelity {
            rows,
            bench_files: Vec::new(),
            idle_runs: None,
        })
    }

    /// One line per row: experiment, model, encoding, our and the reference's mean, std and
    /// seeds, the difference, its size in reference stds, Welch's t, dof and p, the verdict.
    pub fn frame(&self) -> Result<DataFrame> {
        let rows = &self.rows;
        let opt = |f: &dyn Fn(&FidelityRow) -> Option<f64>| {
            rows.iter()
                .map(|r| f(r).unwrap_or(f64::NAN))
                .collect::<Vec<_>>()
        };
        let text = |f: &dyn Fn(&FidelityRow) -> String| rows.iter().map(f).collect::<Vec<_>>();
        Frame::new()
            .strs("experiment", text(&|r| r.reference.experiment.clone()))
            .strs("variant", text(&|r| r.reference.variant.clone()))
            .strs("model", text(&|r| r.reference.model.clone()))
            .strs("encoding", text(&|r| r.reference.encoding.clone()))
            .strs(
                "statistic",
                text(&|r| r.reference.statistic.text().to_string()),
            )
            .u64s("seeds", rows.iter().map(|r| r.ours.len() as u64))
            .f64s("mean", opt(&|r| r.ours_mean))
            .f64s("std", opt(&|r| r.ours_std))
            .f64s("reference_mean", opt(&|r| r.reference.mean))
            .f64s("reference_std", opt(&|r| r.reference.std))
            .f64s(
                "reference_seeds",
                opt(&|r| r.reference.seeds.map(|n| n as f64)),
            )
            .f64s(
                "difference",
                opt(&|r| Some(r.ours_mean? - r.reference.mean?)),
            )
            .f64s("distance_in_reference_std", opt(&|r| r.distance))
            .f64s("welch_t", opt(&|r| r.welch.map(|w| w.t)))
            .f64s("welch_dof", opt(&|r| r.welch.map(|w| w.dof)))
            .f64s("welch_p", opt(&|r| r.welch.map(|w| w.p_two_sided)))
            .strs("verdict", text(&|r| verdict_text(r.verdict).to_string()))
            .f64s("compute_h", opt(&|r| Some(hours(&r.ours))))
            .f64s("epoch_s", opt(&|r| r.epoch_s()))
            .f64s("train_samples_s", opt(&|r| r.train_samples_s()))
            .strs(
                "bench_row",
                text(&|r| r.bench_row.clone().unwrap_or_default()),
            )
            .f64s("bench_samples_s", opt(&|r| r.bench_samples_s))
            .f64s("idle_epoch_s", opt(&|r| r.idle.map(|(e, _)| e)))
            .f64s(
                "idle_train_samples_s",
                opt(&|r| r.idle.and_then(|(_, t)| t)),
            )
            .f64s("train_over_bench", opt(&|r| r.train_over_bench()))
            .finish()
    }

    /// One line per seed of ours (with its run directory) and per published seed of the
    /// reference (`source` `reference`, no directory).
    pub fn seeds_frame(&self) -> Result<DataFrame> {
        let mut exp = Vec::new();
        let mut source = Vec::new();
        let mut seed = Vec::new();
        let mut value = Vec::new();
        let mut path = Vec::new();
        for r in &self.rows {
            for s in &r.ours {
                exp.push(r.reference.experiment.clone());
                source.push("ours".to_string());
                seed.push(s.seed as f64);
                value.push(s.value);
                path.push(s.path.clone());
            }
            for (i, v) in r.reference.per_seed.iter().enumerate() {
                exp.push(r.reference.experiment.clone());
                source.push("reference".to_string());
                seed.push(i as f64);
                value.push(*v);
                path.push(String::new());
            }
        }
        Frame::new()
            .strs("experiment", exp)
            .strs("source", source)
            .f64s("seed", seed)
            .f64s("val_acc", value)
            .strs("path", path)
            .finish()
    }

    /// Our seeds and seed mean ± std per row, as distances from the reference mean in
    /// reference stds, with the band of one reference std shaded (rows with a reported
    /// value and runs only).
    pub fn chart(&self) -> FinalMetric {
        let points = self
            .rows
            .iter()
            .filter_map(|r| {
                let (mean, std) = r.reference.value()?;
                if std <= 0.0 || r.ours.is_empty() {
                    return None;
                }
                let z = |v: f64| (v - mean) / std;
                Some(MetricPoint {
                    label: r.reference.model.clone(),
                    mean: z(r.ours_mean?),
                    std: r.ours_std.map(|s| s / std),
                    values: r.ours.iter().map(|s| z(s.value)).collect(),
                })
            })
            .collect();
        FinalMetric {
            title: "Validation accuracy: ours against the reference".into(),
            metric: "distance from the reference mean".into(),
            unit: "reference stds".into(),
            points,
            band: Some((-1.0, 1.0)),
        }
    }

    /// Writes `report.md` (template `fidelity.md.j2`), `fidelity.csv`, `seeds.csv` and the
    /// figure `fidelity.{svg,png}` into `dir`; returns the paths written.
    pub fn write(&self, dir: &Path, templates: Option<&Path>) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(crate::Error::io("creating", dir))?;
        let mut written = Vec::new();
        for (name, frame) in [
            ("fidelity.csv", self.frame()?),
            ("seeds.csv", self.seeds_frame()?),
        ] {
            let path = dir.join(name);
            write_atomic(&path, &to_csv(&frame)?)?;
            written.push(path);
        }
        let chart = self.chart();
        let has_figure = !chart.points.is_empty();
        if has_figure {
            let saved = Figure::render(&chart)?.save(dir, "fidelity")?;
            written.extend([saved.svg, saved.png]);
        }
        let text = render("fidelity.md.j2", templates, self.context(has_figure))?;
        let path = dir.join("report.md");
        write_atomic(&path, text.as_bytes())?;
        written.push(path);
        Ok(written)
    }

    /// The template's context: formatted rows and the counts.
    fn context(&self, has_figure: bool) -> serde_json::Value {
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                let p = r.percent;
                serde_json::json!({
                    "statistic": r.reference.statistic.text(),
                    "experiment": r.reference.experiment,
                    "variant": r.reference.variant,
                    "model": r.reference.model,
                    "encoding": r.reference.encoding,
                    "budget": r.reference.budget,
                    "source": r.reference.source,
                    "project": r.project,
                    "differences": r.reference.differences.clone().unwrap_or_default(),
                    "notes": r.notes,
                    "ours": r.ours_mean.map(|m| value_pm(m, r.ours_std, p)).unwrap_or_else(|| "—".into()),
                    "seeds": r.ours.len(),
                    "per_seed": r.ours.iter().map(|s| format!("{}: {}", s.seed, pct_or_num(s.value, p))).collect::<Vec<_>>().join(", "),
                    "reference": match r.reference.value() {
                        Some((m, s)) => value_pm(m, Some(s), p),
                        None => "planned, never run".into(),
                    },
                    "reference_seeds": r.reference.seeds,
                    "reference_per_seed": r.reference.per_seed.iter().map(|v| pct_or_num(*v, p)).collect::<Vec<_>>().join(", "),
                    "difference": match (r.ours_mean, r.reference.mean) {
                        (Some(a), Some(b)) if p => format!("{:+.2} pp", 100.0 * (a - b)),
                        (Some(a), Some(b)) => format!("{:+.4}", a - b),
                        _ => "—".into(),
                    },
                    "distance": r.distance.map_or_else(|| "—".into(), |d| format!("{d:+.1}")),
                    "welch": r.welch.map_or_else(|| "—".into(), welch_text),
                    "verdict": verdict_text(r.verdict),
                    "hours": if r.ours.is_empty() { "—".to_string() } else { format!("{:.2}", hours(&r.ours)) },
                    "epoch_s": r.epoch_s().map_or_else(|| "—".into(), |v| format!("{v:.1}")),
                    "train_samples_s": r.train_samples_s().map_or_else(|| "—".into(), |v| format!("{v:.0}")),
                    "idle_epoch_s": r.idle.map_or_else(|| "—".into(), |(e, _)| format!("{e:.1}")),
                    "idle_train_samples_s": r.idle.and_then(|(_, t)| t).map_or_else(|| "—".into(), |v| format!("{v:.0}")),
                    "bench": r.bench_row.clone().or_else(|| r.reference.bench.clone()).unwrap_or_else(|| "—".into()),
                    "bench_samples_s": r.bench_samples_s.map_or_else(|| "—".into(), |v| format!("{v:.0}")),
                    "train_over_bench": r.train_over_bench().map_or_else(|| "—".into(), |v| format!("{:.0}%", 100.0 * v)),
                })
            })
            .collect();
        // the acceptance counts rows we ran at five seeds or more
        let count = |v: Verdict, five: bool| {
            self.rows
                .iter()
                .filter(|r| r.verdict == v && (!five || r.ours.len() >= 5))
                .count()
        };
        serde_json::json!({
            "rows": rows,
            "within": count(Verdict::Within, false),
            "outside": count(Verdict::Outside, false),
            "new": count(Verdict::New, false),
            "no_runs": count(Verdict::NoRuns, false),
            "within_five": count(Verdict::Within, true),
            "compared_five": count(Verdict::Within, true) + count(Verdict::Outside, true),
            "hours": format!("{:.1}", self.rows.iter().map(|r| hours(&r.ours)).fold(0.0, |a, b| a + b)),
            "has_figure": has_figure,
            "bench_files": self.bench_files,
            "idle_runs": self.idle_runs,
        })
    }
}

/// One row's comparison.
fn compare(
    reference: ReferenceRow,
    project: &str,
    percent: bool,
    ours: Vec<SeedValue>,
    notes: String,
) -> Result<FidelityRow> {
    let values: Vec<f64> = ours.iter().map(|s| s.value).collect();
    let summary = (!values.is_empty())
        .then(|| SampleSummary::of(&values))
        .transpose()?;
    let ours_mean = summary.map(|s| s.mean);
    let ours_std = summary.filter(|s| s.n > 1).map(|s| s.std);
    let distance = ours_mean.and_then(|m| reference.distance_in_std(m));
    let test = match (summary, reference_summary(&reference)?) {
        (Some(a), Some(b)) => welch(a, b),
        _ => None,
    };
    let verdict = match (reference.status, distance) {
        (ReferenceStatus::Planned, _) if !ours.is_empty() => Verdict::New,
        _ if ours.is_empty() => Verdict::NoRuns,
        (_, Some(d)) if d.abs() <= 1.0 => Verdict::Within,
        (_, Some(_)) => Verdict::Outside,
        // a reported row with zero spread: within only when equal
        _ if ours_mean == reference.mean => Verdict::Within,
        _ => Verdict::Outside,
    };
    Ok(FidelityRow {
        reference,
        project: project.to_string(),
        percent,
        ours,
        ours_mean,
        ours_std,
        distance,
        welch: test,
        verdict,
        notes,
        bench_samples_s: None,
        bench_row: None,
        idle: None,
    })
}

/// A run's per-epoch validation accuracy and loss and training time.
pub(super) struct History {
    acc: Vec<f64>,
    loss: Vec<f64>,
    pub(super) epoch_s: Vec<f64>,
}

/// A run's validation accuracy and loss and training time per epoch, from its `history.csv`.
pub(super) fn validation_history(dir: &Path) -> Result<History> {
    let path = dir.join("history.csv");
    let table = read_csv(&path)?;
    let numbers = |name: &str| -> Result<Vec<f64>> {
        let Some(cells) = table.column(name) else {
            return Ok(Vec::new());
        };
        cells
            .iter()
            .map(|c| {
                c.trim().parse::<f64>().map_err(|_| {
                    crate::Error::Analysis(format!(
                        "{}: `{c}` in column {name} is not a number",
                        path.display()
                    ))
                })
            })
            .collect()
    };
    Ok(History {
        acc: numbers("val_acc")?,
        loss: numbers("val_loss")?,
        epoch_s: numbers("epoch_time_s")?,
    })
}

/// The reference's sample: its per-seed values where published, else its mean, std (turned
/// into a sample std where it was a population one) and number of seeds.
fn reference_summary(r: &ReferenceRow) -> Result<Option<SampleSummary>> {
    if !r.per_seed.is_empty() {
        return Ok(Some(SampleSummary::of(&r.per_seed)?));
    }
    let (Some((mean, std)), Some(n)) = (r.value(), r.seeds) else {
        return Ok(None);
    };
    let std = match r.ddof {
        Some(0) if n > 1 => std * (n as f64 / (n - 1) as f64).sqrt(),
        _ => std,
    };
    Ok(Some(SampleSummary { mean, std, n }))
}

/// `t = 1.23, df = 7.2, p = 0.2345` (or `p < 0.0001`).
fn welch_text(w: Welch) -> String {
    let p = pvalue(Some(w.p_two_sided));
    let p = if p.starts_with('<') {
        format!("p {p}")
    } else {
        format!("p = {p}")
    };
    format!("t = {:.2}, df = {:.1}, {p}", w.t, w.dof)
}

/// The wall time of `runs` in hours.
fn hours(runs: &[SeedValue]) -> f64 {
    runs.iter().map(|s| s.wall_time_s).fold(0.0, |a, b| a + b) / 3600.0
}

fn verdict_text(v: Verdict) -> &'static str {
    match v {
        Verdict::Within => "within 1 std",
        Verdict::Outside => "outside 1 std",
        Verdict::New => "new row",
        Verdict::NoRuns => "no runs yet",
    }
}

fn pct_or_num(v: f64, percent: bool) -> String {
    if percent {
        format!("{:.2}", 100.0 * v)
    } else {
        num(Some(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: ReferenceStatus, mean: Option<f64>, per_seed: Vec<f64>) -> ReferenceRow {
        ReferenceRow {
            experiment: "e".into(),
            variant: "default".into(),
            model: "M".into(),
            encoding: "pixels".into(),
            status,
            statistic: Default::default(),
            mean,
            std: mean.map(|_| 0.002),
            ddof: Some(1),
            seeds: mean.map(|_| 5),
            per_seed,
            budget: "b".into(),
            source: "s".into(),
            differences: None,
            bench: None,
        }
    }

    fn seeds(values: &[f64]) -> Vec<SeedValue> {
        values
            .iter()
            .enumerate()
            .map(|(i, &value)| SeedValue {
                seed: i as u64,
                value,
                wall_time_s: 60.0,
                epoch_s: 20.0,
                train_samples_s: None,
                path: format!("runs/e/default/seed_{i}"),
            })
            .collect()
    }

    #[test]
    fn verdicts_follow_the_distance_in_reference_stds() -> Result<()> {
        let reported = row(ReferenceStatus::Reported, Some(0.98), vec![]);
        let near = compare(
            reported.clone(),
            "P",
            true,
            seeds(&[0.979, 0.981, 0.9815]),
            "".into(),
        )?;
        assert_eq!(near.verdict, Verdict::Within);
        let d = near.distance.unwrap_or(f64::NAN);
        assert!((d - 0.25).abs() < 1e-9, "{d}");
        // Welch from the published mean ± std: n 5 against our 3
        let w = near
            .welch
            .ok_or_else(|| crate::Error::Analysis("no test".into()))?;
        assert!(w.p_two_sided > 0.5 && w.dof > 2.0, "{w:?}");
        let far = compare(
            reported.clone(),
            "P",
            true,
            seeds(&[0.975, 0.976]),
            "".into(),
        )?;
        assert_eq!(far.verdict, Verdict::Outside);
        let none = compare(reported, "P", true, vec![], "".into())?;
        assert_eq!((none.verdict, none.welch), (Verdict::NoRuns, None));
        let planned = compare(
            row(ReferenceStatus::Planned, None, vec![]),
            "P",
            true,
            seeds(&[0.9]),
            "".into(),
        )?;
        assert_eq!((planned.verdict, planned.distance), (Verdict::New, None));
        Ok(())
    }

    #[test]
    fn published_seeds_are_the_reference_sample_and_a_population_std_is_corrected() -> Result<()> {
        let with_seeds = row(
            ReferenceStatus::Reported,
            Some(0.98),
            vec![0.978, 0.979, 0.98, 0.981, 0.982],
        );
        let s =
            reference_summary(&with_seeds)?.ok_or_else(|| crate::Error::Analysis("none".into()))?;
        assert_eq!(s.n, 5);
        assert!((s.std - 0.0015811).abs() < 1e-6, "{}", s.std);
        let mut population = row(ReferenceStatus::Reported, Some(0.98), vec![]);
        population.ddof = Some(0);
        let p =
            reference_summary(&population)?.ok_or_else(|| crate::Error::Analysis("none".into()))?;
        assert!((p.std - 0.002 * (5.0f64 / 4.0).sqrt()).abs() < 1e-12);
        Ok(())
    }
}
