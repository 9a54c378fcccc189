//! `L` samples of one grid in lock-step: the forward step with SnAP-1's self- and
//! cross-traces, and the reverse-raster local backward with past-only subtraction.

use super::noise::normal;
use super::{loss_and_error, Coeffs, GradientOptions, Readout, Real};

/// The state of `L` samples: per cell `s`, `y`, the self-traces and the 8 cross-traces.
#[derive(Debug, Clone)]
pub(crate) struct Lanes<R, const L: usize> {
    /// Filter states `s`.
    pub s: Vec<[R; L]>,
    /// Outputs `y = tanh(s + b)`.
    pub y: Vec<[R; L]>,
    /// `∂s/∂w_L` of the cell itself.
    pub e_left: Vec<[R; L]>,
    /// `∂s/∂w_T` of the cell itself.
    pub e_top: Vec<[R; L]>,
    /// `∂s/∂τ` of the cell itself (`τ·eta` is `∂s/∂log τ`).
    pub eta: Vec<[R; L]>,
    /// `∂s_d/∂θ_k` for the cell below (`[0..4]`) and to the right (`[4..8]`), `θ` in
    /// [`super::PARAMS`] order.
    pub cross: Vec<[[R; L]; 8]>,
    msg: Vec<[R; L]>,
    grad: Vec<[[R; L]; 4]>,
}

/// One call's inputs, shared by the blocks of a batch.
pub(crate) struct Job<'a, R> {
    pub k: &'a Coeffs<R>,
    pub x: &'a [R],
    pub labels: &'a [u32],
    pub steps: usize,
    pub opts: &'a GradientOptions,
}

/// A block's summed loss, summed gradients `[4][cells]` and outputs `[n, T, M]`.
pub(crate) struct BlockResult<R> {
    pub loss_sum: f64,
    pub grads: [Vec<f64>; 4],
    pub outputs: Vec<R>,
}

/// How messages are read under a perturbation: gains, and noise std per lane.
struct MessageRead<R, const L: usize> {
    gain_positive: R,
    gain_negative: R,
    std: [R; L],
    seed: u64,
    first_sample: usize,
    step: usize,
}

impl<R: Real, const L: usize> MessageRead<R, L> {
    #[inline(always)]
    fn read(&self, m: [R; L], cell: usize, slot: usize) -> [R; L] {
        let mut out = m;
        for (l, v) in out.iter_mut().enumerate() {
            if self.std[l] != R::ZERO {
                *v += self.std[l]
                    * R::of(normal(
                        self.seed,
                        self.first_sample + l,
                        self.step,
                        cell,
                        slot,
                    ));
            }
            *v = if *v > R::ZERO {
                *v * self.gain_positive
            } else {
                *v * self.gain_negative
            };
        }
        out
    }
}

impl<R: Real, const L: usize> Lanes<R, L> {
    /// Zero state for `cells` cells.
    pub fn new(cells: usize) -> Self {
        let z = [R::ZERO; L];
        Lanes {
            s: vec![z; cells],
            y: vec![z; cells],
            e_left: vec![z; cells],
            e_top: vec![z; cells],
            eta: vec![z; cells],
            cross: vec![[z; 8]; cells],
            msg: vec![z; cells],
            grad: vec![[z; 4]; cells],
        }
    }

    /// One time step over the grid in raster order; with `TRACE`, also the self-traces and,
    /// from each cell's new output, its cross-traces towards the cells below and right.
    #[inline(always)]
    pub fn forward_step<const TRACE: bool>(&mut self, k: &Coeffs<R>, xt: &[[R; L]]) {
        let cols = k.cols;
        for i in 0..k.rows {
            for j in 0..cols {
                let c = i * cols + j;
                let yl = if j > 0 { self.y[c - 1] } else { xt[i] };
                let yt = if i > 0 {
                    self.y[c - cols]
                } else {
                    [R::ZERO; L]
                };
                let (a, cc, wl, wt, b) = (k.a[c], k.c[c], k.wl[c], k.wt[c], k.b[c]);
                let mut s = self.s[c];
                let mut y = [R::ZERO; L];
                if TRACE {
                    let q = k.q[c];
                    let (el, et, eta) = (&mut self.e_left[c], &mut self.e_top[c], &mut self.eta[c]);
                    for l in 0..L {
                        let u = wl * yl[l] + wt * yt[l];
                        eta[l] = a * eta[l] + q * (s[l] - u);
                        el[l] = a * el[l] + cc * yl[l];
                        et[l] = a * et[l] + cc * yt[l];
                        s[l] = a * s[l] + cc * u;
                        y[l] = (s[l] + b).tanh();
                    }
                } else {
                    for l in 0..L {
                        s[l] = a * s[l] + cc * (wl * yl[l] + wt * yt[l]);
                        y[l] = (s[l] + b).tanh();
                    }
                }
                self.s[c] = s;
                self.y[c] = y;
                if TRACE {
                    self.update_cross(k, c, i, j);
                }
            }
        }
    }

