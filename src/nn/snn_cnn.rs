//! Spiking convolutional network (the reference's SNN-CNN: a Leaky layer after each conv and fc).

use candle_core::{Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};

use super::layers::{conv2d, linear_stack};
use super::neuron::Neuron;
use super::probe::Probe;
use super::spiking::SpikingStack;
use super::{fused, Ops};
use crate::config::{ConvOrder, EncoderConfig, SnnCnnConfig};

/// `encoder -> [conv -> neuron -> pool]* -> flatten -> [fc -> neuron]* -> readout`, run layer
/// by layer over all time steps (the `T·B` frames of a layer go through one convolution, or,
/// with fused kernels and a fixed Leaky neuron, through one fused conv-lif-pool op per block);
/// layers named `conv1, lif1, ..., fc1, lif<k>, ...`.
#[derive(Debug, Clone)]
pub struct SnnCnn {
    convs: Vec<Conv2d>,
    conv_neurons: Vec<Neuron>,
    head: SpikingStack,
    pool: usize,
    order: ConvOrder,
    encoder: EncoderConfig,
    ops: Ops,
}

impl SnnCnn {
    /// Creates the layers under `vb` for `[C, H, W]` images and `classes` outputs.
    pub fn from_config(
        cfg: &SnnCnnConfig,
        input: [usize; 3],
        classes: usize,
        ops: Ops,
        vb: VarBuilder,
    ) -> Result<Self> {
        if cfg.encoder.is_row_code() {
            candle_core::bail!(
                "model.encoder: snn_cnn needs a code that presents the whole image at every step (rate, latency or current), not {:?}",
                cfg.encoder
            );
        }
        let pool = cfg.pool.max(1);
        let conv_cfg = Conv2dConfig {
            padding: cfg.padding,
            ..Default::default()
        };
        let [mut c, mut h, mut w] = input;
        let (mut convs, mut conv_neurons) = (Vec::new(), Vec::new());
        for (i, &out) in cfg.channels.iter().enumerate() {
            let name = i + 1;
            convs.push(conv2d(
                c,
                out,
                cfg.kernel_size,
                conv_cfg,
                vb.pp(format!("conv{name}")),
            )?);
            let side = |s: usize| (s + 2 * cfg.padding + 1).checked_sub(cfg.kernel_size);
            let (oh, ow) = match (side(h), side(w)) {
                (Some(oh), Some(ow)) if oh / pool > 0 && ow / pool > 0 => (oh, ow),
                _ => candle_core::bail!(
                    "model.channels: conv block {name} shrinks a {h}x{w} map to nothing"
                ),
            };
            let shape = match cfg.order {
                ConvOrder::ConvLifPool => [out, oh, ow],
                ConvOrder::ConvPoolLif => [out, oh / pool, ow / pool],
            };
            conv_neurons.push(Neuron::from_config(
                &cfg.neuron,
                &shape,
                vb.pp(format!("lif{name}")),
            )?);
            (c, h, w) = (out, oh / pool, ow / pool);
        }
        let mut widths = vec![c * h * w];
        widths.extend(&cfg.fc_hidden);
        widths.push(classes);
        let first = convs.len() + 1;
        let neurons = widths[1..]
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                Neuron::from_config(&cfg.neuron, &[n], vb.pp(format!("lif{}", first + i)))
            })
            .collect::<Result<_>>()?;
        let head = SpikingStack {
            fcs: linear_stack(&widths, &vb)?,
            neurons,
            first,
            readout: cfg.readout,
            steps: cfg.encoder.steps(input),
        };
        Ok(SnnCnn {
            convs,
            conv_neurons,
            head,
            pool,
            order: cfg.order,
            encoder: cfg.encoder,
            ops,
        })
    }

    /// The encoder turning images into this network's input.
    pub fn encoder(&self) -> &EncoderConfig {
        &self.encoder
    }

    /// The execution policy the network runs under.
    pub fn ops(&self) -> Ops {
        self.ops
    }

    /// The fully connected head (its readout gives the loss).
    pub fn head(&self) -> &SpikingStack {
        &self.head
    }

    fn max_pool(&self, x: &Tensor) -> Result<Tensor> {
        if self.pool <= 1 {
            Ok(x.clone())
        } else {
            self.ops.max_pool2d(x, self.pool)
        }
    }

    /// The fused spiking conv block's settings when block `neuron` can run as one op on `x`:
    /// fused kernels on a CPU `f32` tensor, conv-lif-pool order, a Leaky neuron with fixed
    /// scalar β and θ, and a probe content with spike counts (no membranes).
    fn block_spec(
        &self,
        conv: &Conv2d,
        neuron: &Neuron,
        x: &Tensor,
        probe: &dyn Probe,
    ) -> Result<Option<fused::ConvLifPoolSpec>> {
        let usable = self.ops.fuses(x)
            && self.order == ConvOrder::ConvLifPool
            && !probe.wants_membrane()
            && probe.counts_suffice();
        let Neuron::Leaky(leaky) = neuron else {
            return Ok(None);
        };
        if !usable {
            return Ok(None);
        }
        Ok(leaky
            .fixed_scalars()?
            .map(
                |(beta, threshold, reset, surrogate)| fused::ConvLifPoolSpec {
                    padding: conv.config().padding,
                    pool: self.pool,
                    beta,
                    threshold,
                    lif: fused::LifSpec {
                        reset,
                        surrogate,
                        output: fused::LifOutput::Spikes,
                    },
                },
            ))
    }

    /// Class scores of an encoded batch, reporting each layer's spikes to `probe`.
    ///
    /// # Shapes
    /// `input`: `[T, B, C, H, W]` -> scores `[B, classes]`.
    pub fn forward_probed(&self, input: &Tensor, probe: &mut dyn Probe) -> Result<Tensor> {
        let (t, b, _, _, _) = input.dims5()?;
        let frames = t * b;
        // `x` stays time-first `[T, B, C, H, W]` between fused blocks: every reshape would be
        // one more gradient buffer (zeros plus an add) of the block's full size in autograd
        let mut x = input.clone();
        for (i, (conv, neuron)) in self.convs.iter().zip(&self.conv_neurons).enumerate() {
            let name = format!("lif{}", i + 1);
            if let Some(spec) = self.block_spec(conv, neuron, &x, probe)? {
                let out = fused::conv_lif_pool(&x, conv.weight(), conv.bias(), spec)?;
                probe.record_count(&name, out.fired as f64, out.neuron_steps)?;
                x = out.spikes;
                continue;
            }
            let (_, _, c, h, w) = x.dims5()?;
            let x4 = x.reshape((frames, c, h, w))?;
            let current = self.ops.conv2d(conv, &x4)?;
            let current = match self.order {
                ConvOrder::ConvLifPool => current,
                ConvOrder::ConvPoolLif => self.max_pool(&current)?,
            };
            let (_, o, oh, ow) = current.dims4()?;
            let spikes = neuron
                .forward_probed(self.ops, &name, &current.reshape((t, b, o, oh, ow))?, probe)?
                .reshape((frames, o, oh, ow))?;
            let pooled = match self.order {
                ConvOrder::ConvLifPool => self.max_pool(&spikes)?,
                ConvOrder::ConvPoolLif => spikes,
            };
            let (_, o, ph, pw) = pooled.dims4()?;
            x = pooled.reshape((t, b, o, ph, pw))?;
        }
        let x = x.reshape((t, b, ()))?;
        let spikes_in = !self.convs.is_empty() || self.encoder.emits_spikes();
        self.head.forward_probed(self.ops, &x, spikes_in, probe)
    }
}
