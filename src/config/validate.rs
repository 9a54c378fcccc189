//! Checks of a typed config at compose time: every value in range and the model, data and
//! objective fitting together, each error naming the key path and what would be valid.

use super::{DataConfig, ExperimentConfig, InputKind, OptimizerConfig, SchedulerConfig};
use crate::data::task::run_objectives;
use crate::data::InputShape;
use crate::error::{Error, Result};

/// Checks `cfg` (see the module doc); the first problem is the error.
pub fn validate(cfg: &ExperimentConfig) -> Result<()> {
    run_keys(cfg)?;
    optimizer(&cfg.optimizer)?;
    scheduler(&cfg.scheduler)?;
    data(&cfg.data)?;
    super::validate_model::values(&cfg.model)?;
    let (task, input, outputs) = crate::data::task_for(&cfg.data)?;
    model_fits_data(cfg, input)?;
    run_objectives(&*task, cfg.objective.as_ref(), cfg.early_stopping.as_ref())?;
    super::validate_model::dry_build(cfg, task, input, outputs)?;
    if let Some(es) = &cfg.early_stopping {
        non_negative("early_stopping.min_delta", es.min_delta)?;
    }
    Ok(())
}

fn run_keys(cfg: &ExperimentConfig) -> Result<()> {
    for (key, n) in [
        ("epochs", cfg.epochs),
        ("batch_size", cfg.batch_size),
        ("eval_batch_size", cfg.eval_batch_size),
    ] {
        at_least_one(key, n)?;
    }
    if let Some(c) = cfg.clip_grad_norm {
        positive("clip_grad_norm", c)?;
    }
    if let Some(c) = cfg.clip_grad_norm_per_parameter {
        positive("clip_grad_norm_per_parameter", c)?;
    }
    for (name, scale) in &cfg.lr_scale {
        positive(&format!("lr_scale.{name}"), *scale)?;
    }
    match cfg.validation {
        super::Validation::TestSample { size } => at_least_one("validation.size", size)?,
        super::Validation::Split => {
            let val_fraction = match &cfg.data {
                DataConfig::Mnist(c) | DataConfig::FashionMnist(c) => Some(c.val_fraction),
                DataConfig::Cifar10(c) => Some(c.val_fraction),
                _ => None,
            };
            if let Some(val_fraction) = val_fraction {
                if val_fraction == 0.0 {
                    return Err(Error::invalid(
                        "data.val_fraction",
                        "0 leaves no validation split, and the best checkpoint is chosen on validation data; use a share in (0, 1), or `validation: {kind: test_sample, size: N}` (grid-neurons' protocol)",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Errors on `key` unless `n` >= 1.
pub(super) fn at_least_one(key: &str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::invalid(key, "0; use an integer >= 1"));
    }
    Ok(())
}

/// Errors on `key` unless `v` is finite and > 0.
pub(super) fn positive(key: &str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(key, format!("{v}; use a finite number > 0")))
    }
}

/// Errors on `key` unless `v` is finite and >= 0.
pub(super) fn non_negative(key: &str, v: f64) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            key,
            format!("{v}; use a finite number >= 0"),
        ))
    }
}

fn fraction(key: &str, v: f64) -> Result<()> {
    if (0.0..1.0).contains(&v) {
        Ok(())
    } else {
        Err(Error::invalid(key, format!("{v}; use a number in [0, 1)")))
    }
}

fn optimizer(o: &OptimizerConfig) -> Result<()> {
    positive("optimizer.lr", o.lr())?;
    match o {
        OptimizerConfig::Adam {
            betas,
            eps,
            weight_decay,
            ..
        }
        | OptimizerConfig::Adamw {
            betas,
            eps,
            weight_decay,
            ..
        } => {
            fraction("optimizer.betas[0]", betas[0])?;
            fraction("optimizer.betas[1]", betas[1])?;
            positive("optimizer.eps", *eps)?;
            non_negative("optimizer.weight_decay", *weight_decay)
        }
        OptimizerConfig::Sgd {
            momentum,
            dampening,
            nesterov,
            weight_decay,
            ..
        } => {
            non_negative("optimizer.momentum", *momentum)?;
            non_negative("optimizer.dampening", *dampening)?;
            non_negative("optimizer.weight_decay", *weight_decay)?;
            if *nesterov && (*momentum <= 0.0 || *dampening != 0.0) {
                return Err(Error::invalid(
                    "optimizer.nesterov",
                    "Nesterov momentum needs momentum > 0 and dampening 0",
                ));
            }
            Ok(())
        }
    }
}