    /// `f_θ = ∂(s + b)/∂θ` of cell `c` from its own parameters, in [`super::PARAMS`] order.
    #[inline(always)]
    fn self_factors(&self, k: &Coeffs<R>, c: usize) -> [[R; L]; 4] {
        let tau = k.tau[c];
        let mut f = [[R::ONE; L]; 4];
        for l in 0..L {
            f[0][l] = tau * self.eta[c][l];
            f[1][l] = self.e_left[c][l];
            f[2][l] = self.e_top[c][l];
        }
        f
    }

    #[inline(always)]
    fn update_cross(&mut self, k: &Coeffs<R>, c: usize, i: usize, j: usize) {
        let f = self.self_factors(k, c);
        let y = self.y[c];
        let mut dy = [[R::ZERO; L]; 4];
        for p in 0..4 {
            for l in 0..L {
                dy[p][l] = (R::ONE - y[l] * y[l]) * f[p][l];
            }
        }
        let neighbours = [
            (i + 1 < k.rows).then(|| (c + k.cols, k.wt[c + k.cols], 0)),
            (j + 1 < k.cols).then(|| (c + 1, k.wl[c + 1], 4)),
        ];
        for (d, kappa, at) in neighbours.into_iter().flatten() {
            let (ad, coef) = (k.a_cross[d], k.c[d] * kappa);
            for p in 0..4 {
                let e = &mut self.cross[c][at + p];
                for l in 0..L {
                    e[l] = ad * e[l] + coef * dy[p][l];
                }
            }
        }
    }

    /// Adds Gaussian noise of std `sigma·RMS` to the cross-traces, the RMS per lane and
    /// parameter type over every existing cross-trace of the grid.
    fn add_trace_noise(&mut self, k: &Coeffs<R>, sigma: f64, seed: u64, first: usize, step: usize) {
        let cells = self.s.len();
        let exists = |c: usize, at: usize| {
            if at < 4 {
                c / k.cols + 1 < k.rows
            } else {
                c % k.cols + 1 < k.cols
            }
        };
        for p in 0..4 {
            let mut sq = [0.0f64; L];
            let mut count = 0usize;
            for c in 0..cells {
                for at in [p, 4 + p].into_iter().filter(|at| exists(c, *at)) {
                    count += 1;
                    for l in 0..L {
                        sq[l] += self.cross[c][at][l].to_f64().powi(2);
                    }
                }
            }
            let std: Vec<f64> = sq
                .iter()
                .map(|s| sigma * (s / count.max(1) as f64 + 1e-12).sqrt())
                .collect();
            for c in 0..cells {
                for at in [p, 4 + p].into_iter().filter(|at| exists(c, *at)) {
                    for l in 0..L {
                        let n = normal(seed ^ 0x5452_4143_4521, first + l, step, c, at);
                        self.cross[c][at][l] += R::of(std[l] * n);
                    }
                }
            }
        }
    }

