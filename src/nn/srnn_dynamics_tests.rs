//! [`SrnnDynamics`](super::SrnnDynamics) against the [`Srnn`](super::Srnn) it views: the
//! trajectory and readout against `forward`, the tangent against autograd of `step` (reset
//! detached), and the reset's surrogate term against its hand-written form.

use candle_core::{DType, Device, Result, Tensor};

use super::recurrent::dynamics_tests::{
    autograd_jacobian, max_diff, state_after, tangent_jacobian, values, Rows,
};
use super::srnn::tests::images;
use super::{Model, Network, Ops, SeededVarMap};
use crate::config::{EncoderConfig, LeakyConfig, ModelConfig, Readout, Recurrence, Reset};
use crate::config::{SrnnConfig, Surrogate};
use crate::dynamics::{trajectory, DynamicsOptions};

const SLOPE: f64 = 5.0;
const BETA: f64 = 0.8;
const THETA: f64 = 0.3;
/// Time steps (image rows) and pixels per row.
const ROWS: (usize, usize) = (8, 3);

/// One network to view.
#[derive(Clone, Copy)]
struct Case {
    hidden: &'static [usize],
    reset: Reset,
    recurrence: Recurrence,
    readout: Readout,
    /// Learned (per-neuron) β and θ.
    learn: bool,
    /// The input's scale: some neurons near threshold at the tested state, not all.
    scale: f64,
}

const fn case(hidden: &'static [usize], reset: Reset) -> Case {
    Case {
        hidden,
        reset,
        recurrence: Recurrence::Linear,
        readout: Readout::SpikeCountCe,
        learn: false,
        scale: 0.7,
    }
}

/// The cases: `[4]` and `[3, 3]` with subtract and zero reset, plus one-to-one feedback,
/// membrane readouts and learned β, θ.
fn cases() -> Vec<Case> {
    let mut all = vec![];
    for hidden in [&[4][..], &[3, 3][..]] {
        for reset in [Reset::Subtract, Reset::Zero] {
            all.push(case(hidden, reset));
        }
    }
    all.push(Case {
        recurrence: Recurrence::OneToOne,
        readout: Readout::MaxMembraneCe,
        learn: true,
        scale: 0.4,
        ..case(&[3, 3], Reset::Subtract)
    });
    all.push(Case {
        readout: Readout::FinalMembraneCe,
        learn: true,
        ..case(&[4], Reset::Zero)
    });
    all
}

/// The network of `c` with `dtype` parameters (3 classes).
fn srnn(c: Case, vars: &SeededVarMap, dtype: DType) -> Result<Model> {
    let cfg = ModelConfig::Srnn(SrnnConfig {
        hidden: c.hidden.to_vec(),
        neuron: LeakyConfig {
            beta: BETA,
            threshold: THETA,
            reset: c.reset,
            surrogate: Surrogate::FastSigmoid { slope: SLOPE },
            learn_beta: c.learn,
            learn_threshold: c.learn,
        },
        recurrence: c.recurrence,
        encoder: EncoderConfig::Rows,
        readout: c.readout,
    });
    let vb = vars.var_builder(dtype, &Device::Cpu);
    Model::from_config(&cfg, [1, ROWS.0, ROWS.1], 3, Ops::Plain, vb)
}

/// Encoded rows of `b` images scaled as `c` says, so that some neurons fire and others stay
/// below θ.
fn input(c: Case, model: &Model, b: usize, dtype: DType) -> Result<Tensor> {
    (model.encode(&images(b, ROWS.0, ROWS.1)?, 0)? * c.scale)?.to_dtype(dtype)
}

/// The fraction of `states` above threshold.
fn fired(states: &Tensor) -> Result<f64> {
    let v = values(states)?;
    Ok(v.iter().filter(|u| **u > THETA).count() as f64 / v.len() as f64)
}

#[test]
fn srnn_trajectory_and_readout_reproduce_forward() -> crate::Result<()> {
    let f32_case = case(&[3, 3], Reset::Subtract);
    for (c, dtype, tol) in
        cases()
            .into_iter()
            .map(|c| (c, DType::F64, 1e-9))
            .chain([(f32_case, DType::F32, 1e-5)])
    {
        let vars = SeededVarMap::new(5);
        let model = srnn(c, &vars, dtype)?;
        let x = input(c, &model, 2, dtype)?;
        let system = model
            .dynamics(&DynamicsOptions::f64())
            .expect("srnn dynamics")?;
        assert_eq!(system.state_size(), c.hidden.iter().sum::<usize>() + 3);
        let states = trajectory(&*system, &system.initial_state()?, &system.drive(&x)?)?;
        let rate = fired(&states)?;
        assert!(rate > 0.1 && rate < 0.9, "{:?}: fired {rate}", c.hidden);
        let (got, want) = (
            values(&system.readout(&states)?)?,
            values(&model.forward(&x)?)?,
        );
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < tol, "{:?}: {got:?} vs {want:?}", c.hidden);
        }
    }
    Ok(())
}

/// The state after a few steps of `c`'s network and the tangent Jacobians without and with the
/// reset term, with the model and the next state.
struct AtState {
    model: Model,
    vars: SeededVarMap,
    prev: Vec<f64>,
    next: Vec<f64>,
    detached: Rows,
    with_reset: Rows,
    autograd: Rows,
}

