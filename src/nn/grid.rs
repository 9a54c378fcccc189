//! The grid-neuron lattice as a [`Network`]: a model family that learns by its own local rule.
//! `train_step` computes the gradient in the kernels crate (SnAP-1 or exact BPTT, `grad:`),
//! so the trainer's optimizers, schedules, checkpoints and resume apply unchanged.
//!
//! Images `[B, 1, H, W]` are read row by row: step `t` is image row `t`, and grid row `i`
//! takes pixel column `i` (times `input_gain`), directly or through a fixed sparse
//! projection when `rows` differs from `W`.

use autoresearch_kernels::grid::{
    self, GradientOptions, GridParams, GridShape, Method, Readout, Real, PARAMS,
};
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, D};
use candle_nn::Init;
use rand::SeedableRng;
use rand_distr::{Bernoulli, Distribution, Normal};

use super::network::{BuildCtx, Network, Step};
use super::probe::Probe;
use crate::config::{GridConfig, GridGradient, GridReadout, Precision};
use crate::data::Task;
use crate::error::{Error, Result};

/// A grid of `rows x cols` cells; parameters `[rows, cols]` named as in [`PARAMS`].
pub struct Grid {
    cfg: GridConfig,
    shape: GridShape,
    /// `(steps, channels)` of an input image: its height and width.
    image: (usize, usize),
    params: [Tensor; 4],
    /// `[rows, channels]` fixed projection, when `rows` differs from the image width.
    routing: Option<Vec<f32>>,
    seed: u64,
}

impl Grid {
    /// Builds the grid for `ctx`'s images: `log τ ~ U(log τ_min, log τ_max)`, `w_L, w_T ~
    /// N(0, 1/2)`, `b ~ N(0, 0.05²)` (upstream's init), from the run seed.
    pub fn new(cfg: &GridConfig, ctx: &BuildCtx) -> Result<Self> {
        let [channels, height, width] = ctx.image_shape("grid")?;
        if channels != 1 {
            return Err(Error::invalid(
                "model.kind",
                format!(
                    "grid reads one-channel images row by row; the data has {channels} channels"
                ),
            ));
        }
        if cfg.cols != ctx.outputs {
            return Err(Error::invalid(
                "model.cols",
                format!(
                    "{}: the bottom row is the readout, so use one column per class ({})",
                    cfg.cols, ctx.outputs
                ),
            ));
        }
        let rows = cfg.rows.unwrap_or(width);
        let shape = GridShape {
            rows,
            cols: cfg.cols,
            dt_s: cfg.dt_ms * 1e-3,
        };
        let vb = ctx.vb();
        let (lo, hi) = ((cfg.tau_ms[0] * 1e-3).ln(), (cfg.tau_ms[1] * 1e-3).ln());
        let init = |name: &str| match name {
            "log_tau" => Init::Uniform { lo, up: hi },
            "bias" => Init::Randn {
                mean: 0.0,
                stdev: 0.05,
            },
            _ => Init::Randn {
                mean: 0.0,
                stdev: std::f64::consts::FRAC_1_SQRT_2,
            },
        };
        let params =
            [0, 1, 2, 3].map(|p| vb.get_with_hints((rows, cfg.cols), PARAMS[p], init(PARAMS[p])));
        let [a, b, c, d] = params;
        let routing =
            (rows != width).then(|| routing(rows, width, cfg.routing_density, ctx.vars.seed()));
        Ok(Grid {
            cfg: cfg.clone(),
            shape,
            image: (height, width),
            params: [a?, b?, c?, d?],
            routing: routing.transpose()?,
            seed: ctx.vars.seed(),
        })
    }

    /// The grid's shape.
    pub fn shape(&self) -> GridShape {
        self.shape
    }

    /// The current parameters in `R`.
    pub fn params<R: Real>(&self) -> Result<GridParams<R>> {
        let get = |p: usize| -> Result<Vec<R>> {
            Ok(self.params[p]
                .flatten_all()?
                .to_vec1::<f32>()?
                .into_iter()
                .map(|v| R::of(f64::from(v)))
                .collect())
        };
        Ok(GridParams {
            log_tau: get(0)?,
            w_left: get(1)?,
            w_top: get(2)?,
            bias: get(3)?,
        })
    }

