//! Tests of the convolution kernels against a direct f64 convolution.

use super::*;

fn data(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 1009) as f32 / 504.5) - 1.0)
        .collect()
}

/// Direct convolution and its gradients in f64: `(y, dx, dw, db)`.
fn naive(x: &[f32], w: &[f32], b: &[f32], g: &[f32], relu: bool, d: ConvDims) -> [Vec<f32>; 4] {
    let (oh, ow) = d.out_hw().unwrap();
    let (c, h, wd, k, o, pad) = (
        d.channels,
        d.height,
        d.width,
        d.kernel,
        d.out_channels,
        d.padding,
    );
    let at_x = |bi: usize, ci: usize, i: isize, j: isize| -> Option<usize> {
        (i >= 0 && j >= 0 && (i as usize) < h && (j as usize) < wd)
            .then(|| ((bi * c + ci) * h + i as usize) * wd + j as usize)
    };
    let mut y = vec![0.0f32; d.batch * o * oh * ow];
    let mut dx = vec![0.0f64; x.len()];
    let mut dw = vec![0.0f64; w.len()];
    let mut db = vec![0.0f64; o];
    for bi in 0..d.batch {
        for oc in 0..o {
            for i in 0..oh {
                for j in 0..ow {
                    let mut s = b[oc] as f64;
                    for ci in 0..c {
                        for ki in 0..k {
                            for kj in 0..k {
                                let (ii, jj) = (
                                    (i + ki) as isize - pad as isize,
                                    (j + kj) as isize - pad as isize,
                                );
                                if let Some(ix) = at_x(bi, ci, ii, jj) {
                                    s += x[ix] as f64 * w[((oc * c + ci) * k + ki) * k + kj] as f64;
                                }
                            }
                        }
                    }
                    let at = ((bi * o + oc) * oh + i) * ow + j;
                    y[at] = if relu { s.max(0.0) as f32 } else { s as f32 };
                    let gv = if !relu || y[at] > 0.0 {
                        g[at] as f64
                    } else {
                        0.0
                    };
                    db[oc] += gv;
                    for ci in 0..c {
                        for ki in 0..k {
                            for kj in 0..k {
                                let (ii, jj) = (
                                    (i + ki) as isize - pad as isize,
                                    (j + kj) as isize - pad as isize,
                                );
                                if let Some(ix) = at_x(bi, ci, ii, jj) {
                                    let wi = ((oc * c + ci) * k + ki) * k + kj;
                                    dx[ix] += gv * w[wi] as f64;
                                    dw[wi] += gv * x[ix] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let f = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    [y, f(dx), f(dw), f(db)]
}

fn run(x: &[f32], w: &[f32], b: &[f32], g: &[f32], relu: bool, d: ConvDims) -> [Vec<f32>; 4] {
    let (oh, ow) = d.out_hw().unwrap();
    let mut y = vec![f32::NAN; d.batch * d.out_channels * oh * ow];
    conv_forward(x, w, Some(b), relu, d, &mut y).unwrap();
    let mut dx = vec![f32::NAN; x.len()];
    let mut dw = vec![f32::NAN; w.len()];
    let mut db = vec![f32::NAN; b.len()];
    let yref = relu.then_some(y.as_slice());
    conv_backward(
        x,
        w,
        g,
        yref,
        d,
        Some(&mut dx),
        Some(&mut dw),
        Some(&mut db),
    )
    .unwrap();
    [y, dx, dw, db]
}

fn assert_close(got: &[f32], want: &[f32], what: &str, d: ConvDims) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "{what}[{i}] {g} vs {w} for {d:?}"
        );
    }
}

#[test]
fn matches_naive_convolution_forward_and_backward() {
    // (B, C, H, W, O, k, pad): odd sides, C > 1, k = 1, 2, 3, padding 0 and 1, a batch of
    // one (threaded product), several groups, and groups of several bounded chunks
    let cases = [
        (1, 1, 5, 5, 1, 1, 0),
        (1, 2, 7, 6, 3, 3, 1),
        (3, 1, 6, 5, 2, 2, 0),
        (5, 3, 9, 7, 4, 3, 0),
        (10, 3, 8, 9, 5, 2, 1),
        (19, 2, 13, 11, 6, 3, 1),
        (17, 8, 50, 49, 4, 3, 1),
        (2, 2, 3, 3, 2, 3, 0),
    ];
    for (batch, channels, height, width, out_channels, kernel, padding) in cases {
        let d = ConvDims {
            batch,
            channels,
            height,
            width,
            out_channels,
            kernel,
            padding,
        };
        let (oh, ow) = d.out_hw().unwrap();
        let x = data(batch * channels * height * width, 1);
        let w = data(out_channels * d.patch(), 2);
        let b = data(out_channels, 3);
        let g = data(batch * out_channels * oh * ow, 4);
        for relu in [false, true] {
            let want = naive(&x, &w, &b, &g, relu, d);
            let got = run(&x, &w, &b, &g, relu, d);
            for (i, what) in ["y", "dx", "dw", "db"].iter().enumerate() {
                assert_close(&got[i], &want[i], what, d);
            }
        }
    }
}

#[test]
fn skipping_dx_and_bias_gives_the_same_weight_gradient() {
    let d = ConvDims {
        batch: 4,
        channels: 2,
        height: 6,
        width: 6,
        out_channels: 3,
        kernel: 3,
        padding: 1,
    };
    let (x, w, g) = (data(4 * 2 * 36, 1), data(3 * 18, 2), data(4 * 3 * 36, 3));
    let want = naive(&x, &w, &[0.0; 3], &g, false, d);
    let mut y = vec![f32::NAN; g.len()];
    conv_forward(&x, &w, None, false, d, &mut y).unwrap();
    assert_close(&y, &want[0], "y", d);
    let mut dw = vec![f32::NAN; w.len()];
    conv_backward(&x, &w, &g, None, d, None, Some(&mut dw), None).unwrap();
    assert_close(&dw, &want[2], "dw", d);
    // without dw: the same dx, and no columns built
    let mut dx = vec![f32::NAN; x.len()];
    conv_backward(&x, &w, &g, None, d, Some(&mut dx), None, None).unwrap();
    assert_close(&dx, &want[1], "dx without dw", d);
    assert!(conv_forward(&x, &w[1..], None, false, d, &mut y).is_err());
    let too_big = ConvDims { kernel: 9, ..d };
    assert!(too_big.out_hw().is_err());
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let d = ConvDims {
        batch: 23,
        channels: 3,
        height: 12,
        width: 12,
        out_channels: 8,
        kernel: 3,
        padding: 0,
    };
    let (oh, ow) = d.out_hw().unwrap();
    let x = data(23 * 3 * 144, 1);
    let (w, b, g) = (data(8 * 27, 2), data(8, 3), data(23 * 8 * oh * ow, 4));
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    let one = pool(1).install(|| run(&x, &w, &b, &g, true, d));
    let three = pool(3).install(|| run(&x, &w, &b, &g, true, d));
    assert_eq!(one, three);
}
