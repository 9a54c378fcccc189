//! Predictive-coding networks (CHPC-Autoresearch's PC-FFNN, PC-CNN and PC-EncDec) as a
//! [`Network`] that trains by its own step: clamp the input and the one-hot target, relax the
//! hidden representations on the energy `F`, then take the gradient of the configured mix of
//! `F` (at the relaxed representations, weights live) and the readout's cross-entropy.
//!
//! Evaluation is the feed-forward readout and never relaxes: for `ffnn` and `cnn`, free
//! relaxation from the bottom-up pass starts at a fixed point (every error is zero), so it
//! could not change the scores; for `enc_dec`, where it would, the declared readout is the
//! feed-forward one used in training. The energy per term and step is available through
//! [`Network::relaxation`].

mod relax;
#[cfg(test)]
mod tests;

use std::sync::Mutex;

use autoresearch_kernels::pc::{Relax, RelaxTrace};
use candle_core::{DType, Tensor};
use candle_nn::{Conv2dConfig, Linear};

pub use relax::{term_energies, Predictor, Relaxed, Term};

use super::network::{BuildCtx, Network, Step};
use super::probe::Probe;
use super::{layers, Ops};
use crate::config::{EnergyScale, PcArch, PcConfig, PcReadout};
use crate::data::Task;
use crate::error::{Error, Result};
use crate::metric::NamedValue;

/// A predictive-coding network; representations `r_0` (the input) to `r_L` (the classes).
pub struct Pc {
    cfg: PcConfig,
    ops: Ops,
    classes: usize,
    /// The energy's terms: the bottom-up predictions first (`layer1..layerL`), then decoders.
    terms: Vec<Term>,
    /// Layers `L`: `terms[i]` for `i < L` is the bottom-up prediction of `r_{i+1}` from `r_i`.
    depth: usize,
    head: Option<Linear>,
    /// `(energy weight, cross-entropy weight)` of the current epoch.
    weights: (f64, f64),
    stats: Mutex<EpochStats>,
}

/// What the training steps of an epoch did, for `history.csv`.
#[derive(Debug, Default, Clone)]
struct EpochStats {
    samples: usize,
    relaxed_samples: usize,
    energy_start: f64,
    energy_end: f64,
    rises: usize,
    steps: usize,
}

/// A relaxation seen from outside: term names, the trace, and the readout's scores before and
/// after it.
#[derive(Debug, Clone)]
pub struct Relaxation {
    /// Term names, in the order of the trace's columns.
    pub terms: Vec<String>,
    /// `F` per term at each step, summed over the batch.
    pub trace: RelaxTrace,
    /// The readout on the bottom-up representations `[B, classes]`.
    pub scores_before: Tensor,
    /// The readout on the relaxed representations `[B, classes]`.
    pub scores_after: Tensor,
}

impl Pc {
    /// Builds the network for `ctx`'s images with PyTorch's default initialisation.
    pub fn new(cfg: &PcConfig, ctx: &BuildCtx) -> Result<Self> {
        let [c, h, w] = ctx.image_shape("pc")?;
        let vb = ctx.vb();
        let classes = ctx.outputs;
        let mut up = Vec::new();
        let mut dims = vec![c * h * w];
        let top_hidden;
        match cfg.arch {
            PcArch::Ffnn | PcArch::EncDec => {
                let widths: Vec<usize> = std::iter::once(c * h * w)
                    .chain(cfg.hidden.iter().copied())
                    .chain(std::iter::once(classes))
                    .collect();
                for (i, pair) in widths.windows(2).enumerate() {
                    let layer = layers::linear(pair[0], pair[1], vb.pp("layers").pp(i))?;
                    up.push(Predictor::Dense {
                        layer,
                        relu: i + 2 < widths.len(),
                    });
                    dims.push(pair[1]);
                }
                top_hidden = widths[widths.len() - 2];
            }
            PcArch::Cnn => {
                let (mut ch, mut side) = (c, h.min(w));
                for (i, &out) in cfg.channels.iter().enumerate() {
                    let conv = layers::conv2d(
                        ch,
                        out,
                        cfg.kernel_size,
                        Conv2dConfig::default(),
                        vb.pp("convs").pp(i),
                    )?;
                    up.push(Predictor::ConvPool { conv });
                    side = (side + 1).saturating_sub(cfg.kernel_size) / 2;
                    ch = out;
                    dims.push(ch * side * side);
                }
                let fc = cfg.hidden[0];
                up.push(Predictor::Dense {
                    layer: layers::linear(ch * side * side, fc, vb.pp("fc"))?,
                    relu: true,
                });
                up.push(Predictor::Dense {
                    layer: layers::linear(fc, classes, vb.pp("pc_out"))?,
                    relu: false,
                });
                dims.extend([fc, classes]);
                top_hidden = fc;
            }
        }
        let depth = up.len();
        let mut terms: Vec<Term> = up
            .into_iter()
            .enumerate()
            .map(|(i, predictor)| Term {
                name: format!("layer{}", i + 1),
                target: i + 1,
                source: i,
                predictor,
                scale: 1.0,
            })
            .collect();
        if cfg.arch == PcArch::EncDec {
            // decoders predict r_j from r_{j+1} for every representation below the top hidden
            for j in 0..depth - 1 {
                let layer = layers::linear(dims[j + 1], dims[j], vb.pp("decoders").pp(j))?;
                terms.push(Term {
                    name: format!("decoder{j}"),
                    target: j,
                    source: j + 1,
                    predictor: Predictor::Dense { layer, relu: j > 0 },
                    scale: cfg.dec_weight,
                });
            }
        }
        let head = match cfg.readout {
            PcReadout::Head => Some(layers::linear(top_hidden, classes, vb.pp("cls_head"))?),
            PcReadout::Output => None,
        };
        Ok(Pc {
            cfg: cfg.clone(),
            ops: ctx.ops,
            classes,
            terms,
            depth,
            head,
            weights: cfg.loss.weights(1),
            stats: Mutex::new(EpochStats::default()),
        })
    }

