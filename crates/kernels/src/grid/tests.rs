use super::lanes::{Job, Lanes};
use super::noise::normal;
use super::*;

/// Upstream's initialisation: log τ ~ U(log τ_min, log τ_max), w ~ N(0, 1/2), b ~ N(0, 0.05²),
/// drawn from the test's counter-based normal stream.
fn init(shape: &GridShape, seed: u64, tau_ms: (f64, f64)) -> GridParams<f64> {
    let n = shape.cells();
    let z = |p: usize, c: usize| normal(seed, p, 0, c, 0);
    let uniform = |c: usize| 0.5 * (1.0 + libm_erf(z(0, c) / std::f64::consts::SQRT_2));
    let (lo, hi) = ((tau_ms.0 * 1e-3).ln(), (tau_ms.1 * 1e-3).ln());
    GridParams {
        log_tau: (0..n).map(|c| lo + (hi - lo) * uniform(c)).collect(),
        w_left: (0..n).map(|c| z(1, c) / 2f64.sqrt()).collect(),
        w_top: (0..n).map(|c| z(2, c) / 2f64.sqrt()).collect(),
        bias: (0..n).map(|c| 0.05 * z(3, c)).collect(),
    }
}

/// erf by Abramowitz-Stegun 7.1.26 (only used to turn a normal draw into a uniform one).
fn libm_erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    y.copysign(x)
}

fn sequence(shape: &GridShape, steps: usize, seed: u64, scale: f64) -> Vec<f64> {
    (0..steps * shape.rows)
        .map(|i| scale * normal(seed ^ 0xABCD, i, 1, 0, 0))
        .collect()
}

const SMALL: GridShape = GridShape {
    rows: 4,
    cols: 4,
    dt_s: 1e-3,
};
const MNIST: GridShape = GridShape {
    rows: 28,
    cols: 10,
    dt_s: 1e-3,
};

fn opts(readout: Readout, method: Method) -> GradientOptions {
    GradientOptions {
        readout,
        method,
        ..Default::default()
    }
}

/// max |a - b| / max |b| per parameter group.
fn rel_err(a: &[Vec<f64>; 4], b: &[Vec<f64>; 4]) -> [f64; 4] {
    std::array::from_fn(|p| {
        let diff = a[p]
            .iter()
            .zip(&b[p])
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        diff / b[p].iter().map(|v| v.abs()).fold(1e-300, f64::max)
    })
}

#[test]
fn one_cell_over_five_steps_equals_the_hand_computed_values() {
    let shape = GridShape {
        rows: 1,
        cols: 1,
        dt_s: 1e-3,
    };
    let params = GridParams {
        log_tau: vec![(4e-3f64).ln()],
        w_left: vec![0.7],
        w_top: vec![-0.3],
        bias: vec![0.1],
    };
    let k = Coeffs::new(&shape, &params, 0.0).unwrap();
    let mut lanes = Lanes::<f64, 1>::new(1);
    let want = [
        (0.15483945185001657, 0.24946239796811343),
        (0.1980088122761483, 0.28948934777776375),
        (0.11549955509319895, 0.2122244429299324),
        (0.08995114395098221, 0.18769907149614035),
        (0.3797329250472268, 0.4460296933390045),
    ];
    for (x, (s, y)) in [1.0, 0.5, -0.25, 0.0, 2.0].into_iter().zip(want) {
        lanes.forward_step::<true>(&k, &[[x]]);
        assert!(
            (lanes.s[0][0] - s).abs() < 1e-15,
            "{} vs {s}",
            lanes.s[0][0]
        );
        assert!(
            (lanes.y[0][0] - y).abs() < 1e-15,
            "{} vs {y}",
            lanes.y[0][0]
        );
    }
}

/// One sample's inputs at step `t` as a single lane.
fn step_input(shape: &GridShape, x: &[f64], t: usize) -> Vec<[f64; 1]> {
    x[t * shape.rows..(t + 1) * shape.rows]
        .iter()
        .map(|v| [*v])
        .collect()
}

/// States `s` of every cell after each of `steps` steps for one sample.
fn states(shape: &GridShape, p: &GridParams<f64>, x: &[f64], steps: usize) -> Vec<Vec<f64>> {
    let k = Coeffs::new(shape, p, 0.0).unwrap();
    let mut lanes = Lanes::<f64, 1>::new(shape.cells());
    (0..steps)
        .map(|t| {
            let xt = step_input(shape, x, t);
            lanes.forward_step::<false>(&k, &xt);
            lanes.s.iter().map(|v| v[0]).collect()
        })
        .collect()
}

