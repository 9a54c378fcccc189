//! Connectomes as recurrent cores: any CSV connectome loaded into a sparse matrix `W[post, pre]`
//! (name normaliser, node filter, gap-junction and sign policies), pools from the cell
//! annotations, the microstep count K from shortest paths, a converged spectral radius, and
//! matched topology controls with their invariants checked.
//!
//! The network that uses them is `nn::Bpu`; the sweep's aggregate files and figures are in
//! [`report`].

pub mod bench;
pub mod controls;
pub mod core;
pub mod csr;
pub mod load;
pub mod paths;
pub mod pools;
pub mod report;
pub mod spectral;
#[cfg(test)]
mod tests;

pub use self::core::{prepare, Core};
pub use controls::{build_control, check_invariants, Control, ControlKind, InvariantCheck};
pub use csr::Csr;
pub use load::{load, Graph, GraphMeta};
pub use paths::{estimate_k, KEstimate};
pub use pools::{assign, Agreement, Pools};
pub use spectral::{eigen_moduli, scale_to_radius, spectral_radius, Radius, Scaled};
