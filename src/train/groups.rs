//! Parameter groups: the per-parameter learning-rate multipliers of `lr_scale`.

use std::collections::BTreeMap;

use candle_core::Var;

use crate::error::{Error, Result};

/// The learning-rate multiplier of each of `params` (1 where no key matches); a key matches
/// the parameter of that name or one ending in `.<key>`. A key matching nothing is an error
/// listing the parameters.
pub fn lr_scales(scales: &BTreeMap<String, f64>, params: &[(String, Var)]) -> Result<Vec<f64>> {
    let matches = |key: &str, name: &str| name == key || name.ends_with(&format!(".{key}"));
    for key in scales.keys() {
        if !params.iter().any(|(name, _)| matches(key, name)) {
            let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
            return Err(Error::invalid(
                format!("lr_scale.{key}"),
                format!(
                    "no parameter is named `{key}`; parameters: {}",
                    names.join(", ")
                ),
            ));
        }
    }
    Ok(params
        .iter()
        .map(|(name, _)| {
            scales
                .iter()
                .filter(|(key, _)| matches(key, name))
                .map(|(_, s)| *s)
                .product()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn keys_match_names_and_suffixes_and_unknown_keys_are_errors() {
        let var = || {
            Var::from_tensor(&Tensor::zeros(2, candle_core::DType::F32, &Device::Cpu).unwrap())
                .unwrap()
        };
        let params = vec![
            ("bias".to_string(), var()),
            ("grid.log_tau".to_string(), var()),
            ("w_left".to_string(), var()),
        ];
        let scales = BTreeMap::from([("bias".to_string(), 0.05), ("log_tau".to_string(), 4.0)]);
        assert_eq!(lr_scales(&scales, &params).unwrap(), vec![0.05, 4.0, 1.0]);
        let bad = BTreeMap::from([("tau".to_string(), 2.0)]);
        let err = lr_scales(&bad, &params).unwrap_err().to_string();
        assert!(
            err.contains("lr_scale.tau") && err.contains("w_left"),
            "{err}"
        );
    }

    #[test]
    fn sgd_and_adam_scale_each_parameters_step_fused_or_plain() {
        use crate::config::OptimizerConfig;
        use crate::train::optim::AnyOptimizer;
        let dev = Device::Cpu;
        for fused in [true, false] {
            let sgd = OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: 0.0,
                dampening: 0.0,
                nesterov: false,
                weight_decay: 0.0,
            };
            let adam = OptimizerConfig::Adam {
                lr: 0.1,
                betas: [0.9, 0.999],
                eps: 1e-8,
                weight_decay: 0.0,
            };
            for (cfg, unit_step) in [(sgd, 0.1f32), (adam, 0.1f32)] {
                let a = Var::from_tensor(&Tensor::ones(3, candle_core::DType::F32, &dev).unwrap())
                    .unwrap();
                let b = Var::from_tensor(&Tensor::ones(3, candle_core::DType::F32, &dev).unwrap())
                    .unwrap();
                let mut opt = AnyOptimizer::from_config(&cfg, vec![a.clone(), b.clone()]).unwrap();
                opt.set_fused(fused);
                opt.set_lr_scales(vec![1.0, 0.05]).unwrap();
                assert!(opt.set_lr_scales(vec![1.0]).is_err());
                let mut grads = candle_core::backprop::GradStore::default();
                grads.insert(
                    a.as_tensor(),
                    Tensor::ones(3, candle_core::DType::F32, &dev).unwrap(),
                );
                grads.insert(
                    b.as_tensor(),
                    Tensor::ones(3, candle_core::DType::F32, &dev).unwrap(),
                );
                opt.step(&grads).unwrap();
                let moved = |v: &Var| 1.0 - v.as_tensor().to_vec1::<f32>().unwrap()[0];
                assert!(
                    (moved(&a) - unit_step).abs() < 1e-6,
                    "{cfg:?} fused {fused}"
                );
                assert!(
                    (moved(&b) - 0.05 * unit_step).abs() < 1e-6,
                    "{cfg:?} fused {fused}"
                );
            }
        }
    }
}
