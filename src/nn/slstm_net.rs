//! Spiking LSTM network: `encoder -> [SLSTM]* -> Linear -> Leaky -> readout`, e.g. over the
//! rows of an image.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::neuron::Slstm;
use super::probe::Probe;
use super::spiking::SpikingStack;
use super::srnn::{check_widths, output_head};
use super::Ops;
use crate::config::{EncoderConfig, SlstmConfig};

/// SLSTM layers `slstm1, slstm2, ...` run one after the other over all steps, then the output
/// layer `fc1 -> lif1` (Leaky) and its readout.
#[derive(Debug, Clone)]
pub struct SlstmNet {
    layers: Vec<Slstm>,
    head: SpikingStack,
    encoder: EncoderConfig,
    ops: Ops,
}

impl SlstmNet {
    /// Creates the layers under `vb` for `[C, H, W]` images and `classes` outputs.
    pub fn from_config(
        cfg: &SlstmConfig,
        input: [usize; 3],
        classes: usize,
        ops: Ops,
        vb: VarBuilder,
    ) -> Result<Self> {
        check_widths("model.hidden", &cfg.hidden)?;
        let mut width: usize = cfg.encoder.step_shape(input).iter().product();
        let mut layers = Vec::with_capacity(cfg.hidden.len());
        for (i, &n) in cfg.hidden.iter().enumerate() {
            layers.push(Slstm::from_config(
                &cfg.cell,
                width,
                n,
                vb.pp(format!("slstm{}", i + 1)),
            )?);
            width = n;
        }
        let head = output_head(
            &cfg.neuron,
            cfg.readout,
            (width, classes),
            1,
            cfg.encoder.steps(input),
            &vb,
        )?;
        Ok(SlstmNet {
            layers,
            head,
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

    /// The output layer (its readout gives the loss).
    pub fn head(&self) -> &SpikingStack {
        &self.head
    }

    /// Class scores of an encoded batch, reporting each SLSTM layer's spikes to `probe` as
    /// `slstm<i>` and the output layer's as `lif1`.
    ///
    /// # Shapes
    /// `input`: `[T, B, ...]` (`[28, B, 28]` for row codes) -> scores `[B, classes]`.
    pub fn forward_probed(&self, input: &Tensor, probe: &mut dyn Probe) -> Result<Tensor> {
        let (t, b) = (input.dim(0)?, input.dim(1)?);
        let mut x = input.reshape((t, b, ()))?;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward_probed(self.ops, &format!("slstm{}", i + 1), &x, probe)?;
        }
        let spikes_in = !self.layers.is_empty() || self.encoder.emits_spikes();
        self.head.forward_probed(self.ops, &x, spikes_in, probe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LeakyConfig, ModelConfig, Readout, Reset, SlstmNeuronConfig, Surrogate};
    use crate::nn::gradcheck::{self, frozen_error, Freeze, Params};
    use crate::nn::srnn::tests::{images, rows};
    use crate::nn::{FiringRates, Model, SeededVarMap};
    use candle_core::{DType, Device, Module};

    #[test]
    fn surrogate_gradients_match_the_frozen_twin_and_layers_report_rates() -> Result<()> {
        let slope = 5.0;
        let surrogate = Surrogate::FastSigmoid { slope };
        for reset in [Reset::None, Reset::Subtract] {
            let cfg = ModelConfig::Slstm(SlstmConfig {
                hidden: vec![3],
                cell: SlstmNeuronConfig {
                    threshold: 0.05,
                    reset,
                    surrogate,
                },
                neuron: LeakyConfig {
                    beta: 0.8,
                    threshold: 0.3,
                    surrogate,
                    ..LeakyConfig::default()
                },
                encoder: EncoderConfig::Rows,
                readout: Readout::SpikeCountCe,
            });
            let vars = SeededVarMap::new(4);
            let vb = vars.var_builder(DType::F64, &Device::Cpu);
            let model = Model::from_config(&cfg, [1, 5, 3], 3, Ops::Plain, vb)?;
            let imgs = images(2, 5, 3)?;
            let x = model.encode(&imgs, 0)?;
            let labels = Tensor::new(&[1u32, 2], &Device::Cpu)?;
            let library = || model.loss(&model.forward(&x)?, &labels);
            let reference = |p: &Params, fz: &mut Freeze| {
                let mut ce = |b: usize, label| {
                    let x = rows(&imgs, b).unwrap_or_default();
                    let w = gradcheck::lstm_weights(p, "slstm1");
                    let (s1, _) = gradcheck::lstm(&x, w, Some((0.05, reset)), fz);
                    let (w, bias) = (&p["fc1.weight"], &p["fc1.bias"]);
                    let cur: Vec<Vec<f64>> =
                        s1.iter().map(|r| gradcheck::linear(r, w, bias)).collect();
                    let none = gradcheck::Feedback::None;
                    let (s2, _) = gradcheck::lif(&cur, &[0.8], &[0.3], Reset::Subtract, &none, fz);
                    gradcheck::ce(&gradcheck::count(&s2), label)
                };
                (ce(0, 1) + ce(1, 2)) / 2.0
            };
            let (err, fired) = frozen_error(&vars, slope, library, reference)?;
            assert!(err < 1e-7, "{reset:?}: max error {err}");
            assert!(fired > 0.1 && fired < 0.9, "{reset:?}: fired {fired}");
            let mut rates = FiringRates::new();
            model.forward_probed(&x, &mut rates)?;
            let names: Vec<String> = rates.rates().into_iter().map(|r| r.layer).collect();
            assert_eq!(names, ["slstm1", "lif1"]);
        }
        Ok(())
    }
}