fn scheduler(s: &SchedulerConfig) -> Result<()> {
    match s {
        SchedulerConfig::Constant => Ok(()),
        SchedulerConfig::Cosine {
            min_lr,
            warmup_epochs,
            ..
        } => {
            non_negative("scheduler.min_lr", *min_lr)?;
            non_negative("scheduler.warmup_epochs", *warmup_epochs)
        }
        SchedulerConfig::Step { step_size, gamma } => {
            if *step_size == 0 {
                return Err(Error::invalid(
                    "scheduler.step_size",
                    "0; use an integer >= 1",
                ));
            }
            positive("scheduler.gamma", *gamma)
        }
    }
}

/// The split keys of an image dataset: `data.val_fraction` below 1 (and above 0 unless
/// `zero_allowed`: a separate validation protocol may replace the split) and limits of at
/// least one image.
pub(crate) fn image_split(
    val_fraction: f64,
    zero_allowed: bool,
    limit: Option<usize>,
    test_limit: Option<usize>,
) -> Result<()> {
    let low_ok = val_fraction > 0.0 || (zero_allowed && val_fraction == 0.0);
    if !(low_ok && val_fraction < 1.0) {
        return Err(Error::invalid(
            "data.val_fraction",
            format!(
                "{val_fraction}; use a number in (0, 1): the best checkpoint is chosen on validation data"
            ),
        ));
    }
    for (key, limit) in [("data.limit", limit), ("data.test_limit", test_limit)] {
        if limit == Some(0) {
            return Err(Error::invalid(
                key,
                "0 images; use an integer >= 1 or remove the key",
            ));
        }
    }
    Ok(())
}

fn data(d: &DataConfig) -> Result<()> {
    match d {
        DataConfig::Mnist(c) | DataConfig::FashionMnist(c) => {
            image_split(c.val_fraction, true, c.limit, c.test_limit)?;
            if let super::Normalize::Standardize { std, .. } = c.normalize {
                positive("data.normalize.std", std)?;
            }
            Ok(())
        }
        DataConfig::Cifar10(c) => crate::data::cifar::check(c),
        DataConfig::DelayedXor(c) | DataConfig::Copy(c) | DataConfig::Parity(c) => {
            crate::data::bits::BitTask::new(d.kind(), c).map(|_| ())
        }
        DataConfig::PathIntegration(c) => crate::data::path_integration::check(c),
    }
}

/// The model must read the input the data gives (images vs sequences), and an image model's
/// encoder must fit the image.
fn model_fits_data(cfg: &ExperimentConfig, input: InputShape) -> Result<()> {
    let needs = cfg.model.input_kind();
    let ok = matches!(
        (needs, input),
        (InputKind::Any, _)
            | (InputKind::Image, InputShape::Image(_))
            | (InputKind::Sequence, InputShape::Sequence { .. })
    );
    if !ok {
        let valid = match input {
            InputShape::Image(_) => {
                "an image model (ffnn, cnn, snn_ffnn, snn_cnn, srnn, slstm, hybrid, rnn)"
            }
            InputShape::Sequence { .. } => {
                "a sequence model (rate_rnn, sequence_rnn, mean_predictor)"
            }
        };
        return Err(Error::invalid(
            "model.kind",
            format!(
                "{} reads {} input, but data kind {} gives {} input; use {valid}",
                cfg.model.kind(),
                match needs {
                    InputKind::Image => "image",
                    _ => "sequence",
                },
                cfg.data.kind(),
                input.kind()
            ),
        ));
    }
    if let (Some(encoder), InputShape::Image(_)) = (cfg.model.encoder(), input) {
        let raw = cfg
            .data
            .images()
            .is_some_and(|(_, c)| c.normalize == super::Normalize::None);
        encoder.validate("model.encoder", raw)?;
    }
    Ok(())
}
