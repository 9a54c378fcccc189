//! [`StackDynamics`](super::StackDynamics) against the networks it views: trajectories and
//! readouts against `forward`, tangents against autograd and finite differences of `step`. The
//! helpers are shared with the Srnn's dynamics tests.

use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor, Var};

use crate::config::{CellKind, EncoderConfig, ModelConfig, RecurrentStack, RnnConfig};
use crate::config::{FfnnConfig, SequenceRnnConfig};
use crate::data::{InputShape, StepLabelling};
use crate::dynamics::{trajectory, Dynamics, DynamicsOptions};
use crate::nn::srnn::tests::images;
use crate::nn::{BuildCtx, Model, Network, Ops, SeededVarMap, SequenceRnn};

/// A matrix as rows.
pub(crate) type Rows = Vec<Vec<f64>>;

/// The largest absolute difference between two matrices of the same shape.
pub(crate) fn max_diff(a: &Rows, b: &Rows) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f64::max)
}

/// The state `h_{t-1}` `[1, N]` after `steps` steps of sample 0 and the drive `u_t` `[1, D]`
/// of the step after it.
pub(crate) fn state_after(
    system: &dyn Dynamics,
    drive: &Tensor,
    steps: usize,
) -> Result<(Tensor, Tensor)> {
    let one = drive.narrow(1, 0, 1)?.contiguous()?;
    let states = trajectory(system, &system.initial_state()?, &one.narrow(0, 0, steps)?)?;
    Ok((states.get(steps - 1)?, one.get(steps)?))
}

/// `tangent` applied to `I_N` at `(h, u)`: the Jacobian the system claims, `J[i][j] =
/// ∂step(h)_i/∂h_j`.
pub(crate) fn tangent_jacobian(
    system: &dyn Dynamics,
    h: &Tensor,
    u: &Tensor,
    dtype: DType,
) -> Result<Rows> {
    let n = system.state_size();
    let next = system.step(h, u)?;
    let eye = Tensor::eye(n, dtype, h.device())?;
    system.tangent(h, &next, u, &eye)?.to_vec2()
}

/// The Jacobian of `step` at `(h, u)` by autograd, one output row at a time.
pub(crate) fn autograd_jacobian(system: &dyn Dynamics, h: &Tensor, u: &Tensor) -> Result<Rows> {
    let var = Var::from_tensor(&h.detach())?;
    let next = system.step(var.as_tensor(), u)?;
    (0..system.state_size())
        .map(|i| {
            let grads = next.get(0)?.get(i)?.backward()?;
            match grads.get(var.as_tensor()) {
                Some(g) => g.get(0)?.to_vec1(),
                None => Tensor::zeros(system.state_size(), h.dtype(), h.device())?.to_vec1(),
            }
        })
        .collect()
}

/// The Jacobian of `step` at `(h, u)` by central differences with step `eps`.
fn fd_jacobian(system: &dyn Dynamics, h: &Tensor, u: &Tensor, eps: f64) -> Result<Rows> {
    let n = system.state_size();
    let base: Vec<f64> = h.get(0)?.to_vec1()?;
    let mut columns = Vec::with_capacity(n);
    for j in 0..n {
        let moved = |sign: f64| -> Result<Vec<f64>> {
            let mut v = base.clone();
            v[j] += sign * eps;
            let h = Tensor::from_vec(v, (1, n), h.device())?;
            system.step(&h, u)?.get(0)?.to_vec1()
        };
        let (up, down) = (moved(1.0)?, moved(-1.0)?);
        columns.push(
            up.iter()
                .zip(&down)
                .map(|(a, b)| (a - b) / (2.0 * eps))
                .collect::<Vec<_>>(),
        );
    }
    Ok((0..n)
        .map(|i| (0..n).map(|j| columns[j][i]).collect())
        .collect())
}

/// Flattened values of a tensor as f64.
pub(crate) fn values(t: &Tensor) -> Result<Vec<f64>> {
    t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()
}

const CELLS: [CellKind; 3] = [CellKind::Rnn, CellKind::Lstm, CellKind::Gru];

/// A two-layer row-wise classifier of `cell` with f64 parameters.
fn seq_rnn(cell: CellKind, hidden: usize, vars: &SeededVarMap) -> Result<Model> {
    let cfg = ModelConfig::Rnn(RnnConfig {
        stack: RecurrentStack {
            cell,
            hidden,
            layers: 2,
            dropout: 0.0,
        },
        encoder: EncoderConfig::Rows,
    });
    let vb = vars.var_builder(DType::F64, &Device::Cpu);
    Model::from_config(&cfg, [1, 6, 3], 3, Ops::Plain, vb)
}

/// A two-layer sequence model of `cell` (f32 parameters) reading 2 channels, 2 outputs.
fn sequence_rnn(cell: CellKind, vars: &SeededVarMap) -> crate::Result<SequenceRnn> {
    let cfg = SequenceRnnConfig {
        stack: RecurrentStack {
            cell,
            hidden: 4,
            layers: 2,
            dropout: 0.0,
        },
    };
    let ctx = BuildCtx {
        input: InputShape::Sequence {
            channels: 2,
            steps: 7,
        },
        outputs: 2,
        task: Arc::new(StepLabelling { scored_from: 0 }),
        ops: Ops::Plain,
        device: Device::Cpu,
        vars,
    };
    SequenceRnn::new(&cfg, &ctx)
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < tol, "{what}: {got:?} vs {want:?}");
    }
}

