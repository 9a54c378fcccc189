//! `history.csv`: one row per epoch; the fixed columns, then any extra columns of the run
//! (e.g. `rate_lif1`, the mean firing rate of a spiking layer on the validation set).

use serde::{Deserialize, Serialize};

use crate::metric::NamedValue;

/// The columns of a version-1 (classification) `history.csv`, in order; a classification run
/// of schema 2 writes the same header.
pub const HISTORY_COLUMNS: &[&str] = &[
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "lr",
    "epoch_time_s",
];

/// One epoch's metrics.
///
/// `history.csv` columns: `epoch, train_loss, train_<m>..., val_loss, val_<m>..., lr,
/// epoch_time_s, extra...`, where `<m>` runs over the task's declared metrics other than the
/// loss (`acc` for classification, so its header is [`HISTORY_COLUMNS`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawEpochRecord")]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (weighted by batch size).
    pub train_loss: f64,
    /// Training metrics other than the loss, by column name (`train_acc`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub train: Vec<NamedValue>,
    /// Validation loss after the epoch.
    pub val_loss: f64,
    /// Validation metrics other than the loss, by column name (`val_acc`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub val: Vec<NamedValue>,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Wall time of the epoch (training and validation), seconds.
    pub epoch_time_s: f64,
    /// Extra columns after the fixed ones, in order (`rate_<layer>`: mean validation firing
    /// rate of a spiking layer, spikes per neuron per step).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<NamedValue>,
}

/// What a checkpoint's history holds: schema 2 records, or version-1 ones with `train_acc` and
/// `val_acc` fields.
#[derive(Deserialize)]
struct RawEpochRecord {
    epoch: usize,
    #[serde(deserialize_with = "crate::metric::nan_if_null")]
    train_loss: f64,
    #[serde(default)]
    train_acc: Option<f64>,
    #[serde(default)]
    train: Vec<NamedValue>,
    #[serde(deserialize_with = "crate::metric::nan_if_null")]
    val_loss: f64,
    #[serde(default)]
    val_acc: Option<f64>,
    #[serde(default)]
    val: Vec<NamedValue>,
    lr: f64,
    epoch_time_s: f64,
    #[serde(default)]
    extra: Vec<NamedValue>,
}

impl From<RawEpochRecord> for EpochRecord {
    fn from(r: RawEpochRecord) -> Self {
        let with = |mut cols: Vec<NamedValue>, name: &str, v: Option<f64>| {
            if let Some(v) = v {
                cols.insert(0, NamedValue::new(name, v));
            }
            cols
        };
        EpochRecord {
            epoch: r.epoch,
            train_loss: r.train_loss,
            train: with(r.train, "train_acc", r.train_acc),
            val_loss: r.val_loss,
            val: with(r.val, "val_acc", r.val_acc),
            lr: r.lr,
            epoch_time_s: r.epoch_time_s,
            extra: r.extra,
        }
    }
}

impl EpochRecord {
    /// Every column of the row in `history.csv` order, `epoch` first.
    pub fn columns(&self) -> Vec<NamedValue> {
        let mut out = vec![
            NamedValue::new("epoch", self.epoch as f64),
            NamedValue::new("train_loss", self.train_loss),
        ];
        out.extend(self.train.iter().cloned());
        out.push(NamedValue::new("val_loss", self.val_loss));
        out.extend(self.val.iter().cloned());
        out.push(NamedValue::new("lr", self.lr));
        out.push(NamedValue::new("epoch_time_s", self.epoch_time_s));
        out.extend(self.extra.iter().cloned());
        out
    }

    /// The value of column `name` (`val_acc`, `train_loss`, `rate_lif1`, ...).
    pub fn value(&self, name: &str) -> Option<f64> {
        self.columns()
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| c.value)
    }
}

