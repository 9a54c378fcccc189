//! Spiking LSTM (snnTorch's `SLSTM`): an LSTM cell whose hidden state is a membrane `mem`
//! (thresholded into spikes) and whose cell state is a synaptic current `syn`.

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;

use super::constant;
use super::reset::reset_candidate;
use super::surrogate::spike;
use super::{report, NeuronDynamics};
use crate::config::{Reset, SlstmNeuronConfig, Surrogate};
use crate::nn::probe::Probe;
use crate::nn::recurrent::{lstm_gates, CellWeights};
use crate::nn::{fused, Ops};

/// The state an SLSTM carries: synaptic current (LSTM `c`) and membrane (LSTM `h`).
#[derive(Debug, Clone)]
pub struct SlstmState {
    /// Synaptic current `syn[t]` `[B, H]`.
    pub syn: Tensor,
    /// Membrane `mem[t]` `[B, H]`.
    pub mem: Tensor,
}

/// One SLSTM step on a projected input `xp = x·W_ihᵀ + b_ih`: `(h, c) = LSTM(xp, mem[t-1],
/// syn[t-1])` (see [`lstm_gates`]), `R = H(mem[t-1] - θ)` detached, then `syn[t] = c` and
/// `mem[t] = h - R·θ` (subtract), `(1 - R)·h` (zero) or `h` (none), as snnTorch;
/// `S[t] = H(mem[t] - θ)` with a surrogate gradient. Since `h = o·tanh(c)` lies in (-1, 1), a
/// threshold of 1 or more never fires.
///
/// # Shapes
/// `xp`: `[B, 4H]`, `state.*`: `[B, H]`, `threshold`: broadcastable -> spikes `[B, H]` and the
/// new state.
pub fn slstm_step(
    xp: &Tensor,
    state: &SlstmState,
    weights: &CellWeights,
    p: &SlstmParams,
) -> Result<(Tensor, SlstmState)> {
    let prev = &state.mem;
    let gates = (xp + weights.recur(prev)?)?;
    let (h, syn) = lstm_gates(&gates, &state.syn)?;
    let mem = reset_candidate(&h, prev, &p.threshold, p.reset)?;
    let spikes = spike(&mem.broadcast_sub(&p.threshold)?, p.surrogate)?;
    Ok((spikes, SlstmState { syn, mem }))
}

/// The spiking parameters of an SLSTM layer: threshold θ (rank 0 or `[H]`), reset, surrogate.
#[derive(Debug, Clone)]
pub struct SlstmParams {
    /// Firing threshold.
    pub threshold: Tensor,
    /// What a spike does to the membrane.
    pub reset: Reset,
    /// The spike's gradient.
    pub surrogate: Surrogate,
}

/// A layer of SLSTM neurons: the LSTM weights and the spiking parameters.
#[derive(Debug, Clone)]
pub struct Slstm {
    weights: CellWeights,
    params: SlstmParams,
}

impl Slstm {
    /// Builds from the LSTM weights and the spiking parameters.
    pub fn new(weights: CellWeights, params: SlstmParams) -> Self {
        Slstm { weights, params }
    }

    /// Builds `input -> hidden` from config: `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`
    /// under `vb` (PyTorch LSTM layout and init).
    pub fn from_config(
        cfg: &SlstmNeuronConfig,
        input: usize,
        hidden: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let params = SlstmParams {
            threshold: constant(cfg.threshold, vb.dtype(), vb.device())?,
            reset: cfg.reset,
            surrogate: cfg.surrogate,
        };
        Ok(Slstm::new(CellWeights::new(4, input, hidden, &vb)?, params))
    }

    /// The LSTM weights.
    pub fn weights(&self) -> &CellWeights {
        &self.weights
    }

    /// Spikes and membranes over all steps from a zero state; the input projection of all
    /// steps is one matrix product (the dynamics then step on projected inputs, see
    /// [`NeuronDynamics`]).
    ///
    /// # Shapes
    /// `x`: `[T, B, in]` -> (spikes, membrane), each `[T, B, H]`.
    pub fn scan(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        self.scan_zero(&self.weights.project(x)?)
    }