#[test]
fn stack_trajectory_and_readout_reproduce_forward() -> crate::Result<()> {
    for cell in CELLS {
        let vars = SeededVarMap::new(7);
        let model = seq_rnn(cell, 3, &vars)?;
        let x = model.encode(&images(2, 6, 3)?, 0)?;
        let system = model
            .dynamics(&DynamicsOptions::f64())
            .expect("seq_rnn dynamics")?;
        let states = trajectory(&*system, &system.initial_state()?, &system.drive(&x)?)?;
        let viewed = system.readout(&states)?;
        assert_eq!(viewed.dims(), &[2, 3]);
        let want = values(&model.forward(&x)?)?;
        assert_close(&values(&viewed)?, &want, 1e-9, &format!("seq_rnn {cell:?}"));

        let vars = SeededVarMap::new(8);
        let net = sequence_rnn(cell, &vars)?;
        let s = Tensor::randn(0f32, 1.0, (7, 3, 2), &Device::Cpu)?;
        let system = net
            .dynamics(&DynamicsOptions::f64())
            .expect("sequence_rnn")?;
        let states = trajectory(&*system, &system.initial_state()?, &system.drive(&s)?)?;
        assert_eq!(
            states.dims(),
            &[7, 3, if cell == CellKind::Lstm { 16 } else { 8 }]
        );
        let viewed = system.readout(&states)?;
        assert_eq!(viewed.dims(), &[7, 3, 2]);
        let want = values(&net.forward(&s)?)?;
        assert_close(
            &values(&viewed)?,
            &want,
            1e-5,
            &format!("sequence_rnn {cell:?}"),
        );
    }
    Ok(())
}

#[test]
fn stack_tangent_is_the_exact_jacobian_of_step() -> crate::Result<()> {
    for (cell, hidden) in [(CellKind::Rnn, 4), (CellKind::Lstm, 3), (CellKind::Gru, 4)] {
        let vars = SeededVarMap::new(11);
        let model = seq_rnn(cell, hidden, &vars)?;
        // larger inputs than pixels, so the gates leave their linear range
        let x = (model.encode(&images(1, 6, 3)?, 0)? * 3.0)?.affine(1.0, -1.0)?;
        let system = model.dynamics(&DynamicsOptions::f64()).expect("dynamics")?;
        let (h, u) = state_after(&*system, &system.drive(&x)?, 4)?;
        let claimed = tangent_jacobian(&*system, &h, &u, DType::F64)?;
        let autograd = autograd_jacobian(&*system, &h, &u)?;
        let err = max_diff(&claimed, &autograd);
        assert!(err < 1e-10, "{cell:?}: tangent vs autograd {err}");
        let fd = fd_jacobian(&*system, &h, &u, 1e-6)?;
        let scale = claimed.iter().flatten().fold(1f64, |m, v| m.max(v.abs()));
        let err = max_diff(&claimed, &fd) / scale;
        assert!(err < 1e-6, "{cell:?}: tangent vs finite differences {err}");
        // the layers are chained: layer 2 depends on layer 1's previous state
        let top_rows = &claimed[claimed.len() - hidden..];
        assert!(top_rows
            .iter()
            .flatten()
            .take(hidden)
            .any(|v| v.abs() > 1e-3));
    }
    Ok(())
}

#[test]
fn recurrent_weight_is_the_first_layers_weight_hh_and_others_have_no_dynamics() -> crate::Result<()>
{
    let vars = SeededVarMap::new(3);
    let model = seq_rnn(CellKind::Gru, 3, &vars)?;
    let system = model.dynamics(&DynamicsOptions::f64()).expect("dynamics")?;
    let w = system.recurrent_weight().expect("a recurrent weight");
    let var = vars.var("rnn.l0.weight_hh")?;
    assert_eq!(w.id(), var.as_tensor().id());
    // flossing differentiates the tangents: their gradient reaches the parameter itself
    let x = model.encode(&images(1, 6, 3)?, 0)?;
    let (h, u) = state_after(&*system, &system.drive(&x)?, 3)?;
    let eye = Tensor::eye(system.state_size(), DType::F64, &Device::Cpu)?;
    let q = system.tangent(&h, &system.step(&h, &u)?, &u, &eye)?;
    let grads = q.sqr()?.sum_all()?.backward()?;
    let g = grads.get(&w).expect("a gradient for weight_hh");
    assert!(g.abs()?.sum_all()?.to_scalar::<f64>()? > 0.0);
    let ffnn = ModelConfig::Ffnn(crate::config::from_yaml_str::<FfnnConfig>("{hidden: [4]}")?);
    let vb = vars.var_builder(DType::F64, &Device::Cpu);
    let model = Model::from_config(&ffnn, [1, 6, 3], 3, Ops::Plain, vb)?;
    assert!(model.dynamics(&DynamicsOptions::f64()).is_none());
    Ok(())
}
