//! The spectrum's analytic checks: orthogonal and normal linear maps, the sum rule, the
//! re-orthonormalisation interval, the initial frame, and the order-to-chaos transition of
//! random tanh networks.

use candle_core::{DType, Device, Result, Tensor};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use super::lyapunov::exponents;
use super::system::{trajectory, Dynamics, DynamicsOptions};
use crate::config::{RateRnnConfig, SpectrumConfig};
use crate::data::{InputShape, StepLabelling};
use crate::nn::{Network, Ops, RateRnn, SeededVarMap};

/// The constant linear map `h_t = D h_{t-1}` (the drive is ignored).
struct Linear(Tensor);

impl Dynamics for Linear {
    fn state_size(&self) -> usize {
        self.0.dim(0).unwrap_or(0)
    }
    fn initial_state(&self) -> Result<Tensor> {
        Tensor::ones((1, self.state_size()), DType::F64, &Device::Cpu)
    }
    fn drive(&self, input: &Tensor) -> Result<Tensor> {
        Ok(input.clone())
    }
    fn step(&self, state: &Tensor, _drive: &Tensor) -> Result<Tensor> {
        state.matmul(&self.0.t()?)
    }
    fn tangent(&self, _p: &Tensor, _n: &Tensor, _d: &Tensor, q: &Tensor) -> Result<Tensor> {
        self.0.matmul(q)
    }
    fn readout(&self, states: &Tensor) -> Result<Tensor> {
        Ok(states.clone())
    }
    fn recurrent_weight(&self) -> Option<Tensor> {
        None
    }
}

fn settings(exponents: usize, steps: usize, transient: usize) -> SpectrumConfig {
    SpectrumConfig {
        exponents,
        steps,
        transient_steps: Some(transient),
        reorthonormalise_every: 1,
        frame_seed: 1,
        sequences: 1,
        reset_in_jacobian: false,
    }
}

/// A random orthogonal `[n, n]` matrix of `seed`, row-major.
fn orthogonal(n: usize, seed: u64) -> nalgebra::DMatrix<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let v: Vec<f64> = (0..n * n)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    super::qr::qr_plain(&nalgebra::DMatrix::from_row_slice(n, n, &v)).0
}

fn tensor(m: &nalgebra::DMatrix<f64>) -> Result<Tensor> {
    let rows: Vec<f64> = (0..m.nrows())
        .flat_map(|i| (0..m.ncols()).map(move |j| m[(i, j)]))
        .collect();
    Tensor::from_vec(rows, (m.nrows(), m.ncols()), &Device::Cpu)
}

fn spectrum_of(system: &dyn Dynamics, cfg: &SpectrumConfig, drive: &Tensor) -> Result<Vec<f64>> {
    exponents(system, &system.initial_state()?, drive, cfg, false)?
        .values
        .to_vec1::<f64>()
}

fn silence(steps: usize) -> Result<Tensor> {
    Tensor::zeros((steps, 1, 1), DType::F64, &Device::Cpu)
}

#[test]
fn a_scaled_orthogonal_map_has_every_exponent_log_g() -> Result<()> {
    let g = 1.7f64;
    let d = tensor(&(orthogonal(6, 3) * g))?;
    for k in [1, 3, 6] {
        let cfg = settings(k, 60, 7);
        for l in spectrum_of(&Linear(d.clone()), &cfg, &silence(60)?)? {
            assert!((l - g.ln()).abs() < 1e-12, "k {k}: {l} vs {}", g.ln());
        }
    }
    Ok(())
}

#[test]
fn a_normal_map_gives_its_sorted_log_moduli() -> Result<()> {
    let n = 50;
    let eig: Vec<f64> = (0..n)
        .map(|i| (if i % 3 == 0 { -1.0 } else { 1.0 }) * (1.3 - 0.021 * i as f64))
        .collect();
    let o = orthogonal(n, 5);
    let d = &o
        * nalgebra::DMatrix::from_diagonal(&nalgebra::DVector::from_vec(eig.clone()))
        * o.transpose();
    let cfg = settings(n, 3000, 0);
    let got = spectrum_of(&Linear(tensor(&d)?), &cfg, &silence(3000)?)?;
    let mut want: Vec<f64> = eig.iter().map(|e| e.abs().ln()).collect();
    want.sort_by(|a, b| b.total_cmp(a));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() < 5e-3, "lambda_{}: {g} vs {w}", i + 1);
    }
    Ok(())
}