    /// The energy's terms.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// The bottom-up pass: `r_1..r_L` (`r_L` the output layer's prediction) and the scores.
    ///
    /// # Shapes
    /// `x`: `[B, C, H, W]` -> representations `[B, ...]` each, scores `[B, classes]`.
    pub fn bottom_up(
        &self,
        x: &Tensor,
        with_output: bool,
    ) -> candle_core::Result<(Vec<Tensor>, Tensor)> {
        let mut reps = vec![x.clone()];
        let top = self.depth - 1;
        for t in &self.terms[..top] {
            let r = t.predictor.predict(self.ops, reps.last().unwrap_or(x))?;
            reps.push(r);
        }
        let hidden = &reps[top];
        let output = match (&self.head, with_output) {
            (Some(_), false) => None,
            _ => Some(self.terms[top].predictor.predict(self.ops, hidden)?),
        };
        let scores = match (&self.head, &output) {
            (Some(head), _) => self.ops.linear(head, hidden, false)?,
            (None, Some(out)) => out.clone(),
            (None, None) => candle_core::bail!("a PC network without head reads its output layer"),
        };
        if let Some(out) = output {
            reps.push(out);
        }
        Ok((reps, scores))
    }

    /// The readout on (relaxed) representations `r_0..r_L`.
    fn readout(&self, reps: &[Tensor]) -> candle_core::Result<Tensor> {
        match &self.head {
            Some(head) => self
                .ops
                .linear(head, &reps[reps.len() - 2].flatten_from(1)?, false),
            None => Ok(reps[reps.len() - 1].clone()),
        }
    }

    fn relax_settings(&self) -> Relax {
        Relax {
            steps: self.cfg.inference.steps,
            rate: self.cfg.inference.rate as f32,
            backtrack: self.cfg.inference.backtrack,
        }
    }

    /// Relaxes `reps` (detached) with `r_0` and, when `clamped`, `r_L` held: on the fused
    /// kernel where every term is dense and the tensors allow it, else by autograd.
    pub fn relax(&self, reps: &[Tensor], clamped: bool) -> candle_core::Result<Relaxed> {
        let last = reps.len() - 1;
        let free: Vec<bool> = (0..reps.len())
            .map(|i| i > 0 && (i < last || !clamped))
            .collect();
        let reps: Vec<Tensor> = reps.iter().map(Tensor::detach).collect();
        // the clamped input's prediction is r_1's bottom-up value: computed once per batch
        let fixed: Vec<Option<Tensor>> = self
            .terms
            .iter()
            .map(|t| (t.source == 0 && t.target == 1).then(|| reps[1].clone()))
            .collect();
        let dense = self
            .terms
            .iter()
            .all(|t| matches!(t.predictor, Predictor::Dense { .. }));
        if dense && self.ops.fuses(&reps[0]) {
            return relax::relax_fused(&self.terms, &reps, &free, &fixed, self.relax_settings());
        }
        relax::relax_autograd(
            &self.terms,
            self.ops,
            reps,
            &free,
            &fixed,
            self.relax_settings(),
        )
    }

    /// `F` at `reps` (constants) with live weights: the energy the weights descend.
    fn energy(&self, reps: &[Tensor]) -> candle_core::Result<Tensor> {
        let parts = term_energies(&self.terms, self.ops, reps, &[])?;
        Tensor::stack(&parts, 0)?.sum_all()
    }

