//! Softmax cross-entropy in one op.

use autoresearch_kernels::softmax::{cross_entropy_backward, cross_entropy_forward};
use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

use super::linear::{check_cpu_f32, keep_freed_memory, kernel_err, read, slice, tensor};

/// The fused loss op (logits `[B, C]`, labels `[B]` u32).
struct CrossEntropy;

fn labels_of<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [u32]> {
    let data = s.as_slice::<u32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("fused cross_entropy: labels must be contiguous"),
    }
}

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "fused-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, classes) = l1.shape().dims2()?;
        let logits = slice(s1, l1, "fused cross_entropy")?;
        let loss =
            cross_entropy_forward(logits, labels_of(s2, l2)?, classes).map_err(kernel_err)?;
        Ok((CpuStorage::F32(vec![loss]), Shape::from(())))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        labels: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, classes) = logits.dims2()?;
        let scale = grad.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        let labels = labels.contiguous()?;
        let (storage, layout) = labels.storage_and_layout();
        let candle_core::Storage::Cpu(s) = &*storage else {
            bail!("fused cross_entropy: labels must be on the CPU");
        };
        let labels = labels_of(s, layout)?;
        let mut out = vec![0.0f32; logits.elem_count()];
        read(logits, "fused cross_entropy backward", |z| {
            cross_entropy_backward(z, labels, classes, scale, &mut out).map_err(kernel_err)
        })?;
        Ok((Some(tensor(out, logits.shape())?), None))
    }
}

/// Mean cross-entropy of `logits` against class indices `labels` (any integer dtype, converted
/// to u32), with a numerically stable log-softmax; the gradient is `(softmax - onehot) / B`.
///
/// # Shapes
/// `logits`: `[B, C]`, `labels`: `[B]` (u32) -> scalar.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    keep_freed_memory();
    check_cpu_f32(logits, "fused cross_entropy", "logits")?;
    let (b, _) = logits.dims2()?;
    if labels.dims() != [b] || !labels.device().is_cpu() {
        bail!(
            "fused cross_entropy: labels {:?} on {:?} for logits {:?}",
            labels.dims(),
            labels.device().location(),
            logits.dims()
        );
    }
    let labels = match labels.dtype() {
        DType::U32 => labels.contiguous()?,
        _ => labels.to_dtype(DType::U32)?,
    };
    logits.contiguous()?.apply_op2(&labels, CrossEntropy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn loss_and_gradient_match_candle_nn() {
        for (b, c) in [(1, 2), (7, 10), (128, 10), (33, 100)] {
            let z: Vec<f32> = (0..b * c)
                .map(|i| {
                    ((i * 7919) % 211) as f32 / 13.0 - 8.0 + if i % 17 == 0 { 60.0 } else { 0.0 }
                })
                .collect();
            let logits = Var::from_vec(z, (b, c), &Device::Cpu).unwrap();
            let labels: Vec<u32> = (0..b as u32).map(|i| (i * 7) % c as u32).collect();
            let labels = Tensor::new(labels, &Device::Cpu).unwrap();
            let fused = cross_entropy(&logits, &labels).unwrap();
            let plain = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
            let (f, p) = (
                fused.to_scalar::<f32>().unwrap(),
                plain.to_scalar::<f32>().unwrap(),
            );
            assert!((f - p).abs() <= 1e-5 * p.abs().max(1.0), "{f} vs {p}");
            // scale the loss so the upstream gradient is not 1
            let gf = (fused * 3.0).unwrap().backward().unwrap();
            let gp = (plain * 3.0).unwrap().backward().unwrap();
            let to_vec = |g: &Tensor| g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let (gf, gp) = (
                to_vec(gf.get(&logits).unwrap()),
                to_vec(gp.get(&logits).unwrap()),
            );
            for (a, b) in gf.iter().zip(&gp) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
            }
            // i64 labels are converted
            let l64 = labels.to_dtype(DType::I64).unwrap();
            assert_eq!(
                cross_entropy(&logits, &l64)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap(),
                f
            );
        }
        let z = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
        assert!(cross_entropy(&z, &Tensor::new(&[0u32, 3], &Device::Cpu).unwrap()).is_err());
        assert!(cross_entropy(&z, &Tensor::new(&[0u32], &Device::Cpu).unwrap()).is_err());
    }
}