/// A random tanh network of `n` units, gain `g`, seed `seed`, one input channel.
pub(crate) fn rate_net(n: usize, g: f64, seed: u64) -> crate::Result<(RateRnn, SeededVarMap)> {
    rate_net_from(&format!("{{hidden: {n}, gain: {g}}}"), seed)
}

/// The rate network of the YAML model config `yaml` (one input channel) drawn from `seed`.
fn rate_net_from(yaml: &str, seed: u64) -> crate::Result<(RateRnn, SeededVarMap)> {
    let cfg: RateRnnConfig = crate::config::from_yaml_str(yaml)?;
    let vars = SeededVarMap::new(seed);
    let ctx = crate::nn::BuildCtx {
        input: InputShape::Sequence {
            channels: 1,
            steps: 10,
        },
        outputs: 1,
        task: std::sync::Arc::new(StepLabelling { scored_from: 0 }),
        ops: Ops::Plain,
        device: Device::Cpu,
        vars: &vars,
    };
    Ok((RateRnn::new(&cfg, &ctx)?, vars))
}

fn system(net: &RateRnn) -> crate::Result<Box<dyn Dynamics + '_>> {
    super::system_of(net, &DynamicsOptions::f64())
}

/// Bernoulli(0.5) bits of amplitude 1, `[steps, 1, 1]`.
fn bits(steps: usize, seed: u64) -> Result<Tensor> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let v: Vec<f64> = (0..steps)
        .map(|_| f64::from(u8::from(rand::Rng::random_bool(&mut rng, 0.5))))
        .collect();
    Tensor::from_vec(v, (steps, 1, 1), &Device::Cpu)
}

#[test]
fn with_every_exponent_the_sum_is_log_det_j_plus_the_mean_log_derivative() -> crate::Result<()> {
    let (net, _vars) = rate_net(12, 1.5, 2)?;
    let sys = system(&net)?;
    let (steps, transient) = (80, 10);
    let drive = sys.drive(&bits(steps, 4)?)?;
    let got: f64 = spectrum_of(&*sys, &settings(12, steps, transient), &drive)?
        .iter()
        .sum();
    let x = trajectory(&*sys, &sys.initial_state()?, &drive)?;
    let x: Vec<Vec<f64>> = x.squeeze(1)?.to_vec2()?;
    let log_phi: f64 = x[transient..]
        .iter()
        .flat_map(|row| row.iter().map(|v| (1.0 - v.tanh().powi(2)).ln()))
        .sum::<f64>()
        / (steps - transient) as f64;
    let net_j: Vec<f64> = net
        .recurrent_matrix()
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1()?;
    let log_det = nalgebra::DMatrix::from_row_slice(12, 12, &net_j)
        .determinant()
        .abs()
        .ln();
    let want = log_det + log_phi;
    assert!(
        (got - want).abs() < 1e-10 * want.abs().max(1.0),
        "{got} vs {want}"
    );
    Ok(())
}

/// Asserts that `changed` gives the spectrum of `base` to `tolerance` on the N-unit network of
/// `seed` driven by `steps` bits.
fn agree(
    n: usize,
    seed: u64,
    steps: usize,
    base: SpectrumConfig,
    changed: SpectrumConfig,
    tolerance: f64,
) -> crate::Result<()> {
    let (net, _vars) = rate_net(n, 1.5, seed)?;
    let sys = system(&net)?;
    let drive = sys.drive(&bits(steps, seed)?)?;
    let one = spectrum_of(&*sys, &base, &drive)?;
    for (a, b) in one.iter().zip(spectrum_of(&*sys, &changed, &drive)?) {
        assert!((a - b).abs() < tolerance, "{a} vs {b}");
    }
    Ok(())
}

#[test]
fn reorthonormalising_every_m_steps_equals_every_step() -> crate::Result<()> {
    let every = SpectrumConfig {
        reorthonormalise_every: 5,
        ..settings(5, 100, 10)
    };
    agree(20, 3, 100, settings(5, 100, 10), every, 1e-9)
}

#[test]
fn two_initial_frames_agree_after_the_transient() -> crate::Result<()> {
    let other = SpectrumConfig {
        frame_seed: 2,
        ..settings(5, 1000, 100)
    };
    agree(80, 4, 1000, settings(5, 1000, 100), other, 0.02)
}

