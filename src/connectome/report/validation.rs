//! The three validation reports, every line computed from the run directories, the data and
//! the connectome re-read from its tables (nothing is written as passed without a check).

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;

use super::collect::{RunInfo, Sweep};
use crate::config::{PathTargets, RecurrentTraining};
use crate::connectome::{build_control, load, load::read_edge_rows, Graph};
use crate::error::Result;

/// Markdown of the three reports and how many checks failed.
pub struct Checks {
    /// `data_validation.md`.
    pub data: String,
    /// `bpu_validation.md`.
    pub bpu: String,
    /// `control_validation.md`.
    pub control: String,
    /// Failed checks over all three.
    pub failures: usize,
}

/// Lines of one report.
struct Report {
    text: String,
    failures: usize,
}

impl Report {
    fn new(title: &str) -> Self {
        Report {
            text: format!("# {title}\n\n"),
            failures: 0,
        }
    }

    fn check(&mut self, ok: bool, what: impl AsRef<str>) {
        self.failures += usize::from(!ok);
        let _ = writeln!(
            self.text,
            "- {}: {}",
            if ok { "PASS" } else { "FAIL" },
            what.as_ref()
        );
    }

    fn note(&mut self, what: impl AsRef<str>) {
        let _ = writeln!(self.text, "- {}", what.as_ref());
    }
}

/// Runs every check of the sweep.
pub fn all(sweep: &Sweep) -> Result<Checks> {
    let cores: Vec<&RunInfo> = sweep.runs.iter().filter(|r| r.bpu().is_some()).collect();
    let graph = match cores.first().and_then(|r| r.bpu()) {
        Some(cfg) => Some(load(&cfg.connectome)?),
        None => None,
    };
    let data = data_report(sweep, &cores, graph.as_ref())?;
    let bpu = bpu_report(sweep, &cores, graph.as_ref())?;
    let control = control_report(sweep, &cores, graph.as_ref())?;
    Ok(Checks {
        failures: data.failures + bpu.failures + control.failures,
        data: data.text,
        bpu: bpu.text,
        control: control.text,
    })
}

fn data_report(sweep: &Sweep, cores: &[&RunInfo], graph: Option<&Graph>) -> Result<Report> {
    let mut r = Report::new("Data validation");
    if let (Some(g), Some(run)) = (graph, cores.first()) {
        r.check(
            true,
            format!(
                "connectome tables read from {} ({} neurons)",
                g.meta.folder.display(),
                g.meta.n
            ),
        );
        let csv =
            std::fs::read_to_string(run.path.join("pool_assignments.csv")).unwrap_or_default();
        let mut lines = csv.lines();
        let _header = lines.next();
        let mut seen = BTreeSet::new();
        let mut pools = [0usize; 3];
        let mut bad = 0usize;
        for line in lines {
            let mut fields = line.split(',');
            let idx = fields.next().and_then(|i| i.parse::<usize>().ok());
            match idx {
                Some(i) if seen.insert(i) => {}
                _ => bad += 1,
            }
            match line
                .split(',')
                .find(|f| ["sensory", "internal", "output"].contains(f))
            {
                Some("sensory") => pools[0] += 1,
                Some("internal") => pools[1] += 1,
                Some("output") => pools[2] += 1,
                _ => bad += 1,
            }
        }
        r.check(
            seen.len() == g.meta.n,
            format!(
                "all neurons in pool_assignments.csv: {}/{}",
                seen.len(),
                g.meta.n
            ),
        );
        r.check(bad == 0 && pools.iter().sum::<usize>() == g.meta.n, format!("pools exhaustive and exclusive: every neuron in exactly one pool ({bad} rows without one index and one pool)"));
        r.note(format!(
            "pool counts: sensory {}, internal {}, output {}",
            pools[0], pools[1], pools[2]
        ));
        let ns: BTreeSet<String> = cores
            .iter()
            .filter_map(|c| c.graph_f64("/graph/n"))
            .map(|n| n.to_string())
            .collect();
        r.check(
            ns.len() == 1 && ns.contains(&g.meta.n.to_string()),
            format!(
                "metadata N identical in every run and equal to the tables': {ns:?} vs {}",
                g.meta.n
            ),
        );
    } else {
        r.note("no connectome core in this sweep");
    }
    leakage(sweep, &mut r)?;
    r.check(
        true,
        format!(
            "data seed {} shared by every run (checked on read), independent of the model seeds",
            sweep.data.data_seed
        ),
    );
    Ok(r)
}

/// Split leakage by content: fingerprints of every walk's controls, compared across splits.
fn leakage(sweep: &Sweep, r: &mut Report) -> Result<()> {
    let data = crate::data::path_integration::dataset(&sweep.data)?;
    let train: HashSet<u64> = (0..data.train.len())
        .map(|i| data.train.fingerprint(i))
        .collect();
    let mut others = vec![("val".to_string(), &data.val)];
    others.extend(data.tests.iter().map(|(n, s)| (n.clone(), s)));
    for (name, split) in others {
        let hits = (0..split.len())
            .filter(|&i| train.contains(&split.fingerprint(i)))
            .count();
        r.check(hits == 0, format!("split leakage by content hash: {hits} of {} {name} walks equal a training walk ({} training walks)", split.len(), train.len()));
    }
    Ok(())
}