/// Central differences of every cell's `s` after each step with respect to `θ_{p,c}`.
fn fd_states(
    shape: &GridShape,
    p: &GridParams<f64>,
    x: &[f64],
    steps: usize,
    param: usize,
    cell: usize,
) -> Vec<Vec<f64>> {
    let h = 1e-6;
    let shifted = |d: f64| {
        let mut q = p.clone();
        q.get_mut(param)[cell] += d;
        states(shape, &q, x, steps)
    };
    let (up, down) = (shifted(h), shifted(-h));
    up.iter()
        .zip(&down)
        .map(|(u, d)| u.iter().zip(d).map(|(a, b)| (a - b) / (2.0 * h)).collect())
        .collect()
}

fn assert_close(got: f64, want: f64, scale: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol * scale.max(1e-12),
        "{what}: {got} vs finite difference {want} (scale {scale})"
    );
}

#[test]
fn self_traces_equal_finite_differences_of_the_cells_own_state() {
    let shape = GridShape {
        rows: 3,
        cols: 3,
        dt_s: 1e-3,
    };
    let p = init(&shape, 3, (1.0, 20.0));
    let steps = 10;
    let x = sequence(&shape, steps, 3, 1.0);
    let k = Coeffs::new(&shape, &p, 0.0).unwrap();
    for cell in 0..shape.cells() {
        let mut lanes = Lanes::<f64, 1>::new(shape.cells());
        let fds: Vec<_> = (0..3)
            .map(|param| fd_states(&shape, &p, &x, steps, param, cell))
            .collect();
        for t in 0..steps {
            let xt = step_input(&shape, &x, t);
            lanes.forward_step::<true>(&k, &xt);
            let traces = [
                k.tau[cell] * lanes.eta[cell][0],
                lanes.e_left[cell][0],
                lanes.e_top[cell][0],
            ];
            for (param, trace) in traces.into_iter().enumerate() {
                let scale = fds[param].iter().map(|s| s[cell].abs()).fold(0.0, f64::max);
                assert_close(
                    trace,
                    fds[param][t][cell],
                    scale,
                    1e-7,
                    &format!("cell {cell} {} t {t}", PARAMS[param]),
                );
            }
        }
    }
}