fn at_state(c: Case) -> crate::Result<AtState> {
    let vars = SeededVarMap::new(5);
    let model = srnn(c, &vars, DType::F64)?;
    let x = input(c, &model, 1, DType::F64)?;
    let plain = model.dynamics(&DynamicsOptions::f64()).expect("dynamics")?;
    let opts = DynamicsOptions {
        reset_in_jacobian: true,
        ..DynamicsOptions::f64()
    };
    let reset = model.dynamics(&opts).expect("dynamics")?;
    let (h, u) = state_after(&*plain, &plain.drive(&x)?, 5)?;
    let next = plain.step(&h, &u)?;
    let (prev, next) = (values(&h)?, values(&next)?);
    let detached = tangent_jacobian(&*plain, &h, &u, DType::F64)?;
    let with_reset = tangent_jacobian(&*reset, &h, &u, DType::F64)?;
    let autograd = autograd_jacobian(&*plain, &h, &u)?;
    drop((plain, reset));
    Ok(AtState {
        model,
        vars,
        prev,
        next,
        detached,
        with_reset,
        autograd,
    })
}

/// Fast-sigmoid `S'(x)`.
fn slope(x: f64) -> f64 {
    1.0 / (1.0 + SLOPE * x.abs()).powi(2)
}

#[test]
fn srnn_tangent_is_the_autograd_jacobian_of_step() -> crate::Result<()> {
    for c in cases() {
        let s = at_state(c)?;
        let err = max_diff(&s.detached, &s.autograd);
        assert!(
            err < 1e-10,
            "{:?} {:?}: tangent vs autograd {err}",
            c.hidden,
            c.reset
        );
        // some neurons near threshold (steep surrogate), some far from it
        let near = s.prev.iter().filter(|u| slope(**u - THETA) > 0.2).count();
        assert!(
            near > 0 && near < s.prev.len(),
            "{:?}: {:?}",
            c.hidden,
            s.prev
        );
    }
    Ok(())
}

/// The hand-written reset term `J_reset - J_detached`: column `j` (layer `k`) starts as
/// `ρ_j = -θ·S'(U_j - θ)` (subtract) or `-β·U_j·S'(U_j - θ)` (zero) in row `j`, and flows to
/// every layer `m > k` as `v_m = W_m·(S'(U'_{m-1} - θ) ⊙ v_{m-1})` within the same step.
fn reset_term(c: Case, s: &AtState) -> crate::Result<Rows> {
    let mut widths = c.hidden.to_vec();
    widths.push(3);
    let starts: Vec<usize> = widths
        .iter()
        .scan(0, |o, w| {
            *o += w;
            Some(*o - w)
        })
        .collect();
    let weights = (1..widths.len())
        .map(|k| s.vars.var(&format!("fc{}.weight", k + 1))?.to_vec2::<f64>())
        .collect::<candle_core::Result<Vec<_>>>()?;
    let n = s.prev.len();
    let mut term = vec![vec![0.0; n]; n];
    for (k, (&start, &width)) in starts.iter().zip(&widths).enumerate() {
        for j in start..start + width {
            let u = s.prev[j];
            let rho = match c.reset {
                Reset::Subtract => -THETA * slope(u - THETA),
                _ => -BETA * u * slope(u - THETA),
            };
            let mut v = vec![0.0; width];
            v[j - start] = rho;
            term[j][j] = rho;
            for m in k + 1..widths.len() {
                let below = starts[m - 1];
                let ds: Vec<f64> = (0..v.len())
                    .map(|i| slope(s.next[below + i] - THETA) * v[i])
                    .collect();
                let w = &weights[m - 1];
                v = w
                    .iter()
                    .map(|row| row.iter().zip(&ds).map(|(a, b)| a * b).sum())
                    .collect();
                for (i, vi) in v.iter().enumerate() {
                    term[starts[m] + i][j] = *vi;
                }
            }
        }
    }
    Ok(term)
}

#[test]
fn srnn_reset_in_jacobian_adds_the_surrogate_derivative_of_the_reset() -> crate::Result<()> {
    for c in cases().into_iter().filter(|c| !c.learn) {
        let s = at_state(c)?;
        let diff: Rows = s
            .with_reset
            .iter()
            .zip(&s.detached)
            .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x - y).collect())
            .collect();
        let want = reset_term(c, &s)?;
        assert!(
            want.iter().flatten().any(|v| v.abs() > 1e-3),
            "{:?}",
            c.hidden
        );
        let err = max_diff(&diff, &want);
        assert!(
            err < 1e-10,
            "{:?} {:?}: reset term off by {err}",
            c.hidden,
            c.reset
        );
    }
    Ok(())
}

#[test]
fn srnn_recurrent_weight_is_the_first_feedback_weight() -> crate::Result<()> {
    let s = at_state(case(&[3, 3], Reset::Subtract))?;
    let system = s
        .model
        .dynamics(&DynamicsOptions::f64())
        .expect("dynamics")?;
    let w = system.recurrent_weight().expect("all-to-all feedback");
    assert_eq!(
        w.id(),
        s.vars.var("lif1.recurrent.weight")?.as_tensor().id()
    );
    // flossing differentiates the tangents: their gradient reaches the parameter itself
    let x = input(case(&[3, 3], Reset::Subtract), &s.model, 1, DType::F64)?;
    let (h, u) = state_after(&*system, &system.drive(&x)?, 5)?;
    let eye = Tensor::eye(system.state_size(), DType::F64, &Device::Cpu)?;
    let q = system.tangent(&h, &system.step(&h, &u)?, &u, &eye)?;
    let grads = q.sqr()?.sum_all()?.backward()?;
    let g = grads.get(&w).expect("a gradient for the feedback weight");
    assert!(g.abs()?.sum_all()?.to_scalar::<f64>()? > 0.0);
    let one_to_one = Case {
        recurrence: Recurrence::OneToOne,
        ..case(&[4], Reset::Subtract)
    };
    let model = srnn(one_to_one, &SeededVarMap::new(1), DType::F64)?;
    let system = model.dynamics(&DynamicsOptions::f64()).expect("dynamics")?;
    assert!(system.recurrent_weight().is_none());
    Ok(())
}
