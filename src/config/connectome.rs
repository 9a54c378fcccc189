//! Typed config of a connectome-constrained recurrent core (`model: {kind: bpu}`): where the
//! connectome's CSV tables are and how to read them, the pools, the control, K and the radius.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::connectome::ControlKind;

/// A frozen connectome as the recurrent core between trained input and output adapters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BpuConfig {
    /// The connectome's tables and reading policies.
    pub connectome: ConnectomeConfig,
    /// Sensory / internal / output pools.
    pub pools: PoolsConfig,
    /// The connectome itself or a matched control built from it (seeded by the run seed).
    #[serde(default)]
    pub control: ControlKind,
    /// Microsteps per time step: `auto` (median sensory -> output shortest path, clipped to
    /// [3, 8]) or a number.
    #[serde(default)]
    pub microsteps: Microsteps,
    /// Spectral radius the core is scaled to.
    #[serde(default = "default_rho")]
    pub spectral_radius: f64,
    /// What of the core trains besides the adapters.
    #[serde(default)]
    pub recurrent: RecurrentTraining,
}

fn default_rho() -> f64 {
    0.95
}

/// `auto` or a fixed count of microsteps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Microsteps {
    /// This many.
    Fixed(usize),
    /// `auto`: from the shortest sensory -> output paths.
    Auto(AutoKeyword),
}

impl Default for Microsteps {
    fn default() -> Self {
        Microsteps::Auto(AutoKeyword::Auto)
    }
}

/// The word `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoKeyword {
    /// `auto`.
    Auto,
}

/// Which recurrent values train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecurrentTraining {
    /// The core is frozen; only `W_in, b_in, W_out, b_out` train.
    #[default]
    Frozen,
    /// The observed edges' values train too (the support stays fixed).
    Observed,
}

/// An edge table and a cell table, and how to read them into `W[post, pre]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectomeConfig {
    /// Folder name under `connectomes/` in the data roots (`shared/data`,
    /// `$AUTORESEARCH_DATA`, the user cache).
    pub name: String,
    /// A folder holding the tables directly (wins over the search).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// The edge table.
    pub edges: EdgeTable,
    /// The cell table.
    pub cells: CellTable,
    /// How node names are made to agree between the tables.
    #[serde(default)]
    pub normalise: NameNormaliser,
    /// Which nodes stay.
    #[serde(default)]
    pub nodes: NodeFilter,
    /// Gap junctions (electrical edges).
    #[serde(default)]
    pub gap_junctions: GapJunctions,
    /// Signs of the presynaptic neurons.
    #[serde(default)]
    pub signs: SignConfig,
}

/// Column names of the edge table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeTable {
    /// File name in the connectome folder.
    pub file: String,
    /// Presynaptic name column.
    #[serde(default = "col_pre")]
    pub pre: String,
    /// Postsynaptic name column.
    #[serde(default = "col_post")]
    pub post: String,
    /// Synapse count or weight column.
    #[serde(default = "col_weight")]
    pub weight: String,
    /// Edge type column (absent: every edge is chemical).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// Type values of chemical synapses.
    #[serde(default = "chemical")]
    pub chemical: Vec<String>,
    /// Type values of gap junctions.
    #[serde(default = "electrical")]
    pub electrical: Vec<String>,
}

fn col_pre() -> String {
    "pre".into()
}
fn col_post() -> String {
    "post".into()
}
fn col_weight() -> String {
    "weight".into()
}
fn chemical() -> Vec<String> {
    vec!["chemical".into()]
}
fn electrical() -> Vec<String> {
    vec!["electrical".into()]
}

/// Column names of the cell table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellTable {
    /// File name in the connectome folder.
    pub file: String,
    /// Cell name column.
    #[serde(default = "col_cell")]
    pub name: String,
    /// Cell type column (what pools are assigned from).
    #[serde(default = "col_type")]
    pub r#type: String,
}

fn col_cell() -> String {
    "cell".into()
}
fn col_type() -> String {
    "type".into()
}

