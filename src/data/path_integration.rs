//! Path integration (pathintegrationBPU's generator): a run-and-turn walk whose speed `v_t` and
//! turn rate `ω_t` are the input; heading and position (or a heading bump and the home vector)
//! are the per-step targets.
//!
//! Control process: alternate *run* segments (duration U{6..17}, `v = max(0, U(0.55, 1.15) +
//! N(0, 0.04))`, `ω = N(0, 0.025) + N(0, 0.02)` per step) and *turn* segments (duration U{2..6},
//! `v = max(0, U(0.05, 0.35) + N(0, 0.03))`, `ω = ±U(0.18, 0.62) + N(0, 0.04)`), starting with a
//! run. Integration with Δt = 1 from the origin: `θ_t = wrap(θ_{t-1} + ω_t)` (heading first),
//! `x_t = x_{t-1} + v_t cos θ_t`, `y_t = y_{t-1} + v_t sin θ_t`.
//!
//! Noisy test splits add N(0, σ) to both inputs (speed clipped at 0) of the same clean walks,
//! with targets from the clean controls. Every walk is a pure function of `(data_seed, split,
//! length, index)`.

use std::f64::consts::PI;

use candle_core::{Device, Result as CandleResult, Tensor};
use candle_nn::ops::sigmoid;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use super::dataset::{hash_f32, Batch, Dataset, Split};
use super::task::{mse, MetricSums, Task};
use crate::config::{PathIntegrationConfig, PathTargets};
use crate::error::{Error, Result};
use crate::metric::{MetricSpec, Mode, NamedValue};

/// Input channels: speed and turn rate.
pub const INPUT_CHANNELS: usize = 2;
/// Concentration of the heading bump.
const BUMP_KAPPA: f64 = 8.0;
/// Home distances are divided by this in polar targets.
const DISTANCE_SCALE: f64 = 25.0;

/// Wraps an angle into (-π, π].
pub fn wrap(angle: f64) -> f64 {
    let a = (angle + PI).rem_euclid(2.0 * PI) - PI;
    if a <= -PI {
        a + 2.0 * PI
    } else {
        a
    }
}

/// One walk: controls and the integrated heading and position per step.
#[derive(Debug, Clone, PartialEq)]
pub struct Walk {
    /// Speed per step.
    pub v: Vec<f64>,
    /// Turn rate per step (rad).
    pub omega: Vec<f64>,
    /// Heading after each step (rad).
    pub heading: Vec<f64>,
    /// Position after each step.
    pub position: Vec<(f64, f64)>,
}

/// The upstream control process for `steps` steps, integrated.
pub fn walk(rng: &mut impl Rng, steps: usize) -> Walk {
    let (mut v, mut omega) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
    let normal = |sd: f64| Normal::new(0.0, sd).unwrap_or_else(|_| unreachable_normal());
    let mut run = true;
    while v.len() < steps {
        let (len, v_base, w_base, v_sd, w_sd) = if run {
            let len = rng.random_range(6..=17usize);
            let v_base = rng.random_range(0.55..1.15);
            (len, v_base, normal(0.025).sample(rng), 0.04, 0.02)
        } else {
            let len = rng.random_range(2..=6usize);
            let sign = if rng.random::<bool>() { 1.0 } else { -1.0 };
            let w = sign * rng.random_range(0.18..0.62);
            (len, rng.random_range(0.05..0.35), w, 0.03, 0.04)
        };
        for _ in 0..len.min(steps - v.len()) {
            v.push((v_base + normal(v_sd).sample(rng)).max(0.0));
            omega.push(w_base + normal(w_sd).sample(rng));
        }
        run = !run;
    }
    integrate(v, omega)
}

/// A standard normal (only reached if a constant standard deviation were invalid).
fn unreachable_normal() -> Normal<f64> {
    Normal::new(0.0, 1.0).unwrap_or_else(|_| unreachable_normal())
}

