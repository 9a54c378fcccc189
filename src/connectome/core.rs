//! Everything a connectome core needs before training, from the config and the run seed: the
//! graph, its pools, K, the control matrix (invariants checked), the matrix scaled to the
//! target spectral radius, and the metadata written into the run directory.

use serde::Serialize;

use super::controls::{build_control, check_invariants, Control, ControlKind, InvariantCheck};
use super::load::{load, Graph, GraphMeta};
use super::paths::{estimate_k, KEstimate};
use super::pools::{agreement, assign, degree_heuristic, Agreement, Pools};
use super::spectral::{scale_to_radius, Radius, Scaled};
use crate::config::{BpuConfig, Microsteps, Pool, PoolMethod};
use crate::error::{Error, Result};

/// A prepared core.
#[derive(Debug, Clone)]
pub struct Core {
    /// The connectome as loaded.
    pub graph: Graph,
    /// Its pools.
    pub pools: Pools,
    /// The heuristic's agreement with annotated pools (annotated pools only).
    pub heuristic: Option<Agreement>,
    /// K from shortest paths (on the connectome, shared by every control).
    pub k_estimate: KEstimate,
    /// The microsteps used (the estimate or the override).
    pub microsteps: usize,
    /// The control actually trained (the connectome itself for `connectome`).
    pub control: Control,
    /// The control's invariants against the connectome (all passed, or preparing fails).
    pub invariants: Vec<InvariantCheck>,
    /// The connectome's radius before scaling.
    pub primary_radius: Radius,
    /// The trained matrix scaled to the target radius, with the radius measured after scaling.
    pub scaled: Scaled,
}

/// What `graph.json` holds.
#[derive(Debug, Serialize)]
pub struct CoreMeta<'a> {
    /// Loading.
    pub graph: &'a GraphMeta,
    /// Hash of the unscaled connectome matrix.
    pub primary_hash: String,
    /// Pool method and sizes.
    pub pools: PoolMeta,
    /// Heuristic vs annotations.
    pub heuristic_agreement: Option<&'a Agreement>,
    /// K from paths.
    pub k_estimate: &'a KEstimate,
    /// Microsteps used.
    pub microsteps: usize,
    /// `auto` or `override`.
    pub microsteps_source: &'static str,
    /// The control.
    pub control: &'a Control,
    /// Its invariants.
    pub invariants: &'a [InvariantCheck],
    /// The connectome's radius before scaling.
    pub primary_radius: &'a Radius,
    /// The trained matrix's radius before scaling.
    pub control_radius_raw: &'a Radius,
    /// Scale applied.
    pub scale: f64,
    /// Radius measured after scaling.
    pub spectral_radius: &'a Radius,
    /// Hash of the trained (scaled) matrix.
    pub trained_matrix_hash: String,
    /// Entries of the trained matrix.
    pub trained_edges: usize,
    /// Whether the state is reset to 0 every time step (`no_recurrence`).
    pub reset_each_step: bool,
}

/// Pool sizes.
#[derive(Debug, Serialize)]
pub struct PoolMeta {
    /// `annotations` or `degree_heuristic`.
    pub method: PoolMethod,
    /// Sensory nodes.
    pub sensory: usize,
    /// Internal nodes.
    pub internal: usize,
    /// Output nodes.
    pub output: usize,
}

/// Prepares the core of `cfg` for run seed `seed`.
pub fn prepare(cfg: &BpuConfig, seed: u64) -> Result<Core> {
    if !(cfg.spectral_radius.is_finite() && cfg.spectral_radius > 0.0) {
        return Err(Error::invalid(
            "model.spectral_radius",
            format!("{}: use a number > 0", cfg.spectral_radius),
        ));
    }
    let graph = load(&cfg.connectome)?;
    let pools = assign(&graph, &cfg.pools)?;
    let heuristic = (cfg.pools.method == PoolMethod::Annotations)
        .then(|| agreement(&pools, &degree_heuristic(&graph.matrix)));
    let (sensory, output) = (pools.indices(Pool::Sensory), pools.indices(Pool::Output));
    let k_estimate = estimate_k(&graph.matrix, &sensory, &output, &graph.names)?;
    let microsteps = match cfg.microsteps {
        Microsteps::Fixed(0) => {
            return Err(Error::invalid(
                "model.microsteps",
                "0: use `auto` or a number >= 1",
            ))
        }
        Microsteps::Fixed(k) => k,
        Microsteps::Auto(_) => k_estimate.k,
    };
    let control = build_control(&graph.matrix, cfg.control, seed)?;
    let invariants = check_invariants(&graph.matrix, &control);
    if let Some(bad) = invariants.iter().find(|c| !c.passed) {
        return Err(Error::invalid(
            "model.control",
            format!(
                "control {} (seed {}) breaks invariant {}: {}",
                cfg.control.name(),
                control.seed,
                bad.name,
                bad.detail
            ),
        ));
    }
    let scaled = scale_to_radius(&control.matrix, cfg.spectral_radius)?;
    // a control that keeps the connectome's matrix was just measured by the scaling
    let primary_radius = if cfg.control.is_matched() {
        super::spectral::spectral_radius(&graph.matrix)?
    } else {
        scaled.raw.clone()
    };
    Ok(Core {
        graph,
        pools,
        heuristic,
        k_estimate,
        microsteps,
        control,
        invariants,
        primary_radius,
        scaled,
    })
}

impl Core {
    /// Whether the state is reset to 0 at every time step.
    pub fn no_recurrence(&self) -> bool {
        self.control.kind == ControlKind::NoRecurrence
    }

    /// The metadata of `graph.json`.
    pub fn meta(&self, microsteps_source: &'static str) -> CoreMeta<'_> {
        let [sensory, internal, output] = self.pools.counts();
        CoreMeta {
            graph: &self.graph.meta,
            primary_hash: self.graph.matrix.hash(),
            pools: PoolMeta {
                method: if self.heuristic.is_some() {
                    PoolMethod::Annotations
                } else {
                    PoolMethod::DegreeHeuristic
                },
                sensory,
                internal,
                output,
            },
            heuristic_agreement: self.heuristic.as_ref(),
            k_estimate: &self.k_estimate,
            microsteps: self.microsteps,
            microsteps_source,
            control: &self.control,
            invariants: &self.invariants,
            primary_radius: &self.primary_radius,
            control_radius_raw: &self.scaled.raw,
            scale: self.scaled.scale,
            spectral_radius: &self.scaled.measured,
            trained_matrix_hash: self.scaled.matrix.hash(),
            trained_edges: self.scaled.matrix.nnz(),
            reset_each_step: self.no_recurrence(),
        }
    }
}
