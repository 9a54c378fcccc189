//! Sensory / internal / output pools: from the cell table's types (exhaustive and exclusive,
//! each node with the reason it got its pool), or upstream's whole-brain degree-imbalance
//! heuristic, with the heuristic's agreement with the annotations as a diagnostic.

use std::collections::BTreeMap;

use serde::Serialize;

use super::csr::Csr;
use super::load::Graph;
use crate::config::{Pool, PoolMethod, PoolsConfig};
use crate::error::{Error, Result};

/// Pool of every node and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Pools {
    /// Pool per node.
    pub pool: Vec<Pool>,
    /// Why, per node (`pool_assignments.csv`'s `assignment_reason`).
    pub reason: Vec<String>,
}

impl Pools {
    /// Node indices of `which`, ascending.
    pub fn indices(&self, which: Pool) -> Vec<usize> {
        (0..self.pool.len())
            .filter(|&i| self.pool[i] == which)
            .collect()
    }

    /// `(sensory, internal, output)` sizes.
    pub fn counts(&self) -> [usize; 3] {
        [Pool::Sensory, Pool::Internal, Pool::Output].map(|p| self.indices(p).len())
    }

    /// `pool_assignments.csv`: neuron, type, pool, assignment_reason, in/out degree and
    /// strength.
    pub fn to_csv(&self, graph: &Graph) -> Result<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let m = &graph.matrix;
        let (din, dout) = (m.in_degree(), m.out_degree());
        let (sin, sout) = strengths(m);
        let err = |e: csv::Error| Error::invalid("pool_assignments.csv", e.to_string());
        w.write_record([
            "index",
            "neuron",
            "type",
            "pool",
            "assignment_reason",
            "in_degree",
            "out_degree",
            "in_strength",
            "out_strength",
        ])
        .map_err(err)?;
        for i in 0..self.pool.len() {
            w.write_record([
                i.to_string(),
                graph.names[i].clone(),
                graph.types[i].clone(),
                self.pool[i].name().to_string(),
                self.reason[i].clone(),
                din[i].to_string(),
                dout[i].to_string(),
                sin[i].to_string(),
                sout[i].to_string(),
            ])
            .map_err(err)?;
        }
        let bytes = w
            .into_inner()
            .map_err(|e| Error::invalid("pool_assignments.csv", e.to_string()))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Pools of `graph` by `cfg`'s method.
pub fn assign(graph: &Graph, cfg: &PoolsConfig) -> Result<Pools> {
    let pools = match cfg.method {
        PoolMethod::Annotations => from_annotations(&graph.types, cfg)?,
        PoolMethod::DegreeHeuristic => degree_heuristic(&graph.matrix),
    };
    for (p, key) in [(Pool::Sensory, "sensory"), (Pool::Output, "output")] {
        if pools.indices(p).is_empty() {
            return Err(Error::invalid(
                format!("model.pools.{key}"),
                format!("the {key} pool is empty: list at least one cell type in it"),
            ));
        }
    }
    Ok(pools)
}

/// Pools from the type lists: every type in at most one list (exclusive), every node's type
/// in one list or covered by `default` (exhaustive).
pub fn from_annotations(types: &[String], cfg: &PoolsConfig) -> Result<Pools> {
    let mut by_type: BTreeMap<&str, Pool> = BTreeMap::new();
    for (pool, list) in [
        (Pool::Sensory, &cfg.sensory),
        (Pool::Internal, &cfg.internal),
        (Pool::Output, &cfg.output),
    ] {
        for t in list {
            if let Some(other) = by_type.insert(t.as_str(), pool) {
                if other != pool {
                    return Err(Error::invalid(
                        format!("model.pools.{}", pool.name()),
                        format!(
                            "type `{t}` is listed under both {} and {}: pools must be exclusive",
                            other.name(),
                            pool.name()
                        ),
                    ));
                }
            }
        }
    }
    let unlisted: std::collections::BTreeSet<&str> = types
        .iter()
        .map(String::as_str)
        .filter(|t| !by_type.contains_key(t))
        .collect();
    if cfg.default.is_none() && !unlisted.is_empty() {
        return Err(Error::invalid(
            "model.pools",
            format!(
                "types in no pool: {}; list them under sensory, internal or output, or set pools.default",
                unlisted.into_iter().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let (mut pool, mut reason) = (Vec::new(), Vec::new());
    for t in types {
        match (by_type.get(t.as_str()), cfg.default) {
            (Some(p), _) => {
                pool.push(*p);
                reason.push(format!("type `{t}` listed under {}", p.name()));
            }
            (None, default) => {
                let d = default.unwrap_or(Pool::Internal);
                pool.push(d);
                reason.push(format!("type `{t}` not listed: default {}", d.name()));
            }
        }
    }
    Ok(Pools { pool, reason })
}

/// In- and out-strength (sums of |w|) per node.
fn strengths(m: &Csr) -> (Vec<f64>, Vec<f64>) {
    let (mut sin, mut sout) = (vec![0.0; m.n], vec![0.0; m.n]);
    for (post, pre, v) in m.triplets() {
        sin[post] += f64::from(v.abs());
        sout[pre] += f64::from(v.abs());
    }
    (sin, sout)
}

/// Upstream's whole-brain rule (`assign_whole_brain_pools`): pool size
/// `min(max(256, round(0.05 N)), max(1, N / 3))`; sensory = the largest
/// `(in - out) / max(in + out, 1)` (ties: more activity first), output = the largest
/// `(out - in) / total` of the rest; in/out are synapse strengths.
pub fn degree_heuristic(m: &Csr) -> Pools {
    let n = m.n;
    let size = 256usize
        .max((0.05 * n as f64).round() as usize)
        .min((n / 3).max(1));
    let (sin, sout) = strengths(m);
    let activity = |i: usize| sin[i] + sout[i];
    let score_in = |i: usize| (sin[i] - sout[i]) / activity(i).max(1.0);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        score_in(b)
            .total_cmp(&score_in(a))
            .then(activity(b).total_cmp(&activity(a)))
            .then(a.cmp(&b))
    });
    let mut pool = vec![Pool::Internal; n];
    let mut reason = vec![String::new(); n];
    for &i in order.iter().take(size) {
        pool[i] = Pool::Sensory;
        reason[i] = format!("input-dominant (in - out)/total = {:.3}", score_in(i));
    }
    let mut rest: Vec<usize> = (0..n).filter(|&i| pool[i] != Pool::Sensory).collect();
    rest.sort_by(|&a, &b| {
        (-score_in(b))
            .total_cmp(&-score_in(a))
            .then(activity(b).total_cmp(&activity(a)))
            .then(a.cmp(&b))
    });
    for &i in rest.iter().take(size) {
        pool[i] = Pool::Output;
        reason[i] = format!("output-dominant (out - in)/total = {:.3}", -score_in(i));
    }
    for r in reason.iter_mut().filter(|r| r.is_empty()) {
        *r = "neither among the most input- nor output-dominant".into();
    }
    Pools { pool, reason }
}

/// How the heuristic's pools compare with the annotated ones: counts by (annotated,
/// heuristic) pool and the share of nodes on which they agree.
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    /// `"annotated->heuristic"` -> nodes.
    pub confusion: BTreeMap<String, usize>,
    /// Share of nodes given the same pool.
    pub agreement: f64,
    /// Annotated sensory nodes the heuristic reads out, plus annotated output nodes it feeds:
    /// the inversion diagnostic.
    pub inverted: usize,
}

/// Compares two assignments of the same nodes.
pub fn agreement(annotated: &Pools, heuristic: &Pools) -> Agreement {
    let mut confusion = BTreeMap::new();
    let (mut same, mut inverted) = (0usize, 0usize);
    for (a, h) in annotated.pool.iter().zip(&heuristic.pool) {
        *confusion
            .entry(format!("{}->{}", a.name(), h.name()))
            .or_insert(0) += 1;
        same += usize::from(a == h);
        inverted += usize::from(matches!(
            (a, h),
            (Pool::Sensory, Pool::Output) | (Pool::Output, Pool::Sensory)
        ));
    }
    Agreement {
        confusion,
        agreement: same as f64 / annotated.pool.len().max(1) as f64,
        inverted,
    }
}
