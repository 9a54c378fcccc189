//! Cells against PyTorch's formulas written out by hand, and gradients against finite
//! differences.

use candle_core::{DType, Device, Result, Tensor};

use super::*;
use crate::config::{CellKind, RecurrentStack};
use crate::nn::SeededVarMap;

fn sig(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `[rows, cols]` f64 weights from row-major values.
fn mat(v: &[f64], rows: usize, cols: usize) -> Result<Tensor> {
    Tensor::from_vec(v.to_vec(), (rows, cols), &Device::Cpu)
}

fn vec1(v: &[f64]) -> Result<Tensor> {
    Tensor::from_vec(v.to_vec(), v.len(), &Device::Cpu)
}

/// Weights for `gates` gates of one input and one hidden unit: `w_ih`, `w_hh`, `b_ih`, `b_hh`
/// per gate.
fn weights(w_ih: &[f64], w_hh: &[f64], b_ih: &[f64], b_hh: &[f64]) -> Result<CellWeights> {
    let g = w_ih.len();
    CellWeights::from_tensors(mat(w_ih, g, 1)?, mat(w_hh, g, 1)?, vec1(b_ih)?, vec1(b_hh)?)
}

/// A sequence of scalar inputs as `[T, 1, 1]`.
fn seq(xs: &[f64]) -> Result<Tensor> {
    Tensor::from_vec(xs.to_vec(), (xs.len(), 1, 1), &Device::Cpu)
}

fn close(got: &Tensor, want: &[f64]) -> Result<()> {
    let got: Vec<f64> = got.flatten_all()?.to_vec1()?;
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "got {got:?}, want {want:?}");
    }
    Ok(())
}

const XS: [f64; 3] = [1.0, -2.0, 0.5];

#[test]
fn rnn_matches_the_elman_formula() -> Result<()> {
    let cell = Rnn {
        weights: weights(&[0.5], &[-0.3], &[0.1], &[0.2])?,
    };
    // h1 = tanh(0.5·1 + 0.1 + 0.2) = tanh(0.8); h_t = tanh(0.5·x + 0.1 - 0.3·h + 0.2)
    let mut h = 0.0;
    let want: Vec<f64> = XS
        .iter()
        .map(|x| {
            h = (0.5 * x + 0.1 - 0.3 * h + 0.2f64).tanh();
            h
        })
        .collect();
    assert!((want[0] - 0.8f64.tanh()).abs() < 1e-15);
    let (out, last) = cell.seq(&seq(&XS)?)?;
    close(&out, &want)?;
    close(&last, &want[2..])
}

#[test]
fn lstm_matches_pytorch_gate_order_i_f_g_o() -> Result<()> {
    // one unit, so the four rows are the gates i, f, g, o in PyTorch's order
    let (wi, wh) = ([0.3, -0.4, 0.8, 0.6], [0.2, 0.7, -0.5, 0.1]);
    let (bi, bh) = ([0.05, 0.3, -0.1, 0.2], [0.1, -0.2, 0.05, 0.0]);
    let cell = Lstm {
        weights: weights(&wi, &wh, &bi, &bh)?,
    };
    let (mut h, mut c) = (0.0, 0.0);
    let mut want_h = vec![];
    for x in XS {
        let pre = |k: usize| wi[k] * x + bi[k] + wh[k] * h + bh[k];
        let (i, f, g, o) = (sig(pre(0)), sig(pre(1)), pre(2).tanh(), sig(pre(3)));
        c = f * c + i * g;
        h = o * f64::tanh(c);
        want_h.push(h);
    }
    let (out, last) = cell.seq(&seq(&XS)?)?;
    close(&out, &want_h)?;
    close(&last.h, &[h])?;
    close(&last.c, &[c])
}

#[test]
fn gru_applies_the_reset_gate_to_the_hidden_projection_with_its_bias() -> Result<()> {
    // rows r, z, n; b_hn = 0.4 sits inside r·(W_hn h + b_hn)
    let (wi, wh) = ([0.3, -0.6, 0.9], [0.5, 0.2, -0.7]);
    let (bi, bh) = ([0.1, 0.2, -0.3], [-0.1, 0.05, 0.4]);
    let cell = Gru {
        weights: weights(&wi, &wh, &bi, &bh)?,
    };
    let mut h: f64 = 0.0;
    let mut want = vec![];
    for x in XS {
        let r = sig(wi[0] * x + bi[0] + wh[0] * h + bh[0]);
        let z = sig(wi[1] * x + bi[1] + wh[1] * h + bh[1]);
        let n = (wi[2] * x + bi[2] + r * (wh[2] * h + bh[2])).tanh();
        h = (1.0 - z) * n + z * h;
        want.push(h);
    }
    let (out, last) = cell.seq(&seq(&XS)?)?;
    close(&out, &want)?;
    close(&last, &[h])
}

