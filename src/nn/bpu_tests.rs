//! Tests of the connectome core: a hand-computed forward pass, gradients against finite
//! differences, the fused CSR path against the dense one, and `no_recurrence`'s causality.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::bpu::{Bpu, Parts};
use crate::config::{PathIntegrationConfig, RecurrentTraining};
use crate::connectome::Csr;
use crate::data::path_integration::PathTask;
use crate::data::InputShape;
use crate::error::Result;
use crate::nn::gradcheck::fd_error;
use crate::nn::{BuildCtx, Network, Ops, SeededVarMap};

fn ctx<'a>(vars: &'a SeededVarMap, d_in: usize, outputs: usize, ops: Ops) -> Result<BuildCtx<'a>> {
    let cfg: PathIntegrationConfig = crate::config::from_yaml_str("{}")?;
    Ok(BuildCtx {
        input: InputShape::Sequence {
            channels: d_in,
            steps: 3,
        },
        outputs,
        task: Arc::new(PathTask::new(&cfg)),
        ops,
        device: Device::Cpu,
        vars,
    })
}

/// 0 -> 1 (0.5), 1 -> 2 (1), 2 -> 3 (2), 3 -> 0 (-1): `W[post, pre]`.
fn ring() -> Csr {
    Csr::from_triplets(4, vec![(1, 0, 0.5), (2, 1, 1.0), (3, 2, 2.0), (0, 3, -1.0)])
}

fn set(vars: &SeededVarMap, name: &str, values: Vec<f64>, shape: &[usize]) -> Result<()> {
    vars.var(name)?
        .set(&Tensor::from_vec(values, shape, &Device::Cpu)?.to_dtype(DType::F32)?)?;
    Ok(())
}

fn hand_net(vars: &SeededVarMap, reset: bool, ops: Ops) -> Result<Bpu> {
    let m = ring();
    let parts = Parts {
        matrix: &m,
        sensory: &[0],
        output: &[3],
        microsteps: 2,
        reset_each_step: reset,
        recurrent: RecurrentTraining::Frozen,
        dtype: DType::F32,
    };
    let net = Bpu::from_parts(&parts, 1, &ctx(vars, 1, 1, ops)?)?;
    set(vars, "w_in", vec![2.0], &[1, 1])?;
    set(vars, "b_in", vec![0.5], &[1])?;
    set(vars, "w_out", vec![1.0], &[1, 1])?;
    set(vars, "b_out", vec![0.0], &[1])?;
    Ok(net)
}

#[test]
fn a_four_neuron_ring_gives_the_hand_computed_outputs() -> Result<()> {
    // inputs u = 1, 0, 0; drive e = 2u + 0.5 into neuron 0 at the first of K = 2 microsteps.
    // t1: [2.5,0,0,0] -> [0,1.25,0,0]           y = h[3] = 0
    // t2: W h + e = [0.5,0,1.25,0] -> [0,0.25,0,2.5]   y = 2.5
    // t3: W h + e = [-2.5+0.5,0,0.25,0] = relu [0,0,0.25,0] -> [0,0,0,0.5]   y = 0.5
    let x = Tensor::new(&[[[1f32]], [[0.0]], [[0.0]]], &Device::Cpu)?;
    for ops in [Ops::Fused, Ops::Plain] {
        let vars = SeededVarMap::new(0);
        let y = hand_net(&vars, false, ops)?.forward(&x)?;
        assert_eq!(
            y.flatten_all()?.to_vec1::<f32>()?,
            vec![0.0, 2.5, 0.5],
            "{ops:?}"
        );
        // no recurrence: every step starts from 0, so only the drive of the step itself counts
        let vars = SeededVarMap::new(0);
        let y = hand_net(&vars, true, ops)?.forward(&x)?;
        assert_eq!(
            y.flatten_all()?.to_vec1::<f32>()?,
            vec![0.0, 0.0, 0.0],
            "{ops:?}"
        );
    }
    Ok(())
}

/// A random sparse graph with a self-loop, scaled small enough to keep activity bounded.
fn random_graph(n: usize, seed: u64) -> Csr {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut t = vec![(2, 2, 0.3)];
    for post in 0..n {
        for pre in 0..n {
            if post != pre && rng.random::<f64>() < 0.3 {
                t.push((post, pre, rng.random_range(-0.6..0.8)));
            }
        }
    }
    Csr::from_triplets(n, t)
}

fn parts<'a>(m: &'a Csr, recurrent: RecurrentTraining, dtype: DType) -> Parts<'a> {
    Parts {
        matrix: m,
        sensory: &[0, 1, 2],
        output: &[4, 5, 6, 7],
        microsteps: 3,
        reset_each_step: false,
        recurrent,
        dtype,
    }
}