/// Renders rows as CSV with a header (columns from the first row); floats in shortest
/// round-trip form.
pub fn to_csv(rows: &[EpochRecord]) -> String {
    let header: Vec<String> = match rows.first() {
        Some(first) => first.columns().into_iter().map(|c| c.name).collect(),
        None => HISTORY_COLUMNS.iter().map(|c| c.to_string()).collect(),
    };
    let mut out = header.join(",");
    out.push('\n');
    for r in rows {
        let cells: Vec<String> = r
            .columns()
            .into_iter()
            .enumerate()
            .map(|(i, NamedValue { value: v, .. })| {
                if i == 0 {
                    r.epoch.to_string()
                } else {
                    v.to_string()
                }
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// Parses `history.csv` text written by `to_csv` (either schema).
pub fn parse_history_csv(text: &str) -> Result<Vec<EpochRecord>, String> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty file")?.split(',').collect();
    let find = |name: &str| header.iter().position(|h| *h == name);
    let layout = match (find("val_loss"), find("lr"), find("epoch_time_s")) {
        (Some(v), Some(lr), Some(t))
            if header.len() >= 5
                && header[..2] == ["epoch", "train_loss"]
                && v < lr
                && t == lr + 1 =>
        {
            (v, lr, t)
        }
        _ => {
            return Err(format!(
                "unexpected header `{}`, expected `epoch,train_loss,[train_<metric>...],val_loss,[val_<metric>...],lr,epoch_time_s[,extra...]` (e.g. `{}`)",
                header.join(","),
                HISTORY_COLUMNS.join(",")
            ))
        }
    };
    let (val_at, lr_at, time_at) = layout;
    lines
        .enumerate()
        .map(|(i, line)| {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() != header.len() {
                return Err(format!(
                    "line {}: {} fields, the header has {}",
                    i + 2,
                    f.len(),
                    header.len()
                ));
            }
            let num = |j: usize| -> Result<f64, String> {
                f[j].parse()
                    .map_err(|_| format!("line {}: column {} is not a number", i + 2, header[j]))
            };
            let named = |range: std::ops::Range<usize>| {
                range
                    .map(|j| Ok(NamedValue::new(header[j], num(j)?)))
                    .collect::<Result<Vec<_>, String>>()
            };
            Ok(EpochRecord {
                epoch: num(0)? as usize,
                train_loss: num(1)?,
                train: named(2..val_at)?,
                val_loss: num(val_at)?,
                val: named(val_at + 1..lr_at)?,
                lr: num(lr_at)?,
                epoch_time_s: num(time_at)?,
                extra: named(time_at + 1..header.len())?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip_with_and_without_extra_columns() -> Result<(), String> {
        let mut rows = vec![EpochRecord {
            epoch: 1,
            train_loss: 0.25,
            train: vec![NamedValue::new("train_acc", 0.9)],
            val_loss: 0.1 / 3.0,
            val: vec![NamedValue::new("val_acc", 0.95)],
            lr: 1e-3,
            epoch_time_s: 1.5,
            extra: Vec::new(),
        }];
        assert_eq!(parse_history_csv(&to_csv(&rows)), Ok(rows.clone()));
        rows[0].extra = vec![
            NamedValue::new("rate_lif1", 0.125),
            NamedValue::new("rate_lif2", 0.03),
        ];
        let text = to_csv(&rows);
        assert!(text.starts_with(
            "epoch,train_loss,train_acc,val_loss,val_acc,lr,epoch_time_s,rate_lif1,rate_lif2\n"
        ));
        assert_eq!(parse_history_csv(&text), Ok(rows));
        assert!(parse_history_csv("a,b\n").is_err());
        let regression =
            "epoch,train_loss,val_loss,val_position_rmse,lr,epoch_time_s\n1,2,3,4,0.001,1.5\n";
        let rows = parse_history_csv(regression)?;
        assert_eq!(rows[0].val, vec![NamedValue::new("val_position_rmse", 4.0)]);
        assert!(rows[0].train.is_empty());
        assert_eq!(to_csv(&rows), regression);
        assert!(parse_history_csv(&format!("{}\n1,2\n", HISTORY_COLUMNS.join(","))).is_err());
        Ok(())
    }
}
