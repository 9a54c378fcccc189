//! The PC family's exact checks: the energy against a hand computation in both conventions,
//! `∂F/∂r` and `∂F/∂W` against their closed forms and central differences (f64), the fused
//! relaxation against the autograd one, descent, clamping, the evaluation fixed point, the
//! approximation of backprop, parameter counts, the schedule, and the energy-free step.

use std::sync::Arc;

use autoresearch_kernels::pc::Relax;
use candle_core::{DType, Device, Tensor, Var};

use super::relax::{relax_autograd, term_energies, Predictor, Term};
use super::Pc;
use crate::config::{from_yaml_str, PcConfig, PcLoss};
use crate::data::{Classification, InputShape};
use crate::nn::gradcheck::fd_error;
use crate::nn::{layers, BuildCtx, Network, Ops, SeededVarMap};

type R<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn net(
    yaml: &str,
    image: [usize; 3],
    classes: usize,
    ops: Ops,
    seed: u64,
) -> R<(Pc, SeededVarMap)> {
    let cfg: PcConfig = from_yaml_str(yaml)?;
    let vars = SeededVarMap::new(seed);
    let ctx = BuildCtx {
        input: InputShape::Image(image),
        outputs: classes,
        task: Arc::new(Classification { classes }),
        ops,
        device: Device::Cpu,
        vars: &vars,
    };
    let pc = Pc::new(&cfg, &ctx)?;
    Ok((pc, vars))
}

const FFNN: &str =
    "{arch: ffnn, hidden: [256, 128], energy_scale: sum, loss: {kind: sum}, readout: head}";

fn params(vars: &SeededVarMap) -> R<usize> {
    Ok(vars.named_vars()?.iter().map(|(_, v)| v.elem_count()).sum())
}

#[test]
fn parameter_counts_are_the_references() -> R<()> {
    let mnist = [1, 28, 28];
    let v1 = FFNN.replace("readout: head", "readout: output");
    assert_eq!(params(&net(&v1, mnist, 10, Ops::Plain, 0)?.1)?, 235_146);
    assert_eq!(params(&net(FFNN, mnist, 10, Ops::Plain, 0)?.1)?, 236_436);
    let encdec = FFNN.replace("arch: ffnn", "arch: enc_dec");
    assert_eq!(params(&net(&encdec, mnist, 10, Ops::Plain, 0)?.1)?, 470_948);
    let cnn = "{arch: cnn, channels: [32, 64], hidden: [256], energy_scale: sum, loss: {kind: sum}, readout: head}";
    assert_eq!(params(&net(cnn, mnist, 10, Ops::Plain, 0)?.1)?, 319_636);
    Ok(())
}

#[test]
fn the_ramp_is_the_references_table() {
    let ramp = PcLoss::Ramp {
        max: 0.1,
        warmup_epochs: 10,
    };
    let w = |e| ramp.weights(e).0;
    assert_eq!(w(1), 0.0);
    assert!((w(2) - 0.01).abs() < 1e-15 && (w(10) - 0.09).abs() < 1e-15);
    assert_eq!((w(11), w(60)), (0.1, 0.1));
    assert_eq!(ramp.weights(1).1, 1.0);
}