    /// As [`Slstm::scan`], as one fused op for the whole sequence where `ops` allows it (a
    /// scalar threshold on a CPU `f32` input).
    ///
    /// # Shapes
    /// `x`: `[T, B, in]` -> (spikes, membrane), each `[T, B, H]`.
    pub fn scan_with(&self, ops: Ops, x: &Tensor) -> Result<(Tensor, Tensor)> {
        if !ops.fuses(x) || self.params.threshold.rank() != 0 {
            return self.scan(x);
        }
        let cell = fused::RecurrentCell::Slstm {
            threshold: self
                .params
                .threshold
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?,
            reset: self.params.reset,
            surrogate: self.params.surrogate,
        };
        match fused::recurrent(cell, x, &self.weights)? {
            (spikes, Some(mem)) => Ok((spikes, mem)),
            (_, None) => candle_core::bail!("fused SLSTM returned no membranes"),
        }
    }

    /// Spikes over all steps, reported to `probe` as `name` (with membranes if it asks).
    ///
    /// # Shapes
    /// `x`: `[T, B, in]` -> spikes `[T, B, H]`.
    pub fn forward_probed(
        &self,
        ops: Ops,
        name: &str,
        x: &Tensor,
        probe: &mut dyn Probe,
    ) -> Result<Tensor> {
        report(name, self.scan_with(ops, x)?, probe)
    }
}

impl NeuronDynamics for Slstm {
    type State = SlstmState;

    /// Zero current and membrane for a projected step `xp_step` (`[B, 4H]`).
    fn zero_state(&self, xp_step: &Tensor) -> Result<SlstmState> {
        let b = xp_step.dim(0)?;
        let zeros = Tensor::zeros(
            (b, self.weights.hidden()?),
            xp_step.dtype(),
            xp_step.device(),
        )?;
        Ok(SlstmState {
            syn: zeros.clone(),
            mem: zeros,
        })
    }

    /// One step on a projected input `xp` `[B, 4H]`: see [`slstm_step`].
    fn step(&self, xp: &Tensor, state: &SlstmState) -> Result<(Tensor, SlstmState)> {
        slstm_step(xp, state, &self.weights, &self.params)
    }

    fn membrane(state: &SlstmState) -> &Tensor {
        &state.mem
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{self, frozen_error, Params};
    use crate::nn::SeededVarMap;
    use candle_core::{DType, Device};

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    const W_IH: [f64; 4] = [0.5, 0.4, 1.2, 0.8];
    const W_HH: [f64; 4] = [0.1, -0.2, 0.3, 0.2];
    const B_IH: [f64; 4] = [0.0, 0.1, 0.0, 0.1];
    const XS: [f64; 5] = [1.0, 1.0, -0.5, 1.0, 1.0];

    /// One unit (gate rows i, f, g, o), θ = 0.3, by the formulas written out.
    fn hand(reset: Reset) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let th = 0.3;
        let (mut mem, mut syn) = (0.0f64, 0.0f64);
        let (mut s, mut m, mut c) = (vec![], vec![], vec![]);
        for x in XS {
            let pre = |k: usize| W_IH[k] * x + B_IH[k] + W_HH[k] * mem;
            let (i, f, g, o) = (sig(pre(0)), sig(pre(1)), pre(2).tanh(), sig(pre(3)));
            let r = if mem > th { 1.0 } else { 0.0 };
            syn = f * syn + i * g;
            let h = o * syn.tanh();
            mem = match reset {
                Reset::Subtract => h - r * th,
                Reset::Zero => (1.0 - r) * h,
                Reset::None => h,
            };
            s.push(if mem > th { 1.0 } else { 0.0 });
            m.push(mem);
            c.push(syn);
        }
        (s, m, c)
    }