    /// The loss and gradients of one batch at energy weight `we` and cross-entropy weight `wc`.
    fn step(&self, x: &Tensor, labels: &Tensor, we: f64, wc: f64) -> Result<Step> {
        let batch = x.dim(0)?;
        let (reps, scores) = self.bottom_up(x, false)?;
        let ce = self.ops.cross_entropy(&scores, labels)?;
        let mut stats = EpochStats {
            samples: batch,
            ..EpochStats::default()
        };
        let loss = if we == 0.0 {
            // no energy in the loss: no relaxation, a plain cross-entropy step
            scaled(&ce, wc)?
        } else {
            let one_hot = candle_nn::encoding::one_hot(labels.clone(), self.classes, 1f32, 0f32)?
                .to_device(x.device())?;
            let mut start: Vec<Tensor> = reps.iter().map(Tensor::detach).collect();
            start.truncate(self.depth); // r_0..r_{L-1}; r_L is the clamped target
            start.push(one_hot);
            let relaxed = self.relax(&start, true)?;
            let trace = &relaxed.trace;
            stats.relaxed_samples = batch;
            stats.energy_start = trace.total(0);
            stats.energy_end = trace.total(trace.energies.len() - 1);
            stats.rises = trace.rises;
            stats.steps = self.cfg.inference.steps * batch;
            let f = self.energy(&relaxed.reps)?;
            let per = match self.cfg.energy_scale {
                EnergyScale::Sum => we,
                EnergyScale::PerSample => we / batch as f64,
            };
            let energy_part = scaled(&f, per)?;
            if wc == 0.0 {
                energy_part
            } else {
                (energy_part + scaled(&ce, wc)?)?
            }
        };
        let grads = loss.backward()?;
        self.stats.lock().map_err(poisoned)?.add(&stats);
        Ok(Step {
            loss: f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?),
            output: scores.detach(),
            grads,
        })
    }
}

/// `t · w`, and `t` itself (the same graph, bit-identical) when `w` is 1.
fn scaled(t: &Tensor, w: f64) -> candle_core::Result<Tensor> {
    if w == 1.0 {
        Ok(t.clone())
    } else {
        t * w
    }
}

fn poisoned<T>(_: T) -> Error {
    Error::invalid(
        "model",
        "a previous training step panicked while recording PC statistics",
    )
}

impl EpochStats {
    fn add(&mut self, o: &EpochStats) {
        self.samples += o.samples;
        self.relaxed_samples += o.relaxed_samples;
        self.energy_start += o.energy_start;
        self.energy_end += o.energy_end;
        self.rises += o.rises;
        self.steps += o.steps;
    }
}

impl Network for Pc {
    /// The feed-forward readout; no relaxation (see the module doc).
    ///
    /// # Shapes
    /// `input`: `[B, C, H, W]` -> scores `[B, classes]`.
    fn forward_probed(
        &self,
        input: &Tensor,
        _probe: &mut dyn Probe,
    ) -> candle_core::Result<Tensor> {
        Ok(self.bottom_up(input, false)?.1)
    }

    /// Relaxation of the hidden representations with the label clamped, then the gradient of
    /// the epoch's mix of `F` and cross-entropy; with energy weight 0, a plain cross-entropy
    /// step without relaxation.
    fn train_step(
        &self,
        input: &Tensor,
        target: &Tensor,
        _task: &dyn Task,
        _seed: u64,
    ) -> Result<Step> {
        let (we, wc) = self.weights;
        self.step(input, target, we, wc)
    }

    fn start_epoch(&mut self, epoch: usize) -> Result<()> {
        self.weights = self.cfg.loss.weights(epoch);
        *self.stats.get_mut().map_err(poisoned)? = EpochStats::default();
        Ok(())
    }

    /// `energy_weight`, the mean per-sample `F` before and after the relaxations
    /// (`train_energy_start`, `train_energy`; NaN in an epoch without relaxation), the steps
    /// that raised `F` (`energy_rises`) and the relaxation steps per sample run.
    fn epoch_columns(&self) -> Vec<NamedValue> {
        let s = self.stats.lock().map(|s| s.clone()).unwrap_or_default();
        let we = self.weights.0;
        let mean = |v: f64| {
            if s.relaxed_samples == 0 {
                f64::NAN
            } else {
                v / s.relaxed_samples as f64
            }
        };
        vec![
            NamedValue::new("energy_weight", we),
            NamedValue::new("train_energy_start", mean(s.energy_start)),
            NamedValue::new("train_energy", mean(s.energy_end)),
            NamedValue::new("energy_rises", s.rises as f64),
            NamedValue::new(
                "relax_steps_per_sample",
                if s.samples == 0 {
                    0.0
                } else {
                    s.steps as f64 / s.samples as f64
                },
            ),
        ]
    }

    /// Relaxes a batch from the bottom-up pass: clamped to `target`'s one-hot when given,
    /// free otherwise.
    fn relaxation(&self, input: &Tensor, target: Option<&Tensor>) -> Option<Result<Relaxation>> {
        let run = || -> Result<Relaxation> {
            let (mut reps, scores_before) = self.bottom_up(input, true)?;
            if let Some(labels) = target {
                let last = reps.len() - 1;
                reps[last] =
                    candle_nn::encoding::one_hot(labels.clone(), self.classes, 1f32, 0f32)?
                        .to_device(input.device())?;
            }
            let relaxed = self.relax(&reps, target.is_some())?;
            Ok(Relaxation {
                terms: self.terms.iter().map(|t| t.name.clone()).collect(),
                scores_after: self.readout(&relaxed.reps)?,
                trace: relaxed.trace,
                scores_before,
            })
        };
        Some(run())
    }
}