/// A 4-3-2 net with hand-set weights: `F` of a step with zero relaxation steps and the energy
/// alone in the loss, summed over the batch or per sample.
#[test]
fn energy_matches_a_hand_computation_in_both_conventions() -> R<()> {
    let w1 = [
        0.5f32, -0.2, 0.1, 0.3, -0.4, 0.2, 0.6, -0.1, 0.3, 0.3, -0.5, 0.2,
    ];
    let b1 = [0.1f32, -0.3, 0.05];
    let w2 = [0.7f32, -0.6, 0.2, -0.1, 0.4, 0.9];
    let b2 = [0.0f32, 0.2];
    let x = [[0.2f32, 0.9, 0.4, 0.0], [1.0, 0.1, 0.5, 0.7]];
    let labels = [1u32, 0];
    // by hand: h = ReLU(W1 x + b1), e_1 = 0 at the bottom-up state, e_2 = onehot - (W2 h + b2)
    let mut want = 0.0f64;
    for (xs, &label) in x.iter().zip(&labels) {
        let h: Vec<f64> = (0..3)
            .map(|j| {
                let a: f64 = (0..4)
                    .map(|k| f64::from(w1[j * 4 + k]) * f64::from(xs[k]))
                    .sum::<f64>()
                    + f64::from(b1[j]);
                a.max(0.0)
            })
            .collect();
        for c in 0..2 {
            let mu: f64 =
                (0..3).map(|j| f64::from(w2[c * 3 + j]) * h[j]).sum::<f64>() + f64::from(b2[c]);
            let target = if c as u32 == label { 1.0 } else { 0.0 };
            want += 0.5 * (target - mu) * (target - mu);
        }
    }
    for (scale, divisor) in [("sum", 1.0), ("per_sample", 2.0)] {
        let yaml = format!(
            "{{arch: ffnn, hidden: [3], inference: {{steps: 0}}, energy_scale: {scale}, loss: {{kind: sum, ce_weight: 0.0}}, readout: output}}"
        );
        let (pc, vars) = net(&yaml, [1, 2, 2], 2, Ops::Plain, 0)?;
        for (name, values) in [
            ("layers.0.weight", &w1[..]),
            ("layers.0.bias", &b1[..]),
            ("layers.1.weight", &w2[..]),
            ("layers.1.bias", &b2[..]),
        ] {
            let var = vars.var(name)?;
            var.set(&Tensor::from_slice(values, var.shape(), &Device::Cpu)?)?;
        }
        let xs =
            Tensor::from_iter(x.iter().flatten().copied(), &Device::Cpu)?.reshape((2, 1, 2, 2))?;
        let step = pc.step(&xs, &Tensor::new(&labels, &Device::Cpu)?, 1.0, 0.0)?;
        assert!(
            (step.loss - want / divisor).abs() < 1e-6,
            "{scale}: {} vs {}",
            step.loss,
            want / divisor
        );
    }
    Ok(())
}

/// A 5-4-3-2 chain in f64 with its representations moved off the bottom-up state.
fn chain(vars: &SeededVarMap) -> R<(Vec<Term>, Vec<Tensor>)> {
    let vb = vars.var_builder(DType::F64, &Device::Cpu);
    let dims = [5, 4, 3, 2];
    let terms: Vec<Term> = (0..3)
        .map(|i| -> R<Term> {
            Ok(Term {
                name: format!("layer{}", i + 1),
                target: i + 1,
                source: i,
                predictor: Predictor::Dense {
                    layer: layers::linear(dims[i], dims[i + 1], vb.pp(format!("l{i}")))?,
                    relu: i < 2,
                },
                scale: 1.0,
            })
        })
        .collect::<R<_>>()?;
    let reps = (0..4)
        .map(|i| Tensor::randn(0.3f64, 0.5, (2, dims[i]), &Device::Cpu))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok((terms, reps))
}

fn total(terms: &[Term], reps: &[Tensor]) -> candle_core::Result<Tensor> {
    Tensor::stack(&term_energies(terms, Ops::Plain, reps, &[])?, 0)?.sum_all()
}

