//! Reads a sweep's run directories (config, metrics, history, `graph.json`) and scores the
//! reference models on the same test splits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{
    BpuConfig, ExperimentConfig, ModelConfig, PathIntegrationConfig, RecurrentTraining,
};
use crate::connectome::ControlKind;
use crate::data::path_reference::reference_rows;
use crate::error::{Error, Result};
use crate::metric::MetricSpec;
use crate::rundir::{parse_history_csv, EpochRecord, Metrics, RunDir, RunStatus};

/// The model every other is compared with.
pub const BASELINE: &str = "connectome";

/// One completed run.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// Its directory.
    pub path: PathBuf,
    /// `connectome`, a control's name, or another model's kind.
    pub model: String,
    /// Run seed.
    pub seed: u64,
    /// Its config.
    pub cfg: ExperimentConfig,
    /// Its metrics.
    pub metrics: Metrics,
    /// Its history.
    pub history: Vec<EpochRecord>,
    /// `graph.json` (connectome cores only).
    pub graph: Option<serde_json::Value>,
}

impl RunInfo {
    /// The core's config (connectome cores only).
    pub fn bpu(&self) -> Option<&BpuConfig> {
        match &self.cfg.model {
            ModelConfig::Bpu(c) => Some(c),
            _ => None,
        }
    }

    /// A number in `graph.json` by JSON pointer (`/spectral_radius/value`).
    pub fn graph_f64(&self, pointer: &str) -> Option<f64> {
        self.graph.as_ref()?.pointer(pointer)?.as_f64()
    }

    /// A string in `graph.json` by JSON pointer.
    pub fn graph_str(&self, pointer: &str) -> Option<String> {
        Some(self.graph.as_ref()?.pointer(pointer)?.as_str()?.to_string())
    }

    /// `frozen` / `observed` for cores, empty otherwise.
    pub fn train_mode(&self) -> &'static str {
        match self.bpu().map(|c| c.recurrent) {
            Some(RecurrentTraining::Frozen) => "frozen",
            Some(RecurrentTraining::Observed) => "observed",
            None => "",
        }
    }
}

/// One (model, seed, test split) with the task's metrics; reference rows have no seed.
#[derive(Debug, Clone)]
pub struct SeedRow {
    /// Model label.
    pub model: String,
    /// Run seed (`None`: a reference model, not trained).
    pub seed: Option<u64>,
    /// Split name.
    pub split: String,
    /// Walk length.
    pub steps: usize,
    /// Input noise std.
    pub noise: f64,
    /// Metric values by the task's names (`loss`, `heading_error`, ...).
    pub values: BTreeMap<String, f64>,
    /// Index into [`Sweep::runs`] (trained rows).
    pub run: Option<usize>,
}

/// A sweep read back.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// Where it was read from.
    pub root: PathBuf,
    /// Completed runs, sorted by model then seed.
    pub runs: Vec<RunInfo>,
    /// Runs that did not complete: path, status, error.
    pub unfinished: Vec<(PathBuf, String, String)>,
    /// Every (model, seed, split) row, trained and reference.
    pub rows: Vec<SeedRow>,
    /// The task's metrics with their directions.
    pub declared: Vec<MetricSpec>,
    /// The data every run shares.
    pub data: PathIntegrationConfig,
}

impl Sweep {
    /// Models in order: the connectome, the matched controls, then the rest, references last.
    pub fn models(&self) -> Vec<String> {
        let mut names: Vec<String> = self.rows.iter().map(|r| r.model.clone()).collect();
        names.sort_by_key(|m| (model_order(m), m.clone()));
        names.dedup();
        names
    }

    /// Trained rows of `model` on `split`, by seed.
    pub fn seeds_of(&self, model: &str, split: &str) -> BTreeMap<u64, &SeedRow> {
        self.rows
            .iter()
            .filter(|r| r.model == model && r.split == split)
            .filter_map(|r| r.seed.map(|s| (s, r)))
            .collect()
    }

    /// Test splits in order (clean by length, then noisy).
    pub fn splits(&self) -> Vec<(String, usize, f64)> {
        let mut s: Vec<(String, usize, f64)> = self
            .rows
            .iter()
            .map(|r| (r.split.clone(), r.steps, r.noise))
            .collect();
        s.sort_by(|a, b| {
            (a.2 > 0.0, a.1)
                .cmp(&(b.2 > 0.0, b.1))
                .then(a.2.total_cmp(&b.2))
        });
        s.dedup_by(|a, b| a.0 == b.0);
        s
    }

    /// The direction and unit of a task metric.
    pub fn spec(&self, metric: &str) -> Option<&MetricSpec> {
        self.declared.iter().find(|m| m.name == metric)
    }
}

/// Whether a model label names a rewiring control ([`ControlKind::is_matched`]).
pub fn is_matched_control(model: &str) -> bool {
    ControlKind::all()
        .iter()
        .any(|k| k.is_matched() && k.name() == model)
}

