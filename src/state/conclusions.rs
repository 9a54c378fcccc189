//! `iterations/NNN/conclusions.md`: markdown with YAML front matter (iteration, decision, and
//! any other fields), read and written back with the body unchanged.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::file::{parse_yaml, Extra, Timestamp};
use crate::error::{Error, Result};

/// What the iteration decided for the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Go on along the same line.
    Continue,
    /// Change direction.
    Pivot,
    /// The question is answered (or not worth more).
    Stop,
}

/// The front matter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FrontMatter {
    /// The iteration concluded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iteration: Option<u32>,
    /// What next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// When it was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<Timestamp>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A parsed conclusions file.
#[derive(Debug, Clone, PartialEq)]
pub struct Conclusions {
    /// The YAML between the `---` lines.
    pub front: FrontMatter,
    /// The markdown after them, unchanged.
    pub body: String,
}

impl Conclusions {
    /// Parses `text` read from `path` (named in errors): a `---` line, YAML, a `---` line, then
    /// markdown.
    pub fn parse(text: &str, path: &Path) -> Result<Conclusions> {
        let malformed = |what: &str| {
            Error::ConfigParse {
            path: path.to_path_buf(),
            message: format!(
                "{what} (expected a first line `---`, YAML front matter such as `iteration: 1` and `decision: continue|pivot|stop`, a line `---`, then markdown)"
            ),
        }
        };
        let rest = text
            .strip_prefix("---\n")
            .or_else(|| text.strip_prefix("---\r\n"))
            .ok_or_else(|| malformed("no front matter"))?;
        let end = rest
            .find("\n---\n")
            .map(|i| (i, i + 5))
            .or_else(|| rest.strip_suffix("\n---").map(|r| (r.len(), rest.len())))
            .or_else(|| rest.starts_with("---\n").then_some((0, 4)))
            .ok_or_else(|| malformed("front matter not closed by a `---` line"))?;
        let yaml = &rest[..end.0];
        let front: FrontMatter = if yaml.trim().is_empty() {
            FrontMatter::default()
        } else {
            parse_yaml(yaml, path, "front matter: iteration, decision, date")?
        };
        Ok(Conclusions {
            front,
            body: rest[end.1..].to_string(),
        })
    }

    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<Conclusions> {
        let text = std::fs::read_to_string(path).map_err(Error::io("reading", path))?;
        Conclusions::parse(&text, path)
    }

    /// The file's text: front matter, then the body.
    pub fn to_text(&self) -> Result<String> {
        let yaml = serde_yaml_ng::to_string(&self.front)
            .map_err(|e| Error::invalid("conclusions front matter", e.to_string()))?;
        let yaml = if yaml.trim() == "{}" {
            String::new()
        } else {
            yaml
        };
        Ok(format!("---\n{yaml}---\n{}", self.body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_and_body_round_trip() {
        let text = "---\niteration: 1\ndecision: continue\ndate: 2026-11-29\nreviewed_by: sam\n---\n# Rate coding\n\nThe row reproduces.\n";
        let c = Conclusions::parse(text, Path::new("c.md")).unwrap();
        assert_eq!(c.front.decision, Some(Decision::Continue));
        assert_eq!(c.front.extra["reviewed_by"], "sam");
        assert_eq!(c.body, "# Rate coding\n\nThe row reproduces.\n");
        assert_eq!(c.to_text().unwrap(), text);
    }

    #[test]
    fn malformed_files_are_named() {
        for (text, what) in [
            ("# no front matter\n", "no front matter"),
            ("---\niteration: 1\n# body\n", "not closed"),
            ("---\ndecision: maybe\n---\nbody\n", "line"),
        ] {
            let e = Conclusions::parse(text, Path::new("it/conclusions.md"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("it/conclusions.md") && e.contains(what), "{e}");
        }
    }
}
