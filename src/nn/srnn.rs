//! Recurrent spiking network: `encoder -> [Linear -> RLeaky]* -> Linear -> Leaky -> readout`,
//! e.g. over the rows of an image (sequential MNIST, T = 28).

use candle_core::{Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::layers::{linear, linear_stack};
use super::neuron::{Leaky, Neuron, RLeaky};
use super::probe::Probe;
use super::spiking::SpikingStack;
use super::Ops;
use crate::config::{EncoderConfig, LeakyConfig, Readout, SrnnConfig};

/// Recurrent LIF layers `fc<i> -> lif<i>` (RLeaky) run one after the other over all steps,
/// then the output layer `fc<n> -> lif<n>` (Leaky) and its readout.
#[derive(Debug, Clone)]
pub struct Srnn {
    fcs: Vec<Linear>,
    layers: Vec<RLeaky>,
    head: SpikingStack,
    encoder: EncoderConfig,
    ops: Ops,
}

/// Errors naming `key` when a layer width is zero.
pub(crate) fn check_widths(key: &str, hidden: &[usize]) -> Result<()> {
    if let Some(i) = hidden.iter().position(|&n| n == 0) {
        candle_core::bail!("{key}[{i}]: a layer needs at least one neuron");
    }
    Ok(())
}

/// The output layer `fc<first> -> lif<first>` (a Leaky layer) mapping `(input, classes)`
/// features, with the readout of `readout`.
pub(crate) fn output_head(
    cfg: &LeakyConfig,
    readout: Readout,
    (input, classes): (usize, usize),
    first: usize,
    steps: usize,
    vb: &VarBuilder,
) -> Result<SpikingStack> {
    let fc = linear(input, classes, vb.pp(format!("fc{first}")))?;
    let lif = Leaky::from_config(cfg, &[classes], vb.pp(format!("lif{first}")))?;
    Ok(SpikingStack {
        fcs: vec![fc],
        neurons: vec![Neuron::Leaky(lif)],
        first,
        readout,
        steps,
    })
}

impl Srnn {
    /// Creates the layers under `vb` for `[C, H, W]` images and `classes` outputs.
    pub fn from_config(
        cfg: &SrnnConfig,
        input: [usize; 3],
        classes: usize,
        ops: Ops,
        vb: VarBuilder,
    ) -> Result<Self> {
        check_widths("model.hidden", &cfg.hidden)?;
        let mut widths = vec![cfg.encoder.step_shape(input).iter().product()];
        widths.extend(&cfg.hidden);
        let fcs = linear_stack(&widths, &vb)?;
        let layers = cfg
            .hidden
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                RLeaky::from_config(
                    &cfg.neuron,
                    cfg.recurrence,
                    n,
                    vb.pp(format!("lif{}", i + 1)),
                )
            })
            .collect::<Result<_>>()?;
        let last = widths[widths.len() - 1];
        let head = output_head(
            &cfg.neuron,
            cfg.readout,
            (last, classes),
            widths.len(),
            cfg.encoder.steps(input),
            &vb,
        )?;
        Ok(Srnn {
            fcs,
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

    /// The input maps `fc1 ..` of the recurrent layers (the first reads the encoded input).
    pub fn fcs(&self) -> &[Linear] {
        &self.fcs
    }

    /// The recurrent layers `lif1 ..`.
    pub fn layers(&self) -> &[RLeaky] {
        &self.layers
    }

    /// The output layer (its readout gives the loss).
    pub fn head(&self) -> &SpikingStack {
        &self.head
    }

    /// Class scores of an encoded batch, reporting each layer's spikes to `probe` as `lif<i>`.
    ///
    /// # Shapes
    /// `input`: `[T, B, ...]` (`[28, B, 28]` for row codes) -> scores `[B, classes]`.
    pub fn forward_probed(&self, input: &Tensor, probe: &mut dyn Probe) -> Result<Tensor> {
        let (t, b) = (input.dim(0)?, input.dim(1)?);
        let mut x = input.reshape((t, b, ()))?;
        let mut spikes_in = self.encoder.emits_spikes();
        for (i, (fc, layer)) in self.fcs.iter().zip(&self.layers).enumerate() {
            let current = self.ops.project(fc, &x, spikes_in)?;
            x = layer.forward_probed(self.ops, &format!("lif{}", i + 1), &current, probe)?;
            spikes_in = true;
        }
        self.head.forward_probed(self.ops, &x, spikes_in, probe)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{ModelConfig, Recurrence, Reset, Surrogate};
    use crate::nn::gradcheck::{self, frozen_error, Freeze, Params};
    use crate::nn::{FiringRates, Model, SeededVarMap};
    use candle_core::{DType, Device};

    /// `b` deterministic images `[b, 1, h, w]` with pixels in [0, 1].
    pub(crate) fn images(b: usize, h: usize, w: usize) -> Result<Tensor> {
        let v: Vec<f64> = (0..b * h * w)
            .map(|i| ((i * 7 + 3) % 10) as f64 / 9.0)
            .collect();
        Tensor::from_vec(v, (b, 1, h, w), &Device::Cpu)
    }

    /// Pixel rows of image `b` of `images` as `[H][W]`.
    pub(crate) fn rows(images: &Tensor, b: usize) -> Result<Vec<Vec<f64>>> {
        images.get(b)?.get(0)?.to_vec2()
    }

    fn neuron(slope: f64) -> LeakyConfig {
        LeakyConfig {
            beta: 0.8,
            threshold: 0.3,
            reset: Reset::Subtract,
            surrogate: Surrogate::FastSigmoid { slope },
            learn_beta: false,
            learn_threshold: false,
        }
    }

    /// One sample's output spikes through the frozen twin of `fc1 -> lif1 -> fc2 -> lif2`.
    fn twin(p: &Params, x: &[Vec<f64>], rec: Recurrence, fz: &mut Freeze) -> Vec<Vec<f64>> {
        let lin = |x: &[Vec<f64>], l: &str| -> Vec<Vec<f64>> {
            let (w, b) = (&p[&format!("{l}.weight")], &p[&format!("{l}.bias")]);
            x.iter().map(|r| gradcheck::linear(r, w, b)).collect()
        };
        let fb = match rec {
            Recurrence::Linear => {
                gradcheck::Feedback::Linear(&p["lif1.recurrent.weight"], &p["lif1.recurrent.bias"])
            }
            Recurrence::OneToOne => gradcheck::Feedback::OneToOne(&p["lif1.recurrent.weight"]),
        };
        let (s1, _) = gradcheck::lif(&lin(x, "fc1"), &[0.8], &[0.3], Reset::Subtract, &fb, fz);
        let none = gradcheck::Feedback::None;
        gradcheck::lif(&lin(&s1, "fc2"), &[0.8], &[0.3], Reset::Subtract, &none, fz).0
    }

    #[test]
    fn surrogate_gradients_match_the_frozen_twin_and_layers_report_rates() -> Result<()> {
        let slope = 5.0;
        for recurrence in [Recurrence::Linear, Recurrence::OneToOne] {
            let cfg = ModelConfig::Srnn(SrnnConfig {
                hidden: vec![4],
                neuron: neuron(slope),
                recurrence,
                encoder: EncoderConfig::Rows,
                readout: Readout::SpikeCountCe,
            });
            let vars = SeededVarMap::new(3);
            let vb = vars.var_builder(DType::F64, &Device::Cpu);
            let model = Model::from_config(&cfg, [1, 5, 3], 3, Ops::Plain, vb)?;
            let imgs = images(2, 5, 3)?;
            let x = model.encode(&imgs, 0)?;
            assert_eq!(x.dims(), &[5, 2, 3]);
            let labels = Tensor::new(&[0u32, 2], &Device::Cpu)?;
            let library =
                || model.loss(&model.forward_probed(&x, &mut FiringRates::new())?, &labels);
            let reference = |p: &Params, fz: &mut Freeze| {
                let mut ce = |b: usize, label| {
                    let x = rows(&imgs, b).unwrap_or_default();
                    gradcheck::ce(&gradcheck::count(&twin(p, &x, recurrence, fz)), label)
                };
                (ce(0, 0) + ce(1, 2)) / 2.0
            };
            let (err, fired) = frozen_error(&vars, slope, library, reference)?;
            assert!(err < 1e-7, "{recurrence:?}: max error {err}");
            assert!(fired > 0.1 && fired < 0.9, "{recurrence:?}: fired {fired}");
            let mut rates = FiringRates::new();
            model.forward_probed(&x, &mut rates)?;
            let names: Vec<String> = rates.rates().into_iter().map(|r| r.layer).collect();
            assert_eq!(names, ["lif1", "lif2"]);
        }
        Ok(())
    }

    #[test]
    fn zero_width_layers_are_refused_naming_the_key() -> Result<()> {
        let cfg = SrnnConfig {
            hidden: vec![4, 0],
            neuron: neuron(25.0),
            recurrence: Recurrence::Linear,
            encoder: EncoderConfig::Rows,
            readout: Readout::SpikeCountCe,
        };
        let vb = SeededVarMap::new(0).var_builder(DType::F32, &Device::Cpu);
        let err = Srnn::from_config(&cfg, [1, 5, 3], 3, Ops::Plain, vb).err();
        assert!(format!("{err:?}").contains("model.hidden[1]"), "{err:?}");
        Ok(())
    }
}
