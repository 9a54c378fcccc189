//! A small column builder that keeps polars behind our own signatures (its API moves between
//! releases): analysis code collects typed columns, then [`Frame::finish`] makes a `DataFrame`.

use std::path::Path;

use polars::prelude::{AnyValue, Column, DataFrame, DataType, NamedFrom, Series};

use crate::error::{Error, Result};

/// Values of one column, each possibly missing.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// 64-bit floats.
    F64(Vec<Option<f64>>),
    /// Unsigned integers (seeds, epochs, counts).
    U64(Vec<Option<u64>>),
    /// Text.
    Str(Vec<Option<String>>),
    /// Booleans.
    Bool(Vec<Option<bool>>),
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::F64(v) => v.len(),
            Values::U64(v) => v.len(),
            Values::Str(v) => v.len(),
            Values::Bool(v) => v.len(),
        }
    }

    fn series(&self, name: &str) -> Series {
        match self {
            Values::F64(v) => Series::new(name.into(), v),
            Values::U64(v) => Series::new(name.into(), v),
            Values::Str(v) => Series::new(name.into(), v),
            Values::Bool(v) => Series::new(name.into(), v),
        }
    }
}

/// Named columns in order, checked for equal length when finished.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    columns: Vec<(String, Values)>,
}

impl Frame {
    /// An empty frame.
    pub fn new() -> Self {
        Frame::default()
    }

    /// Appends a column.
    pub fn with(mut self, name: impl Into<String>, values: Values) -> Self {
        self.columns.push((name.into(), values));
        self
    }

    /// Appends a column in place.
    pub fn push(&mut self, name: impl Into<String>, values: Values) {
        self.columns.push((name.into(), values));
    }

    /// Appends a float column with no missing values.
    pub fn f64s(self, name: &str, values: impl IntoIterator<Item = f64>) -> Self {
        self.with(name, Values::F64(values.into_iter().map(Some).collect()))
    }

    /// Appends a text column with no missing values.
    pub fn strs<S: Into<String>>(self, name: &str, values: impl IntoIterator<Item = S>) -> Self {
        self.with(
            name,
            Values::Str(values.into_iter().map(|s| Some(s.into())).collect()),
        )
    }

    /// Appends an unsigned integer column with no missing values.
    pub fn u64s(self, name: &str, values: impl IntoIterator<Item = u64>) -> Self {
        self.with(name, Values::U64(values.into_iter().map(Some).collect()))
    }

    /// The polars frame; an error names the first column whose length differs.
    pub fn finish(self) -> Result<DataFrame> {
        let height = self.columns.first().map_or(0, |(_, v)| v.len());
        if let Some((name, v)) = self.columns.iter().find(|(_, v)| v.len() != height) {
            return Err(Error::Analysis(format!(
                "column `{name}` has {} values, the first column {height}",
                v.len()
            )));
        }
        let columns: Vec<Column> = self
            .columns
            .iter()
            .map(|(name, v)| Column::from(v.series(name)))
            .collect();
        DataFrame::new(height, columns)
            .map_err(|e| Error::Analysis(format!("building a frame: {e}")))
    }
}

/// The values of float column `name` of `df` (missing as `None`), or an error naming it.
pub fn f64_column(df: &DataFrame, name: &str) -> Result<Vec<Option<f64>>> {
    let col = cast_column(df, name, DataType::Float64, "numeric")?;
    let ca = col.f64().map_err(|e| column_err(name, e))?;
    Ok(ca.iter().collect())
}

/// The values of text column `name` of `df` (missing as `None`), or an error naming it.
pub fn str_column(df: &DataFrame, name: &str) -> Result<Vec<Option<String>>> {
    let col = cast_column(df, name, DataType::String, "text")?;
    let ca = col.str().map_err(|e| column_err(name, e))?;
    Ok(ca.iter().map(|v| v.map(str::to_string)).collect())
}

/// Column `name` of `df` cast to `dtype`; errors name the column (and list the columns there
/// are when it is missing).
fn cast_column(df: &DataFrame, name: &str, dtype: DataType, kind: &str) -> Result<Column> {
    column(df, name)?
        .cast(&dtype)
        .map_err(|e| Error::Analysis(format!("column `{name}` is not {kind}: {e}")))
}

