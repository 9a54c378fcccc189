//! `history.csv`: one row per epoch; the fixed columns, then any extra columns of the run
//! (e.g. `rate_lif1`, the mean firing rate of a spiking layer on the validation set).

use serde::{Deserialize, Serialize};

/// The fixed leading columns of `history.csv`, in order.
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (weighted by batch size).
    pub train_loss: f64,
    /// Training accuracy over the epoch.
    pub train_acc: f64,
    /// Validation loss after the epoch.
    pub val_loss: f64,
    /// Validation accuracy after the epoch.
    pub val_acc: f64,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Wall time of the epoch (training and validation), seconds.
    pub epoch_time_s: f64,
    /// Extra columns after the fixed ones, in order (`rate_<layer>`: mean validation firing
    /// rate of a spiking layer, spikes per neuron per step).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<(String, f64)>,
}

/// Renders rows as CSV with a header (extra columns from the first row); floats in shortest
/// round-trip form.
pub fn to_csv(rows: &[EpochRecord]) -> String {
    let mut header: Vec<&str> = HISTORY_COLUMNS.to_vec();
    if let Some(first) = rows.first() {
        header.extend(first.extra.iter().map(|(name, _)| name.as_str()));
    }
    let mut out = header.join(",");
    out.push('\n');
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}",
            r.epoch, r.train_loss, r.train_acc, r.val_loss, r.val_acc, r.lr, r.epoch_time_s
        ));
        for (_, value) in &r.extra {
            out.push_str(&format!(",{value}"));
        }
        out.push('\n');
    }
    out
}

/// Parses `history.csv` text written by `to_csv`.
pub fn parse_history_csv(text: &str) -> Result<Vec<EpochRecord>, String> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty file")?.split(',').collect();
    if header.len() < HISTORY_COLUMNS.len() || header[..HISTORY_COLUMNS.len()] != *HISTORY_COLUMNS {
        return Err(format!(
            "unexpected header `{}`, expected it to start with `{}`",
            header.join(","),
            HISTORY_COLUMNS.join(",")
        ));
    }
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
            let fixed = HISTORY_COLUMNS.len();
            Ok(EpochRecord {
                epoch: num(0)? as usize,
                train_loss: num(1)?,
                train_acc: num(2)?,
                val_loss: num(3)?,
                val_acc: num(4)?,
                lr: num(5)?,
                epoch_time_s: num(6)?,
                extra: (fixed..header.len())
                    .map(|j| Ok((header[j].to_string(), num(j)?)))
                    .collect::<Result<_, String>>()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip_with_and_without_extra_columns() {
        let mut rows = vec![EpochRecord {
            epoch: 1,
            train_loss: 0.25,
            train_acc: 0.9,
            val_loss: 0.1 / 3.0,
            val_acc: 0.95,
            lr: 1e-3,
            epoch_time_s: 1.5,
            extra: Vec::new(),
        }];
        assert_eq!(parse_history_csv(&to_csv(&rows)), Ok(rows.clone()));
        rows[0].extra = vec![("rate_lif1".into(), 0.125), ("rate_lif2".into(), 0.03)];
        let text = to_csv(&rows);
        assert!(text.starts_with(
            "epoch,train_loss,train_acc,val_loss,val_acc,lr,epoch_time_s,rate_lif1,rate_lif2\n"
        ));
        assert_eq!(parse_history_csv(&text), Ok(rows));
        assert!(parse_history_csv("a,b\n").is_err());
        assert!(parse_history_csv(&format!("{}\n1,2\n", HISTORY_COLUMNS.join(","))).is_err());
    }
}
