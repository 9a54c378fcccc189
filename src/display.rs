//! Inline display in an evcxr (Rust Jupyter) notebook: one trait, [`NotebookDisplay`], for
//! figures (inline SVG), frames (HTML tables), reports (markdown) and a training run (a compact
//! summary instead of its epoch log). evcxr calls `evcxr_display` on the
//! value of a cell's last expression when the type has that method in scope.

use base64::Engine;
use polars::prelude::{AnyValue, DataFrame};

use crate::frame::cell_text;
use crate::metric::NamedValue;

use crate::plot::Figure;
use crate::train::RunOutcome;

/// Rows of a frame shown inline (the rest are summarised in a footer line).
const MAX_ROWS: usize = 50;

/// A value a notebook can show: its MIME type and content.
pub trait NotebookDisplay {
    /// `(mime type, content)`; binary content is base64 encoded.
    fn notebook_content(&self) -> (&'static str, String);

    /// Prints the content in evcxr's display protocol.
    fn evcxr_display(&self) {
        let (mime, content) = self.notebook_content();
        println!("EVCXR_BEGIN_CONTENT {mime}\n{content}\nEVCXR_END_CONTENT");
    }
}

impl NotebookDisplay for Figure {
    fn notebook_content(&self) -> (&'static str, String) {
        ("image/svg+xml", self.svg().to_string())
    }
}

/// A figure shown as PNG (for front ends that do not render SVG), base64 encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Png(pub Figure);

impl NotebookDisplay for Png {
    fn notebook_content(&self) -> (&'static str, String) {
        (
            "image/png",
            base64::engine::general_purpose::STANDARD.encode(self.0.png()),
        )
    }
}

impl NotebookDisplay for RunOutcome {
    /// One line of what happened and a table of the best and last epochs' numbers (for a
    /// task other than classification: the objective's best value and the test results).
    fn notebook_content(&self) -> (&'static str, String) {
        let m = &self.metrics;
        let what = if self.skipped {
            "already completed (nothing done)"
        } else if self.resumed {
            "resumed from its checkpoint"
        } else {
            "trained"
        };
        let (heads, cells) = outcome_table(m);
        let row = |tag: &str, items: &[String]| -> String {
            items
                .iter()
                .map(|x| format!("<{tag}>{}</{tag}>", escape(x)))
                .collect()
        };
        let html = format!(
            "<p><b>{}</b>: {} {what}, status <b>{}</b>, {} of {} epochs in {:.1} s</p>\n\
             <table><thead><tr>{}</tr></thead>\n\
             <tbody><tr>{}</tr></tbody></table>\n",
            escape(&self.dir.path().display().to_string()),
            escape(&format!("{}/{} seed {}", m.experiment, m.variant, m.seed)),
            m.status.as_str(),
            m.epochs_done,
            m.epochs_planned,
            m.wall_time_s,
            row("th", &heads),
            row("td", &cells),
        );
        ("text/html", html)
    }
}

/// Headers and cells of a run's outcome: validation and test accuracy for classification,
/// else the objective's best value (with its direction) and every test result.
fn outcome_table(m: &crate::Metrics) -> (Vec<String>, Vec<String>) {
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}%", 100.0 * v));
    let epoch = m.best_epoch.map_or("-".to_string(), |e| e.to_string());
    let objective = m.objective_or_legacy();
    if objective.metric == "val_acc" {
        let heads = [
            "best val acc",
            "best epoch",
            "final val acc",
            "test acc",
            "params",
        ];
        let cells = [
            pct(m.best_val_acc),
            epoch,
            pct(m.final_val_acc),
            pct(m.test_acc),
            m.params.to_string(),
        ];
        return (heads.map(String::from).to_vec(), cells.to_vec());
    }
    let value = |column: &str, v: Option<f64>| match m.column_spec(column) {
        Some(spec) if spec.unit == "fraction" => pct(v),
        _ => v.map_or("-".to_string(), |v| format!("{v:.4}")),
    };
    let direction = crate::runs::direction_text(objective.mode);
    let mut heads = vec![
        format!("best {} ({direction})", objective.metric),
        "best epoch".to_string(),
    ];
    let mut cells = vec![
        value(&objective.metric, objective.best),
        objective
            .best_epoch
            .map_or("-".to_string(), |e| e.to_string()),
    ];
    for NamedValue {
        name: column,
        value: v,
    } in m.result_columns()
    {
        if column.starts_with("test") {
            cells.push(value(&column, Some(v)));
            heads.push(column);
        }
    }
    heads.push("params".into());
    cells.push(m.params.to_string());
    (heads, cells)
}

impl NotebookDisplay for DataFrame {
    fn notebook_content(&self) -> (&'static str, String) {
        ("text/html", frame_html(self))
    }
}

/// Markdown text shown rendered (a report or a leaderboard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Markdown(pub String);

impl NotebookDisplay for Markdown {
    fn notebook_content(&self) -> (&'static str, String) {
        ("text/markdown", self.0.clone())
    }
}

/// An HTML table of the first `MAX_ROWS` (50) rows of `df`.
pub fn frame_html(df: &DataFrame) -> String {
    let mut html = String::from("<table>\n<thead><tr>");
    for name in df.get_column_names() {
        html.push_str(&format!("<th>{}</th>", escape(name.as_str())));
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    let columns = df.columns();
    for row in 0..df.height().min(MAX_ROWS) {
        html.push_str("<tr>");
        for col in columns {
            let cell = match col.get(row) {
                Ok(AnyValue::Float64(x)) => format!("{x:.6}"),
                _ => cell_text(col, row).unwrap_or_default(),
            };
            html.push_str(&format!("<td>{}</td>", escape(&cell)));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody>\n</table>\n");
    if df.height() > MAX_ROWS {
        html.push_str(&format!(
            "<p>{} of {} rows shown</p>\n",
            MAX_ROWS,
            df.height()
        ));
    }
    html
}

/// Text made safe inside HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Frame, Values};

    #[test]
    fn frames_show_as_escaped_html_tables() -> crate::Result<()> {
        let df = Frame::new()
            .strs("name", ["a<b", "c"])
            .with("x", Values::F64(vec![Some(0.5), None]))
            .finish()?;
        let (mime, html) = df.notebook_content();
        assert_eq!(mime, "text/html");
        assert!(html.contains("<th>name</th><th>x</th>"), "{html}");
        assert!(html.contains("<td>a&lt;b</td><td>0.500000</td>"), "{html}");
        assert!(html.contains("<td>c</td><td></td>"), "{html}");
        Ok(())
    }

    #[test]
    fn markdown_is_shown_as_markdown() {
        let (mime, text) = Markdown("# Title".into()).notebook_content();
        assert_eq!((mime, text.as_str()), ("text/markdown", "# Title"));
    }
}
