//! Encoders: images `[B, C, H, W]` -> time-first network inputs `[T, B, ...]`.
//!
//! Each encoder is a pure function of the images and a seed, so a resumed run re-draws exactly
//! the spikes an uninterrupted one would. Static codes (rate, latency, current) give
//! `[T, B, C, H, W]`; row codes (rows, rate_rows, delta) present row `t` at step `t` and give
//! `[H, B, C·W]`. Spikes are drawn on the CPU and copied to the images' device.

use candle_core::{Result, Tensor};

use crate::config::{EncoderConfig, InnerCode, LatencyForm};
use crate::error::Error;

impl EncoderConfig {
    /// Number of time steps for images of shape `[C, H, W]`.
    pub fn steps(&self, image: [usize; 3]) -> usize {
        match *self {
            EncoderConfig::Rate { steps, .. }
            | EncoderConfig::Latency { steps, .. }
            | EncoderConfig::Current { steps } => steps,
            EncoderConfig::Rows
            | EncoderConfig::RateRows { .. }
            | EncoderConfig::Delta { .. }
            | EncoderConfig::LifRowCounts { .. } => image[1],
        }
    }

    /// The shape of one sample's input at one step: `[C, H, W]` for static codes, `[C·W]` for
    /// row codes.
    pub fn step_shape(&self, image: [usize; 3]) -> Vec<usize> {
        let [c, h, w] = image;
        if self.is_row_code() {
            vec![c * w]
        } else {
            vec![c, h, w]
        }
    }

    /// Whether time runs over the image rows.
    pub fn is_row_code(&self) -> bool {
        matches!(
            self,
            EncoderConfig::Rows
                | EncoderConfig::RateRows { .. }
                | EncoderConfig::Delta { .. }
                | EncoderConfig::LifRowCounts { .. }
        )
    }

    /// Whether the code emits spikes (0/±1 values, mostly zero) rather than analog values.
    pub fn emits_spikes(&self) -> bool {
        !matches!(
            self,
            EncoderConfig::Current { .. }
                | EncoderConfig::Rows
                | EncoderConfig::LifRowCounts { .. }
        )
    }

    /// Whether the code reads pixels as intensities in [0, 1].
    pub fn reads_intensities(&self) -> bool {
        self.emits_spikes() || matches!(self, EncoderConfig::LifRowCounts { .. })
    }

    /// Checks the settings, and that pixels are intensities in [0, 1] where the code needs it;
    /// errors name the offending key under `key` (e.g. `model.encoder`).
    pub fn validate(&self, key: &str, pixels_in_unit_range: bool) -> crate::Result<()> {
        use EncoderConfig::*;
        let problem = match *self {
            Rate { steps: 0, .. } | Latency { steps: 0, .. } | Current { steps: 0 } => {
                Some(("steps", "must be at least 1".to_string()))
            }
            Rate { gain, .. } | RateRows { gain } if gain <= 0.0 => {
                Some(("gain", format!("{gain} must be positive")))
            }
            Latency { threshold, .. } if !(0.0..1.0).contains(&threshold) => Some((
                "threshold",
                format!("{threshold} is outside [0, 1): pixels below it never fire, so 1 silences the input"),
            )),
            Latency { tau, .. } if tau <= 0.0 => Some(("tau", format!("{tau} must be positive"))),
            Delta { threshold, .. } if threshold <= 0.0 => {
                Some(("threshold", format!("{threshold} must be positive")))
            }
            LifRowCounts { steps: 0, .. } => Some(("steps", "must be at least 1".to_string())),
            LifRowCounts { beta, .. } if !(0.0..=1.0).contains(&beta) => {
                Some(("beta", format!("{beta}; a decay per step is in [0, 1]")))
            }
            LifRowCounts { threshold, .. } if threshold <= 0.0 => {
                Some(("threshold", format!("{threshold} must be positive")))
            }
            LifRowCounts {
                latency_threshold, ..
            } if !(0.0..1.0).contains(&latency_threshold) => Some((
                "latency_threshold",
                format!("{latency_threshold} is outside [0, 1)"),
            )),
            _ => None,
        };
        if let Some((field, message)) = problem {
            return Err(Error::invalid(format!("{key}.{field}"), message));
        }
        if self.reads_intensities() && !pixels_in_unit_range {
            return Err(Error::invalid(
                key,
                "spike encoders read pixels as intensities in [0, 1]; set data.normalize={kind: none}",
            ));
        }
        Ok(())
    }