#[test]
fn energy_gradients_match_closed_forms_and_central_differences() -> R<()> {
    let vars = SeededVarMap::new(3);
    let (terms, reps) = chain(&vars)?;
    // ∂F/∂W by autograd with r fixed: central differences, and the Hebbian closed form
    let worst = fd_error(&vars, || total(&terms, &reps))?;
    assert!(worst < 1e-6, "dF/dW vs central differences: {worst:e}");
    let grads = total(&terms, &reps)?.backward()?;
    for t in &terms {
        let Predictor::Dense { layer, relu } = &t.predictor else {
            unreachable!()
        };
        let pre = reps[t.source]
            .matmul(&layer.weight().t()?)?
            .broadcast_add(layer.bias().ok_or("bias")?)?;
        let mu = if *relu { pre.relu()? } else { pre.clone() };
        let slope = if *relu {
            pre.gt(0.0)?.to_dtype(DType::F64)?
        } else {
            pre.ones_like()?
        };
        let delta = ((&reps[t.target] - mu)? * slope)?;
        let hebb = delta.t()?.matmul(&reps[t.source])?.neg()?;
        let auto = grads.get(layer.weight()).ok_or("no weight grad")?;
        let diff = (auto - &hebb)?.abs()?.max_all()?.to_scalar::<f64>()?;
        assert!(
            diff < 1e-12,
            "{}: autograd vs -(f'⊙e) r^T: {diff:e}",
            t.name
        );
    }
    // ∂F/∂r: autograd, the closed form e_l − W_{l+1}ᵀ(f'⊙e_{l+1}) and central differences
    let r1 = Var::from_tensor(&reps[1])?;
    let live = [
        reps[0].clone(),
        r1.as_tensor().clone(),
        reps[2].clone(),
        reps[3].clone(),
    ];
    let g = total(&terms, &live)?.backward()?;
    let auto = g
        .get(r1.as_tensor())
        .ok_or("no r grad")?
        .flatten_all()?
        .to_vec1::<f64>()?;
    let Predictor::Dense { layer: l1, .. } = &terms[0].predictor else {
        unreachable!()
    };
    let Predictor::Dense { layer: l2, .. } = &terms[1].predictor else {
        unreachable!()
    };
    let e1 = (&reps[1]
        - reps[0]
            .matmul(&l1.weight().t()?)?
            .broadcast_add(l1.bias().ok_or("b")?)?
            .relu()?)?;
    let pre2 = reps[1]
        .matmul(&l2.weight().t()?)?
        .broadcast_add(l2.bias().ok_or("b")?)?;
    let e2 = (&reps[2] - pre2.relu()?)?;
    let closed = (e1 - ((e2 * pre2.gt(0.0)?.to_dtype(DType::F64)?)?.matmul(l2.weight())?))?;
    let closed = closed.flatten_all()?.to_vec1::<f64>()?;
    let base = reps[1].flatten_all()?.to_vec1::<f64>()?;
    for i in 0..base.len() {
        let f = |d: f64| -> R<f64> {
            let mut v = base.clone();
            v[i] += d;
            let r = [
                reps[0].clone(),
                Tensor::from_vec(v, reps[1].shape(), &Device::Cpu)?,
                reps[2].clone(),
                reps[3].clone(),
            ];
            Ok(total(&terms, &r)?.to_scalar::<f64>()?)
        };
        let fd = (f(1e-6)? - f(-1e-6)?) / 2e-6;
        assert!(
            (fd - auto[i]).abs() <= 1e-6 * auto[i].abs().max(1.0),
            "dF/dr1[{i}]: fd {fd} autograd {}",
            auto[i]
        );
        assert!((closed[i] - auto[i]).abs() < 1e-12);
    }
    Ok(())
}

fn mnist_like(batch: usize, seed: u64) -> R<(Tensor, Tensor)> {
    let dev = Device::Cpu;
    let x = Tensor::rand(0f32, 1.0, (batch, 1, 28, 28), &dev)?;
    let y: Vec<u32> = (0..batch as u32)
        .map(|i| (i * 7 + seed as u32) % 10)
        .collect();
    Ok((x, Tensor::new(y.as_slice(), &dev)?))
}

fn one_hot(y: &Tensor) -> candle_core::Result<Tensor> {
    candle_nn::encoding::one_hot(y.clone(), 10, 1f32, 0f32)
}