#[test]
fn cross_traces_equal_finite_differences_of_the_neighbours_state() {
    let shape = GridShape {
        rows: 3,
        cols: 3,
        dt_s: 1e-3,
    };
    let p = init(&shape, 5, (1.0, 20.0));
    let steps = 20;
    let x = sequence(&shape, steps, 5, 1.0);
    let k = Coeffs::new(&shape, &p, 0.0).unwrap();
    let mut checked = 0;
    for cell in 0..shape.cells() {
        let (i, j) = (cell / shape.cols, cell % shape.cols);
        let fds: Vec<_> = (0..4)
            .map(|param| fd_states(&shape, &p, &x, steps, param, cell))
            .collect();
        let mut lanes = Lanes::<f64, 1>::new(shape.cells());
        for t in 0..steps {
            let xt = step_input(&shape, &x, t);
            lanes.forward_step::<true>(&k, &xt);
            let targets = [
                (i + 1 < shape.rows, cell + shape.cols, 0),
                (j + 1 < shape.cols, cell + 1, 4),
            ];
            for (exists, d, at) in targets {
                if !exists {
                    continue;
                }
                for param in 0..4 {
                    let scale = fds[param].iter().map(|s| s[d].abs()).fold(0.0, f64::max);
                    let got = lanes.cross[cell][at + param][0];
                    assert_close(
                        got,
                        fds[param][t][d],
                        scale,
                        1e-7,
                        &format!("cell {cell} -> {d} {} t {t}", PARAMS[param]),
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 12 * 4 * steps);
}

fn single(
    shape: &GridShape,
    p: &GridParams<f64>,
    x: &[f64],
    label: u32,
    o: GradientOptions,
) -> Gradient<f64> {
    gradient(shape, p, x, &[label], &o).unwrap()
}

#[test]
fn bptt_matches_central_finite_differences_of_the_loss() {
    let p = init(&SMALL, 7, (5.0, 200.0));
    let x = sequence(&SMALL, 5, 7, 0.5);
    for readout in [Readout::Sum, Readout::PerStep] {
        let g = single(&SMALL, &p, &x, 2, opts(readout, Method::Bptt));
        let h = 1e-6;
        for param in 0..4 {
            for cell in 0..SMALL.cells() {
                let loss = |d: f64| {
                    let mut q = p.clone();
                    q.get_mut(param)[cell] += d;
                    single(&SMALL, &q, &x, 2, opts(readout, Method::Bptt)).loss_sum
                };
                let fd = (loss(h) - loss(-h)) / (2.0 * h);
                let scale = g.grads[param].iter().map(|v| v.abs()).fold(0.0, f64::max);
                assert_close(
                    g.grads[param][cell],
                    fd,
                    scale,
                    1e-6,
                    &format!("{readout:?} {} cell {cell}", PARAMS[param]),
                );
            }
        }
    }
}

#[test]
fn full_rtrl_equals_bptt() {
    for steps in [1, 5, 20, 100] {
        let p = init(&SMALL, 11, (5.0, 200.0));
        let x = sequence(&SMALL, steps, 11, 0.5);
        for readout in [Readout::Sum, Readout::PerStep] {
            let (loss, rtrl) = rtrl::gradient(&SMALL, &p, &x, 1, readout).unwrap();
            let bptt = single(&SMALL, &p, &x, 1, opts(readout, Method::Bptt));
            assert!((loss - bptt.loss_sum).abs() < 1e-12);
            let err = rel_err(&rtrl, &bptt.grads);
            assert!(
                err.iter().all(|e| *e < 1e-12),
                "T={steps} {readout:?}: {err:?}"
            );
        }
    }
}

#[test]
fn snap1_equals_bptt_for_one_step() {
    for shape in [SMALL, MNIST] {
        let p = init(&shape, 13, (5.0, 200.0));
        let x = sequence(&shape, 1, 13, 0.5);
        for readout in [Readout::Sum, Readout::PerStep] {
            let local = single(&shape, &p, &x, 3, opts(readout, Method::Snap1));
            let bptt = single(&shape, &p, &x, 3, opts(readout, Method::Bptt));
            let err = rel_err(&local.grads, &bptt.grads);
            assert!(
                err.iter().all(|e| *e < 1e-13),
                "{shape:?} {readout:?}: {err:?}"
            );
        }
    }
}

/// Upstream's removed table (4 x 4, sum loss): relative error of (w_L, b, log τ) at T = 5, 20, 100.
const UPSTREAM_TRUNCATION: [(usize, [f64; 3]); 3] = [
    (5, [6.1e-3, 1.1e-3, 1.5e-2]),
    (20, [5.8e-2, 1.3e-2, 5.3e-2]),
    (100, [1.2e-1, 9.2e-2, 2.1e-1]),
];

#[test]
fn snap1_truncation_error_grows_with_t_as_upstream_reports() {
    let mut previous = [0.0f64; 3];
    for (steps, upstream) in UPSTREAM_TRUNCATION {
        // the median over 15 draws of network, sequence and target, as upstream's single draw
        // is one sample of a spread (ours span
        // 0.0004-0.15 for log τ at T = 5)
        let mut per_draw: Vec<[f64; 3]> = (0..15u64)
            .map(|seed| {
                let p = init(&SMALL, 100 + seed, (5.0, 200.0));
                let x = sequence(&SMALL, steps, 100 + seed, 0.5);
                let label = (seed % 4) as u32;
                let local = single(&SMALL, &p, &x, label, opts(Readout::Sum, Method::Snap1));
                let bptt = single(&SMALL, &p, &x, label, opts(Readout::Sum, Method::Bptt));
                let e = rel_err(&local.grads, &bptt.grads);
                [e[1], e[3], e[0]]
            })
            .collect();
        let median: [f64; 3] = std::array::from_fn(|g| {
            per_draw.sort_by(|a, b| a[g].total_cmp(&b[g]));
            per_draw[7][g]
        });
        for g in 0..3 {
            assert!(
                median[g] > upstream[g] / 10.0 && median[g] < upstream[g] * 10.0,
                "T={steps} group {g}: {} vs upstream {}",
                median[g],
                upstream[g]
            );
            assert!(
                median[g] > previous[g],
                "T={steps} group {g}: {median:?} after {previous:?}"
            );
        }
        previous = median;
    }
}

#[test]
fn batches_sum_per_sample_gradients_and_forward_matches() {
    let p: GridParams<f32> = {
        let q = init(&MNIST, 17, (1.0, 20.0));
        let f = |v: &Vec<f64>| v.iter().map(|x| *x as f32).collect();
        GridParams {
            log_tau: f(&q.log_tau),
            w_left: f(&q.w_left),
            w_top: f(&q.w_top),
            bias: f(&q.bias),
        }
    };
    let batch = 11;
    let x: Vec<f32> = sequence(&MNIST, 28 * batch, 17, 1.0)
        .iter()
        .map(|v| *v as f32)
        .collect();
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    for method in [Method::Snap1, Method::Bptt] {
        let o = opts(Readout::Sum, method);
        let all = gradient(&MNIST, &p, &x, &labels, &o).unwrap();
        assert_eq!(all.outputs, forward(&MNIST, &p, &x, batch).unwrap());
        let per = 28 * 28;
        let mut sum: [Vec<f64>; 4] = std::array::from_fn(|_| vec![0.0; 280]);
        let mut loss = 0.0;
        for b in 0..batch {
            let one = gradient(
                &MNIST,
                &p,
                &x[b * per..(b + 1) * per],
                &labels[b..b + 1],
                &o,
            )
            .unwrap();
            loss += one.loss_sum;
            for (s, g) in sum.iter_mut().zip(&one.grads) {
                for (a, v) in s.iter_mut().zip(g) {
                    *a += v;
                }
            }
        }
        assert!((loss - all.loss_sum).abs() < 1e-4 * loss);
        let err = rel_err(&all.grads, &sum);
        assert!(err.iter().all(|e| *e < 1e-5), "{method:?}: {err:?}");
    }
}

#[test]
fn no_op_perturbation_is_bit_identical_and_noise_is_seeded() {
    let p = init(&MNIST, 19, (1.0, 20.0));
    let batch = 9;
    let x = sequence(&MNIST, 28 * batch, 19, 1.0);
    let labels: Vec<u32> = (0..batch as u32).map(|i| (i * 3) % 10).collect();
    let o = opts(Readout::Sum, Method::Snap1);
    let k = Coeffs::new(&MNIST, &p, 0.0).unwrap();
    let job = Job {
        k: &k,
        x: &x,
        labels: &labels,
        steps: 28,
        opts: &o,
    };
    let plain = job.snap1_run::<8>(0, 8, false);
    let perturbed_path = job.snap1_run::<8>(0, 8, true);
    assert_eq!(plain.grads, perturbed_path.grads);
    assert_eq!(plain.outputs, perturbed_path.outputs);
    let noisy = |seed: u64| {
        let mut o = o;
        o.perturbation.message_noise = 0.01;
        o.perturbation.trace_noise = 0.1;
        o.noise_seed = seed;
        gradient(&MNIST, &p, &x, &labels, &o).unwrap()
    };
    let (a, b, c) = (noisy(1), noisy(1), noisy(2));
    assert_eq!(a.grads, b.grads);
    assert_ne!(a.grads, c.grads);
    let clean = gradient(&MNIST, &p, &x, &labels, &o).unwrap();
    assert_eq!(
        a.outputs, clean.outputs,
        "noise acts on the learning path only"
    );
    assert_ne!(a.grads, clean.grads);
    let mut bad = o;
    bad.method = Method::Bptt;
    bad.perturbation.leak = 0.2;
    assert!(gradient(&MNIST, &p, &x, &labels, &bad).is_err());
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let p = init(&MNIST, 23, (1.0, 20.0));
    let batch = 32;
    let x = sequence(&MNIST, 28 * batch, 23, 1.0);
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            gradient(&MNIST, &p, &x, &labels, &opts(Readout::Sum, Method::Snap1)).unwrap()
        })
    };
    assert_eq!(run(1), run(3));
}

#[test]
fn bad_shapes_and_labels_are_errors() {
    let p = init(&SMALL, 1, (5.0, 200.0));
    assert!(forward(&SMALL, &p, &[0.0; 7], 1).is_err());
    assert!(gradient(&SMALL, &p, &[0.0; 8], &[4], &GradientOptions::default()).is_err());
    assert!(forward(&MNIST, &p, &[0.0; 28], 1).is_err());
}

#[test]
fn cell_outputs_end_on_the_bottom_row_forward_reports() {
    let p = init(&SMALL, 29, (5.0, 200.0));
    let x = sequence(&SMALL, 6, 29, 0.5);
    let all = cell_outputs(&SMALL, &p, &x).unwrap();
    let bottom = forward(&SMALL, &p, &x, 1).unwrap();
    for t in 0..6 {
        assert_eq!(&all[t * 16 + 12..t * 16 + 16], &bottom[t * 4..t * 4 + 4]);
    }
}

#[test]
fn bptt_matches_finite_differences_on_the_mnist_grid() {
    // 28 x 10 over 28 steps with inputs in [0, 10] as the MNIST runs see them
    let p = init(&MNIST, 31, (1.0, 20.0));
    let x: Vec<f64> = sequence(&MNIST, 28, 31, 1.0)
        .iter()
        .map(|v| 5.0 * (1.0 + v.tanh()))
        .collect();
    let g = single(&MNIST, &p, &x, 7, opts(Readout::Sum, Method::Bptt));
    let h = 1e-6;
    for param in 0..4 {
        let scale = g.grads[param].iter().map(|v| v.abs()).fold(0.0, f64::max);
        for cell in (0..MNIST.cells()).step_by(23) {
            let loss = |d: f64| {
                let mut q = p.clone();
                q.get_mut(param)[cell] += d;
                single(&MNIST, &q, &x, 7, opts(Readout::Sum, Method::Bptt)).loss_sum
            };
            let fd = (loss(h) - loss(-h)) / (2.0 * h);
            assert_close(
                g.grads[param][cell],
                fd,
                scale,
                1e-6,
                &format!("{} cell {cell}", PARAMS[param]),
            );
        }
    }
}