#[test]
fn adapter_and_edge_gradients_match_finite_differences() -> Result<()> {
    let m = random_graph(8, 3);
    for recurrent in [RecurrentTraining::Frozen, RecurrentTraining::Observed] {
        let vars = SeededVarMap::new(5);
        let net = Bpu::from_parts(
            &parts(&m, recurrent, DType::F64),
            2,
            &ctx(&vars, 2, 3, Ops::Plain)?,
        )?;
        let x = Tensor::rand(0.0f64, 1.0, (5, 2, 2), &Device::Cpu)?;
        let y = Tensor::rand(-1.0f64, 1.0, (5, 2, 3), &Device::Cpu)?;
        let names: Vec<String> = vars.named_vars()?.into_iter().map(|(n, _)| n).collect();
        let expected = match recurrent {
            RecurrentTraining::Frozen => vec!["b_in", "b_out", "w_in", "w_out"],
            RecurrentTraining::Observed => vec!["b_in", "b_out", "core_values", "w_in", "w_out"],
        };
        assert_eq!(
            names, expected,
            "only the adapters (and observed edges) train"
        );
        let err = fd_error(&vars, || (net.forward(&x)? - &y)?.sqr()?.mean_all())?;
        assert!(err < 1e-7, "{recurrent:?}: max error {err}");
    }
    Ok(())
}

#[test]
fn the_fused_csr_path_matches_the_dense_path() -> Result<()> {
    let m = random_graph(40, 9);
    for recurrent in [RecurrentTraining::Frozen, RecurrentTraining::Observed] {
        let x = Tensor::rand(0.0f32, 1.0, (12, 6, 2), &Device::Cpu)?;
        let y = Tensor::rand(-1.0f32, 1.0, (12, 6, 3), &Device::Cpu)?;
        let mut results = Vec::new();
        for ops in [Ops::Fused, Ops::Plain] {
            let vars = SeededVarMap::new(1);
            let net = Bpu::from_parts(
                &parts(&m, recurrent, DType::F32),
                2,
                &ctx(&vars, 2, 3, ops)?,
            )?;
            let out = net.forward(&x)?;
            let loss = (&out - &y)?.sqr()?.mean_all()?;
            let grads = loss.backward()?;
            let mut g = Vec::new();
            for (name, var) in vars.named_vars()? {
                let gv = grads
                    .get(&var)
                    .map(|t| t.flatten_all()?.to_vec1::<f32>())
                    .transpose()?;
                g.push((name, gv.unwrap_or_default()));
            }
            results.push((out.flatten_all()?.to_vec1::<f32>()?, g));
        }
        let close = |a: &[f32], b: &[f32], what: &str| {
            let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            let worst = a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            assert!(
                worst <= 1e-6 * scale.max(1.0),
                "{recurrent:?} {what}: {worst} (scale {scale})"
            );
        };
        close(&results[0].0, &results[1].0, "output");
        for ((name, a), (_, b)) in results[0].1.iter().zip(&results[1].1) {
            assert!(!a.is_empty(), "{name} has a gradient");
            close(a, b, name);
        }
    }
    Ok(())
}

#[test]
fn without_recurrence_an_output_ignores_earlier_inputs() -> Result<()> {
    let m = random_graph(8, 4);
    let mut p = parts(&m, RecurrentTraining::Frozen, DType::F32);
    p.reset_each_step = true;
    let vars = SeededVarMap::new(2);
    let net = Bpu::from_parts(&p, 2, &ctx(&vars, 2, 3, Ops::Fused)?)?;
    let a = Tensor::rand(0.0f32, 1.0, (6, 1, 2), &Device::Cpu)?;
    // change only the first three steps
    let b = Tensor::cat(
        &[
            &Tensor::rand(0.0f32, 1.0, (3, 1, 2), &Device::Cpu)?,
            &a.narrow(0, 3, 3)?,
        ],
        0,
    )?;
    let (ya, yb) = (net.forward(&a)?, net.forward(&b)?);
    assert_eq!(
        ya.narrow(0, 3, 3)?.flatten_all()?.to_vec1::<f32>()?,
        yb.narrow(0, 3, 3)?.flatten_all()?.to_vec1::<f32>()?
    );
    assert_ne!(
        ya.narrow(0, 0, 3)?.flatten_all()?.to_vec1::<f32>()?,
        yb.narrow(0, 0, 3)?.flatten_all()?.to_vec1::<f32>()?
    );
    // with recurrence the later outputs do change
    let vars = SeededVarMap::new(2);
    let net = Bpu::from_parts(
        &parts(&m, RecurrentTraining::Frozen, DType::F32),
        2,
        &ctx(&vars, 2, 3, Ops::Fused)?,
    )?;
    assert_ne!(
        net.forward(&a)?
            .narrow(0, 3, 3)?
            .flatten_all()?
            .to_vec1::<f32>()?,
        net.forward(&b)?
            .narrow(0, 3, 3)?
            .flatten_all()?
            .to_vec1::<f32>()?
    );
    Ok(())
}
