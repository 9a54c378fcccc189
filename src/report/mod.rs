//! Text from minijinja templates: the README leaderboard ([`leaderboard`]), evidence reports
//! ([`evidence`]), the comparison with published values ([`reference`], [`fidelity`]), and the cluster job scripts ([`crate::cluster`]). Templates live in `templates/`; the
//! build embeds copies, and a project's own `templates/` directory overrides them by file name.

pub mod evidence;
pub mod fidelity;
pub mod leaderboard;
pub mod reference;
pub mod speed;

use std::path::Path;

use minijinja::Environment;
use serde::Serialize;

use crate::error::{Error, Result};

pub use evidence::{EvidenceReport, NamedFigure, ReportOptions};
pub use fidelity::{Fidelity, FidelityRow, SeedValue, Verdict};
pub use leaderboard::{
    replace_section, write_section, Annotation, Annotations, EntryStatus, Leaderboard,
};
pub use reference::{ReferenceFile, ReferenceRow, ReferenceStatus, References};
pub use speed::BenchRates;

/// The templates shipped with the build, by file name.
const EMBEDDED: &[(&str, &str)] = &[
    (
        "leaderboard.md.j2",
        include_str!("../../templates/leaderboard.md.j2"),
    ),
    ("report.md.j2", include_str!("../../templates/report.md.j2")),
    (
        "fidelity.md.j2",
        include_str!("../../templates/fidelity.md.j2"),
    ),
    (
        "hpo_report.md.j2",
        include_str!("../../templates/hpo_report.md.j2"),
    ),
    ("pbs.sh.j2", include_str!("../../templates/pbs.sh.j2")),
    ("slurm.sh.j2", include_str!("../../templates/slurm.sh.j2")),
];

/// Renders template `name` with `context`: from `<dir>/<name>` when `dir` holds it, else the
/// embedded copy.
pub fn render(name: &str, dir: Option<&Path>, context: impl Serialize) -> Result<String> {
    let fail = |message: String| Error::Template {
        name: name.to_string(),
        message,
    };
    let source = match dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
        Some(path) => std::fs::read_to_string(&path).map_err(Error::io("reading", &path))?,
        None => EMBEDDED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| (*s).to_string())
            .ok_or_else(|| {
                fail(format!(
                    "no such template (shipped: {})",
                    EMBEDDED
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
    };
    let mut env = Environment::new();
    env.set_keep_trailing_newline(true);
    env.add_template_owned(name.to_string(), source)
        .map_err(|e| fail(e.to_string()))?;
    env.get_template(name)
        .and_then(|t| t.render(context))
        .map_err(|e| fail(e.to_string()))
}

/// `x` as a percentage with two decimals (`0.97623` -> `97.62`).
pub(crate) fn pct(x: f64) -> String {
    format!("{:.2}", 100.0 * x)
}

/// `mean ± std` in percent, or the mean alone for one seed.
pub fn pct_pm(mean: f64, std: Option<f64>) -> String {
    match std {
        Some(s) => format!("{}% ± {}%", pct(mean), pct(s)),
        None => format!("{}%", pct(mean)),
    }
}

/// `mean ± std` in percent (see [`pct_pm`]) or with four decimals (`0.1234 ± 0.0056`); the
/// mean alone for one seed.
pub fn value_pm(mean: f64, std: Option<f64>, percent: bool) -> String {
    match (percent, std) {
        (true, _) => pct_pm(mean, std),
        (false, Some(s)) => format!("{} ± {}", num(Some(mean)), num(Some(s))),
        (false, None) => num(Some(mean)),
    }
}

/// One value in percent (`97.62%`) or with four decimals (`0.1234`).
pub fn value_text(x: f64, percent: bool) -> String {
    if percent {
        format!("{}%", pct(x))
    } else {
        num(Some(x))
    }
}

/// Whether values of a metric with `unit` are shown in percent (a `fraction`).
pub fn is_percent(unit: &str) -> bool {
    unit == "fraction"
}

/// `x` with four significant decimals, or `—` when missing.
pub(crate) fn num(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.4}"),
        _ => "—".into(),
    }
}

/// A p-value: four decimals, or `< 0.0001`.
pub(crate) fn pvalue(p: Option<f64>) -> String {
    match p {
        Some(v) if v < 1e-4 => "< 0.0001".into(),
        other => num(other),
    }
}