    /// Encodes `images` with randomness drawn from `seed`.
    ///
    /// # Shapes
    /// `images`: `[B, C, H, W]` -> `[T, B, C, H, W]` (static codes) or `[H, B, C·W]` (row codes).
    pub fn encode(&self, images: &Tensor, seed: u64) -> Result<Tensor> {
        let (b, c, h, w) = images.dims4()?;
        let device = images.device();
        let image = [c, h, w];
        match *self {
            EncoderConfig::Current { steps } => images
                .unsqueeze(0)?
                .broadcast_as((steps, b, c, h, w))?
                .contiguous(),
            EncoderConfig::Rows => rows(images),
            EncoderConfig::Rate { steps, gain } => {
                let pixels = host_pixels(images)?;
                let out = rate(&pixels, steps, gain, seed)?;
                Tensor::from_vec(out, (steps, b, c, h, w), device)
            }
            EncoderConfig::Latency {
                steps,
                threshold,
                form,
                tau,
            } => {
                let pixels = host_pixels(images)?;
                let mut out = vec![0f32; steps * pixels.len()];
                for (i, &p) in pixels.iter().enumerate() {
                    if let Some(t) = latency_step(p as f64, steps, threshold, form, tau) {
                        out[t * pixels.len() + i] = 1.0;
                    }
                }
                Tensor::from_vec(out, (steps, b, c, h, w), device)
            }
            EncoderConfig::RateRows { gain } => {
                let seq = host_pixels(&rows(images)?)?;
                let out = rate(&seq, 1, gain, seed)?;
                Tensor::from_vec(out, (self.steps(image), b, c * w), device)
            }
            EncoderConfig::LifRowCounts {
                code,
                steps,
                beta,
                threshold,
                latency_threshold,
            } => {
                let seq = host_pixels(&rows(images)?)?;
                let spikes = match code {
                    InnerCode::Rate => rate(&seq, steps, 1.0, seed)?,
                    InnerCode::Latency => {
                        let mut out = vec![0f32; steps * seq.len()];
                        for (i, &p) in seq.iter().enumerate() {
                            let t = latency_step(
                                p as f64,
                                steps,
                                latency_threshold,
                                LatencyForm::Linear,
                                1.0,
                            );
                            if let Some(t) = t {
                                out[t * seq.len() + i] = 1.0;
                            }
                        }
                        out
                    }
                };
                let counts = lif_counts(&spikes, seq.len(), beta as f32, threshold as f32);
                Tensor::from_vec(counts, (h, b, c * w), device)
            }
            EncoderConfig::Delta {
                threshold,
                off_spikes,
            } => {
                let seq = host_pixels(&rows(images)?)?;
                let row = b * c * w;
                let mut out = vec![0f32; seq.len()];
                for (i, &x) in seq.iter().enumerate() {
                    let prev = if i < row { 0.0 } else { seq[i - row] };
                    let change = (x - prev) as f64;
                    out[i] = if change >= threshold {
                        1.0
                    } else if off_spikes && change <= -threshold {
                        -1.0
                    } else {
                        0.0
                    };
                }
                Tensor::from_vec(out, (h, b, c * w), device)
            }
        }
    }
}

/// The seed of the encoder randomness of batch `batch` in stream `stream` (an epoch, or a
/// fixed stream per evaluation split) of a run seeded `seed`: every batch gets its own spikes,
/// and re-running a batch redraws the same ones.
pub fn batch_seed(seed: u64, stream: u64, batch: usize) -> u64 {
    autoresearch_kernels::encode::random_bits(seed, stream.wrapping_mul(1 << 32) ^ batch as u64)
}

/// `[B, C, H, W]` -> `[H, B, C·W]`: row `t` of every image is step `t`.
fn rows(images: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = images.dims4()?;
    images
        .permute((2, 0, 1, 3))?
        .contiguous()?
        .reshape((h, b, c * w))
}

fn host_pixels(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1::<f32>()
}

fn rate(pixels: &[f32], steps: usize, gain: f64, seed: u64) -> Result<Vec<f32>> {
    let mut out = vec![0f32; steps * pixels.len()];
    autoresearch_kernels::encode::rate(pixels, steps, gain as f32, seed, &mut out)
        .map_err(candle_core::Error::Msg)?;
    Ok(out)
}