    /// The lattice's inputs `[B, T, rows]` from images `[B, 1, H, W]`: scaled, and projected
    /// when routed.
    pub fn inputs<R: Real>(&self, images: &Tensor) -> Result<(Vec<R>, usize)> {
        let (batch, _, height, width) = images.dims4()?;
        if (height, width) != self.image {
            return Err(Error::invalid(
                "data",
                format!(
                    "grid built for {:?} images, got {height}x{width}",
                    self.image
                ),
            ));
        }
        let pixels = images.flatten_all()?.to_vec1::<f32>()?;
        let gain = self.cfg.input_gain;
        let x: Vec<R> = match &self.routing {
            None => pixels.iter().map(|p| R::of(f64::from(*p) * gain)).collect(),
            Some(w) => pixels
                .chunks(width)
                .flat_map(|row| {
                    w.chunks(width).map(move |wr| {
                        let v: f64 = wr
                            .iter()
                            .zip(row)
                            .map(|(a, b)| f64::from(*a) * f64::from(*b))
                            .sum();
                        R::of(v * gain)
                    })
                })
                .collect(),
        };
        Ok((x, batch))
    }

    fn options(&self, noise_seed: u64) -> GradientOptions {
        GradientOptions {
            readout: match self.cfg.readout {
                GridReadout::Sum => Readout::Sum,
                GridReadout::PerStep => Readout::PerStep,
            },
            method: match self.cfg.grad {
                GridGradient::Snap1 => Method::Snap1,
                GridGradient::Bptt => Method::Bptt,
            },
            perturbation: self.cfg.perturbation.into(),
            noise_seed,
        }
    }

    /// Scores `[B, cols]` from the bottom row's outputs `[B, T, cols]`: summed over time, or
    /// the per-step log-softmax averaged over time.
    fn scores(
        &self,
        outputs: Vec<f32>,
        batch: usize,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let steps = outputs.len() / (batch * self.shape.cols);
        let y = Tensor::from_vec(outputs, (batch, steps, self.shape.cols), device)?;
        match self.cfg.readout {
            GridReadout::Sum => y.sum(1),
            GridReadout::PerStep => candle_nn::ops::log_softmax(&y, D::Minus1)?.mean(1),
        }
    }

    /// The noise stream of a step: the run seed, the batch and the current parameters, so a
    /// resumed run draws the same noise; 0 (unused) when the perturbations draw no noise.
    fn noise_seed<R: Real>(&self, x: &[R]) -> Result<u64> {
        let p = &self.cfg.perturbation;
        if p.trace_noise == 0.0 && p.message_noise == 0.0 {
            return Ok(0);
        }
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ self.seed;
        let mut eat = |v: f32| {
            h ^= u64::from(v.to_bits());
            h = h.wrapping_mul(0x0100_0000_01b3);
        };
        // the f32 value of each input, whatever the compute precision
        x.iter().for_each(|v| eat(v.to_f64() as f32));
        for p in &self.params {
            p.flatten_all()?
                .to_vec1::<f32>()?
                .into_iter()
                .for_each(&mut eat);
        }
        Ok(h)
    }

    /// The bottom row's outputs `[B, T, cols]` and the batch size, computed in `R`.
    fn outputs<R: Real>(&self, images: &Tensor) -> Result<(Vec<f32>, usize)> {
        let (x, b) = self.inputs::<R>(images)?;
        let y = grid::forward(&self.shape, &self.params::<R>()?, &x, b).map_err(kernel)?;
        Ok((y.into_iter().map(|v| v.to_f64() as f32).collect(), b))
    }

    /// Loss sum, summed gradients, outputs `[B, T, cols]` and batch size, computed in `R`.
    fn gradient<R: Real>(&self, images: &Tensor, labels: &[u32]) -> Result<GridStep> {
        let (x, batch) = self.inputs::<R>(images)?;
        let opts = self.options(self.noise_seed(&x)?);
        let g =
            grid::gradient(&self.shape, &self.params::<R>()?, &x, labels, &opts).map_err(kernel)?;
        let outputs = g.outputs.into_iter().map(|v| v.to_f64() as f32).collect();
        Ok((g.loss_sum, g.grads, outputs, batch))
    }
}