    /// SnAP-1's local backward at one step: `err` `[M]` is `∂L/∂y` of the bottom row; cells are
    /// visited in reverse raster order, each accumulating its parameters' gradient from its own
    /// message and its neighbours' past-only cross-trace terms, then passing messages left and up.
    #[inline(always)]
    fn snap1_backward<const PERTURB: bool>(
        &mut self,
        k: &Coeffs<R>,
        err: &[[R; L]],
        subtraction: R,
        read: &MessageRead<R, L>,
    ) {
        let (rows, cols) = (k.rows, k.cols);
        let cells = rows * cols;
        for m in self.msg.iter_mut() {
            *m = [R::ZERO; L];
        }
        self.msg[(rows - 1) * cols..].copy_from_slice(err);
        for c in (0..cells).rev() {
            let (i, j) = (c / cols, c % cols);
            let mk = if PERTURB {
                read.read(self.msg[c], c, 0)
            } else {
                self.msg[c]
            };
            let y = self.y[c];
            let mut g = [R::ZERO; L];
            let mut omy = [R::ZERO; L];
            for l in 0..L {
                omy[l] = R::ONE - y[l] * y[l];
                g[l] = mk[l] * omy[l];
            }
            let f = self.self_factors(k, c);
            let grad = &mut self.grad[c];
            for p in 0..4 {
                for l in 0..L {
                    grad[p][l] += g[l] * f[p][l];
                }
            }
            let neighbours = [
                (i + 1 < rows).then(|| (c + cols, k.wt[c + cols], 0, 1)),
                (j + 1 < cols).then(|| (c + 1, k.wl[c + 1], 4, 2)),
            ];
            for (d, kappa, at, slot) in neighbours.into_iter().flatten() {
                let md = if PERTURB {
                    read.read(self.msg[d], c, slot)
                } else {
                    self.msg[d]
                };
                let yd = self.y[d];
                let current = k.c[d] * kappa;
                for p in 0..4 {
                    let e = &self.cross[c][at + p];
                    for l in 0..L {
                        let gate = md[l] * (R::ONE - yd[l] * yd[l]);
                        let past = if PERTURB {
                            subtraction * e[l] - current * omy[l] * f[p][l]
                        } else {
                            e[l] - current * omy[l] * f[p][l]
                        };
                        grad[p][l] += gate * past;
                    }
                }
            }
            let (to_left, to_top) = (k.c[c] * k.wl[c], k.c[c] * k.wt[c]);
            if j > 0 {
                for l in 0..L {
                    self.msg[c - 1][l] += g[l] * to_left;
                }
            }
            if i > 0 {
                for l in 0..L {
                    self.msg[c - cols][l] += g[l] * to_top;
                }
            }
        }
    }

    /// The summed gradients of the first `n` lanes, `[4][cells]`.
    pub fn take_grads(&self, n: usize) -> [Vec<f64>; 4] {
        std::array::from_fn(|p| {
            self.grad
                .iter()
                .map(|g| (0..n).map(|l| g[p][l].to_f64()).sum())
                .collect()
        })
    }

    /// Adds `g` to the gradient of cell `c`, parameter `p` (BPTT accumulates here too).
    #[inline(always)]
    pub fn add_grad(&mut self, c: usize, p: usize, g: [R; L]) {
        for l in 0..L {
            self.grad[c][p][l] += g[l];
        }
    }
}

/// Inputs of step `t` for lanes `start..start + n` (zero beyond `n`), `[N][L]`.
pub(crate) fn gather<R: Real, const L: usize>(
    x: &[R],
    rows: usize,
    steps: usize,
    start: usize,
    n: usize,
    t: usize,
) -> Vec<[R; L]> {
    let mut xt = vec![[R::ZERO; L]; rows];
    for l in 0..n {
        let base = ((start + l) * steps + t) * rows;
        for (i, v) in x[base..base + rows].iter().enumerate() {
            xt[i][l] = *v;
        }
    }
    xt
}

/// Stores the bottom row of lanes `0..n` at step `t` into `out` `[n, T, M]`.
pub(crate) fn store_outputs<R: Real, const L: usize>(
    lanes: &Lanes<R, L>,
    k: &Coeffs<R>,
    out: &mut [R],
    n: usize,
    steps: usize,
    t: usize,
) {
    let bottom = &lanes.y[(k.rows - 1) * k.cols..];
    for l in 0..n {
        let row = &mut out[(l * steps + t) * k.cols..(l * steps + t + 1) * k.cols];
        for (o, y) in row.iter_mut().zip(bottom) {
            *o = y[l];
        }
    }
}

/// The outputs `[n, T, M]` of lanes `start..start + n` without traces.
pub(crate) fn forward_block<R: Real, const L: usize>(
    k: &Coeffs<R>,
    x: &[R],
    start: usize,
    n: usize,
    steps: usize,
) -> Vec<R> {
    let mut lanes = Lanes::<R, L>::new(k.rows * k.cols);
    let mut out = vec![R::ZERO; n * steps * k.cols];
    for t in 0..steps {
        let xt = gather::<R, L>(x, k.rows, steps, start, n, t);
        lanes.forward_step::<false>(k, &xt);
        store_outputs(&lanes, k, &mut out, n, steps, t);
    }
    out
}

/// Loss sum and `∂L/∂y` of the bottom row `[T][M][L]` of each lane from outputs `[n, T, M]`.
pub(crate) fn lane_errors<R: Real, const L: usize>(
    readout: Readout,
    outputs: &[R],
    labels: &[u32],
    cols: usize,
    steps: usize,
) -> (f64, Vec<Vec<[R; L]>>) {
    let mut err = vec![vec![[R::ZERO; L]; cols]; steps];
    let mut loss = 0.0;
    for (l, label) in labels.iter().enumerate() {
        let ys: Vec<f64> = outputs[l * steps * cols..(l + 1) * steps * cols]
            .iter()
            .map(|v| v.to_f64())
            .collect();
        let (li, e) = loss_and_error(readout, &ys, cols, *label as usize);
        loss += li;
        for t in 0..steps {
            for j in 0..cols {
                err[t][j][l] = R::of(e[t * cols + j]);
            }
        }
    }
    (loss, err)
}

