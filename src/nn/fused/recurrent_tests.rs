//! The fused recurrent layers against the plain candle cells (the reference path).

use candle_core::{Tensor, Var};

use super::super::test_util::{assert_same_grads, rand, rel};
use super::*;
use crate::nn::neuron::{Slstm, SlstmParams};
use crate::nn::recurrent::{Gru, Lstm, Rnn};

/// Weights of `gates·h` rows as variables, scaled so the gates are neither saturated nor flat.
fn weights(gates: usize, k: usize, h: usize, seed: u64) -> (Vec<Var>, CellWeights) {
    let vars: Vec<Var> = [
        vec![gates * h, k],
        vec![gates * h, h],
        vec![gates * h],
        vec![gates * h],
    ]
    .iter()
    .enumerate()
    .map(|(i, shape)| Var::from_tensor(&(rand(shape, seed + i as u64) * 0.6).unwrap()).unwrap())
    .collect();
    let w = CellWeights::from_tensors(
        vars[0].as_tensor().clone(),
        vars[1].as_tensor().clone(),
        vars[2].as_tensor().clone(),
        vars[3].as_tensor().clone(),
    )
    .unwrap();
    (vars, w)
}

fn named(x: &Var, vars: &[Var]) -> Vec<(&'static str, Tensor)> {
    let names = ["x", "weight_ih", "weight_hh", "bias_ih", "bias_hh"];
    std::iter::once(x)
        .chain(vars)
        .zip(names)
        .map(|(v, n)| (n, v.as_tensor().clone()))
        .collect()
}

/// Fused and plain spikes identical, membranes within 1e-5, and a spike rate that tests both
/// sides of the threshold.
fn assert_same_spiking_layer(
    fused: (&Tensor, &Tensor),
    plain: (&Tensor, &Tensor),
    what: &str,
) -> Result<()> {
    assert!(rel(fused.1, plain.1) < 1e-5, "{what} membranes");
    assert_eq!(
        fused.0.to_vec3::<f32>()?,
        plain.0.to_vec3::<f32>()?,
        "{what} spikes"
    );
    let rate = plain.0.mean_all()?.to_scalar::<f32>()?;
    assert!(
        rate > 0.1 && rate < 0.9,
        "{what}: spike rate {rate} tests too little"
    );
    Ok(())
}

#[test]
fn every_cell_gives_the_plain_cells_outputs_and_gradients() -> Result<()> {
    let (t, b, k, h) = (6, 9, 5, 7);
    let x = Var::from_tensor(&(rand(&[t, b, k], 1) * 1.5)?)?;
    let up = rand(&[t, b, h], 2);
    for (gates, cell) in [
        (1, RecurrentCell::Rnn),
        (4, RecurrentCell::Lstm),
        (3, RecurrentCell::Gru),
    ] {
        let (vars, w) = weights(gates, k, h, 10);
        let plain = match cell {
            RecurrentCell::Rnn => Rnn { weights: w.clone() }.seq(&x)?.0,
            RecurrentCell::Lstm => Lstm { weights: w.clone() }.seq(&x)?.0,
            _ => Gru { weights: w.clone() }.seq(&x)?.0,
        };
        let (fused, mem) = recurrent(cell, &x, &w)?;
        assert!(mem.is_none());
        assert!(rel(&fused, &plain) < 1e-5, "{cell:?} outputs");
        let named = named(&x, &vars);
        let refs: Vec<(&str, &Tensor)> = named.iter().map(|(n, t)| (*n, t)).collect();
        assert_same_grads(&fused, &plain, &up, &refs, &format!("{cell:?}"));
    }
    Ok(())
}

