//! Hydra-like composition: an experiment's `defaults` pick one YAML file per group, the
//! experiment's own values are merged on top, then command-line / Rust overrides.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use super::overrides::{compact, Override};
use super::schema::{ExperimentConfig, SweepBlock};
use crate::error::{Error, Result};

/// Config groups: the directory under `configs/` and the key its file is placed under.
pub const GROUPS: &[(&str, &str)] = &[
    ("dataset", "data"),
    ("model", "model"),
    ("optimizer", "optimizer"),
    ("scheduler", "scheduler"),
];

/// Override keys that relocate or label a run without changing what it computes; they never
/// enter the variant name.
pub const NON_VARIANT_KEYS: &[&str] = &[
    "seed",
    "experiment",
    "variant",
    "runs_dir",
    "data.root",
    "device",
    "kernels",
];

/// Environment variable naming the configs directory.
pub const CONFIGS_ENV: &str = "AUTORESEARCH_CONFIGS";

/// A `configs/` directory tree: `experiment/`, and one directory per group.
#[derive(Debug, Clone)]
pub struct ConfigStore {
    root: PathBuf,
}

/// The result of composition before typing: the YAML tree, its sweep block and variant name.
#[derive(Debug, Clone)]
pub struct Composed {
    /// The merged YAML tree (what `config.yaml` holds).
    pub tree: Value,
    /// The experiment's `sweep:` block.
    pub sweep: SweepBlock,
    /// The typed config.
    pub config: ExperimentConfig,
}