#[test]
fn fused_and_autograd_relaxations_agree_and_descend_with_clamps_held() -> R<()> {
    let cnn = "{arch: cnn, channels: [4, 8], hidden: [16], energy_scale: sum, loss: {kind: sum}, readout: head}";
    for arch in ["ffnn", "enc_dec", "cnn"] {
        let yaml = match arch {
            "cnn" => cnn.to_string(),
            _ => FFNN.replace("arch: ffnn", &format!("arch: {arch}")),
        };
        let (fused, _) = net(&yaml, [1, 28, 28], 10, Ops::Fused, 5)?;
        let (plain, _) = net(&yaml, [1, 28, 28], 10, Ops::Plain, 5)?;
        let (x, y) = mnist_like(16, 1)?;
        let (mut reps, _) = plain.bottom_up(&x, false)?;
        reps.push(one_hot(&y)?);
        let a = fused.relax(&reps, true)?;
        let b = plain.relax(&reps, true)?;
        for t in 0..a.trace.energies.len() {
            let (fa, fb) = (a.trace.total(t), b.trace.total(t));
            assert!(
                (fa - fb).abs() <= 1e-5 * fb.abs().max(1.0),
                "{arch} step {t}: {fa} vs {fb}"
            );
            if t > 0 {
                assert!(
                    fa <= a.trace.total(t - 1) * (1.0 + 1e-6),
                    "{arch}: F rose at step {t}"
                );
            }
        }
        assert_eq!(a.trace.rises, 0);
        for (ra, rb) in a.reps.iter().zip(&b.reps) {
            let d = (ra - rb)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?;
            assert!(d < 1e-5, "{arch}: representations differ by {d}");
        }
        // the clamped input and label are untouched, bit for bit
        let last = reps.len() - 1;
        for (held, i) in [(&reps[0], 0), (&reps[last], last)] {
            let same = |r: &Tensor| -> R<bool> {
                Ok(r.flatten_all()?.to_vec1::<f32>()? == held.flatten_all()?.to_vec1::<f32>()?)
            };
            assert!(
                same(&a.reps[i])? && same(&b.reps[i])?,
                "{arch}: clamped r_{i} moved"
            );
        }
    }
    Ok(())
}

#[test]
fn free_relaxation_is_a_fixed_point_except_with_decoders() -> R<()> {
    let cnn = "{arch: cnn, channels: [4, 8], hidden: [16], energy_scale: sum, loss: {kind: sum}, readout: head}";
    let cases = [
        (FFNN.to_string(), true),
        (cnn.to_string(), true),
        (FFNN.replace("arch: ffnn", "arch: enc_dec"), false),
    ];
    for (yaml, fixed) in cases {
        for ops in [Ops::Fused, Ops::Plain] {
            let (pc, _) = net(&yaml, [1, 28, 28], 10, ops, 2)?;
            let (x, _) = mnist_like(8, 0)?;
            let r = pc.relaxation(&x, None).ok_or("no relaxation")??;
            let before = r.scores_before.flatten_all()?.to_vec1::<f32>()?;
            let after = r.scores_after.flatten_all()?.to_vec1::<f32>()?;
            let forward = pc.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
            assert_eq!(
                before, forward,
                "{yaml}: the bottom-up readout is the forward"
            );
            assert_eq!(
                before == after,
                fixed,
                "{yaml} ({ops:?}): fixed point expected: {fixed}"
            );
            assert_eq!(r.trace.total(0) == 0.0, fixed);
        }
    }
    Ok(())
}

