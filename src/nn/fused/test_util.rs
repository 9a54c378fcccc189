//! Helpers the fused ops' tests share.

use candle_core::{Device, Tensor};

/// A CPU tensor of `shape` with values in [-1, 1) from a counter hash keyed by `seed`.
pub(super) fn rand(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n as u64)
        .map(|i| {
            let z = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ seed.wrapping_mul(0xD1B5_4A32_D192_ED03);
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Largest |a - b| / (1 + |b|).
pub(super) fn rel(a: &Tensor, b: &Tensor) -> f32 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
        .fold(0.0, f32::max)
}

/// Asserts that `fused` and `plain` (the same function of `vars`) have gradients of
/// `sum(out · up)` within 1e-5 relative error for every var, and that each var gets a gradient
/// from both or from neither.
pub(super) fn assert_same_grads(
    fused: &Tensor,
    plain: &Tensor,
    up: &Tensor,
    vars: &[(&str, &Tensor)],
    what: &str,
) {
    let gf = (fused * up).unwrap().sum_all().unwrap().backward().unwrap();
    let gp = (plain * up).unwrap().sum_all().unwrap().backward().unwrap();
    for (name, v) in vars {
        match (gf.get(v), gp.get(v)) {
            (Some(a), Some(b)) => assert!(rel(a, b) < 1e-5, "d{name} {what}"),
            (None, None) => {}
            (a, b) => panic!("d{name}: fused {} plain {}", a.is_some(), b.is_some()),
        }
    }
}