#[test]
fn the_spiking_lstm_gives_the_plain_spikes_membranes_and_gradients() -> Result<()> {
    let (t, b, k, h) = (7, 10, 4, 6);
    // binary inputs, as the rate-coded rows
    let x = Var::from_tensor(
        &rand(&[t, b, k], 3)
            .gt(0.2)?
            .to_dtype(candle_core::DType::F32)?,
    )?;
    let (up_s, up_m) = (rand(&[t, b, h], 4), rand(&[t, b, h], 5));
    for reset in [Reset::Subtract, Reset::Zero, Reset::None] {
        let (vars, w) = weights(4, k, h, 20);
        let surrogate = Surrogate::FastSigmoid { slope: 5.0 };
        let threshold = 0.05;
        let params = SlstmParams {
            threshold: Tensor::new(threshold as f32, x.device())?,
            reset,
            surrogate,
        };
        let (spikes, mem) = Slstm::new(w.clone(), params).scan(&x)?;
        let cell = RecurrentCell::Slstm {
            threshold,
            reset,
            surrogate,
        };
        let (f_spikes, f_mem) = recurrent(cell, &x, &w)?;
        let f_mem = f_mem.expect("the SLSTM returns membranes");
        let what = format!("{reset:?}");
        assert_same_spiking_layer((&f_spikes, &f_mem), (&spikes, &mem), &what)?;
        let loss = |s: &Tensor, m: &Tensor| -> Result<Tensor> { (s * &up_s)? + (m * &up_m)? };
        let named = named(&x, &vars);
        let refs: Vec<(&str, &Tensor)> = named.iter().map(|(n, t)| (*n, t)).collect();
        let ones = Tensor::ones_like(&up_s)?;
        assert_same_grads(
            &loss(&f_spikes, &f_mem)?,
            &loss(&spikes, &mem)?,
            &ones,
            &refs,
            &format!("{reset:?}"),
        );
    }
    Ok(())
}

#[test]
fn mismatched_weights_are_refused_with_their_shapes() -> Result<()> {
    let x = rand(&[3, 2, 5], 1);
    let (_, w) = weights(4, 5, 3, 1);
    let err = recurrent(RecurrentCell::Gru, &x, &w)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("w_hh [12, 3]") || err.contains("9 = 3 x 3"),
        "{err}"
    );
    Ok(())
}

#[test]
fn the_rleaky_layer_gives_the_plain_spikes_membranes_and_gradients() -> Result<()> {
    use crate::nn::neuron::NeuronDynamics;
    use crate::nn::neuron::{Feedback, LeakyParams, RLeaky};
    let (t, b, n) = (8, 10, 6);
    let current = Var::from_tensor(&(rand(&[t, b, n], 6) * 1.2)?)?;
    let weight = Var::from_tensor(&(rand(&[n, n], 7) * 0.8)?)?;
    let bias = Var::from_tensor(&(rand(&[n], 8) * 0.3)?)?;
    let (up_s, up_m) = (rand(&[t, b, n], 9), rand(&[t, b, n], 10));
    for reset in [Reset::Subtract, Reset::Zero, Reset::None] {
        let surrogate = Surrogate::Atan { alpha: 2.0 };
        let (beta, threshold) = (0.9, 0.5);
        let params = LeakyParams {
            beta: Tensor::new(beta as f32, current.device())?,
            threshold: Tensor::new(threshold as f32, current.device())?,
            reset,
            surrogate,
        };
        let feedback = Feedback::linear(weight.as_tensor(), bias.as_tensor().clone())?;
        let (spikes, mem) = RLeaky::new(feedback, params).scan_zero(&current)?;
        let consts = crate::nn::fused::RLeakyConsts {
            beta,
            threshold,
            reset,
            surrogate,
        };
        let (f_spikes, f_mem) = crate::nn::fused::rleaky(consts, &current, &weight, &bias)?;
        let what = format!("{reset:?}");
        assert_same_spiking_layer((&f_spikes, &f_mem), (&spikes, &mem), &what)?;
        let loss = |s: &Tensor, m: &Tensor| -> Result<Tensor> { (s * &up_s)? + (m * &up_m)? };
        let vars = [
            ("current", current.as_tensor()),
            ("weight", weight.as_tensor()),
            ("bias", bias.as_tensor()),
        ];
        let ones = Tensor::ones_like(&up_s)?;
        let (fused, plain) = (loss(&f_spikes, &f_mem)?, loss(&spikes, &mem)?);
        assert_same_grads(&fused, &plain, &ones, &vars, &format!("{reset:?}"));
    }
    Ok(())
}
