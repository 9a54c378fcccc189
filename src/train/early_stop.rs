//! Early stopping as a small state machine (saved in checkpoints so resuming keeps patience).

use serde::{Deserialize, Serialize};

use crate::config::EarlyStoppingConfig;
use crate::metric::Mode;
use crate::rundir::EpochRecord;

/// Progress of early stopping: best value so far and epochs since it improved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopState {
    /// Best monitored value so far.
    pub best: Option<f64>,
    /// Epochs since the last improvement.
    pub bad_epochs: usize,
}

impl EarlyStopState {
    /// Records one epoch's value of the watched column (`mode` its direction); returns `true`
    /// when training should stop.
    pub fn update(&mut self, cfg: &EarlyStoppingConfig, mode: Mode, value: f64) -> bool {
        if mode.improves(value, self.best, cfg.min_delta) {
            self.best = Some(value);
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        self.bad_epochs > cfg.patience
    }
}

/// The watched column's value in `record` (NaN when the record lacks it).
pub fn watched_value(column: &str, record: &EpochRecord) -> f64 {
    record.value(column).unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(val_loss: f64) -> EpochRecord {
        EpochRecord {
            epoch: 1,
            train_loss: 0.0,
            train: Vec::new(),
            val_loss,
            val: Vec::new(),
            lr: 0.0,
            epoch_time_s: 0.0,
            extra: Vec::new(),
        }
    }

    #[test]
    fn stops_after_patience_epochs_without_min_delta_improvement() {
        let cfg = EarlyStoppingConfig {
            metric: Some("val_loss".into()),
            mode: None,
            patience: 2,
            min_delta: 0.01,
        };
        let mut s = EarlyStopState::default();
        let mut step = |v: f64| s.update(&cfg, Mode::Min, watched_value("val_loss", &rec(v)));
        assert!(!step(1.0));
        assert!(!step(0.995)); // not by min_delta: bad 1
        assert!(!step(0.98)); // improved: reset
        assert!(!step(0.98)); // bad 1
        assert!(!step(0.99)); // bad 2
        assert!(step(0.99)); // bad 3 > patience
    }
}
