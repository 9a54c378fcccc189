//! Experiment configuration: typed schema, YAML composition, overrides and sweeps.

mod compose;
mod connectome;
mod data;
mod dynamics;
mod grid;
mod model;
mod overrides;
mod pc;
mod resnet;
mod schema;
mod spiking;
mod sweep;
pub mod validate;
mod validate_model;

pub use compose::{
    from_yaml_str, load_yaml, merge, set_path, typed, typed_unchecked, variant_name, Composed,
    ConfigStore, CONFIGS_ENV, GROUPS, MAX_VARIANT_BYTES, NON_VARIANT_KEYS,
};
pub use connectome::*;
pub use data::*;
pub use dynamics::*;
pub use grid::*;
pub use model::*;
pub use overrides::Override;
pub use pc::*;
pub use resnet::*;
pub use schema::*;
pub use spiking::*;
pub use sweep::{ensure_single, expand};
