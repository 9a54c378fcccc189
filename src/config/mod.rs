//! Experiment configuration: typed schema, YAML composition, overrides and sweeps.

mod compose;
mod overrides;
mod schema;
mod sweep;

pub use compose::{
    load_yaml, merge, set_path, typed, variant_name, Composed, ConfigStore, CONFIGS_ENV, GROUPS,
    NON_VARIANT_KEYS,
};
pub use overrides::Override;
pub use schema::*;
pub use sweep::{ensure_single, expand};