/// Heading and position from speeds and turn rates (heading updated before moving).
pub fn integrate(v: Vec<f64>, omega: Vec<f64>) -> Walk {
    let (mut th, mut x, mut y) = (0.0f64, 0.0f64, 0.0f64);
    let mut heading = Vec::with_capacity(v.len());
    let mut position = Vec::with_capacity(v.len());
    for (vt, wt) in v.iter().zip(&omega) {
        th = wrap(th + wt);
        x += vt * th.cos();
        y += vt * th.sin();
        heading.push(th);
        position.push((x, y));
    }
    Walk {
        v,
        omega,
        heading,
        position,
    }
}

/// The path-integration task: targets, loss and the upstream metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct PathTask {
    targets: PathTargets,
    bins: usize,
}

impl PathTask {
    /// The task of `cfg`.
    pub fn new(cfg: &PathIntegrationConfig) -> Self {
        PathTask {
            targets: cfg.targets,
            bins: cfg.heading_bins,
        }
    }

    /// Target channels per step.
    pub fn outputs(&self) -> usize {
        match self.targets {
            PathTargets::Cartesian => 4,
            PathTargets::PolarBump => self.bins + 3,
        }
    }

    /// Target rows `[..., R]` -> what a network outputs for them (the bump as logits).
    pub fn output_space(&self, y: &Tensor) -> Result<Tensor> {
        if self.targets == PathTargets::Cartesian {
            return Ok(y.clone());
        }
        let (n, last) = (self.bins, y.rank() - 1);
        let b = y.narrow(last, 0, n)?.clamp(1e-6f32, 1.0 - 1e-6)?;
        let logit = (b.log()? - b.affine(-1.0, 1.0)?.log()?)?;
        let rest = y.narrow(last, n, self.outputs() - n)?;
        Ok(Tensor::cat(&[&logit, &rest], last)?)
    }

    fn bin_centre(&self, k: usize) -> f64 {
        -PI + 2.0 * PI * k as f64 / self.bins as f64
    }

    /// The target vector of one step.
    pub(crate) fn target(&self, heading: f64, (x, y): (f64, f64), out: &mut Vec<f32>) {
        match self.targets {
            PathTargets::Cartesian => {
                out.extend([heading.cos(), heading.sin(), x, y].map(|v| v as f32))
            }
            PathTargets::PolarBump => {
                out.extend((0..self.bins).map(|k| {
                    (BUMP_KAPPA * ((heading - self.bin_centre(k)).cos() - 1.0)).exp() as f32
                }));
                let bearing = wrap((-y).atan2(-x) - heading);
                let dist = x.hypot(y) / DISTANCE_SCALE;
                out.extend([bearing.cos(), bearing.sin(), dist].map(|v| v as f32));
            }
        }
    }

    /// Decoded (heading, home bearing or position) per step from an output or target row.
    fn decode(&self, row: &[f32], is_output: bool) -> Decoded {
        match self.targets {
            PathTargets::Cartesian => Decoded {
                heading: f64::from(row[1]).atan2(f64::from(row[0])),
                a: f64::from(row[2]),
                b: f64::from(row[3]),
            },
            PathTargets::PolarBump => {
                let (mut s, mut c) = (0.0, 0.0);
                for (k, &value) in row.iter().take(self.bins).enumerate() {
                    let raw = f64::from(value);
                    let p = if is_output {
                        1.0 / (1.0 + (-raw).exp())
                    } else {
                        raw
                    };
                    s += p * self.bin_centre(k).sin();
                    c += p * self.bin_centre(k).cos();
                }
                let n = self.bins;
                Decoded {
                    heading: s.atan2(c),
                    a: f64::from(row[n + 1]).atan2(f64::from(row[n])),
                    b: f64::from(row[n + 2]) * DISTANCE_SCALE,
                }
            }
        }
    }
}