/// What [`Grid::gradient`] returns.
type GridStep = (f64, [Vec<f64>; 4], Vec<f32>, usize);

fn kernel(e: String) -> Error {
    Error::Tensor(candle_core::Error::Msg(format!("grid kernel: {e}")))
}

/// `[rows, inputs]` sparse projection: `N(0, 1/(inputs·density))` entries kept with
/// probability `density` (upstream's fixed encoder), drawn from the run seed.
fn routing(rows: usize, inputs: usize, density: f64, seed: u64) -> Result<Vec<f32>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x6752_4944);
    let normal = Normal::new(0.0, 1.0 / (inputs as f64 * density).max(1.0).sqrt())
        .map_err(|e| Error::invalid("model.routing_density", e.to_string()))?;
    let keep = Bernoulli::new(density)
        .map_err(|e| Error::invalid("model.routing_density", e.to_string()))?;
    Ok((0..rows * inputs)
        .map(|_| {
            let w = normal.sample(&mut rng);
            if keep.sample(&mut rng) {
                w as f32
            } else {
                0.0
            }
        })
        .collect())
}

/// The CPU's model name from `/proc/cpuinfo`, where there is one.
fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|m| m.trim().to_string())
}

impl Network for Grid {
    /// # Shapes
    /// `input`: `[B, 1, H, W]` -> scores `[B, cols]`.
    fn forward_probed(
        &self,
        input: &Tensor,
        _probe: &mut dyn Probe,
    ) -> candle_core::Result<Tensor> {
        let outputs = match self.cfg.precision {
            Precision::F32 => self.outputs::<f32>(input),
            Precision::F64 => self.outputs::<f64>(input),
        };
        let (y, batch) = outputs.map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        self.scores(y, batch, input.device())
    }

    /// Cross-entropy of the summed outputs (`sum`), or minus the mean per-step log-probability
    /// of the label (`per_step`): the loss the gradient is taken of.
    fn loss(
        &self,
        output: &Tensor,
        target: &Tensor,
        task: &dyn Task,
    ) -> candle_core::Result<Tensor> {
        match self.cfg.readout {
            GridReadout::Sum => task.loss(output, target),
            GridReadout::PerStep => output.gather(&target.unsqueeze(1)?, 1)?.mean_all()?.neg(),
        }
    }

    /// `grid.yaml`: the lattice's shape and parameter count, and where it ran (threads, lanes
    /// per block, CPU), beside the epoch times in `history.csv`.
    fn run_files(&self) -> Vec<(String, Vec<u8>)> {
        let text = format!(
            "rows: {}\ncols: {}\ncells: {}\nparameters: {}\nimage_steps: {}\nrouted: {}\nkernel: {{lanes_per_block: 8, threads: {}, cpu: {:?}}}\n",
            self.shape.rows,
            self.shape.cols,
            self.shape.cells(),
            4 * self.shape.cells(),
            self.image.0,
            self.routing.is_some(),
            rayon::current_num_threads(),
            cpu_model().unwrap_or_else(|| "unknown".into()),
        );
        vec![("grid.yaml".to_string(), text.into_bytes())]
    }

    /// The loss and the grid's own gradient (SnAP-1 or BPTT), averaged over the batch.
    fn train_step(
        &self,
        input: &Tensor,
        target: &Tensor,
        _task: &dyn Task,
        _seed: u64,
    ) -> Result<Step> {
        let labels = target.to_vec1::<u32>()?;
        let (loss_sum, grads, outputs, batch) = match self.cfg.precision {
            Precision::F32 => self.gradient::<f32>(input, &labels)?,
            Precision::F64 => self.gradient::<f64>(input, &labels)?,
        };
        let mut store = GradStore::default();
        let dims = (self.shape.rows, self.shape.cols);
        for (param, g) in self.params.iter().zip(grads) {
            let mean: Vec<f32> = g.into_iter().map(|v| (v / batch as f64) as f32).collect();
            store.insert(param, Tensor::from_vec(mean, dims, input.device())?);
        }
        Ok(Step {
            loss: loss_sum / batch as f64,
            output: self.scores(outputs, batch, input.device())?,
            grads: store,
        })
    }
}