#[test]
fn two_unit_lstm_splits_gates_by_blocks_of_hidden_units() -> Result<()> {
    // H = 2, in = 1: rows 0-1 are i, 2-3 f, 4-5 g, 6-7 o; W_hh = 0 so units are independent
    let wi: Vec<f64> = (0..8).map(|k| 0.1 * k as f64 - 0.35).collect();
    let cell = Lstm {
        weights: CellWeights::from_tensors(
            mat(&wi, 8, 1)?,
            Tensor::zeros((8, 2), DType::F64, &Device::Cpu)?,
            Tensor::zeros(8, DType::F64, &Device::Cpu)?,
            Tensor::zeros(8, DType::F64, &Device::Cpu)?,
        )?,
    };
    let x = 1.5;
    let want: Vec<f64> = (0..2)
        .map(|u| {
            let c = sig(wi[u] * x) * (wi[4 + u] * x).tanh();
            sig(wi[6 + u] * x) * c.tanh()
        })
        .collect();
    let (out, _) = cell.seq(&seq(&[x])?)?;
    close(&out, &want)
}

#[test]
fn init_uses_pytorch_names_and_bounds() -> Result<()> {
    let vars = SeededVarMap::new(3);
    let vb = vars.var_builder(DType::F32, &Device::Cpu);
    let cfg = RecurrentStack {
        cell: CellKind::Gru,
        hidden: 16,
        layers: 2,
        dropout: 0.0,
    };
    Stack::from_config(&cfg, 5, "model.rnn", &vb.pp("rnn"))?;
    let named = vars.named_vars()?;
    let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "rnn.l0.bias_hh",
            "rnn.l0.bias_ih",
            "rnn.l0.weight_hh",
            "rnn.l0.weight_ih",
            "rnn.l1.bias_hh",
            "rnn.l1.bias_ih",
            "rnn.l1.weight_hh",
            "rnn.l1.weight_ih"
        ]
    );
    for (name, var) in &named {
        let v: Vec<f32> = var.as_tensor().flatten_all()?.to_vec1()?;
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        // U(-1/√16, 1/√16), and spread over most of it
        assert!(max <= 0.25 && max > 0.2, "{name}: max |w| {max}");
    }
    assert_eq!(named[3].1.dims(), &[48, 5]);
    let empty = RecurrentStack { layers: 0, ..cfg };
    let err = Stack::from_config(&empty, 5, "model.rnn", &vb).err();
    assert!(format!("{err:?}").contains("model.rnn"), "{err:?}");
    Ok(())
}

/// Largest |central difference - autograd| over every parameter of a 2-layer stack of `kind`.
fn stack_gradient_error(kind: CellKind) -> Result<f64> {
    let dev = Device::Cpu;
    let vars = SeededVarMap::new(11);
    let cfg = RecurrentStack {
        cell: kind,
        hidden: 3,
        layers: 2,
        dropout: 0.0,
    };
    let stack = Stack::from_config(&cfg, 2, "rnn", &vars.var_builder(DType::F64, &dev))?;
    let x = Tensor::from_vec(
        (0..4 * 2 * 2)
            .map(|i| ((i * 7 % 11) as f64) / 5.0 - 1.0)
            .collect(),
        (4, 2, 2),
        &dev,
    )?;
    let mix = Tensor::from_vec(
        (0..4 * 2 * 3).map(|i| (i % 5) as f64 - 2.0).collect(),
        (4, 2, 3),
        &dev,
    )?;
    // touches every output and, squared, the final hidden state
    let loss = || -> Result<Tensor> {
        let (out, h) = stack.forward(&x)?;
        (out * &mix)?.sum_all()? + h.sqr()?.sum_all()?
    };
    let grads = loss()?.backward()?;
    let mut worst = 0f64;
    for (name, var) in vars.named_vars()? {
        let Some(g) = grads.get(&var) else {
            candle_core::bail!("no gradient for {name}")
        };
        let analytic: Vec<f64> = g.flatten_all()?.to_vec1()?;
        let base: Vec<f64> = var.as_tensor().flatten_all()?.to_vec1()?;
        for i in 0..base.len() {
            let eval = |delta: f64| -> Result<f64> {
                let mut p = base.clone();
                p[i] += delta;
                var.set(&Tensor::from_vec(p, var.shape(), &dev)?)?;
                loss()?.to_scalar::<f64>()
            };
            let eps = 1e-6;
            let fd = (eval(eps)? - eval(-eps)?) / (2.0 * eps);
            var.set(&Tensor::from_vec(base.clone(), var.shape(), &dev)?)?;
            worst = worst.max((fd - analytic[i]).abs());
        }
    }
    Ok(worst)
}

#[test]
fn stack_gradients_match_finite_differences_for_every_cell() -> Result<()> {
    for kind in [CellKind::Rnn, CellKind::Lstm, CellKind::Gru] {
        let err = stack_gradient_error(kind)?;
        assert!(err < 1e-7, "{kind:?}: max error {err}");
    }
    Ok(())
}