/// Sort key: connectome, matched controls, other trained models, references.
pub fn model_order(model: &str) -> u8 {
    match model {
        BASELINE => 0,
        m if is_matched_control(m) => 1,
        "no_recurrence" => 2,
        "mean_predictor" | "oracle_integrator" => 4,
        _ => 3,
    }
}

/// Reads every run under `root` and scores the reference models.
pub fn collect(root: &Path) -> Result<Sweep> {
    let (dirs, problems) = crate::runs::run_dirs(root);
    if let Some(p) = problems.first() {
        return Err(Error::Analysis(format!(
            "{}: {}",
            p.path.display(),
            p.reason
        )));
    }
    let mut runs = Vec::new();
    let mut unfinished = Vec::new();
    for dir in dirs {
        let rd = RunDir::at(&dir);
        let Some(metrics) = rd.read_metrics()? else {
            unfinished.push((dir, "not started".into(), String::new()));
            continue;
        };
        if metrics.status != RunStatus::Completed {
            unfinished.push((
                dir,
                metrics.status.as_str().into(),
                metrics.error.clone().unwrap_or_default(),
            ));
            continue;
        }
        let cfg = rd.read_config()?;
        let text = std::fs::read_to_string(rd.history_path())
            .map_err(Error::io("reading history", rd.history_path()))?;
        let history = parse_history_csv(&text)
            .map_err(|e| Error::Analysis(format!("{}: {e}", rd.history_path().display())))?;
        let graph = read_graph(&dir)?;
        runs.push(RunInfo {
            model: label(&cfg),
            seed: cfg.seed,
            path: dir,
            cfg,
            metrics,
            history,
            graph,
        });
    }
    runs.sort_by(|a, b| {
        (model_order(&a.model), &a.model, a.seed).cmp(&(model_order(&b.model), &b.model, b.seed))
    });
    let Some(first) = runs.first() else {
        return Err(Error::Analysis(format!(
            "{}: no completed run to aggregate ({} unfinished)",
            root.display(),
            unfinished.len()
        )));
    };
    let crate::config::DataConfig::PathIntegration(data) = &first.cfg.data else {
        return Err(Error::Analysis(format!(
            "{}: the connectome report reads path-integration runs, not {}",
            first.path.display(),
            first.cfg.data.kind()
        )));
    };
    let data = data.clone();
    if let Some(other) = runs.iter().find(|r| r.cfg.data != first.cfg.data) {
        return Err(Error::Analysis(format!(
            "{} and {} were trained on different data; aggregate one sweep at a time",
            first.path.display(),
            other.path.display()
        )));
    }
    let declared = first.metrics.declared.clone();
    let mut rows = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        for (split, values) in &run.metrics.results {
            if !split.starts_with("test") {
                continue;
            }
            let (steps, noise) = split_shape(split, data.steps);
            rows.push(SeedRow {
                model: run.model.clone(),
                seed: Some(run.seed),
                split: split.clone(),
                steps,
                noise,
                values: values.clone(),
                run: Some(i),
            });
        }
    }
    let dataset = crate::data::path_integration::dataset(&data)?;
    crate::data::check_disjoint(&dataset)?;
    for r in reference_rows(&data, &dataset)? {
        let (steps, noise) = split_shape(&r.split, data.steps);
        rows.push(SeedRow {
            model: r.model.to_string(),
            seed: None,
            split: r.split,
            steps,
            noise,
            values: r.metrics.into_iter().map(|v| (v.name, v.value)).collect(),
            run: None,
        });
    }
    Ok(Sweep {
        root: root.to_path_buf(),
        runs,
        unfinished,
        rows,
        declared,
        data,
    })
}

/// The model label of a run: a core's control name, else the model kind (a recurrent cell's
/// name for `sequence_rnn`).
fn label(cfg: &ExperimentConfig) -> String {
    match &cfg.model {
        ModelConfig::Bpu(c) => match c.recurrent {
            RecurrentTraining::Frozen => c.control.name().to_string(),
            RecurrentTraining::Observed => format!("{}_observed", c.control.name()),
        },
        ModelConfig::SequenceRnn(c) => format!("{:?}", c.stack.cell).to_lowercase(),
        other => other.kind().to_string(),
    }
}

/// `(T, σ)` of a split name: `test` (the training length), `test_t<T>`,
/// `test_t<T>_noise<1000σ>`.
pub fn split_shape(split: &str, train_steps: usize) -> (usize, f64) {
    let mut steps = train_steps;
    let mut noise = 0.0;
    for part in split.split('_') {
        if let Some(t) = part.strip_prefix('t').and_then(|t| t.parse().ok()) {
            steps = t;
        } else if let Some(n) = part
            .strip_prefix("noise")
            .and_then(|n| n.parse::<f64>().ok())
        {
            noise = n / 1000.0;
        }
    }
    (steps, noise)
}

fn read_graph(dir: &Path) -> Result<Option<serde_json::Value>> {
    let path = dir.join("graph.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(Error::io("reading graph.json", &path))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Analysis(format!("{}: {e}", path.display())))
}