/// What metrics read from one step: heading, and (x, y) for cartesian targets or (home
/// bearing, home distance in world units) for polar ones.
struct Decoded {
    heading: f64,
    a: f64,
    b: f64,
}

impl Task for PathTask {
    fn metrics(&self) -> Vec<MetricSpec> {
        let mut m = vec![
            MetricSpec::new("loss", Mode::Min, ""),
            MetricSpec::new("heading_error", Mode::Min, "rad"),
            MetricSpec::new("heading_error_deg", Mode::Min, "deg"),
            MetricSpec::new("position_rmse", Mode::Min, "world units"),
            MetricSpec::new("final_displacement_error", Mode::Min, "world units"),
            MetricSpec::new("final_home_vector_cosine", Mode::Max, ""),
        ];
        if self.targets == PathTargets::PolarBump {
            m.push(MetricSpec::new("home_bearing_error", Mode::Min, "rad"));
            m.push(MetricSpec::new("bump_mse", Mode::Min, ""));
        }
        m
    }

    fn default_objective(&self) -> &'static str {
        "loss"
    }

    fn loss(&self, output: &Tensor, target: &Tensor) -> CandleResult<Tensor> {
        match self.targets {
            PathTargets::Cartesian => mse(output, target),
            PathTargets::PolarBump => {
                let n = self.bins;
                let bump = mse(
                    &sigmoid(&output.narrow(2, 0, n)?)?,
                    &target.narrow(2, 0, n)?,
                )?;
                let bear = mse(&output.narrow(2, n, 2)?, &target.narrow(2, n, 2)?)?;
                let dist = mse(&output.narrow(2, n + 2, 1)?, &target.narrow(2, n + 2, 1)?)?;
                bump.add(&bear)?.add(&dist.affine(0.5, 0.0)?)
            }
        }
    }

    fn accumulate(
        &self,
        output: &Tensor,
        target: &Tensor,
        sums: &mut MetricSums,
    ) -> CandleResult<()> {
        let (o, y) = (output.to_vec3::<f32>()?, target.to_vec3::<f32>()?);
        let (steps, batch) = (o.len(), o.first().map_or(0, Vec::len));
        let n = (steps * batch) as f64;
        let (mut head, mut pos_sq, mut bearing, mut bump_sq) = (0.0, 0.0, 0.0, 0.0);
        for t in 0..steps {
            for b in 0..batch {
                let (p, q) = (self.decode(&o[t][b], true), self.decode(&y[t][b], false));
                head += wrap(p.heading - q.heading).abs();
                match self.targets {
                    PathTargets::Cartesian => {
                        pos_sq += ((p.a - q.a).powi(2) + (p.b - q.b).powi(2)) / 2.0
                    }
                    PathTargets::PolarBump => {
                        pos_sq += (p.b - q.b).powi(2);
                        bearing += wrap(p.a - q.a).abs();
                        for k in 0..self.bins {
                            let s = 1.0 / (1.0 + (-f64::from(o[t][b][k])).exp());
                            bump_sq += (s - f64::from(y[t][b][k])).powi(2) / self.bins as f64;
                        }
                    }
                }
            }
        }
        sums.add("heading_error", head, n);
        sums.add("position_sq", pos_sq, n);
        if self.targets == PathTargets::PolarBump {
            sums.add("home_bearing_error", bearing, n);
            sums.add("bump_mse", bump_sq, n);
        }
        if let Some(last) = steps.checked_sub(1) {
            let (mut disp, mut cos) = (0.0, 0.0);
            for b in 0..batch {
                let (p, q) = (
                    self.decode(&o[last][b], true),
                    self.decode(&y[last][b], false),
                );
                match self.targets {
                    PathTargets::Cartesian => {
                        disp += (p.a - q.a).hypot(p.b - q.b);
                        let norm = p.a.hypot(p.b) * q.a.hypot(q.b);
                        cos += if norm > 0.0 {
                            (p.a * q.a + p.b * q.b) / norm
                        } else {
                            0.0
                        };
                    }
                    PathTargets::PolarBump => {
                        disp += (p.b - q.b).abs();
                        cos += (p.a - q.a).cos();
                    }
                }
            }
            sums.add("final_displacement_error", disp, batch as f64);
            sums.add("final_home_vector_cosine", cos, batch as f64);
        }
        Ok(())
    }

    fn finish(&self, sums: &MetricSums) -> Vec<NamedValue> {
        let heading = sums.mean("heading_error");
        let mut out = vec![
            NamedValue::new("heading_error", heading),
            NamedValue::new("heading_error_deg", heading.to_degrees()),
            NamedValue::new("position_rmse", sums.mean("position_sq").sqrt()),
            NamedValue::new(
                "final_displacement_error",
                sums.mean("final_displacement_error"),
            ),
            NamedValue::new(
                "final_home_vector_cosine",
                sums.mean("final_home_vector_cosine"),
            ),
        ];
        if self.targets == PathTargets::PolarBump {
            for name in ["home_bearing_error", "bump_mse"] {
                out.push(NamedValue::new(name, sums.mean(name)));
            }
        }
        out
    }
}

