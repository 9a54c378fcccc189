//! `history.csv`: one row per epoch.

use serde::{Deserialize, Serialize};

/// Columns of `history.csv`, in order.
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
    /// Mean training cross-entropy over the epoch's batches (weighted by batch size).
    pub train_loss: f64,
    /// Training accuracy over the epoch.
    pub train_acc: f64,
    /// Validation cross-entropy after the epoch.
    pub val_loss: f64,
    /// Validation accuracy after the epoch.
    pub val_acc: f64,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Wall time of the epoch (training and validation), seconds.
    pub epoch_time_s: f64,
}

/// Renders rows as CSV with a header; floats in shortest round-trip form.
pub fn to_csv(rows: &[EpochRecord]) -> String {
    let mut out = HISTORY_COLUMNS.join(",");
    out.push('\n');
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            r.epoch, r.train_loss, r.train_acc, r.val_loss, r.val_acc, r.lr, r.epoch_time_s
        ));
    }
    out
}

/// Parses `history.csv` text written by [`to_csv`].
pub fn parse_history_csv(text: &str) -> Result<Vec<EpochRecord>, String> {
    let mut lines = text.lines();
    let header = lines.next().ok_or("empty file")?;
    if header.split(',').collect::<Vec<_>>() != HISTORY_COLUMNS {
        return Err(format!(
            "unexpected header `{header}`, expected `{}`",
            HISTORY_COLUMNS.join(",")
        ));
    }
    lines
        .enumerate()
        .map(|(i, line)| {
            let f: Vec<&str> = line.split(',').collect();
            let num = |j: usize| -> Result<f64, String> {
                f.get(j).and_then(|s| s.parse().ok()).ok_or_else(|| {
                    format!(
                        "line {}: column {} is not a number",
                        i + 2,
                        HISTORY_COLUMNS[j]
                    )
                })
            };
            Ok(EpochRecord {
                epoch: num(0)? as usize,
                train_loss: num(1)?,
                train_acc: num(2)?,
                val_loss: num(3)?,
                val_acc: num(4)?,
                lr: num(5)?,
                epoch_time_s: num(6)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip() {
        let rows = vec![EpochRecord {
            epoch: 1,
            train_loss: 0.25,
            train_acc: 0.9,
            val_loss: 0.1 / 3.0,
            val_acc: 0.95,
            lr: 1e-3,
            epoch_time_s: 1.5,
        }];
        assert_eq!(parse_history_csv(&to_csv(&rows)), Ok(rows));
        assert!(parse_history_csv("a,b\n").is_err());
    }
}