#[test]
fn pc_weight_update_approximates_backprop() -> R<()> {
    let yaml = "{arch: ffnn, hidden: [24, 16], inference: {steps: 2000, rate: 0.1}, energy_scale: sum, loss: {kind: sum, ce_weight: 0.0}, readout: output}";
    let (pc, vars) = net(yaml, [1, 4, 5], 6, Ops::Plain, 7)?;
    // the equivalence (Whittington & Bogacz 2017) holds as the feedback of the output error
    // through ‖W f'‖² is small: weights at half PyTorch's default scale
    for (_, var) in vars.named_vars()? {
        var.set(&(var.as_tensor() * 0.5)?)?;
    }
    let x = Tensor::rand(0f32, 1.0, (4, 1, 4, 5), &Device::Cpu)?;
    let (reps, out) = pc.bottom_up(&x, true)?;
    let delta = Tensor::randn(0f32, 1.0, out.shape(), &Device::Cpu)?;
    let target = (out.detach() + (delta * 1e-3)?)?;
    // backprop: the gradient of ½‖target − μ_L(x)‖² through the feed-forward net
    let bp = ((&target - &out)?.sqr()?.sum_all()? * 0.5)?.backward()?;
    let mut start: Vec<Tensor> = reps.iter().map(Tensor::detach).collect();
    let last = start.len() - 1;
    start[last] = target;
    let relaxed = pc.relax(&start, true)?;
    let pcg = pc.energy(&relaxed.reps)?.backward()?;
    for (name, var) in vars.named_vars()? {
        let a = bp
            .get(var.as_tensor())
            .ok_or("bp grad")?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let b = pcg
            .get(var.as_tensor())
            .ok_or("pc grad")?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let dot: f64 = a
            .iter()
            .zip(&b)
            .map(|(p, q)| f64::from(*p) * f64::from(*q))
            .sum();
        let na: f64 = a.iter().map(|p| f64::from(*p).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|p| f64::from(*p).powi(2)).sum::<f64>().sqrt();
        let cos = dot / (na * nb);
        assert!(cos > 0.99, "{name}: cosine {cos}");
    }
    Ok(())
}

#[test]
fn an_energy_free_step_is_a_plain_cross_entropy_step_without_relaxation() -> R<()> {
    let yaml = "{arch: ffnn, hidden: [32, 16], energy_scale: per_sample, loss: {kind: ramp, max: 0.1, warmup_epochs: 10}, readout: head}";
    let (mut pc, vars) = net(yaml, [1, 28, 28], 10, Ops::Fused, 4)?;
    pc.start_epoch(1)?;
    let (x, y) = mnist_like(32, 3)?;
    let task = Classification { classes: 10 };
    let step = pc.train_step(&x, &y, &task, 0)?;
    let ce = Ops::Fused.cross_entropy(&pc.forward(&x)?, &y)?;
    let plain = ce.backward()?;
    assert_eq!(step.loss, f64::from(ce.to_scalar::<f32>()?));
    for (name, var) in vars.named_vars()? {
        let flat = |g: Option<&Tensor>| g.map(|g| g.flatten_all()?.to_vec1::<f32>()).transpose();
        let (a, b) = (
            flat(step.grads.get(var.as_tensor()))?,
            flat(plain.get(var.as_tensor()))?,
        );
        assert_eq!(a, b, "{name}");
    }
    let cols = pc.epoch_columns();
    let col = |n: &str| cols.iter().find(|c| c.name == n).map(|c| c.value);
    assert_eq!(
        (col("energy_weight"), col("relax_steps_per_sample")),
        (Some(0.0), Some(0.0))
    );
    pc.start_epoch(2)?;
    pc.train_step(&x, &y, &task, 0)?;
    let cols = pc.epoch_columns();
    let col = |n: &str| cols.iter().find(|c| c.name == n).map(|c| c.value);
    assert_eq!(col("relax_steps_per_sample"), Some(20.0));
    Ok(())
}

#[test]
fn autograd_relaxation_backtracks_when_the_rate_is_too_large() -> R<()> {
    let vars = SeededVarMap::new(9);
    let (terms, reps) = chain(&vars)?;
    let free = [false, true, true, false];
    let wild = relax_autograd(
        &terms,
        Ops::Plain,
        reps.clone(),
        &free,
        &[],
        Relax {
            steps: 15,
            rate: 4.0,
            backtrack: false,
        },
    )?;
    assert!(wild.trace.rises > 0);
    let tamed = relax_autograd(
        &terms,
        Ops::Plain,
        reps,
        &free,
        &[],
        Relax {
            steps: 15,
            rate: 4.0,
            backtrack: true,
        },
    )?;
    for t in 1..tamed.trace.energies.len() {
        assert!(tamed.trace.total(t) <= tamed.trace.total(t - 1) * (1.0 + 1e-6));
    }
    Ok(())
}
