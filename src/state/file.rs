//! Reading and writing the state's YAML files: errors that name the file and line, atomic
//! writes, timestamps kept as written, and unknown fields kept through a rewrite.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// Fields this build does not know, kept as read and written back unchanged.
pub type Extra = BTreeMap<String, serde_yaml_ng::Value>;

/// Reads a YAML file into `T`; a parse error names the file, the line and column, and `expected`.
pub fn read_yaml<T: DeserializeOwned>(path: &Path, expected: &str) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(Error::io("reading", path))?;
    parse_yaml(&text, path, expected)
}

/// Parses YAML `text` read from `path` (for the error message).
pub fn parse_yaml<T: DeserializeOwned>(text: &str, path: &Path, expected: &str) -> Result<T> {
    serde_yaml_ng::from_str(text).map_err(|e| Error::ConfigParse {
        path: path.to_path_buf(),
        message: format!("{e} (expected {expected}); the file is left as it is"),
    })
}

/// Writes `value` as YAML to `path` atomically (temp file + rename).
pub fn write_yaml<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_yaml_ng::to_string(value).map_err(|e| Error::ConfigParse {
        path: path.to_path_buf(),
        message: format!("cannot serialise: {e}"),
    })?;
    write_atomic(path, text.as_bytes())
}

/// A point in time as written in a state file (RFC 3339, `YYYY-MM-DD HH:MM[:SS]` or a date),
/// kept verbatim so a rewrite does not change it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    text: String,
    at: DateTime<Utc>,
}

impl Timestamp {
    /// Now, in RFC 3339 with seconds, UTC.
    pub fn now() -> Timestamp {
        Timestamp::from(Utc::now())
    }

    /// Parses `text`; the error says which forms are accepted.
    pub fn parse(text: &str) -> Result<Timestamp> {
        let t = text.trim();
        let at = DateTime::parse_from_rfc3339(t)
            .map(|d| d.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"]
                    .iter()
                    .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
                    .map(|n| n.and_utc())
            })
            .or_else(|| {
                NaiveDate::parse_from_str(t, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|n| n.and_utc())
            })
            .ok_or_else(|| {
                Error::invalid(
                    "timestamp",
                    format!("`{t}` is not a time (valid: RFC 3339 like 2026-11-30T09:00:00Z, `2026-11-30 09:00`, or a date 2026-11-30)"),
                )
            })?;
        Ok(Timestamp {
            text: t.to_string(),
            at,
        })
    }

    /// The instant, in UTC.
    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(at: DateTime<Utc>) -> Timestamp {
        Timestamp {
            text: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            at,
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Timestamp, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Deserialises an iteration number written as `3`, `"003"` or `"3"`.
pub fn number_or_text<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Number(u32),
        Text(String),
    }
    match NumberOrText::deserialize(d)? {
        NumberOrText::Number(n) => Ok(n),
        NumberOrText::Text(t) => t.trim().parse().map_err(|_| {
            serde::de::Error::custom(format!(
                "iteration number `{t}` is not a number like 3 or \"003\""
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_in_every_form_and_keep_their_text() {
        for t in [
            "2026-11-30T09:00:00Z",
            "2026-11-30T11:00:00+02:00",
            "2026-11-30 09:00",
            "2026-11-30",
        ] {
            let s = Timestamp::parse(t).unwrap();
            assert_eq!(s.as_str(), t);
            assert_eq!(
                serde_yaml_ng::to_string(&s)
                    .unwrap()
                    .trim()
                    .trim_matches('\''),
                t
            );
        }
        assert_eq!(
            Timestamp::parse("2026-11-30T11:00:00+02:00").unwrap().at(),
            Timestamp::parse("2026-11-30T09:00:00Z").unwrap().at()
        );
        let e = Timestamp::parse("yesterday").unwrap_err().to_string();
        assert!(e.contains("yesterday") && e.contains("RFC 3339"), "{e}");
    }

    #[test]
    fn a_malformed_file_names_its_path_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("project.yaml");
        std::fs::write(&path, "name: x\nslug: [unclosed\n").unwrap();
        let e = read_yaml::<serde_yaml_ng::Value>(&path, "a project")
            .unwrap_err()
            .to_string();
        assert!(e.contains("project.yaml") && e.contains("line"), "{e}");
    }
}