/// One split of walks: `len` walks of `steps` steps, optionally with input noise.
#[derive(Debug, Clone)]
pub struct PathSplit {
    task: PathTask,
    seed: u64,
    split: u64,
    steps: usize,
    noise: f64,
    len: usize,
}

impl PathSplit {
    /// Walk `i` and its (possibly noisy) inputs.
    fn sample(&self, i: usize) -> (Walk, Vec<[f64; 2]>) {
        let key = seed_of(self.seed, self.split, self.steps as u64, i as u64);
        let walk = walk(&mut rand::rngs::StdRng::seed_from_u64(key), self.steps);
        let mut inputs: Vec<[f64; 2]> = walk
            .v
            .iter()
            .zip(&walk.omega)
            .map(|(&v, &w)| [v, w])
            .collect();
        if self.noise > 0.0 {
            let noise_key = seed_of(key, 90_200, (self.noise * 1000.0).round() as u64, 1);
            let mut rng = rand::rngs::StdRng::seed_from_u64(noise_key);
            let normal = Normal::new(0.0, self.noise).unwrap_or_else(|_| unreachable_normal());
            for step in &mut inputs {
                step[0] = (step[0] + normal.sample(&mut rng)).max(0.0);
                step[1] += normal.sample(&mut rng);
            }
        }
        (walk, inputs)
    }
}

