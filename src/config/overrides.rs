//! Parsing of `key=value` overrides and of sweep values (`a,b,c`, `range(0,5)`, YAML lists).

use serde_yaml_ng::Value;

use crate::error::{Error, Result};

/// One `key=value` override as typed by the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// Dotted key path, e.g. `optimizer.lr`, or a group name such as `model`.
    pub key: String,
    /// The value text, unparsed.
    pub value: String,
}

impl Override {
    /// Parses `key=value`; the key must be a non-empty dotted path of identifiers.
    pub fn parse(text: &str) -> Result<Self> {
        let err = |message: &str| Error::Override {
            text: text.to_string(),
            message: message.to_string(),
        };
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| err("expected key=value, e.g. optimizer.lr=3e-4 or model=cnn"))?;
        let key = key.trim();
        let valid_segment =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !key.split('.').all(valid_segment) {
            return Err(err(
                "the key must be a dotted path of names made of letters, digits and `_`",
            ));
        }
        Ok(Override {
            key: key.to_string(),
            value: value.trim().to_string(),
        })
    }

    /// Parses the value as YAML (so `3e-4` is a float and `[512,256]` a list).
    pub fn yaml_value(&self) -> Result<Value> {
        parse_scalar_or_yaml(&self.value).map_err(|message| Error::Override {
            text: format!("{}={}", self.key, self.value),
            message,
        })
    }

    /// The values this override sweeps over: several for `a,b`, `range(..)` or `choice(..)`.
    pub fn sweep_values(&self) -> Result<Vec<String>> {
        sweep_values_from_text(&self.value).map_err(|message| Error::Override {
            text: format!("{}={}", self.key, self.value),
            message,
        })
    }
}

/// Parses a value as YAML; an empty value is rejected.
pub(crate) fn parse_scalar_or_yaml(text: &str) -> std::result::Result<Value, String> {
    if text.is_empty() {
        return Err("empty value (write key=null to unset an optional key)".to_string());
    }
    serde_yaml_ng::from_str::<Value>(text).map_err(|e| format!("not valid YAML: {e}"))
}

/// Splits a sweep text into its values: `a,b,c`, `range(start,stop[,step])`, `choice(a,b)`.
///
/// Commas inside brackets, braces, parentheses or quotes do not split, so `[512,256]` is one value.
pub(crate) fn sweep_values_from_text(text: &str) -> std::result::Result<Vec<String>, String> {
    let trimmed = text.trim();
    if let Some(inner) = strip_call(trimmed, "range") {
        return expand_range(inner);
    }
    if let Some(inner) = strip_call(trimmed, "choice") {
        return Ok(split_top_level(inner));
    }
    Ok(split_top_level(trimmed))
}

/// Sweep values from a YAML value of an experiment's `sweep:` block (list or text).
pub(crate) fn sweep_values_from_yaml(value: &Value) -> std::result::Result<Vec<String>, String> {
    match value {
        Value::Sequence(items) => items.iter().map(compact).collect(),
        Value::String(s) => sweep_values_from_text(s),
        other => Ok(vec![compact(other)?]),
    }
}

fn strip_call<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.strip_prefix(name)?
        .trim_start()
        .strip_prefix('(')?
        .strip_suffix(')')
}

fn split_top_level(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut current = String::new();
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{' | '(') => depth += 1,
            (None, ']' | '}' | ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(current.trim().to_string());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current.trim().to_string());
    parts
}

fn expand_range(inner: &str) -> std::result::Result<Vec<String>, String> {
    let args = split_top_level(inner);
    let nums: Vec<f64> = args
        .iter()
        .map(|a| {
            a.parse::<f64>()
                .map_err(|_| format!("range argument `{a}` is not a number"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let (start, stop, step) = match nums.as_slice() {
        [stop] => (0.0, *stop, 1.0),
        [start, stop] => (*start, *stop, 1.0),
        [start, stop, step] => (*start, *stop, *step),
        _ => return Err("range takes (stop), (start, stop) or (start, stop, step)".to_string()),
    };
    if step == 0.0 || !step.is_finite() {
        return Err("range step must be a non-zero number".to_string());
    }
    let integral = args.iter().all(|a| a.parse::<i64>().is_ok());
    // a small tolerance keeps range(0.1,0.4,0.1) at 3 values despite 0.30000000000000004
    let count = ((stop - start) / step - 1e-9).ceil();
    if !(0.0..=100_000.0).contains(&count) {
        return Err(format!("range yields {count} values; expected 1 to 100000"));
    }
    let values = (0..count as usize)
        .map(|i| {
            let v = start + step * i as f64;
            if integral {
                format!("{}", v as i64)
            } else {
                format!("{v}")
            }
        })
        .collect::<Vec<_>>();
    if values.is_empty() {
        return Err("range is empty".to_string());
    }
    Ok(values)
}

/// Renders a YAML value on one line (`[512,256]`, `0.0003`), for variant names and sweeps.
pub(crate) fn compact(value: &Value) -> std::result::Result<String, String> {
    Ok(match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Sequence(items) => format!(
            "[{}]",
            items
                .iter()
                .map(compact)
                .collect::<std::result::Result<Vec<_>, _>>()?
                .join(",")
        ),
        Value::Mapping(map) => {
            let mut parts = Vec::new();
            for (k, v) in map {
                parts.push(format!("{}:{}", compact(k)?, compact(v)?));
            }
            format!("{{{}}}", parts.join(","))
        }
        Value::Tagged(t) => compact(&t.value)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sweeps_but_not_lists() -> Result<()> {
        assert_eq!(
            sweep_values_from_text("0,1,2").map_err(|m| Error::invalid("t", m))?,
            ["0", "1", "2"]
        );
        assert_eq!(
            sweep_values_from_text("[512,256],[128]").map_err(|m| Error::invalid("t", m))?,
            ["[512,256]", "[128]"]
        );
        assert_eq!(
            sweep_values_from_text("range(0,5)").map_err(|m| Error::invalid("t", m))?,
            ["0", "1", "2", "3", "4"]
        );
        assert_eq!(
            sweep_values_from_text("range(3)").map_err(|m| Error::invalid("t", m))?,
            ["0", "1", "2"]
        );
        assert_eq!(
            sweep_values_from_text("range(0.1,0.4,0.1)")
                .map_err(|m| Error::invalid("t", m))?
                .len(),
            3
        );
        assert_eq!(
            sweep_values_from_text("choice(a,b)").map_err(|m| Error::invalid("t", m))?,
            ["a", "b"]
        );
        assert!(sweep_values_from_text("range(0,5,0)").is_err());
        assert!(sweep_values_from_text("range(a)").is_err());
        Ok(())
    }

    #[test]
    fn parses_overrides() -> Result<()> {
        let o = Override::parse("optimizer.lr=3e-4")?;
        assert_eq!(o.key, "optimizer.lr");
        assert_eq!(o.yaml_value()?.as_f64(), Some(3e-4));
        let o = Override::parse("model.hidden=[512,256]")?;
        assert_eq!(
            compact(&o.yaml_value()?).map_err(|m| Error::invalid("t", m))?,
            "[512,256]"
        );
        assert!(Override::parse("no_equals").is_err());
        assert!(Override::parse("bad key=1").is_err());
        assert!(Override::parse("a..b=1").is_err());
        assert!(Override::parse("a=").and_then(|o| o.yaml_value()).is_err());
        Ok(())
    }
}
