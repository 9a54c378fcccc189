//! Checkpoints as safetensors: `last` holds weights, optimizer slots and the training state (in
//! the header metadata), so one atomic rename commits all of it; `best` holds weights only.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::early_stop::EarlyStopState;
use super::optim::OptimizerState;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::rundir::EpochRecord;

const STATE_KEY: &str = "autoresearch.state";
const OPTIMIZER_PREFIX: &str = "optimizer.";
/// Prefix of a network's extra state (`Network::extra_state`) in checkpoints.
const EXTRA_PREFIX: &str = "extra.";

/// Everything besides tensors needed to continue training exactly where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Checkpoint format version.
    pub schema_version: u32,
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer steps taken.
    pub optimizer_step: u64,
    /// Optimizer slot names stored under `optimizer.<slot>.<param>`.
    pub optimizer_slots: Vec<String>,
    /// Every epoch's record so far (history.csv is re-rendered from this on resume).
    pub history: Vec<EpochRecord>,
    /// Best value of the objective so far (`best_val_acc` in version-1 checkpoints, whose
    /// objective was validation accuracy).
    #[serde(alias = "best_val_acc")]
    pub best: Option<f64>,
    /// Epoch of `best`.
    pub best_epoch: Option<usize>,
    /// Early-stopping progress.
    pub early_stop: EarlyStopState,
    /// Training wall time so far.
    pub wall_time_s: f64,
    /// How shuffling randomness is derived (pure function of seed and epoch; nothing to restore).
    pub rng: String,
    /// Gradient flossing's progress (its optimizer's moments are tensors of the checkpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flossing: Option<crate::dynamics::FlossCounters>,
}

fn corrupt(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        message: format!("{message}; delete the checkpoint or rerun with --force to start over"),
    }
}

/// Writes `last.safetensors` (atomically) and a readable `last.json` beside it.
pub fn save_last(
    path: &Path,
    json_path: &Path,
    params: &[(String, Var)],
    extra: &[(String, Tensor)],
    optimizer: &OptimizerState,
    state: &TrainState,
) -> Result<()> {
    let mut tensors = weights_and_extra(params, extra);
    for (slot, values) in &optimizer.slots {
        for ((name, _), value) in params.iter().zip(values) {
            if let Some(t) = value {
                tensors.push((format!("{OPTIMIZER_PREFIX}{slot}.{name}"), t.clone()));
            }
        }
    }
    let json = serde_json::to_string(state).map_err(|e| corrupt(path, e))?;
    let bytes = safetensors::serialize(
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        Some(HashMap::from([(STATE_KEY.to_string(), json)])),
    )
    .map_err(|e| corrupt(path, e))?;
    write_atomic(path, &bytes)?;
    let pretty = serde_json::to_string_pretty(state).map_err(|e| corrupt(path, e))?;
    write_atomic(json_path, pretty.as_bytes())
}

/// The tensors a checkpoint holds for the network: parameters, then extra state.
fn weights_and_extra(
    params: &[(String, Var)],
    extra: &[(String, Tensor)],
) -> Vec<(String, Tensor)> {
    params
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .chain(
            extra
                .iter()
                .map(|(n, t)| (format!("{EXTRA_PREFIX}{n}"), t.clone())),
        )
        .collect()
}

/// The extra state stored in a checkpoint's tensors, sorted by name.
fn extra_of(tensors: &HashMap<String, Tensor>) -> Vec<(String, Tensor)> {
    let mut extra: Vec<(String, Tensor)> = tensors
        .iter()
        .filter_map(|(n, t)| {
            n.strip_prefix(EXTRA_PREFIX)
                .map(|name| (name.to_string(), t.clone()))
        })
        .collect();
    extra.sort_by(|a, b| a.0.cmp(&b.0));
    extra
}

/// What [`load_last`] restores besides the parameters it sets.
pub type LastCheckpoint = (OptimizerState, TrainState, Vec<(String, Tensor)>);

/// Reads `last.safetensors` into `params` and returns the optimizer state, the training state
/// and the network's extra state.
pub fn load_last(path: &Path, params: &[(String, Var)], device: &Device) -> Result<LastCheckpoint> {
    let bytes = std::fs::read(path).map_err(Error::io("reading checkpoint", path))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| corrupt(path, format!("not a valid safetensors file ({e})")))?;
    let state_json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(STATE_KEY))
        .ok_or_else(|| {
            corrupt(
                path,
                format!("no `{STATE_KEY}` metadata: not a last-checkpoint of autoresearch"),
            )
        })?;
    let state: TrainState = serde_json::from_str(state_json)
        .map_err(|e| corrupt(path, format!("unreadable training state ({e})")))?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| corrupt(path, format!("unreadable tensors ({e})")))?;
    set_params(path, params, &tensors)?;
    let mut slots = Vec::new();
    for slot in &state.optimizer_slots {
        let values = params
            .iter()
            .map(|(name, _)| {
                tensors
                    .get(&format!("{OPTIMIZER_PREFIX}{slot}.{name}"))
                    .cloned()
            })
            .collect();
        let slot: &'static str = match slot.as_str() {
            "m" => "m",
            "v" => "v",
            "momentum" => "momentum",
            other => return Err(corrupt(path, format!("unknown optimizer slot `{other}`"))),
        };
        slots.push((slot, values));
    }
    Ok((
        OptimizerState {
            step: state.optimizer_step,
            slots,
        },
        state,
        extra_of(&tensors),
    ))
}

/// Writes weights and extra state only (the `best` checkpoint), with the epoch in the metadata.
pub fn save_weights(
    path: &Path,
    params: &[(String, Var)],
    extra: &[(String, Tensor)],
    epoch: usize,
) -> Result<()> {
    let tensors = weights_and_extra(params, extra);
    let bytes = safetensors::serialize(
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        Some(HashMap::from([("epoch".to_string(), epoch.to_string())])),
    )
    .map_err(|e| corrupt(path, e))?;
    write_atomic(path, &bytes)
}

/// Loads weights written by [`save_weights`] (or any safetensors file with the same names)
/// and returns the extra state stored with them.
pub fn load_weights(
    path: &Path,
    params: &[(String, Var)],
    device: &Device,
) -> Result<Vec<(String, Tensor)>> {
    let bytes = std::fs::read(path).map_err(Error::io("reading checkpoint", path))?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| corrupt(path, format!("not a valid safetensors file ({e})")))?;
    set_params(path, params, &tensors)?;
    Ok(extra_of(&tensors))
}

fn set_params(
    path: &Path,
    params: &[(String, Var)],
    tensors: &HashMap<String, Tensor>,
) -> Result<()> {
    for (name, var) in params {
        let t = tensors
            .get(name)
            .ok_or_else(|| corrupt(path, format!("parameter `{name}` is missing")))?;
        if t.shape() != var.shape() {
            return Err(corrupt(
                path,
                format!(
                    "parameter `{name}` has shape {:?}, the model needs {:?}",
                    t.dims(),
                    var.dims()
                ),
            ));
        }
        var.set(t)?;
    }
    Ok(())
}
