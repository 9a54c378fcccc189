//! Seeded parameter initialisation: candle's CPU RNG cannot be seeded, so parameters are drawn
//! here from a generator keyed by (seed, parameter name), independent of creation order.

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// A `VarMap` whose new variables are drawn deterministically from `seed` and their name.
#[derive(Clone)]
pub struct SeededVarMap {
    vars: VarMap,
    seed: u64,
}

impl SeededVarMap {
    /// An empty map drawing from `seed`.
    pub fn new(seed: u64) -> Self {
        SeededVarMap {
            vars: VarMap::new(),
            seed,
        }
    }

    /// A `VarBuilder` that creates (or returns existing) variables in this map.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, device.clone())
    }

    /// The underlying map (for saving and loading).
    pub fn var_map(&self) -> &VarMap {
        &self.vars
    }

    fn lock(
        &self,
    ) -> candle_core::Result<std::sync::MutexGuard<'_, std::collections::HashMap<String, Var>>>
    {
        self.vars
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("variable map lock poisoned".into()))
    }

    /// The seed parameters are drawn from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The variable named `name`, or an error if it was never created.
    pub fn var(&self, name: &str) -> candle_core::Result<Var> {
        self.lock()?
            .get(name)
            .cloned()
            .ok_or_else(|| candle_core::Error::Msg(format!("no parameter named {name}")))
    }

    /// All variables sorted by name: the stable order used by optimizers and checkpoints.
    pub fn named_vars(&self) -> candle_core::Result<Vec<(String, Var)>> {
        let data = self.lock()?;
        let mut named: Vec<(String, Var)> =
            data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(named)
    }
}

/// A 64-bit stream id from the seed and a parameter name (FNV-1a, then mixed with the seed).
fn stream_id(seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Draws `shape.elem_count()` values from `init` with a seeded generator.
pub fn draw(init: Init, shape: &Shape, seed: u64, name: &str) -> candle_core::Result<Vec<f32>> {
    let n = shape.elem_count();
    let mut rng = rand::rngs::StdRng::seed_from_u64(stream_id(seed, name));
    let uniform = |rng: &mut rand::rngs::StdRng, lo: f64, up: f64| -> Vec<f32> {
        (0..n).map(|_| rng.random_range(lo..up) as f32).collect()
    };
    let normal =
        |rng: &mut rand::rngs::StdRng, mean: f64, std: f64| -> candle_core::Result<Vec<f32>> {
            let dist = Normal::new(mean, std)
                .map_err(|e| candle_core::Error::Msg(format!("init of {name}: {e}")))?;
            Ok((0..n).map(|_| dist.sample(rng) as f32).collect())
        };
    Ok(match init {
        Init::Const(v) => vec![v as f32; n],
        Init::Uniform { lo, up } => uniform(&mut rng, lo, up),
        Init::Randn { mean, stdev } => normal(&mut rng, mean, stdev)?,
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    uniform(&mut rng, -bound, bound)
                }
                NormalOrUniform::Normal => normal(&mut rng, 0.0, std)?,
            }
        }
    })
}

impl SimpleBackend for SeededVarMap {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut data = self.lock()?;
        if let Some(existing) = data.get(name) {
            if existing.shape() != &s {
                candle_core::bail!(
                    "shape mismatch for {name}: asked {s:?}, have {:?}",
                    existing.shape()
                );
            }
            return Ok(existing.as_tensor().clone());
        }
        let values = draw(h, &s, self.seed, name)?;
        let tensor = Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&tensor)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let data = self.lock()?;
        data.get(name)
            .map(|v| v.as_tensor().clone())
            .ok_or_else(|| {
                candle_core::Error::CannotFindTensor {
                    path: name.to_string(),
                }
                .bt()
            })
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.vars
            .data()
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false)
    }
}
