use super::*;

fn val(i: usize, s: f32) -> f32 {
    ((i * 37 % 23) as f32 / 23.0 - 0.5) * s
}

struct Case {
    d: Dims,
    x: Vec<f32>,
    w_ih: Vec<f32>,
    w_hh: Vec<f32>,
    b_ih: Vec<f32>,
    b_hh: Vec<f32>,
}

impl Case {
    fn new(cell: Cell, d: Dims) -> Self {
        let gh = cell.gates() * d.hidden;
        let v = |len: usize, off: usize, s: f32| (0..len).map(|i| val(i + off, s)).collect();
        Case {
            d,
            x: v(d.steps * d.batch * d.input, 0, 2.0),
            w_ih: v(gh * d.input, 7, 1.2),
            w_hh: v(gh * d.hidden, 13, 1.4),
            b_ih: v(gh, 3, 0.6),
            b_hh: v(gh, 5, 0.6),
        }
    }

    fn weights(&self) -> Weights<'_> {
        Weights {
            w_ih: &self.w_ih,
            w_hh: &self.w_hh,
            b_ih: &self.b_ih,
            b_hh: &self.b_hh,
        }
    }
}

fn sig(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// The cells written out step by step in f64: (outputs, states).
fn naive(cell: Cell, c: &Case) -> (Vec<f64>, Vec<f64>) {
    let Dims {
        steps,
        batch,
        input: k,
        hidden: n,
    } = c.d;
    let gh = cell.gates() * n;
    let f = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
    let (x, wi, wh, bi, bh) = (f(&c.x), f(&c.w_ih), f(&c.w_hh), f(&c.b_ih), f(&c.b_hh));
    let mut outs = Vec::new();
    for r in 0..batch {
        let (mut h, mut cs) = (vec![0.0; n], vec![0.0; n]);
        let mut per_t = Vec::new();
        for t in 0..steps {
            let xr = &x[(t * batch + r) * k..][..k];
            let xp: Vec<f64> = (0..gh)
                .map(|g| bi[g] + (0..k).map(|p| wi[g * k + p] * xr[p]).sum::<f64>())
                .collect();
            let hp: Vec<f64> = (0..gh)
                .map(|g| bh[g] + (0..n).map(|p| wh[g * n + p] * h[p]).sum::<f64>())
                .collect();
            let mut out = vec![0.0; n];
            match cell {
                Cell::Tanh | Cell::Relu => {
                    for j in 0..n {
                        let a = xp[j] + hp[j];
                        h[j] = if cell == Cell::Tanh {
                            a.tanh()
                        } else {
                            a.max(0.0)
                        };
                    }
                    out.clone_from(&h);
                }
                Cell::Lstm | Cell::Slstm(_) => {
                    for j in 0..n {
                        let a = |g: usize| xp[g * n + j] + hp[g * n + j];
                        let (i, fg, gg, o) = (sig(a(0)), sig(a(1)), a(2).tanh(), sig(a(3)));
                        cs[j] = fg * cs[j] + i * gg;
                        let hn = o * cs[j].tanh();
                        if let Cell::Slstm(s) = cell {
                            let th = f64::from(s.threshold);
                            let fired = if h[j] - th > 0.0 { 1.0 } else { 0.0 };
                            h[j] = match s.reset {
                                Reset::Subtract => hn - fired * th,
                                Reset::Zero => (1.0 - fired) * hn,
                                Reset::None => hn,
                            };
                            out[j] = if h[j] - th > 0.0 { 1.0 } else { 0.0 };
                        } else {
                            h[j] = hn;
                            out[j] = hn;
                        }
                    }
                }
                Cell::Gru => {
                    for j in 0..n {
                        let rg = sig(xp[j] + hp[j]);
                        let z = sig(xp[n + j] + hp[n + j]);
                        let nn = (xp[2 * n + j] + rg * hp[2 * n + j]).tanh();
                        h[j] = (1.0 - z) * nn + z * h[j];
                    }
                    out.clone_from(&h);
                }
            }
            per_t.push((out, h.clone()));
        }
        outs.push(per_t);
    }
    // to time-first
    let mut o = vec![0.0; steps * batch * n];
    let mut s = vec![0.0; steps * batch * n];
    for (r, per_t) in outs.iter().enumerate() {
        for (t, (out, st)) in per_t.iter().enumerate() {
            o[(t * batch + r) * n..][..n].copy_from_slice(out);
            s[(t * batch + r) * n..][..n].copy_from_slice(st);
        }
    }
    (o, s)
}

const SPIKING: Cell = Cell::Slstm(SpikeSpec {
    threshold: 0.1,
    reset: Reset::Subtract,
    surrogate: Surrogate::Atan { alpha: 2.0 },
});

fn all_cells() -> [Cell; 5] {
    [Cell::Tanh, Cell::Relu, Cell::Lstm, Cell::Gru, SPIKING]
}

fn run(cell: Cell, c: &Case) -> Result<(Vec<f32>, Trace), String> {
    let mut out = vec![0f32; c.d.steps * c.d.batch * c.d.hidden];
    let mut trace = Trace::default();
    forward(cell, c.d, &c.x, c.weights(), &mut out, Some(&mut trace))?;
    Ok((out, trace))
}

#[test]
fn forward_matches_the_cells_written_out() -> Result<(), String> {
    let d = Dims {
        steps: 5,
        batch: 13,
        input: 4,
        hidden: 7,
    };
    for cell in all_cells() {
        let c = Case::new(cell, d);
        let (out, trace) = run(cell, &c)?;
        let (want_out, want_states) = naive(cell, &c);
        for (i, (g, w)) in trace.states.iter().zip(&want_states).enumerate() {
            assert!(
                (f64::from(*g) - w).abs() < 2e-5,
                "{cell:?} state {i}: {g} vs {w}"
            );
        }
        for (g, w) in out.iter().zip(&want_out) {
            assert!(
                (f64::from(*g) - w).abs() < 2e-5,
                "{cell:?} output: {g} vs {w}"
            );
        }
        // without a trace: the same outputs
        let mut bare = vec![0f32; out.len()];
        forward(cell, d, &c.x, c.weights(), &mut bare, None)?;
        assert_eq!(bare, out, "{cell:?}");
    }
    Ok(())
}

fn grads_of(cell: Cell, c: &Case, w_out: &[f32]) -> Result<Vec<Vec<f32>>, String> {
    let gh = cell.gates() * c.d.hidden;
    let (_, trace) = run(cell, c)?;
    let mut g = vec![
        vec![0f32; c.x.len()],
        vec![0f32; gh * c.d.input],
        vec![0f32; gh * c.d.hidden],
        vec![0f32; gh],
        vec![0f32; gh],
    ];
    let [gx, gi, gh_, bi, bh] = &mut g[..] else {
        return Err("five".into());
    };
    backward(
        cell,
        c.d,
        &c.x,
        c.weights(),
        &trace,
        OutGrads {
            out: w_out,
            mem: None,
        },
        Grads {
            x: Some(gx),
            w_ih: gi,
            w_hh: gh_,
            b_ih: bi,
            b_hh: bh,
        },
    )?;
    Ok(g)
}

/// Loss = Σ w·out; gradients by central differences on the f32 forward.
#[test]
fn backward_matches_finite_differences() -> Result<(), String> {
    let d = Dims {
        steps: 4,
        batch: 3,
        input: 3,
        hidden: 4,
    };
    for cell in [Cell::Tanh, Cell::Relu, Cell::Lstm, Cell::Gru] {
        let c = Case::new(cell, d);
        let w_out: Vec<f32> = (0..d.steps * d.batch * d.hidden)
            .map(|i| val(i + 9, 1.0))
            .collect();
        let grads = grads_of(cell, &c, &w_out)?;
        let loss = |c: &Case| -> Result<f64, String> {
            let (out, _) = run(cell, c)?;
            Ok(out.iter().zip(&w_out).map(|(a, b)| f64::from(a * b)).sum())
        };
        let eps = 1e-2f32;
        for (which, g) in grads.iter().enumerate() {
            for (i, &gv) in g.iter().enumerate() {
                let mut up = Case::new(cell, d);
                let mut down = Case::new(cell, d);
                for (cc, e) in [(&mut up, eps), (&mut down, -eps)] {
                    let v = match which {
                        0 => &mut cc.x,
                        1 => &mut cc.w_ih,
                        2 => &mut cc.w_hh,
                        3 => &mut cc.b_ih,
                        _ => &mut cc.b_hh,
                    };
                    v[i] += e;
                }
                let fd = (loss(&up)? - loss(&down)?) / (2.0 * f64::from(eps));
                assert!(
                    (f64::from(gv) - fd).abs() < 3e-3,
                    "{cell:?} grad {which}[{i}]: {gv} vs {fd}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn results_do_not_depend_on_the_thread_count() -> Result<(), String> {
    let d = Dims {
        steps: 6,
        batch: 50,
        input: 5,
        hidden: 9,
    };
    for cell in all_cells() {
        let c = Case::new(cell, d);
        let w_out: Vec<f32> = (0..d.steps * d.batch * d.hidden)
            .map(|i| val(i + 2, 1.0))
            .collect();
        let with = |threads: usize| -> Result<(Vec<f32>, Vec<Vec<f32>>), String> {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|e| e.to_string())?;
            pool.install(|| Ok((run(cell, &c)?.0, grads_of(cell, &c, &w_out)?)))
        };
        assert_eq!(with(1)?, with(4)?, "{cell:?}");
    }
    Ok(())
}

#[test]
fn bad_lengths_are_errors() {
    let d = Dims {
        steps: 2,
        batch: 2,
        input: 3,
        hidden: 2,
    };
    let c = Case::new(Cell::Lstm, d);
    let mut out = vec![0f32; 8];
    assert!(forward(Cell::Gru, d, &c.x, c.weights(), &mut out, None).is_err());
    assert!(forward(Cell::Lstm, d, &c.x, c.weights(), &mut out[..7], None).is_err());
    let empty = Dims { steps: 0, ..d };
    assert!(forward(Cell::Lstm, empty, &[], c.weights(), &mut [], None).is_err());
}