/// Mixes seed words (splitmix64 steps).
fn seed_of(seed: u64, a: u64, b: u64, c: u64) -> u64 {
    [a, b, c].iter().fold(seed, |z, w| {
        let mut z = z ^ w.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

impl Split for PathSplit {
    fn len(&self) -> usize {
        self.len
    }

    fn batch(&self, indices: &[usize], device: &Device) -> Result<Batch> {
        let (t_len, b, r) = (self.steps, indices.len(), self.task.outputs());
        let mut x = vec![0f32; t_len * b * INPUT_CHANNELS];
        let mut y = vec![0f32; t_len * b * r];
        let mut row = Vec::with_capacity(r);
        for (col, &i) in indices.iter().enumerate() {
            let (walk, inputs) = self.sample(i);
            for (t, step) in inputs.iter().enumerate().take(t_len) {
                let at = (t * b + col) * INPUT_CHANNELS;
                x[at] = step[0] as f32;
                x[at + 1] = step[1] as f32;
                row.clear();
                self.task
                    .target(walk.heading[t], walk.position[t], &mut row);
                let at = (t * b + col) * r;
                y[at..at + r].copy_from_slice(&row);
            }
        }
        Ok(Batch {
            input: Tensor::from_vec(x, (t_len, b, INPUT_CHANNELS), device)?,
            target: Tensor::from_vec(y, (t_len, b, r), device)?,
        })
    }

    fn fingerprint(&self, i: usize) -> u64 {
        let (walk, _) = self.sample(i);
        let values: Vec<f32> = walk
            .v
            .iter()
            .chain(&walk.omega)
            .map(|&v| v as f32)
            .collect();
        hash_f32(&values, &[])
    }
}

/// Split stream ids: train, val, clean tests (by length), the noisy tests' shared base.
const TRAIN: u64 = 0;
const VAL: u64 = 1;
const TEST: u64 = 2;
const NOISE_BASE: u64 = 3;

/// The path-integration dataset: train and val at `steps`, a clean test split per length in
/// `test_steps` (`test` at `steps`, else `test_t<T>`), and a noisy split per level in
/// `test_noise` at the longest length (`test_t<T>_noise<1000σ>`).
pub fn dataset(cfg: &PathIntegrationConfig) -> Result<Dataset> {
    check(cfg)?;
    let task = PathTask::new(cfg);
    let split = |id: u64, steps: usize, noise: f64, len: usize| -> Box<dyn Split> {
        Box::new(PathSplit {
            task: task.clone(),
            seed: cfg.data_seed,
            split: id,
            steps,
            noise,
            len,
        })
    };
    let mut tests = Vec::new();
    for &t in &cfg.test_steps {
        let name = if t == cfg.steps {
            "test".to_string()
        } else {
            format!("test_t{t}")
        };
        tests.push((name, split(TEST, t, 0.0, cfg.test_sequences)));
    }
    let longest = cfg.test_steps.iter().copied().max().unwrap_or(cfg.steps);
    for &sigma in cfg.test_noise.iter().filter(|s| **s > 0.0) {
        let name = format!(
            "test_t{longest}_noise{:03}",
            (sigma * 1000.0).round() as u64
        );
        tests.push((name, split(NOISE_BASE, longest, sigma, cfg.test_sequences)));
    }
    tests.sort_by_key(|(name, _)| name != "test");
    Ok(Dataset {
        kind: "path_integration",
        outputs: task.outputs(),
        task: std::sync::Arc::new(task.clone()),
        input: super::dataset::InputShape::Sequence {
            channels: INPUT_CHANNELS,
            steps: cfg.steps,
        },
        train: split(TRAIN, cfg.steps, 0.0, cfg.train_sequences),
        val: split(VAL, cfg.steps, 0.0, cfg.val_sequences),
        tests,
    })
}

/// Checks every value of `cfg`, naming the key at fault.
pub fn check(cfg: &PathIntegrationConfig) -> Result<()> {
    let positive = [
        ("data.steps", cfg.steps),
        ("data.train_sequences", cfg.train_sequences),
        ("data.val_sequences", cfg.val_sequences),
        ("data.test_sequences", cfg.test_sequences),
    ];
    for (key, n) in positive {
        if n == 0 {
            return Err(Error::invalid(key, "0; use an integer >= 1"));
        }
    }
    if cfg.test_steps.is_empty() || cfg.test_steps.contains(&0) {
        return Err(Error::invalid(
            "data.test_steps",
            format!("{:?}: give at least one length >= 1", cfg.test_steps),
        ));
    }
    if cfg.heading_bins < 4 {
        return Err(Error::invalid(
            "data.heading_bins",
            format!("{} bins; use at least 4", cfg.heading_bins),
        ));
    }
    if let Some(bad) = cfg
        .test_noise
        .iter()
        .find(|s| !(s.is_finite() && **s >= 0.0))
    {
        return Err(Error::invalid(
            "data.test_noise",
            format!("{bad} is not a standard deviation (finite, >= 0)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integration_turns_before_moving_and_wraps() {
        let w = integrate(vec![1.0, 1.0], vec![PI / 2.0, PI]);
        assert!((w.heading[0] - PI / 2.0).abs() < 1e-12);
        assert!(w.position[0].0.abs() < 1e-12 && (w.position[0].1 - 1.0).abs() < 1e-12);
        assert!((w.heading[1] + PI / 2.0).abs() < 1e-12, "{}", w.heading[1]);
        assert!(w.position[1].1.abs() < 1e-12);
        assert!((wrap(3.0 * PI) - PI).abs() < 1e-12);
    }

    #[test]
    fn controls_follow_the_run_and_turn_process() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let w = walk(&mut rng, 2000);
        assert_eq!(w.v.len(), 2000);
        assert!(w.v.iter().all(|v| *v >= 0.0));
        let fast = w.v.iter().filter(|v| **v > 0.5).count() as f64 / 2000.0;
        // runs (6-17 steps at ~0.85) outweigh turns (2-6 steps at ~0.2)
        assert!((0.6..0.9).contains(&fast), "{fast}");
        let sharp = w.omega.iter().filter(|o| o.abs() > 0.15).count() as f64 / 2000.0;
        assert!((0.1..0.4).contains(&sharp), "{sharp}");
    }

    #[test]
    fn noisy_splits_share_clean_targets() -> Result<()> {
        let mut cfg: PathIntegrationConfig = crate::config::from_yaml_str("{}")?;
        cfg.test_noise = vec![0.0, 0.1];
        cfg.test_sequences = 3;
        cfg.train_sequences = 5;
        cfg.val_sequences = 3;
        let data = dataset(&cfg)?;
        let names: Vec<&str> = data.tests.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["test", "test_t100", "test_t200", "test_t200_noise100"]
        );
        let (_, s200) = &data.tests[2];
        let (_, noisy) = &data.tests[3];
        let dev = Device::Cpu;
        let (x0, noisy) = (s200.batch(&[0], &dev)?.input, noisy.batch(&[0], &dev)?);
        let (x1, y1) = (noisy.input, noisy.target);
        assert_eq!(y1.dims(), [200, 1, 4]);
        assert_ne!(x0.to_vec3::<f32>()?, x1.to_vec3::<f32>()?);
        let clean_y = PathSplit {
            noise: 0.0,
            ..noisy_split(&cfg)
        }
        .batch(&[0], &dev)?
        .target;
        assert_eq!(clean_y.to_vec3::<f32>()?, y1.to_vec3::<f32>()?);
        Ok(())
    }

    fn noisy_split(cfg: &PathIntegrationConfig) -> PathSplit {
        PathSplit {
            task: PathTask::new(cfg),
            seed: cfg.data_seed,
            split: NOISE_BASE,
            steps: 200,
            noise: 0.1,
            len: 3,
        }
    }

    #[test]
    fn a_perfect_prediction_scores_zero_error() -> Result<()> {
        for targets in [PathTargets::Cartesian, PathTargets::PolarBump] {
            let mut cfg: PathIntegrationConfig = crate::config::from_yaml_str("{}")?;
            cfg.targets = targets;
            let task = PathTask::new(&cfg);
            let split = PathSplit {
                task: task.clone(),
                seed: 1,
                split: TRAIN,
                steps: 30,
                noise: 0.0,
                len: 4,
            };
            let y = split.batch(&[0, 1, 2], &Device::Cpu)?.target;
            // a polar output is a logit: invert the bump's sigmoid
            let out = task.output_space(&y)?;
            let mut sums = MetricSums::default();
            task.accumulate(&out, &y, &mut sums)?;
            let m = task.finish(&sums);
            for NamedValue { name, value: v } in &m {
                let want = if name == "final_home_vector_cosine" {
                    1.0
                } else {
                    0.0
                };
                assert!((v - want).abs() < 1e-3, "{targets:?} {name} = {v}");
            }
            assert!(task.loss(&out, &y)?.to_scalar::<f32>()? < 1e-6);
        }
        Ok(())
    }
}