/// Name normalisers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameNormaliser {
    /// Names as written.
    #[default]
    None,
    /// `AS01` -> `AS1`: upper-case letters, a zero, one digit (the worm's padded ventral cord).
    StripZeroPadding,
}

/// Which nodes of the edge table stay in the graph.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFilter {
    /// Cell types dropped (e.g. muscles), matched exactly.
    #[serde(default)]
    pub exclude_types: Vec<String>,
    /// Nodes the cell table does not list.
    #[serde(default)]
    pub unlisted: Unlisted,
}

/// What happens to a node missing from the cell table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unlisted {
    /// An error naming them.
    #[default]
    Error,
    /// Dropped, and listed in the graph metadata.
    Drop,
    /// Kept with the type `unlisted` (pools may name it, e.g. muscles as outputs).
    Keep,
}

/// Gap-junction policy and weight factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GapJunctions {
    /// How electrical edges enter W.
    #[serde(default)]
    pub policy: GapPolicy,
    /// Their weight relative to a chemical synapse.
    #[serde(default = "one")]
    pub factor: f64,
}

impl Default for GapJunctions {
    fn default() -> Self {
        GapJunctions {
            policy: GapPolicy::None,
            factor: one(),
        }
    }
}

fn one() -> f64 {
    1.0
}

/// How gap junctions become symmetric entries of W (the table may already list both
/// directions; they are never added twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapPolicy {
    /// Left out.
    #[default]
    None,
    /// `w_ab = w_ba = max(w_ab, w_ba)`.
    SymmetricMax,
    /// `w_ab = w_ba = (w_ab + w_ba) / 2`, a missing direction counting 0.
    SymmetricMean,
}

/// Signs of presynaptic neurons from a transmitter table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignConfig {
    /// Signed, unsigned, or signed when the coverage allows.
    #[serde(default)]
    pub policy: SignPolicy,
    /// A CSV `cell,nt` in the connectome folder (no table: nothing is labelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Transmitter -> sign (case-insensitive; a label `a;b` counts if its parts agree).
    #[serde(default = "default_sign_map")]
    pub map: BTreeMap<String, i8>,
    /// `auto` signs the matrix when labelled presynaptic weight reaches this share.
    #[serde(default = "default_coverage")]
    pub coverage: f64,
}

impl Default for SignConfig {
    fn default() -> Self {
        SignConfig {
            policy: SignPolicy::default(),
            table: None,
            map: default_sign_map(),
            coverage: default_coverage(),
        }
    }
}

fn default_sign_map() -> BTreeMap<String, i8> {
    [("ach", 1), ("gaba", -1)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

fn default_coverage() -> f64 {
    0.95
}

/// Sign policies (upstream's `--signed-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignPolicy {
    /// Signed iff the labelled share of weight >= `coverage`.
    Auto,
    /// Signed; an error without any label.
    ForceSigned,
    /// Unsigned.
    #[default]
    ForceUnsigned,
}

/// Pools from the cell table's type column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolsConfig {
    /// Annotations (the lists below) or the degree-imbalance heuristic.
    #[serde(default)]
    pub method: PoolMethod,
    /// Types whose cells receive the input.
    #[serde(default)]
    pub sensory: Vec<String>,
    /// Types whose cells are read out.
    #[serde(default)]
    pub output: Vec<String>,
    /// Types of the internal pool.
    #[serde(default)]
    pub internal: Vec<String>,
    /// The pool of a type listed nowhere (absent: such a type is an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Pool>,
}

/// How pools are assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolMethod {
    /// From the type lists.
    #[default]
    Annotations,
    /// Upstream's whole-brain rule: sinks (more in than out) get the input, sources are read.
    DegreeHeuristic,
}

/// The three pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pool {
    /// Receives the input.
    Sensory,
    /// Neither.
    Internal,
    /// Read out.
    Output,
}

impl Pool {
    /// The pool's name.
    pub fn name(self) -> &'static str {
        match self {
            Pool::Sensory => "sensory",
            Pool::Internal => "internal",
            Pool::Output => "output",
        }
    }
}
