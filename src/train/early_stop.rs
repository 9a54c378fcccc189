//! Early stopping as a small state machine (saved in checkpoints so resuming keeps patience).

use serde::{Deserialize, Serialize};

use crate::config::{EarlyStoppingConfig, Metric, Mode};
use crate::rundir::EpochRecord;

/// Progress of early stopping: best value so far and epochs since it improved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopState {
    /// Best monitored value so far.
    pub best: Option<f64>,
    /// Epochs since the last improvement.
    pub bad_epochs: usize,
}

/// The value of `metric` in an epoch record.
pub fn metric_value(metric: Metric, r: &EpochRecord) -> f64 {
    match metric {
        Metric::ValAcc => r.val_acc,
        Metric::ValLoss => r.val_loss,
        Metric::TrainAcc => r.train_acc,
        Metric::TrainLoss => r.train_loss,
    }
}

impl EarlyStopState {
    /// Records one epoch; returns `true` when training should stop.
    pub fn update(&mut self, cfg: &EarlyStoppingConfig, record: &EpochRecord) -> bool {
        let value = metric_value(cfg.metric, record);
        let improved = match (self.best, cfg.mode) {
            (None, _) => true,
            (Some(best), Mode::Max) => value > best + cfg.min_delta,
            (Some(best), Mode::Min) => value < best - cfg.min_delta,
        };
        if improved {
            self.best = Some(value);
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        self.bad_epochs > cfg.patience
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(val_loss: f64) -> EpochRecord {
        EpochRecord {
            epoch: 1,
            train_loss: 0.0,
            train_acc: 0.0,
            val_loss,
            val_acc: 0.0,
            lr: 0.0,
            epoch_time_s: 0.0,
            extra: Vec::new(),
        }
    }

    #[test]
    fn stops_after_patience_epochs_without_min_delta_improvement() {
        let cfg = EarlyStoppingConfig {
            metric: Metric::ValLoss,
            mode: Mode::Min,
            patience: 2,
            min_delta: 0.01,
        };
        let mut s = EarlyStopState::default();
        assert!(!s.update(&cfg, &rec(1.0)));
        assert!(!s.update(&cfg, &rec(0.995))); // not by min_delta: bad 1
        assert!(!s.update(&cfg, &rec(0.98))); // improved: reset
        assert!(!s.update(&cfg, &rec(0.98))); // bad 1
        assert!(!s.update(&cfg, &rec(0.99))); // bad 2
        assert!(s.update(&cfg, &rec(0.99))); // bad 3 > patience
    }
}