/// `λ_1` of the random tanh network (N = 400) of `seed` at gain `g`, autonomous or driven.
fn largest(g: f64, seed: u64, driven: bool) -> crate::Result<f64> {
    let (net, _vars) = rate_net(400, g, seed)?;
    let sys = system(&net)?;
    let input = if driven {
        bits(1000, seed)?
    } else {
        silence(1000)?
    };
    let drive = sys.drive(&input)?;
    Ok(spectrum_of(&*sys, &settings(1, 1000, 200), &drive)?[0])
}

#[test]
fn random_tanh_networks_turn_chaotic_above_gain_one_and_input_suppresses_chaos() -> crate::Result<()>
{
    for seed in 0..3 {
        let gains = [0.5, 0.8, 1.2, 1.5, 2.0, 3.0];
        let l: Vec<f64> = gains
            .iter()
            .map(|&g| largest(g, seed, false))
            .collect::<crate::Result<_>>()?;
        assert!(l[0] < 0.0 && l[3] > 0.0 && l[5] > 0.0, "seed {seed}: {l:?}");
        assert!(
            l.windows(2).all(|w| w[0] < w[1]),
            "seed {seed}: not increasing {l:?}"
        );
        for (i, &g) in gains.iter().enumerate().skip(3) {
            let driven = largest(g, seed, true)?;
            assert!(
                driven < l[i],
                "seed {seed} g {g}: driven {driven} vs autonomous {}",
                l[i]
            );
        }
    }
    Ok(())
}

#[test]
fn the_network_view_reproduces_the_forward_pass() -> crate::Result<()> {
    let (net, _vars) = rate_net(10, 1.2, 1)?;
    let input = bits(30, 3)?.to_dtype(DType::F32)?;
    let direct: Vec<f32> = net.forward(&input)?.flatten_all()?.to_vec1()?;
    let sys = system(&net)?;
    let states = trajectory(&*sys, &sys.initial_state()?, &sys.drive(&input)?)?;
    let viewed: Vec<f64> = sys.readout(&states)?.flatten_all()?.to_vec1()?;
    for (a, b) in direct.iter().zip(&viewed) {
        assert!(
            (f64::from(*a) - b).abs() < 1e-4 * (1.0 + b.abs()),
            "{a} vs {b}"
        );
    }
    Ok(())
}

/// The rate nets' tangent `diag(φ'(x_t))·J` is similar to the autograd Jacobian of their step,
/// `J·diag(φ'(x_t))` at `x_t`: `tangent · diag(φ'(x_t)) = diag(φ'(x_t)) · autograd`, for tanh and
/// for the binary net through its surrogate.
#[test]
fn the_rate_tangent_is_similar_to_the_autograd_jacobian_of_the_step() -> crate::Result<()> {
    for activation in [
        "{kind: tanh}",
        "{kind: binary, surrogate: {kind: fast_sigmoid, slope: 1.0}}",
    ] {
        let yaml = format!("{{hidden: 6, gain: 1.5, activation: {activation}}}");
        let (net, _vars) = rate_net_from(&yaml, 2)?;
        let sys = system(&net)?;
        let drive = sys.drive(&bits(5, 1)?)?;
        let states = trajectory(&*sys, &sys.initial_state()?, &drive)?;
        let (prev, x) = (states.get(2)?, states.get(3)?);
        let eye = Tensor::eye(6, DType::F64, &Device::Cpu)?;
        let tangent: Vec<Vec<f64>> = sys.tangent(&prev, &x, &drive.get(3)?, &eye)?.to_vec2()?;
        let leaf = candle_core::Var::from_tensor(&x)?;
        let next = sys.step(leaf.as_tensor(), &drive.get(4)?)?;
        let mut autograd = Vec::new();
        for i in 0..6 {
            let g = next.narrow(1, i, 1)?.sum_all()?.backward()?;
            let row: Vec<f64> = g
                .get(leaf.as_tensor())
                .map(|t| t.flatten_all()?.to_vec1())
                .transpose()?
                .unwrap_or_default();
            autograd.push(row);
        }
        let d: Vec<f64> = x
            .flatten_all()?
            .to_vec1::<f64>()?
            .iter()
            .map(|&v| match activation.contains("binary") {
                true => 1.0 / (v.abs() + 1.0).powi(2),
                false => 1.0 - v.tanh().powi(2),
            })
            .collect();
        for i in 0..6 {
            for j in 0..6 {
                let (left, right) = (tangent[i][j] * d[j], d[i] * autograd[i][j]);
                assert!(
                    (left - right).abs() < 1e-12 * (1.0 + right.abs()),
                    "{activation} [{i},{j}]: {left} vs {right}"
                );
            }
        }
    }
    Ok(())
}
