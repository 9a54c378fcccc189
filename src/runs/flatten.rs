//! A resolved `config.yaml` as dotted keys and scalar values, the `config.*` columns of the
//! `runs` frame.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

use crate::frame::Values;

/// One scalar of a config.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    /// A number.
    Num(f64),
    /// A boolean.
    Bool(bool),
    /// Text (strings, and lists rendered as YAML flow sequences).
    Text(String),
}

impl ConfigValue {
    /// The column of `values`: floats when every present value is a number, booleans when every
    /// one is a boolean, else text.
    pub(super) fn column(values: &[Option<&ConfigValue>]) -> Values {
        let present = || values.iter().flatten();
        if present().all(|v| matches!(v, ConfigValue::Num(_))) {
            Values::F64(
                values
                    .iter()
                    .map(|v| match v {
                        Some(ConfigValue::Num(x)) => Some(*x),
                        _ => None,
                    })
                    .collect(),
            )
        } else if present().all(|v| matches!(v, ConfigValue::Bool(_))) {
            Values::Bool(
                values
                    .iter()
                    .map(|v| match v {
                        Some(ConfigValue::Bool(b)) => Some(*b),
                        _ => None,
                    })
                    .collect(),
            )
        } else {
            Values::Str(values.iter().map(|v| v.map(ConfigValue::text)).collect())
        }
    }

    /// The value as text.
    pub fn text(&self) -> String {
        match self {
            ConfigValue::Num(x) => x.to_string(),
            ConfigValue::Bool(b) => b.to_string(),
            ConfigValue::Text(s) => s.clone(),
        }
    }
}

/// Every scalar under `tree` by its dotted key (`optimizer.lr`); lists become one text value.
pub(super) fn flatten(tree: &Value) -> BTreeMap<String, ConfigValue> {
    let mut out = BTreeMap::new();
    walk(tree, String::new(), &mut out);
    out
}

fn walk(value: &Value, key: String, out: &mut BTreeMap<String, ConfigValue>) {
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                let name = match k {
                    Value::String(s) => s.clone(),
                    other => scalar_text(other),
                };
                let child = if key.is_empty() {
                    name
                } else {
                    format!("{key}.{name}")
                };
                walk(v, child, out);
            }
        }
        Value::Tagged(t) => walk(&t.value, key, out),
        Value::Null => {}
        Value::Bool(b) => {
            out.insert(key, ConfigValue::Bool(*b));
        }
        Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                out.insert(key, ConfigValue::Num(x));
            }
        }
        Value::String(s) => {
            out.insert(key, ConfigValue::Text(s.clone()));
        }
        Value::Sequence(_) => {
            out.insert(key, ConfigValue::Text(scalar_text(value)));
        }
    }
}

/// A YAML value on one line (flow style).
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Sequence(items) => format!(
            "[{}]",
            items.iter().map(scalar_text).collect::<Vec<_>>().join(", ")
        ),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        Value::Mapping(_) | Value::Tagged(_) => serde_yaml_ng::to_string(value)
            .map(|s| s.trim().replace('\n', " "))
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_keys_are_dotted_and_lists_are_one_value() -> Result<(), serde_yaml_ng::Error> {
        let tree: Value =
            serde_yaml_ng::from_str("a: 1\nb: {c: x, d: true, e: [1, 2]}\nf: null\n")?;
        let flat = flatten(&tree);
        assert_eq!(flat.get("a"), Some(&ConfigValue::Num(1.0)));
        assert_eq!(flat.get("b.c"), Some(&ConfigValue::Text("x".into())));
        assert_eq!(flat.get("b.d"), Some(&ConfigValue::Bool(true)));
        assert_eq!(flat.get("b.e"), Some(&ConfigValue::Text("[1, 2]".into())));
        assert!(!flat.contains_key("f"));
        Ok(())
    }
}
