use super::frame::step;
use super::*;
use crate::encode::random_bits;

/// Values in `[lo, lo + span)` on a grid of `1/q` (`lo` a multiple of `1/q`, so sums of
/// products are exact in f32 in any order).
fn grid(n: usize, seed: u64, lo: f32, span: f32, q: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let r = (random_bits(seed, i as u64) >> 40) as f32 / (1u64 << 24) as f32;
            lo + (r * span * q).floor() / q
        })
        .collect()
}

/// Binary spikes with probability about `p`.
fn spikes(n: usize, seed: u64, p: f32) -> Vec<f32> {
    grid(n, seed, 0.0, 1.0, 1024.0)
        .into_iter()
        .map(|v| if v < p { 1.0 } else { 0.0 })
        .collect()
}

struct Case {
    steps: usize,
    d: ConvDims,
    pool: usize,
    beta: f32,
    thr: f32,
    reset: Reset,
}

/// The naive block: dense conv `[T, B, O, OH, OW]`, the LIF scan, first-max pooling; returns
/// (membranes, pooled spikes, argmax positions per pooled output).
fn reference(c: &Case, x: &[f32], w: &[f32], bias: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<usize>) {
    let d = c.d;
    let (oh, ow) = d.out_hw().unwrap_or((0, 0));
    let (ph, pw) = (oh / c.pool, ow / c.pool);
    let (frames, n) = (c.steps * d.batch, d.out_channels * oh * ow);
    let mut cur = vec![0.0f32; frames * n];
    for f in 0..frames {
        for o in 0..d.out_channels {
            for i in 0..oh {
                for j in 0..ow {
                    let mut s = bias[o];
                    for ch in 0..d.channels {
                        for ki in 0..d.kernel {
                            for kj in 0..d.kernel {
                                let (ii, jj) = (
                                    (i + ki) as isize - d.padding as isize,
                                    (j + kj) as isize - d.padding as isize,
                                );
                                if ii < 0
                                    || jj < 0
                                    || ii >= d.height as isize
                                    || jj >= d.width as isize
                                {
                                    continue;
                                }
                                let xv = x[((f * d.channels + ch) * d.height + ii as usize)
                                    * d.width
                                    + jj as usize];
                                s +=
                                    xv * w[((o * d.channels + ch) * d.kernel + ki) * d.kernel + kj];
                            }
                        }
                    }
                    cur[f * n + (o * oh + i) * ow + j] = s;
                }
            }
        }
    }
    let beta = c.beta.clamp(0.0, 1.0);
    let m = d.batch * n;
    let mut mem = vec![0.0f32; frames * n];
    for t in 0..c.steps {
        for q in 0..m {
            let prev = if t > 0 { mem[(t - 1) * m + q] } else { 0.0 };
            let cv = cur[t * m + q];
            mem[t * m + q] = match c.reset {
                Reset::Subtract => step::<SUBTRACT>(prev, cv, beta, c.thr),
                Reset::Zero => step::<ZERO>(prev, cv, beta, c.thr),
                Reset::None => step::<NONE>(prev, cv, beta, c.thr),
            };
        }
    }
    let mut pooled = vec![0.0f32; frames * d.out_channels * ph * pw];
    let mut arg = vec![0usize; pooled.len()];
    for f in 0..frames {
        for o in 0..d.out_channels {
            for wi in 0..ph {
                for wj in 0..pw {
                    let (mut best, mut at) = (-1.0f32, 0);
                    for di in 0..c.pool {
                        for dj in 0..c.pool {
                            let q = f * n + (o * oh + wi * c.pool + di) * ow + wj * c.pool + dj;
                            let s = heaviside(mem[q] - c.thr);
                            if s > best {
                                (best, at) = (s, q);
                            }
                        }
                    }
                    let p = ((f * d.out_channels + o) * ph + wi) * pw + wj;
                    (pooled[p], arg[p]) = (best, at);
                }
            }
        }
    }
    (mem, pooled, arg)
}