    #[test]
    fn traces_match_hand_computation_for_each_reset() -> Result<()> {
        let dev = Device::Cpu;
        let t = |v: &[f64], r: usize, c: usize| Tensor::from_vec(v.to_vec(), (r, c), &dev);
        let weights = CellWeights::from_tensors(
            t(&W_IH, 4, 1)?,
            t(&W_HH, 4, 1)?,
            t(&B_IH, 4, 1)?.flatten_all()?,
            Tensor::zeros(4, DType::F64, &dev)?,
        )?;
        let x = Tensor::from_vec(XS.to_vec(), (5, 1, 1), &dev)?;
        let mut spike_patterns = vec![];
        for reset in [Reset::Subtract, Reset::Zero, Reset::None] {
            let params = SlstmParams {
                threshold: Tensor::new(0.3f64, &dev)?,
                reset,
                surrogate: Surrogate::default(),
            };
            let layer = Slstm::new(weights.clone(), params);
            let (s, m) = layer.scan(&x)?;
            let (hs, hm, _) = hand(reset);
            let m: Vec<f64> = m.flatten_all()?.to_vec1()?;
            for (a, b) in m.iter().zip(&hm) {
                assert!((a - b).abs() < 1e-12, "{reset:?}: {m:?} vs {hm:?}");
            }
            assert_eq!(s.flatten_all()?.to_vec1::<f64>()?, hs, "{reset:?}");
            spike_patterns.push(hs);
        }
        // the example exercises the resets: it fires, and the three modes differ
        assert!(
            spike_patterns[2].iter().sum::<f64>() >= 2.0,
            "{spike_patterns:?}"
        );
        let (_, sub, _) = hand(Reset::Subtract);
        let (_, zero, _) = hand(Reset::Zero);
        let (_, none, _) = hand(Reset::None);
        assert!(sub != none && zero != none && sub != zero);
        Ok(())
    }

    fn gradient_error(reset: Reset) -> Result<(f64, f64)> {
        let dev = Device::Cpu;
        let vars = SeededVarMap::new(9);
        let vb = vars.var_builder(DType::F64, &dev);
        let slope = 5.0;
        let th = 0.1;
        let cfg = SlstmNeuronConfig {
            threshold: th,
            reset,
            surrogate: Surrogate::FastSigmoid { slope },
        };
        let (t, k, n) = (6, 2, 3);
        let layer = Slstm::from_config(&cfg, k, n, vb.pp("slstm"))?;
        let init = candle_nn::Init::Uniform { lo: -1.0, up: 2.0 };
        let input = vb.get_with_hints((t, 1, k), "input", init)?;
        let c: Vec<f64> = (0..t * n).map(|i| (i % 3) as f64 - 0.7).collect();
        let d: Vec<f64> = (0..t * n).map(|i| 0.3 * (i % 4) as f64 - 0.5).collect();
        let (ct, dt) = (
            Tensor::from_vec(c.clone(), (t, 1, n), &dev)?,
            Tensor::from_vec(d.clone(), (t, 1, n), &dev)?,
        );
        let library = || -> Result<Tensor> {
            let (s, m) = layer.scan(&input)?;
            (s * &ct)?.sum_all()? + (m * &dt)?.sum_all()?
        };
        let reference = |p: &Params, fz: &mut gradcheck::Freeze| {
            let x: Vec<Vec<f64>> = p["input"].chunks(k).map(<[f64]>::to_vec).collect();
            let w = gradcheck::lstm_weights(p, "slstm");
            let (s, m) = gradcheck::lstm(&x, w, Some((th, reset)), fz);
            let dot = |x: Vec<Vec<f64>>, w: &[f64]| -> f64 {
                x.concat().iter().zip(w).map(|(a, b)| a * b).sum()
            };
            dot(s, &c) + dot(m, &d)
        };
        frozen_error(&vars, slope, library, reference)
    }

    #[test]
    fn surrogate_gradients_match_the_frozen_twin_for_each_reset() -> Result<()> {
        for reset in [Reset::Subtract, Reset::Zero, Reset::None] {
            let (err, fired) = gradient_error(reset)?;
            assert!(err < 1e-7, "{reset:?}: max error {err}");
            assert!(fired > 0.1 && fired < 0.9, "{reset:?}: fired {fired}");
        }
        Ok(())
    }
}
