//! Learning-rate schedules as pure functions of the global step (so resuming needs no state).

use crate::config::SchedulerConfig;

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
        };
        assert!((lr_at(&cos, 1.0, 0, 10, 100) - 1.0).abs() < 1e-12);
        assert!((lr_at(&cos, 1.0, 50, 10, 100) - 0.55).abs() < 1e-12);
        assert!((lr_at(&cos, 1.0, 100, 10, 100) - 0.1).abs() < 1e-12);
        let warm = SchedulerConfig::Cosine {
            min_lr: 0.0,
            warmup_epochs: 1.0,
        };
        assert!((lr_at(&warm, 1.0, 4, 10, 100) - 0.5).abs() < 1e-12);
        assert!((lr_at(&warm, 1.0, 10, 10, 100) - 1.0).abs() < 1e-12);
    }
}