fn bpu_report(sweep: &Sweep, cores: &[&RunInfo], graph: Option<&Graph>) -> Result<Report> {
    let mut r = Report::new("BPU validation");
    let (Some(g), Some(first)) = (graph, cores.first()) else {
        r.note("no connectome core in this sweep");
        return Ok(r);
    };
    let Some(cfg) = first.bpu() else {
        return Ok(r);
    };
    let m = &g.matrix;
    r.check(
        m.row_ptr.len() == m.n + 1 && m.n == g.names.len(),
        format!("matrix square, {}x{}, one row per neuron", m.n, m.n),
    );
    let rows = read_edge_rows(&cfg.connectome)?;
    let index: std::collections::HashMap<&str, usize> = g
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let dense = (m.n <= 4096).then(|| m.to_dense());
    let (mut sampled, mut wrong) = (0usize, 0usize);
    for e in rows.iter().filter(|e| !e.electrical) {
        let (Some(&pre), Some(&post)) = (index.get(e.pre.as_str()), index.get(e.post.as_str()))
        else {
            continue;
        };
        if let Some(d) = &dense {
            sampled += 1;
            wrong += usize::from(d[post * m.n + pre] == 0.0);
        }
        if sampled >= 500 {
            break;
        }
    }
    r.check(sampled > 0 && wrong == 0, format!("edge direction W[post, pre]: {sampled} sampled chemical edges of the table, {wrong} missing at [post, pre]"));
    r.note(format!(
        "primary matrix: {} (sign coverage {:.3}, policy {:?})",
        if g.meta.signed { "signed" } else { "unsigned" },
        g.meta.sign_coverage,
        g.meta.sign_policy
    ));
    let [s, _, o] = crate::connectome::pools::assign(g, &cfg.pools).map_or([0; 3], |p| p.counts());
    let d_out = match sweep.data.targets {
        PathTargets::Cartesian => 4,
        PathTargets::PolarBump => sweep.data.heading_bins + 3,
    };
    let ks: BTreeSet<u64> = cores
        .iter()
        .filter_map(|c| c.graph_f64("/microsteps"))
        .map(|k| k as u64)
        .collect();
    r.check(ks.len() == 1, format!("one K for every model: {ks:?}"));
    for run in cores {
        let target = run.bpu().map_or(0.95, |c| c.spectral_radius);
        let rho = run.graph_f64("/spectral_radius/value").unwrap_or(f64::NAN);
        r.check(
            (rho - target).abs() <= 1e-4,
            format!(
                "{} seed {}: spectral radius {rho:.6} (target {target}, scale {:.4e}, raw {:.3})",
                run.model,
                run.seed,
                run.graph_f64("/scale").unwrap_or(f64::NAN),
                run.graph_f64("/control_radius_raw/value")
                    .unwrap_or(f64::NAN)
            ),
        );
        let edges = run.graph_f64("/trained_edges").unwrap_or(0.0) as usize;
        let observed = run
            .bpu()
            .is_some_and(|c| c.recurrent == RecurrentTraining::Observed);
        let want = s * 3 + d_out * (o + 1) + if observed { edges } else { 0 };
        r.check(
            run.metrics.params == want,
            format!(
                "{} seed {}: trainable parameters {} = |S|(d_in + 1) + d_out(|O| + 1){} = {want}",
                run.model,
                run.seed,
                run.metrics.params,
                if observed { " + edges" } else { "" }
            ),
        );
        let k = run.graph_f64("/microsteps").unwrap_or(0.0) as usize;
        let auto = run.graph_str("/microsteps_source").as_deref() == Some("auto");
        r.check(
            !auto || (3..=8).contains(&k),
            format!(
                "{} seed {}: K = {k} ({})",
                run.model,
                run.seed,
                if auto {
                    "auto, within [3, 8]"
                } else {
                    "override"
                }
            ),
        );
    }
    Ok(r)
}

fn control_report(sweep: &Sweep, cores: &[&RunInfo], graph: Option<&Graph>) -> Result<Report> {
    let mut r = Report::new("Control validation");
    let Some(g) = graph else {
        r.note("no connectome core in this sweep");
        return Ok(r);
    };
    let _ = sweep;
    for run in cores {
        let Some(cfg) = run.bpu() else { continue };
        let checks = run
            .graph
            .as_ref()
            .and_then(|j| j.get("invariants"))
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default();
        let passed = checks
            .iter()
            .filter(|c| c.get("passed").and_then(|p| p.as_bool()) == Some(true))
            .count();
        let names: Vec<String> = checks
            .iter()
            .filter_map(|c| c.get("name").and_then(|n| n.as_str()).map(str::to_string))
            .collect();
        r.check(
            !checks.is_empty() && passed == checks.len(),
            format!(
                "{} seed {}: invariants {passed}/{} passed ({})",
                run.model,
                run.seed,
                checks.len(),
                names.join(", ")
            ),
        );
        let rebuilt = build_control(&g.matrix, cfg.control, run.seed)?;
        let stored = run.graph_str("/control/hash").unwrap_or_default();
        r.check(rebuilt.hash == stored, format!("{} seed {}: rebuilt from seed {} gives the stored matrix (hash {}…), {} of {} swaps accepted, {:.3} of edges rewired", run.model, run.seed, rebuilt.seed, &stored.get(..12).unwrap_or(""), rebuilt.swaps_accepted, rebuilt.swaps_attempted, rebuilt.rewired_fraction));
    }
    Ok(r)
}
