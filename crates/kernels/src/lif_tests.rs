//! Tests of the `lif` kernels against naive reference loops.

use super::*;

/// Small deterministic pseudo-random values in `[lo, lo + span)`, multiples of 1/1024.
fn values(n: usize, seed: u64, lo: f32, span: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let r = crate::encode::random_bits(seed, i as u64) >> 40; // 24 bits
            lo + ((r as f32 / (1u64 << 24) as f32) * span * 1024.0).floor() / 1024.0
        })
        .collect()
}

fn param(p: &[f32], n: usize) -> f32 {
    if p.len() == 1 {
        p[0]
    } else {
        p[n]
    }
}

/// Membranes `[T, M]` by the textbook loop.
fn naive_mem(l: &Lif<'_>) -> Vec<f32> {
    let m = l.current.len() / l.steps;
    let mut mem = vec![0.0f32; l.current.len()];
    for c in 0..m {
        let n = c % l.neurons;
        let (b, th) = (param(l.beta, n).clamp(0.0, 1.0), param(l.threshold, n));
        let mut prev = 0.0f32;
        for t in 0..l.steps {
            let i = l.current[t * m + c];
            let fired = if prev - th > 0.0 { 1.0 } else { 0.0 };
            let u = match l.reset {
                Reset::Subtract => (b * prev + i) - fired * th,
                Reset::Zero => b * ((1.0 - fired) * prev) + i,
                Reset::None => b * prev + i,
            };
            mem[t * m + c] = u;
            prev = u;
        }
    }
    mem
}

/// (dI, dβ, dθ) by the textbook reverse loop in f64.
fn naive_grads(
    l: &Lif<'_>,
    sg: Surrogate,
    output: Output,
    go: &[f32],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let m = l.current.len() / l.steps;
    let mem = naive_mem(l);
    let mut gi = vec![0.0f64; mem.len()];
    let (mut gb, mut gt) = (vec![0.0f64; l.beta.len()], vec![0.0f64; l.threshold.len()]);
    for c in 0..m {
        let n = c % l.neurons;
        let braw = param(l.beta, n);
        let (b, th) = (braw.clamp(0.0, 1.0) as f64, param(l.threshold, n));
        let factor = if braw > 0.0 && braw < 1.0 {
            1.0
        } else if braw == 0.0 || braw == 1.0 {
            0.5
        } else {
            0.0
        };
        let mut carry = 0.0f64;
        for t in (0..l.steps).rev() {
            let u = mem[t * m + c];
            let prev = if t > 0 { mem[(t - 1) * m + c] } else { 0.0 };
            let s = sg.grad(u - th) as f64;
            let g_out = go[t * m + c] as f64;
            let g_spike = if output == Output::Spikes {
                g_out * s
            } else {
                0.0
            };
            let g = carry
                + if output == Output::Spikes {
                    g_spike
                } else {
                    g_out
                };
            gi[t * m + c] = g;
            let fired = if prev - th > 0.0 { 1.0 } else { 0.0 };
            let kept = if l.reset == Reset::Zero {
                (1.0 - fired) * prev as f64
            } else {
                prev as f64
            };
            gb[if l.beta.len() == 1 { 0 } else { n }] += factor * g * kept;
            let mut dth = -g_spike;
            if l.reset == Reset::Subtract {
                dth -= fired * g;
            }
            gt[if l.threshold.len() == 1 { 0 } else { n }] += dth;
            carry = if l.reset == Reset::Zero {
                b * (1.0 - fired) * g
            } else {
                b * g
            };
        }
    }
    (gi, gb, gt)
}

fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

