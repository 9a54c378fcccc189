//! GFLOP/s of the fused recurrent layers on the row-wise MNIST shapes (T 28, B 128, H 256):
//! `cargo run --release -p autoresearch-kernels --example rnn_rate`.

use std::time::Instant;

use autoresearch_kernels::rnn::{backward, forward, Cell, Dims, Grads, OutGrads, Trace, Weights};

fn main() -> Result<(), String> {
    for (cell, name) in [
        (Cell::Lstm, "lstm"),
        (Cell::Gru, "gru"),
        (Cell::Tanh, "rnn"),
    ] {
        for k in [28, 256] {
            let d = Dims {
                steps: 28,
                batch: 128,
                input: k,
                hidden: 256,
            };
            let gh = cell.gates() * d.hidden;
            let v = |n: usize| {
                (0..n)
                    .map(|i| ((i * 37 % 23) as f32 / 23.0 - 0.5) * 0.1)
                    .collect::<Vec<f32>>()
            };
            let (x, w_ih, w_hh, b) = (v(28 * 128 * k), v(gh * k), v(gh * 256), v(gh));
            let w = Weights {
                w_ih: &w_ih,
                w_hh: &w_hh,
                b_ih: &b,
                b_hh: &b,
            };
            let mut out = vec![0f32; 28 * 128 * 256];
            let flops = 2.0 * (28 * 128 * gh * (k + 256)) as f64;
            let reps = 20;
            let t0 = Instant::now();
            for _ in 0..reps {
                forward(cell, d, &x, w, &mut out, None)?;
            }
            let inf = flops * reps as f64 / t0.elapsed().as_secs_f64() / 1e9;
            let mut trace = Trace::default();
            let (mut gx, mut gi, mut gh_, mut gb1, mut gb2) =
                (v(x.len()), v(w_ih.len()), v(w_hh.len()), v(gh), v(gh));
            let t0 = Instant::now();
            for _ in 0..reps {
                forward(cell, d, &x, w, &mut out, Some(&mut trace))?;
            }
            let fwd_s = t0.elapsed().as_secs_f64() / reps as f64;
            let t0 = Instant::now();
            for _ in 0..reps {
                let g = Grads {
                    x: Some(&mut gx),
                    w_ih: &mut gi,
                    w_hh: &mut gh_,
                    b_ih: &mut gb1,
                    b_hh: &mut gb2,
                };
                backward(
                    cell,
                    d,
                    &x,
                    w,
                    &trace,
                    OutGrads {
                        out: &out,
                        mem: None,
                    },
                    g,
                )?;
            }
            let bwd_s = t0.elapsed().as_secs_f64() / reps as f64;
            println!(
                "{name} K={k}: inference {inf:.1} GFLOP/s; training forward {:.2} ms ({:.1} GFLOP/s), backward {:.2} ms ({:.1} GFLOP/s)",
                fwd_s * 1e3, flops / fwd_s / 1e9, bwd_s * 1e3, 2.0 * flops / bwd_s / 1e9
            );
        }
    }
    Ok(())
}
