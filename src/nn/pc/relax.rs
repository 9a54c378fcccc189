//! The energy of a predictive-coding network and its relaxation: the terms `F` is made of, `F`
//! as a candle expression (for the weight update and the reference relaxation), and the two
//! relaxations: autograd of `F` per step (`kernels: plain`, and conv terms) and the fused
//! closed-form kernel on dense terms.

use autoresearch_kernels::pc::{relax_dense, DenseTerm, Relax, RelaxTrace};
use candle_core::{Result, Tensor, Var};
use candle_nn::{Conv2d, Linear};

use super::super::Ops;

/// How one representation is predicted from another.
#[derive(Debug, Clone)]
pub enum Predictor {
    /// `f(W·vec(x) + b)`, ReLU or identity.
    Dense {
        /// The layer.
        layer: Linear,
        /// ReLU (else identity).
        relu: bool,
    },
    /// `maxpool_2(ReLU(conv(x)))`.
    ConvPool {
        /// The convolution (valid, stride 1).
        conv: Conv2d,
    },
}

impl Predictor {
    /// The prediction of a batch of source representations.
    ///
    /// # Shapes
    /// Dense: `[B, ...]` -> `[B, out]`; conv: `[B, C, H, W]` -> `[B, O, (H-k+1)/2, (W-k+1)/2]`.
    pub fn predict(&self, ops: Ops, x: &Tensor) -> Result<Tensor> {
        match self {
            Predictor::Dense { layer, relu } => ops.linear(layer, &x.flatten_from(1)?, *relu),
            Predictor::ConvPool { conv } => {
                let c = conv.config();
                if ops.fuses(x) && c.stride == 1 && c.dilation == 1 && c.groups == 1 {
                    let (w, b) = (conv.weight(), conv.bias());
                    return super::super::fused::conv2d_pool(x, w, b, c.padding, true, 2);
                }
                ops.max_pool2d(&ops.conv2d(conv, x)?.relu()?, 2)
            }
        }
    }

    /// The same predictor on detached weights (no gradient reaches the parameters).
    pub fn detached(&self) -> Predictor {
        match self {
            Predictor::Dense { layer, relu } => Predictor::Dense {
                layer: Linear::new(layer.weight().detach(), layer.bias().map(Tensor::detach)),
                relu: *relu,
            },
            Predictor::ConvPool { conv } => Predictor::ConvPool {
                conv: Conv2d::new(
                    conv.weight().detach(),
                    conv.bias().map(Tensor::detach),
                    *conv.config(),
                ),
            },
        }
    }
}

/// One term of `F`: `scale/2 ‖r_target − predictor(r_source)‖²`.
#[derive(Debug, Clone)]
pub struct Term {
    /// Its name in traces (`layer1`, `decoder0`, ...).
    pub name: String,
    /// The predicted representation.
    pub target: usize,
    /// The representation it is predicted from.
    pub source: usize,
    /// The prediction.
    pub predictor: Predictor,
    /// Its weight in `F`.
    pub scale: f64,
}

/// Each term's energy, summed over the batch, as scalars of one graph; `fixed[i]`, when given,
/// is term `i`'s prediction (its source clamped: computed once per batch).
///
/// # Shapes
/// `reps[i]`: `[B, ...]` (any shape whose per-sample size matches the predictions).
pub fn term_energies(
    terms: &[Term],
    ops: Ops,
    reps: &[Tensor],
    fixed: &[Option<Tensor>],
) -> Result<Vec<Tensor>> {
    terms
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mu = match fixed.get(i).and_then(Option::as_ref) {
                Some(mu) => mu.flatten_from(1)?,
                None => t.predictor.predict(ops, &reps[t.source])?.flatten_from(1)?,
            };
            let e = (reps[t.target].flatten_from(1)? - mu)?;
            e.sqr()?.sum_all()? * (0.5 * t.scale)
        })
        .collect()
}

/// What a relaxation did: the relaxed representations and the energy trace per term.
#[derive(Debug, Clone)]
pub struct Relaxed {
    /// `r_0..r_L` after the last step (detached).
    pub reps: Vec<Tensor>,
    /// `F` per term before each step and after the last, summed over the batch.
    pub trace: RelaxTrace,
}