#[test]
fn forward_is_bit_identical_to_the_textbook_loop_and_backward_matches_it() -> Result<(), String> {
    let surrogates = [
        Surrogate::Atan { alpha: 2.0 },
        Surrogate::FastSigmoid { slope: 25.0 },
        Surrogate::Triangle { width: 0.5 },
        Surrogate::StraightThrough,
    ];
    // odd sizes; M spans several blocks and threads, N does not divide the blocks
    for (steps, batch, neurons) in [(7, 3, 5), (13, 37, 131), (4, 1, 1)] {
        let m = batch * neurons;
        let current = values(steps * m, 1, -0.5, 1.5);
        let go = values(steps * m, 2, -1.0, 2.0);
        let betas = [values(neurons, 3, 0.5, 0.6), vec![0.9], vec![1.0]]; // > 1 clamps
        let thetas = [values(neurons, 4, 0.3, 1.0), vec![0.75]];
        for reset in [Reset::Subtract, Reset::Zero, Reset::None] {
            for (beta, threshold) in betas.iter().zip(thetas.iter().cycle()) {
                let l = Lif {
                    current: &current,
                    steps,
                    neurons,
                    beta,
                    threshold,
                    reset,
                };
                let mem = naive_mem(&l);
                let mut out = vec![0.0; current.len()];
                l.forward(Output::Membrane, &mut out)?;
                assert_eq!(out, mem, "{reset:?} membrane");
                l.forward(Output::Spikes, &mut out)?;
                for (c, o) in out.iter().enumerate() {
                    let th = param(threshold, c % m % neurons);
                    assert_eq!(*o, if mem[c] - th > 0.0 { 1.0 } else { 0.0 });
                }
                for (sg, output) in surrogates
                    .iter()
                    .zip([Output::Spikes, Output::Membrane].iter().cycle())
                {
                    let (wi, wb, wt) = naive_grads(&l, *sg, *output, &go);
                    let mut gi = vec![f32::NAN; current.len()];
                    let (mut gb, mut gt) = (vec![0.0; beta.len()], vec![0.0; threshold.len()]);
                    let grads = LifGrads {
                        current: &mut gi,
                        beta: Some(&mut gb),
                        threshold: Some(&mut gt),
                    };
                    l.backward(*sg, *output, &go, grads)?;
                    let what = format!("{reset:?} {sg:?} {output:?} {steps}x{batch}x{neurons}");
                    assert_close(&format!("dI {what}"), &gi, &wi);
                    assert_close(&format!("dbeta {what}"), &gb, &wb);
                    assert_close(&format!("dtheta {what}"), &gt, &wt);
                    // only the current's gradient asked for: same values
                    let mut gi2 = vec![0.0; current.len()];
                    let grads = LifGrads {
                        current: &mut gi2,
                        beta: None,
                        threshold: None,
                    };
                    l.backward(*sg, *output, &go, grads)?;
                    assert_eq!(gi, gi2);
                }
            }
        }
    }
    Ok(())
}

#[test]
fn results_do_not_depend_on_the_number_of_threads() -> Result<(), String> {
    let (steps, neurons, m) = (9, 300, 300 * 29);
    let current = values(steps * m, 5, -0.5, 1.5);
    let go = values(steps * m, 6, -1.0, 2.0);
    let beta = values(neurons, 7, 0.5, 0.5);
    let l = Lif {
        current: &current,
        steps,
        neurons,
        beta: &beta,
        threshold: &[1.0],
        reset: Reset::Subtract,
    };
    type Run = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);
    let run = |threads: usize| -> Result<Run, String> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| e.to_string())?;
        pool.install(|| {
            let mut out = vec![0.0; current.len()];
            l.forward(Output::Spikes, &mut out)?;
            let mut gi = vec![0.0; current.len()];
            let (mut gb, mut gt) = (vec![0.0; neurons], vec![0.0; 1]);
            let grads = LifGrads {
                current: &mut gi,
                beta: Some(&mut gb),
                threshold: Some(&mut gt),
            };
            l.backward(Surrogate::Atan { alpha: 2.0 }, Output::Spikes, &go, grads)?;
            Ok((out, gi, gb, gt))
        })
    };
    let one = run(1)?;
    assert_eq!(one, run(3)?);
    assert_eq!(one, run(4)?);
    Ok(())
}

#[test]
fn bad_shapes_are_errors() {
    let current = vec![0.0; 12];
    let l = Lif {
        current: &current,
        steps: 5,
        neurons: 2,
        beta: &[0.9],
        threshold: &[1.0],
        reset: Reset::Zero,
    };
    assert!(l.forward(Output::Spikes, &mut [0.0; 12]).is_err());
    let l = Lif {
        steps: 3,
        beta: &[0.9, 0.9, 0.9],
        ..l
    };
    assert!(l.forward(Output::Spikes, &mut [0.0; 12]).is_err());
    let l = Lif { beta: &[0.9], ..l };
    assert!(l.forward(Output::Spikes, &mut [0.0; 11]).is_err());
    assert!(l.forward(Output::Spikes, &mut [0.0; 12]).is_ok());
}