/// Spike counts of one weightless Leaky neuron per input over the inner steps of `spikes`
/// (`[steps, n]`, step-major), as snnTorch's Leaky with reset by subtraction: the reset is
/// decided by the previous step's membrane, `mem = beta·mem + s - reset·threshold`, and a
/// spike is `mem > threshold`.
pub fn lif_counts(spikes: &[f32], n: usize, beta: f32, threshold: f32) -> Vec<f32> {
    let mut mem = vec![0f32; n];
    let mut counts = vec![0f32; n];
    for step in spikes.chunks_exact(n.max(1)) {
        for ((m, c), &s) in mem.iter_mut().zip(counts.iter_mut()).zip(step) {
            let reset = if *m > threshold { threshold } else { 0.0 };
            *m = beta * *m + s - reset;
            if *m > threshold {
                *c += 1.0;
            }
        }
    }
    counts
}

/// The step at which a pixel of intensity `p` fires under the latency code, if it fires.
pub fn latency_step(
    p: f64,
    steps: usize,
    threshold: f64,
    form: LatencyForm,
    tau: f64,
) -> Option<usize> {
    if steps == 0 || p < threshold || p <= 0.0 {
        return None;
    }
    let last = (steps - 1) as f64;
    match form {
        LatencyForm::Linear => Some(((1.0 - p.min(1.0)) * steps as f64).floor().min(last) as usize),
        LatencyForm::Log => {
            if p <= threshold {
                return None;
            }
            let t = (tau * (p / (p - threshold)).ln()).floor();
            (t <= last).then_some(t.max(0.0) as usize)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn images() -> Result<Tensor> {
        // 2 images of 1x3x4 with intensities k/11
        let v: Vec<f32> = (0..24).map(|i| (i % 12) as f32 / 11.0).collect();
        Tensor::from_vec(v, (2, 1, 3, 4), &Device::Cpu)
    }

    #[test]
    fn lif_row_counts_follow_snntorch_leaky_as_the_reference_hybrids_use_it() -> Result<()> {
        // one weightless Leaky (beta 0.9, threshold 1.0) per input: a lone unit spike reaches
        // exactly 1.0 and never fires; a spike at every one of 25 steps fires 21 times (the
        // first step only charges, and the subtraction reset skips a step every 8th or so)
        let steps = 25;
        let mut every = vec![0f32; steps * 2];
        every[0] = 1.0; // input 0: one spike at step 0
        for t in 0..steps {
            every[t * 2 + 1] = 1.0; // input 1: a spike at every step
        }
        assert_eq!(lif_counts(&every, 2, 0.9, 1.0), vec![0.0, 21.0]);
        // threshold 0.9 under the latency code: each pixel's count is 1 exactly when it fires
        // (p >= 0.04), so the counts are the binarised image (the reference's 8b/9b/10b rows)
        let x = images()?;
        let enc = EncoderConfig::LifRowCounts {
            code: InnerCode::Latency,
            steps,
            beta: 0.9,
            threshold: 0.9,
            latency_threshold: 0.04,
        };
        let counts = enc.encode(&x, 0)?;
        assert_eq!(counts.dims(), &[3, 2, 4]);
        let want: Vec<f32> = rows(&x)?
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .map(|&p| f32::from(u8::from(p >= 0.04)))
            .collect();
        assert_eq!(counts.flatten_all()?.to_vec1::<f32>()?, want);
        // the rate code: counts grow with intensity and repeat with the seed
        let rate = EncoderConfig::LifRowCounts {
            code: InnerCode::Rate,
            steps,
            beta: 0.9,
            threshold: 1.0,
            latency_threshold: 0.04,
        };
        let a = rate.encode(&x, 5)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(a, rate.encode(&x, 5)?.flatten_all()?.to_vec1::<f32>()?);
        let dark_pixel_count = a[0]; // row 0, image 0, pixel 0: intensity 0
        assert_eq!(dark_pixel_count, 0.0);
        assert!(a.iter().all(|c| (0.0..=21.0).contains(c)));
        assert!(
            rate.validate("model.encoder", false).is_err(),
            "needs [0, 1] pixels"
        );
        Ok(())
    }

    #[test]
    fn latency_fires_at_most_once_at_the_documented_step() -> Result<()> {
        let x = images()?;
        let pixels: Vec<f32> = x.flatten_all()?.to_vec1()?;
        for form in [LatencyForm::Linear, LatencyForm::Log] {
            let enc = EncoderConfig::Latency {
                steps: 10,
                threshold: 0.05,
                form,
                tau: 5.0,
            };
            let out = enc.encode(&x, 0)?;
            assert_eq!(out.dims(), &[10, 2, 1, 3, 4]);
            let s: Vec<f32> = out.flatten_all()?.to_vec1()?;
            for (i, &p) in pixels.iter().enumerate() {
                let fired: Vec<usize> = (0..10).filter(|t| s[t * 24 + i] == 1.0).collect();
                let want = latency_step(p as f64, 10, 0.05, form, 5.0);
                assert_eq!(fired, want.into_iter().collect::<Vec<_>>(), "p = {p}");
                if p < 0.05 {
                    assert!(fired.is_empty());
                }
            }
        }
        // linear: t = floor((1 - p)·T): p = 1 fires first, p = 6/11 at floor(4.545) = 4
        assert_eq!(
            latency_step(1.0, 10, 0.05, LatencyForm::Linear, 5.0),
            Some(0)
        );
        assert_eq!(
            latency_step(6.0 / 11.0, 10, 0.05, LatencyForm::Linear, 5.0),
            Some(4)
        );
        assert_eq!(
            latency_step(0.06, 10, 0.05, LatencyForm::Linear, 5.0),
            Some(9)
        );
        // log: t = floor(5·ln(p / (p - 0.05))): p = 1 -> floor(0.256) = 0, p = 0.1 -> floor(3.47) = 3
        assert_eq!(latency_step(1.0, 10, 0.05, LatencyForm::Log, 5.0), Some(0));
        assert_eq!(latency_step(0.1, 10, 0.05, LatencyForm::Log, 5.0), Some(3));
        assert_eq!(latency_step(0.051, 10, 0.05, LatencyForm::Log, 5.0), None);
        Ok(())
    }

    #[test]
    fn rate_code_mean_follows_intensity_and_depends_only_on_the_seed() -> Result<()> {
        let x = images()?;
        let enc = EncoderConfig::Rate {
            steps: 3000,
            gain: 1.0,
        };
        let out = enc.encode(&x, 7)?;
        let mean: Vec<f32> = out.mean(0)?.flatten_all()?.to_vec1()?;
        let pixels: Vec<f32> = x.flatten_all()?.to_vec1()?;
        for (m, p) in mean.iter().zip(&pixels) {
            assert!((m - p).abs() < 0.04, "rate {m} for intensity {p}");
        }
        let again = enc.encode(&x, 7)?;
        assert_eq!(
            out.flatten_all()?.to_vec1::<f32>()?,
            again.flatten_all()?.to_vec1::<f32>()?
        );
        Ok(())
    }

    #[test]
    fn row_codes_present_rows_as_time_steps() -> Result<()> {
        let x = images()?;
        let rows = EncoderConfig::Rows.encode(&x, 0)?;
        assert_eq!(rows.dims(), &[3, 2, 4]);
        // step 1, image 1 = row 1 of image 1 = intensities 4..8 / 11
        let r: Vec<f32> = rows.get(1)?.get(1)?.to_vec1()?;
        assert_eq!(r, (4..8).map(|i| i as f32 / 11.0).collect::<Vec<_>>());
        // delta: rows increase by 4/11 each step, so with threshold 0.25 every pixel fires after
        // the first row (which rises from 0 only where the pixel is at least 0.25: 3/11)
        let d = EncoderConfig::Delta {
            threshold: 0.25,
            off_spikes: true,
        }
        .encode(&x, 0)?;
        let d0: Vec<f32> = d.get(0)?.get(0)?.to_vec1()?;
        assert_eq!(d0, vec![0.0, 0.0, 0.0, 1.0]);
        assert!(d
            .get(2)?
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .all(|&v| v == 1.0));
        let none = EncoderConfig::Latency {
            steps: 5,
            threshold: 1.0,
            form: LatencyForm::Linear,
            tau: 5.0,
        };
        assert!(none.validate("model.encoder", true).is_err());
        assert!(EncoderConfig::Rate {
            steps: 5,
            gain: 1.0
        }
        .validate("model.encoder", false)
        .is_err());
        Ok(())
    }
}