impl<R: Real> Job<'_, R> {
    /// SnAP-1 on lanes `start..start + n`: with the sum readout a forward pass for the loss
    /// error first (it is the same at every step), then the traced forward with the local
    /// backward at each step; with the per-step readout one pass.
    pub fn snap1_block<const L: usize>(&self, start: usize, n: usize) -> BlockResult<R> {
        let pert = &self.opts.perturbation;
        let perturbed = pert.touches_messages() || pert.subtraction != 0.0;
        self.snap1_run::<L>(start, n, perturbed)
    }

    /// [`Job::snap1_block`] with the message path chosen by `perturbed` (the perturbed path
    /// with no-op settings must give the same bits as the plain one).
    pub fn snap1_run<const L: usize>(
        &self,
        start: usize,
        n: usize,
        perturbed: bool,
    ) -> BlockResult<R> {
        let (k, steps) = (self.k, self.steps);
        let cols = k.cols;
        let labels = &self.labels[start..start + n];
        let pert = &self.opts.perturbation;
        let errors = match self.opts.readout {
            Readout::Sum => {
                let out = forward_block::<R, L>(k, self.x, start, n, steps);
                Some(lane_errors::<R, L>(Readout::Sum, &out, labels, cols, steps))
            }
            Readout::PerStep => None,
        };
        let mut lanes = Lanes::<R, L>::new(k.rows * cols);
        let mut outputs = vec![R::ZERO; n * steps * cols];
        let mut read = MessageRead {
            gain_positive: R::of(pert.gain_positive),
            gain_negative: R::of(pert.gain_negative),
            std: [R::ZERO; L],
            seed: self.opts.noise_seed,
            first_sample: start,
            step: 0,
        };
        let subtraction = R::of(1.0 + pert.subtraction);
        // per-step readout: each lane's loss, accumulated as its steps' errors are computed
        let mut lane_loss = [0.0f64; L];
        for t in 0..steps {
            let xt = gather::<R, L>(self.x, k.rows, steps, start, n, t);
            lanes.forward_step::<true>(k, &xt);
            if pert.trace_noise != 0.0 {
                lanes.add_trace_noise(k, pert.trace_noise, self.opts.noise_seed, start, t);
            }
            store_outputs(&lanes, k, &mut outputs, n, steps, t);
            let err: Vec<[R; L]> = match &errors {
                Some((_, e)) => e[t].clone(),
                None => step_error::<R, L>(&outputs, labels, cols, steps, t, &mut lane_loss),
            };
            if pert.message_noise != 0.0 {
                read.step = t;
                for l in 0..n {
                    let ms: f64 =
                        err.iter().map(|e| e[l].to_f64().powi(2)).sum::<f64>() / cols as f64;
                    read.std[l] = R::of(pert.message_noise * (ms + 1e-12).sqrt());
                }
            }
            if perturbed {
                lanes.snap1_backward::<true>(k, &err, subtraction, &read);
            } else {
                lanes.snap1_backward::<false>(k, &err, subtraction, &read);
            }
        }
        let loss_sum = match errors {
            Some((loss, _)) => loss,
            None => lane_loss.iter().sum(),
        };
        BlockResult {
            loss_sum,
            grads: lanes.take_grads(n),
            outputs,
        }
    }
}

/// `∂L/∂y` of the bottom row at step `t` under the per-step readout, `[M][L]`; adds each lane's
/// share of the loss (its cross-entropy at `t` over `T`) to `loss`.
fn step_error<R: Real, const L: usize>(
    outputs: &[R],
    labels: &[u32],
    cols: usize,
    steps: usize,
    t: usize,
    loss: &mut [f64; L],
) -> Vec<[R; L]> {
    let mut err = vec![[R::ZERO; L]; cols];
    for (l, label) in labels.iter().enumerate() {
        let row: Vec<f64> = outputs[(l * steps + t) * cols..(l * steps + t + 1) * cols]
            .iter()
            .map(|v| v.to_f64())
            .collect();
        let (ce, e) = loss_and_error(Readout::Sum, &row, cols, *label as usize);
        loss[l] += ce * (1.0 / steps as f64);
        for j in 0..cols {
            err[j][l] = R::of(e[j] / steps as f64);
        }
    }
    err
}