/// Reference gradients (dx, dw, db) for pooled-output gradient `gp`.
#[allow(clippy::too_many_arguments)]
fn reference_grads(
    c: &Case,
    x: &[f32],
    w: &[f32],
    mem: &[f32],
    arg: &[usize],
    gp: &[f32],
    sg: Surrogate,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let d = c.d;
    let (oh, ow) = d.out_hw().unwrap_or((0, 0));
    let m = d.batch * d.out_channels * oh * ow;
    let mut gs = vec![0.0f32; c.steps * m];
    for (p, &a) in arg.iter().enumerate() {
        gs[a] += gp[p];
    }
    let beta = c.beta.clamp(0.0, 1.0);
    let mut gi = vec![0.0f64; c.steps * m];
    let mut carry = vec![0.0f32; m];
    for t in (0..c.steps).rev() {
        for q in 0..m {
            let u = mem[t * m + q];
            let prev = if t > 0 { mem[(t - 1) * m + q] } else { 0.0 };
            let g = gs[t * m + q] * sg.grad(u - c.thr) + carry[q];
            let fired = heaviside(prev - c.thr);
            carry[q] = if c.reset == Reset::Zero {
                beta * (1.0 - fired) * g
            } else {
                beta * g
            };
            gi[t * m + q] = g as f64;
        }
    }
    let mut dx = vec![0.0f64; x.len()];
    let mut dw = vec![0.0f64; w.len()];
    let mut db = vec![0.0f64; d.out_channels];
    for f in 0..c.steps * d.batch {
        for o in 0..d.out_channels {
            for i in 0..oh {
                for j in 0..ow {
                    let g = gi[((f * d.out_channels + o) * oh + i) * ow + j];
                    db[o] += g;
                    for ch in 0..d.channels {
                        for ki in 0..d.kernel {
                            for kj in 0..d.kernel {
                                let (ii, jj) = (
                                    (i + ki) as isize - d.padding as isize,
                                    (j + kj) as isize - d.padding as isize,
                                );
                                if ii < 0
                                    || jj < 0
                                    || ii >= d.height as isize
                                    || jj >= d.width as isize
                                {
                                    continue;
                                }
                                let xi = ((f * d.channels + ch) * d.height + ii as usize) * d.width
                                    + jj as usize;
                                let wi = ((o * d.channels + ch) * d.kernel + ki) * d.kernel + kj;
                                dw[wi] += g * x[xi] as f64;
                                dx[xi] += g * w[wi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dw, db)
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    let scale = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (*g as f64 - w).abs() <= 1e-4 * scale,
            "{what}[{i}]: {g} vs {w} (scale {scale})"
        );
    }
}

fn check(c: &Case, binary: bool, seed: u64) {
    let d = c.d;
    let xlen = c.steps * d.batch * d.channels * d.height * d.width;
    let x = if binary {
        spikes(xlen, seed, 0.3)
    } else {
        grid(xlen, seed, -0.5, 1.5, 8.0)
    };
    let w = grid(d.out_channels * d.patch(), seed + 1, -0.375, 1.0, 64.0);
    let bias = grid(d.out_channels, seed + 2, -0.125, 0.3, 64.0);
    let blk = ConvLifPool {
        x: &x,
        steps: c.steps,
        conv: d,
        w: &w,
        bias: Some(&bias),
        pool: c.pool,
        beta: c.beta,
        threshold: c.thr,
        reset: c.reset,
    };
    let (mem, pooled, arg) = reference(c, &x, &w, &bias);
    let mut out = vec![f32::NAN; pooled.len()];
    let count = blk.forward(&mut out).unwrap_or(u64::MAX);
    assert_eq!(out, pooled, "forward {:?} pool {}", c.reset, c.pool);
    let fired = mem.iter().filter(|&&u| u > c.thr).count() as u64;
    assert_eq!(count, fired);
    assert!(fired > 0 && (fired as usize) < mem.len(), "degenerate case");
    let gp = grid(pooled.len(), seed + 3, -1.0, 2.0, 1024.0);
    let surrogates = [
        Surrogate::Atan { alpha: 2.0 },
        Surrogate::FastSigmoid { slope: 25.0 },
        Surrogate::Triangle { width: 0.5 },
        Surrogate::StraightThrough,
    ];
    for sg in surrogates {
        let (rdx, rdw, rdb) = reference_grads(c, &x, &w, &mem, &arg, &gp, sg);
        let (mut dx, mut dw, mut db) = (
            vec![f32::NAN; x.len()],
            vec![0.0; w.len()],
            vec![0.0; d.out_channels],
        );
        let grads = BlockGrads {
            dx: Some(&mut dx),
            dw: &mut dw,
            db: Some(&mut db),
        };
        assert!(blk.backward(sg, &gp, grads).is_ok());
        let what = format!("{:?} {sg:?} pool {} pad {}", c.reset, c.pool, d.padding);
        assert_close(&dx, &rdx, &format!("dx {what}"));
        assert_close(&dw, &rdw, &format!("dw {what}"));
        assert_close(&db, &rdb, &format!("db {what}"));
        // without dx the parameter gradients are the same
        let mut dw2 = vec![0.0; w.len()];
        let grads = BlockGrads {
            dx: None,
            dw: &mut dw2,
            db: None,
        };
        assert!(blk.backward(sg, &gp, grads).is_ok());
        assert_eq!(dw, dw2);
        // from a saved trajectory: the same outputs and gradients
        let mut saved = vec![0.0f32; blk.trajectory_len().unwrap_or(0)];
        let mut out2 = vec![f32::NAN; pooled.len()];
        assert_eq!(blk.forward_saving(&mut out2, Some(&mut saved)), Ok(fired));
        assert_eq!(out2, pooled);
        let (mut dx3, mut dw3) = (vec![f32::NAN; x.len()], vec![0.0; w.len()]);
        let grads = BlockGrads {
            dx: Some(&mut dx3),
            dw: &mut dw3,
            db: None,
        };
        assert!(blk.backward_saved(sg, &gp, grads, Some(&mut saved)).is_ok());
        assert_eq!((dx3, dw3), (dx.clone(), dw.clone()));
    }
}

#[test]
fn block_matches_the_naive_conv_lif_pool_for_every_reset_and_surrogate() {
    // two channels: output by output; one channel (a patch of 9): input by input
    for (reset, pool, padding, binary, channels) in [
        (Reset::Subtract, 2, 0, true, 2),
        (Reset::Zero, 2, 1, true, 2),
        (Reset::None, 2, 0, false, 2),
        (Reset::Subtract, 3, 1, false, 2),
        (Reset::Zero, 1, 0, false, 2),
        (Reset::None, 1, 1, true, 2),
        (Reset::Subtract, 2, 0, true, 1),
        (Reset::Zero, 2, 1, false, 1),
        (Reset::None, 3, 1, true, 1),
    ] {
        let c = Case {
            steps: 5,
            d: ConvDims {
                batch: 3,
                channels,
                height: 9,
                width: 8,
                out_channels: 5,
                kernel: 3,
                padding,
            },
            pool,
            beta: 0.8,
            thr: 0.5,
            reset,
        };
        check(&c, binary, 7 + pool as u64);
    }
}

#[test]
fn wrong_sizes_are_errors() {
    let d = ConvDims {
        batch: 1,
        channels: 1,
        height: 4,
        width: 4,
        out_channels: 2,
        kernel: 3,
        padding: 0,
    };
    let (x, w) = (vec![0.0f32; 2 * 16], vec![0.0f32; 18]);
    let blk = ConvLifPool {
        x: &x,
        steps: 2,
        conv: d,
        w: &w,
        bias: None,
        pool: 2,
        beta: 0.9,
        threshold: 1.0,
        reset: Reset::Subtract,
    };
    let mut out = vec![0.0f32; 2 * 2];
    assert_eq!(blk.forward(&mut out), Ok(0));
    assert!(blk.forward(&mut out[..3]).is_err());
    let short = ConvLifPool { x: &x[..20], ..blk };
    assert!(short.forward(&mut out).is_err());
    let big = ConvLifPool { pool: 3, ..blk };
    assert!(big.forward(&mut out).is_err());
}