/// Relaxes `reps` on `terms` by autograd of `F` at every step (upstream's way; the
/// reference), moving only the `free` representations; `fixed` as for [`term_energies`].
pub fn relax_autograd(
    terms: &[Term],
    ops: Ops,
    reps: Vec<Tensor>,
    free: &[bool],
    fixed: &[Option<Tensor>],
    relax: Relax,
) -> Result<Relaxed> {
    let terms: Vec<Term> = terms
        .iter()
        .map(|t| Term {
            predictor: t.predictor.detached(),
            ..t.clone()
        })
        .collect();
    let mut reps: Vec<Tensor> = reps.iter().map(Tensor::detach).collect();
    let mut saved = reps.clone();
    let mut trace = RelaxTrace {
        final_rate: relax.rate,
        ..RelaxTrace::default()
    };
    let mut rate = f64::from(relax.rate);
    let mut t = 0;
    while t <= relax.steps {
        let (energies, grads) = energy_and_grads(&terms, ops, &reps, free, fixed, t < relax.steps)?;
        let total: f64 = energies.iter().sum();
        let before = trace.energies.last().map(|e| e.iter().sum::<f64>());
        if before.is_some_and(|b| total > b + 1e-6 * b.abs()) {
            trace.rises += 1;
            if relax.backtrack {
                reps.clone_from(&saved);
                rate *= 0.5;
                let (_, grads) = energy_and_grads(&terms, ops, &reps, free, fixed, true)?;
                saved = step(&mut reps, &grads, rate)?;
                continue;
            }
        }
        trace.energies.push(energies);
        if t < relax.steps {
            saved = step(&mut reps, &grads, rate)?;
        }
        t += 1;
    }
    trace.final_rate = rate as f32;
    Ok(Relaxed { reps, trace })
}

/// `r ← r − η g` where a gradient is given; returns the representations before.
fn step(reps: &mut [Tensor], grads: &[Option<Tensor>], rate: f64) -> Result<Vec<Tensor>> {
    let before = reps.to_vec();
    for (r, g) in reps.iter_mut().zip(grads) {
        if let Some(g) = g {
            *r = (&*r - (g * rate)?)?.detach();
        }
    }
    Ok(before)
}

/// Per-term energies at `reps` and, with `with_grads`, `∂F/∂r` of the free representations.
fn energy_and_grads(
    terms: &[Term],
    ops: Ops,
    reps: &[Tensor],
    free: &[bool],
    fixed: &[Option<Tensor>],
    with_grads: bool,
) -> Result<(Vec<f64>, Vec<Option<Tensor>>)> {
    let vars: Vec<Option<Var>> = reps
        .iter()
        .zip(free)
        .map(|(r, &f)| (f && with_grads).then(|| Var::from_tensor(r)).transpose())
        .collect::<Result<_>>()?;
    let live: Vec<Tensor> = reps
        .iter()
        .zip(&vars)
        .map(|(r, v)| {
            v.as_ref()
                .map_or_else(|| r.clone(), |v| v.as_tensor().clone())
        })
        .collect();
    let parts = term_energies(terms, ops, &live, fixed)?;
    let energies = parts
        .iter()
        .map(|e| e.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>())
        .collect::<Result<Vec<_>>>()?;
    if !with_grads {
        return Ok((energies, vec![None; reps.len()]));
    }
    let total = Tensor::stack(&parts, 0)?.sum_all()?;
    let store = total.backward()?;
    let grads = vars
        .iter()
        .map(|v| v.as_ref().and_then(|v| store.get(v.as_tensor()).cloned()))
        .collect();
    Ok((energies, grads))
}

/// Relaxes with the fused dense kernel: every term must be dense and every tensor CPU `f32`.
/// `fixed[i]` is term `i`'s prediction when its source is clamped (computed once per batch).
pub fn relax_fused(
    terms: &[Term],
    reps: &[Tensor],
    free: &[bool],
    fixed: &[Option<Tensor>],
    relax: Relax,
) -> Result<Relaxed> {
    let batch = reps[0].dim(0)?;
    let mut flat: Vec<Vec<f32>> = reps
        .iter()
        .map(|r| r.flatten_all()?.to_vec1::<f32>())
        .collect::<Result<_>>()?;
    let mut weights = Vec::with_capacity(terms.len());
    for t in terms {
        let Predictor::Dense { layer, .. } = &t.predictor else {
            candle_core::bail!(
                "the fused relaxation takes dense terms only; `{}` is a conv",
                t.name
            )
        };
        let bias = match layer.bias() {
            Some(b) => b.to_vec1::<f32>()?,
            None => vec![0.0; layer.weight().dim(0)?],
        };
        weights.push((layer.weight().flatten_all()?.to_vec1::<f32>()?, bias));
    }
    let fixed: Vec<Option<Vec<f32>>> = fixed
        .iter()
        .map(|f| {
            f.as_ref()
                .map(|m| m.flatten_all()?.to_vec1::<f32>())
                .transpose()
        })
        .collect::<Result<_>>()?;
    let dense: Vec<DenseTerm> = terms
        .iter()
        .zip(&weights)
        .zip(&fixed)
        .map(|((t, (w, b)), f)| DenseTerm {
            target: t.target,
            source: t.source,
            weight: w,
            bias: b,
            relu: matches!(t.predictor, Predictor::Dense { relu: true, .. }),
            scale: t.scale as f32,
            fixed_prediction: f.as_deref(),
        })
        .collect();
    let trace =
        relax_dense(&mut flat, free, &dense, batch, relax).map_err(candle_core::Error::Msg)?;
    let reps = flat
        .into_iter()
        .zip(reps)
        .map(|(v, r)| Tensor::from_vec(v, r.shape(), r.device()))
        .collect::<Result<_>>()?;
    Ok(Relaxed { reps, trace })
}