/// Column `name` of `df`, found by comparing names rather than through the frame's cached
/// name index: in an evcxr notebook every cell is its own library with its own hash seed, so a
/// frame kept from an earlier cell must not be looked up by hash.
pub fn column<'a>(df: &'a DataFrame, name: &str) -> Result<&'a Column> {
    df.columns()
        .iter()
        .find(|c| c.name().as_str() == name)
        .ok_or_else(|| missing_column(df, name))
}

/// A frame of the columns `names` of `df`, in that order (by name comparison, see [`column()`]).
pub fn select(df: &DataFrame, names: &[&str]) -> Result<DataFrame> {
    let columns = names
        .iter()
        .map(|n| column(df, n).cloned())
        .collect::<Result<Vec<Column>>>()?;
    DataFrame::new(df.height(), columns)
        .map_err(|e| Error::Analysis(format!("selecting columns: {e}")))
}

fn column_err(name: &str, e: impl std::fmt::Display) -> Error {
    Error::Analysis(format!("column `{name}`: {e}"))
}

fn missing_column(df: &DataFrame, name: &str) -> Error {
    let have: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    Error::Analysis(format!("no column `{name}` (columns: {})", have.join(", ")))
}

/// Cell `row` of `col` as text: `None` when missing; floats in full (shortest round-trip) form.
pub fn cell_text(col: &Column, row: usize) -> Option<String> {
    match col.get(row) {
        Ok(AnyValue::Null) | Err(_) => None,
        Ok(AnyValue::Float64(x)) => Some(x.to_string()),
        Ok(AnyValue::Float32(x)) => Some(x.to_string()),
        // text without the quotes `AnyValue`'s Display adds
        Ok(v) => Some(v.get_str().map_or_else(|| v.to_string(), str::to_string)),
    }
}

/// `df` as CSV bytes: a header line, then one line per row (missing cells empty, fields quoted
/// where they need it).
pub fn to_csv(df: &DataFrame) -> Result<Vec<u8>> {
    let fail = |e: csv::Error| Error::Analysis(format!("writing CSV: {e}"));
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record(df.get_column_names().iter().map(|n| n.as_str()))
        .map_err(fail)?;
    let columns = df.columns();
    for row in 0..df.height() {
        writer
            .write_record(
                columns
                    .iter()
                    .map(|c| cell_text(c, row).unwrap_or_default()),
            )
            .map_err(fail)?;
    }
    writer
        .into_inner()
        .map_err(|e| Error::Analysis(format!("writing CSV: {e}")))
}

/// A CSV read back: its header and rows of cells.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvTable {
    /// Column names in order.
    pub header: Vec<String>,
    /// Rows of cells, as written.
    pub rows: Vec<Vec<String>>,
}

impl CsvTable {
    /// The cells of column `name`.
    pub fn column(&self, name: &str) -> Option<Vec<&str>> {
        let i = self.header.iter().position(|h| h == name)?;
        Some(self.rows.iter().map(|r| r[i].as_str()).collect())
    }

    /// The position of column `name` (surrounding spaces in the header ignored).
    pub fn index(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h.trim() == name)
    }
}

/// Reads a CSV with a header (hpo_snn's `all_evaluations.csv`, a connectome's tables); a
/// ragged row is an error naming its line.
pub fn read_csv(path: &Path) -> Result<CsvTable> {
    let mut reader = csv::Reader::from_path(path)
        .map_err(|e| Error::Analysis(format!("reading {}: {e}", path.display())))?;
    let header = reader
        .headers()
        .map_err(|e| Error::Analysis(format!("reading {}: {e}", path.display())))?
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .map(|r| {
            r.map(|r| r.iter().map(str::to_string).collect())
                .map_err(|e| Error::Analysis(format!("reading {}: {e}", path.display())))
        })
        .collect::<Result<Vec<Vec<String>>>>()?;
    Ok(CsvTable { header, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it_and_leaves_missing_cells_empty() -> Result<()> {
        let df = Frame::new()
            .strs("name", ["plain", "a,b"])
            .with("x", Values::F64(vec![Some(0.1 + 0.2), None]))
            .u64s("n", [1, 2])
            .finish()?;
        let text = String::from_utf8(to_csv(&df)?).map_err(|e| Error::Analysis(e.to_string()))?;
        assert_eq!(text, "name,x,n\nplain,0.30000000000000004,1\n\"a,b\",,2\n");
        Ok(())
    }
}