impl ConfigStore {
    /// Uses `root` as the configs directory.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        if root.join("experiment").is_dir() {
            Ok(ConfigStore { root })
        } else {
            Err(Error::ConfigsNotFound {
                looked: format!("{} (no experiment/ folder inside)", root.display()),
            })
        }
    }

    /// Finds the configs directory: `$AUTORESEARCH_CONFIGS`, else `configs/` in the current
    /// directory or its nearest ancestor that has one (so notebooks in `notebooks/` work).
    pub fn discover() -> Result<Self> {
        let mut looked = Vec::new();
        if let Ok(dir) = std::env::var(CONFIGS_ENV) {
            let dir = PathBuf::from(dir);
            if dir.join("experiment").is_dir() {
                return Ok(ConfigStore { root: dir });
            }
            looked.push(format!("${CONFIGS_ENV}={}", dir.display()));
        }
        let cwd = std::env::current_dir().map_err(Error::io("reading current directory", "."))?;
        for dir in cwd.ancestors() {
            let candidate = dir.join("configs");
            if candidate.join("experiment").is_dir() {
                return Ok(ConfigStore { root: candidate });
            }
            looked.push(candidate.display().to_string());
        }
        Err(Error::ConfigsNotFound {
            looked: looked.join(", "),
        })
    }

    /// The configs directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The YAML file stems available in `group` (or `experiment`), sorted.
    pub fn options(&self, group: &str) -> Result<Vec<String>> {
        let dir = self.root.join(group);
        let entries = std::fs::read_dir(&dir).map_err(Error::io("listing config group", &dir))?;
        let mut names = BTreeSet::new();
        for entry in entries {
            let path = entry
                .map_err(Error::io("listing config group", &dir))?
                .path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                    names.insert(stem.to_string());
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    fn load_option(&self, group: &str, option: &str) -> Result<Value> {
        let valid = self.options(group)?;
        if !valid.iter().any(|v| v == option) {
            return Err(Error::UnknownGroupOption {
                group: group.to_string(),
                option: option.to_string(),
                valid: valid.join(", "),
            });
        }
        let yaml = self.root.join(group).join(format!("{option}.yaml"));
        let path = if yaml.exists() {
            yaml
        } else {
            self.root.join(group).join(format!("{option}.yml"))
        };
        load_yaml(&path)
    }

    /// The `sweep:` block of an experiment (used by multirun when no values are given).
    pub fn sweep_block(&self, experiment: &str) -> Result<SweepBlock> {
        let mut body = self.experiment_body(experiment)?;
        take_sweep(&mut body, experiment)
    }

    fn experiment_body(&self, experiment: &str) -> Result<Mapping> {
        match self.load_option("experiment", experiment)? {
            Value::Mapping(m) => Ok(m),
            Value::Null => Ok(Mapping::new()),
            _ => Err(Error::ConfigParse {
                path: self
                    .root
                    .join("experiment")
                    .join(format!("{experiment}.yaml")),
                message: "the top level must be a mapping".to_string(),
            }),
        }
    }

    /// Composes `experiment` with `overrides` into a typed config.
    pub fn compose(&self, experiment: &str, overrides: &[Override]) -> Result<Composed> {
        let mut body = self.experiment_body(experiment)?;
        let mut defaults = take_mapping(&mut body, "defaults", experiment)?;
        let sweep = take_sweep(&mut body, experiment)?;

        // Group selections from overrides replace the experiment's defaults.
        let (group_overrides, value_overrides): (Vec<&Override>, Vec<&Override>) = overrides
            .iter()
            .filter(|o| o.key != "experiment")
            .partition(|o| group_key(&o.key).is_some());
        for o in group_overrides {
            defaults.insert(Value::String(o.key.clone()), Value::String(o.value.clone()));
        }

        let mut tree = Mapping::new();
        for (group, option) in &defaults {
            let group = compact(group).map_err(|m| Error::invalid("defaults", m))?;
            let option =
                compact(option).map_err(|m| Error::invalid(format!("defaults.{group}"), m))?;
            let package = group_key(&group).ok_or_else(|| {
                Error::invalid(
                    format!("defaults.{group}"),
                    format!(
                        "unknown config group `{group}` (valid: {})",
                        GROUPS.iter().map(|g| g.0).collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
            let content = self.load_option(&group, &option)?;
            tree.insert(Value::String(package.to_string()), content);
        }
        if !body.contains_key("name") {
            body.insert("name".into(), Value::String(experiment.to_string()));
        }
        let mut tree = Value::Mapping(tree);
        merge(&mut tree, Value::Mapping(body));

        for o in &value_overrides {
            set_path(&mut tree, &o.key, o.yaml_value()?).map_err(|message| Error::Override {
                text: format!("{}={}", o.key, o.value),
                message,
            })?;
        }
        let has_variant = value_overrides.iter().any(|o| o.key == "variant");
        if !has_variant {
            let name = variant_name(overrides)?;
            set_path(&mut tree, "variant", Value::String(name))
                .map_err(|m| Error::invalid("variant", m))?;
        }
        let config = typed(&tree)?;
        Ok(Composed {
            tree,
            sweep,
            config,
        })
    }
}

/// The key a group's file is placed under, or `None` if `key` is not a group.
fn group_key(key: &str) -> Option<&'static str> {
    GROUPS.iter().find(|(g, _)| *g == key).map(|(_, k)| *k)
}

/// Parses `text` as a typed config value, e.g. `"{kind: latency, steps: 25}"` as an
/// [`crate::config::EncoderConfig`]; the error names the type and what is wrong.
pub fn from_yaml_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_yaml_ng::from_str(text).map_err(|e| {
        Error::invalid(
            std::any::type_name::<T>()
                .rsplit("::")
                .next()
                .unwrap_or("value"),
            format!("`{text}`: {e}"),
        )
    })
}

/// Reads and parses one YAML file.
pub fn load_yaml(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(Error::io("reading config", path))?;
    serde_yaml_ng::from_str(&text).map_err(|e| Error::ConfigParse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn take_mapping(body: &mut Mapping, key: &str, experiment: &str) -> Result<Mapping> {
    match body.remove(key) {
        None | Some(Value::Null) => Ok(Mapping::new()),
        Some(Value::Mapping(m)) => Ok(m),
        Some(_) => Err(Error::invalid(
            key,
            format!("in experiment `{experiment}`, `{key}` must be a mapping of group: option"),
        )),
    }
}

fn take_sweep(body: &mut Mapping, experiment: &str) -> Result<SweepBlock> {
    let mut sweep = SweepBlock::new();
    for (k, v) in take_mapping(body, "sweep", experiment)? {
        let key = compact(&k).map_err(|m| Error::invalid("sweep", m))?;
        sweep.insert(key, v);
    }
    Ok(sweep)
}

/// Deep-merges `over` into `base`: mappings merge key by key, anything else replaces.
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// Sets a dotted path in a YAML tree, creating intermediate mappings.
pub fn set_path(tree: &mut Value, key: &str, value: Value) -> std::result::Result<(), String> {
    let mut node = tree;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let map = match node {
            Value::Mapping(m) => m,
            Value::Null => {
                *node = Value::Mapping(Mapping::new());
                match node {
                    Value::Mapping(m) => m,
                    _ => return Err("internal: mapping expected".to_string()),
                }
            }
            other => {
                return Err(format!(
                    "`{}` is a value ({}), not a mapping, so it has no key `{part}`",
                    parts[..i].join("."),
                    compact(other).unwrap_or_default()
                ))
            }
        };
        let k = Value::String((*part).to_string());
        if i + 1 == parts.len() {
            map.insert(k, value);
            return Ok(());
        }
        if !map.contains_key(&k) {
            map.insert(k.clone(), Value::Mapping(Mapping::new()));
        }
        node = map.get_mut(&k).ok_or("internal: key vanished")?;
    }
    Ok(())
}

/// The longest variant name kept whole: a directory name must stay under the file system's
/// 255 bytes, so a longer one keeps its first part and a hash of the whole.
pub const MAX_VARIANT_BYTES: usize = 160;

/// Names a variant by its non-seed value overrides, sorted by key: `default` if there are none;
/// beyond [`MAX_VARIANT_BYTES`], the first 120 bytes, `~` and 16 hex digits of the whole name's
/// SHA-256 (the run's `config.yaml` holds every value).
pub fn variant_name(overrides: &[Override]) -> Result<String> {
    let mut parts = Vec::new();
    for o in overrides {
        if NON_VARIANT_KEYS.contains(&o.key.as_str()) {
            continue;
        }
        let value = compact(&o.yaml_value()?).map_err(|m| Error::invalid(&o.key, m))?;
        parts.push(format!("{}={}", o.key, value.replace(['/', '\\'], "_")));
    }
    parts.sort();
    parts.dedup();
    let name = parts.join(",");
    Ok(if parts.is_empty() {
        "default".to_string()
    } else if name.len() > MAX_VARIANT_BYTES {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(name.as_bytes());
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let mut cut = 120;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}~{hex}", &name[..cut])
    } else {
        name
    })
}

/// Deserializes a YAML tree into the typed config, naming the key path of any error, then
/// checks every value and the model/data combination ([`super::validate`]).
///
/// A version-1 tree's `data.name` is read as `data.kind`.
pub fn typed(tree: &Value) -> Result<ExperimentConfig> {
    let cfg = typed_unchecked(tree)?;
    super::validate::validate(&cfg)?;
    Ok(cfg)
}

/// [`typed`] without the value checks (reading a saved run's config back).
pub fn typed_unchecked(tree: &Value) -> Result<ExperimentConfig> {
    let mut tree = tree.clone();
    if let Some(Value::Mapping(data)) = tree.get_mut("data") {
        let (name, kind) = (Value::from("name"), Value::from("kind"));
        if !data.contains_key(&kind) {
            if let Some(v) = data.remove(&name) {
                data.insert(kind, v);
            }
        }
    }
    serde_path_to_error::deserialize(tree).map_err(|e| {
        let path = e.path().to_string();
        Error::invalid(
            if path == "." {
                "<top level>".to_string()
            } else {
                path
            },
            e.into_inner().to_string(),
        )
    })
}
