//! Learning-rate schedules as pure functions of the global step (so resuming needs no state).

use crate::config::{ScheduleInterval, SchedulerConfig};

/// The learning rate at optimizer step `step` (0-based) of a run of `total_steps` steps, with
/// `steps_per_epoch` steps per epoch.
pub fn lr_at(
    cfg: &SchedulerConfig,
    base_lr: f64,
    step: usize,
    steps_per_epoch: usize,
    total_steps: usize,
) -> f64 {
    match *cfg {
        SchedulerConfig::Constant => base_lr,
        SchedulerConfig::Step { step_size, gamma } => {
            let epoch = step / steps_per_epoch.max(1);
            base_lr * gamma.powi((epoch / step_size.max(1)) as i32)
        }
        SchedulerConfig::Cosine {
            min_lr,
            warmup_epochs,
            interval: ScheduleInterval::Epoch,
        } => {
            let per = steps_per_epoch.max(1);
            let (epoch, epochs) = (step / per, total_steps.div_ceil(per));
            let warmup = warmup_epochs.round() as usize;
            if epoch < warmup {
                return base_lr * (epoch + 1) as f64 / warmup as f64;
            }
            let span = epochs.saturating_sub(warmup).max(1) as f64;
            let progress = ((epoch - warmup) as f64 / span).min(1.0);
            min_lr + (base_lr - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
        SchedulerConfig::Cosine {
            min_lr,
            warmup_epochs,
            interval: ScheduleInterval::Step,
        } => {
            let warmup = (warmup_epochs * steps_per_epoch as f64).round() as usize;
            if step < warmup {
                return base_lr * (step + 1) as f64 / warmup as f64;
            }
            let span = total_steps.saturating_sub(warmup).max(1) as f64;
            let progress = ((step - warmup) as f64 / span).min(1.0);
            min_lr + (base_lr - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_their_formulas() {
        let step = SchedulerConfig::Step {
            step_size: 2,
            gamma: 0.5,
        };
        assert_eq!(lr_at(&step, 1.0, 0, 10, 100), 1.0);
        assert_eq!(lr_at(&step, 1.0, 19, 10, 100), 1.0);
        assert_eq!(lr_at(&step, 1.0, 20, 10, 100), 0.5);
        assert_eq!(lr_at(&step, 1.0, 45, 10, 100), 0.25);
        let cos = SchedulerConfig::Cosine {
            min_lr: 0.1,
            warmup_epochs: 0.0,
            interval: ScheduleInterval::Step,
        };
        assert!((lr_at(&cos, 1.0, 0, 10, 100) - 1.0).abs() < 1e-12);
        assert!((lr_at(&cos, 1.0, 50, 10, 100) - 0.55).abs() < 1e-12);
        assert!((lr_at(&cos, 1.0, 100, 10, 100) - 0.1).abs() < 1e-12);
        let warm = SchedulerConfig::Cosine {
            min_lr: 0.0,
            warmup_epochs: 1.0,
            interval: ScheduleInterval::Step,
        };
        assert!((lr_at(&warm, 1.0, 4, 10, 100) - 0.5).abs() < 1e-12);
        assert!((lr_at(&warm, 1.0, 10, 10, 100) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn cosine_per_epoch_is_torch_cosine_annealing_stepped_per_epoch() {
        let cos = SchedulerConfig::Cosine {
            min_lr: 0.0,
            warmup_epochs: 0.0,
            interval: ScheduleInterval::Epoch,
        };
        // 200 epochs of 352 steps (45k images, batch 128): lr_e = 0.05 (1 + cos(pi e / 200))
        let (per, total) = (352, 352 * 200);
        for (step, epoch) in [
            (0, 0),
            (351, 0),
            (352, 1),
            (352 * 100 + 7, 100),
            (352 * 199, 199),
        ] {
            let want = 0.05 * (1.0 + (std::f64::consts::PI * epoch as f64 / 200.0).cos());
            assert!(
                (lr_at(&cos, 0.1, step, per, total) - want).abs() < 1e-15,
                "step {step}"
            );
        }
        // the reference's early stop at epoch 29 still had about 95% of the rate
        assert!((lr_at(&cos, 0.1, 352 * 29, per, total) / 0.1 - 0.9486).abs() < 1e-3);
    }
}
