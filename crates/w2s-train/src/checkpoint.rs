//! Checkpoints that survive a crash, and finding the one to resume from.
//!
//! `OUT/ckpt-N/` (N = optimizer steps done) holds:
//!
//! | file | what |
//! |---|---|
//! | `config.json`, `model.safetensors` | the weights in HF layout (f32, exact), loadable by transformers |
//! | or `adapter_config.json`, `adapter_model.safetensors` | when training LoRA adapters: only the adapters, in PEFT's layout (the frozen base is the model the run started from) |
//! | `optimizer.bin` | AdamW's moments and step counts (burn record, bincode, full precision) |
//! | `trainer_state.json` | [`TrainerState`]: step, data-plan digest, parameter ids |
//! | `train_config.json` | the run's [`crate::TrainConfig`] and objective, to refuse a mismatched resume |
//!
//! Everything is written into `ckpt-N.tmp/` first and the directory is renamed to `ckpt-N` at the
//! end, so a crash at any point leaves either no `ckpt-N` or a complete one; a half-written
//! `.tmp` directory is never taken for a checkpoint and is removed by the next save. A checkpoint
//! damaged afterwards (a truncated or overwritten file) costs only its own steps: a resume takes
//! the newest checkpoint that loads ([`load_newest_checkpoint`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::ParamId;
use burn::optim::Optimizer;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use w2s_data::write_atomic;
use w2s_llama::{
    load_adapter, load_weights, save_adapter, save_weights, Llama, LlamaConfig, SaveOptions,
    ADAPTER_CONFIG_FILE,
};

use crate::error::{Result, TrainError};
use crate::optimizer::{assign_param_ids, param_ids, LlamaAdamW};

/// Name of the optimizer state file in a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.bin";
/// Name of the trainer state file in a checkpoint.
pub const STATE_FILE: &str = "trainer_state.json";
/// Name of the run config file in a checkpoint and in the final model directory.
pub const RUN_CONFIG_FILE: &str = "train_config.json";

/// Where the trainer is, saved beside the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps done.
    pub step: usize,
    /// Optimizer steps of the whole run.
    pub total_steps: usize,
    /// Digest of the run's data plan (order and batching of every epoch, from the seed) and of
    /// every token id of the records it orders.
    pub plan_fingerprint: u64,
    /// Learning rate of the last step taken.
    pub learning_rate: f64,
    /// The model's parameter ids in visiting order (the keys of the optimizer state).
    pub param_ids: Vec<u64>,
}

/// A checkpoint read back.
pub struct Checkpoint<B: AutodiffBackend> {
    /// Its directory.
    pub dir: PathBuf,
    /// The model, with the parameter ids the optimizer state refers to.
    pub model: Llama<B>,
    /// The model's config.
    pub llama_config: LlamaConfig,
    /// The trainer state.
    pub state: TrainerState,
    /// The run config saved with it.
    pub run_config: serde_json::Value,
    /// The optimizer, restored.
    pub optimizer: LlamaAdamW<B>,
}

/// Names the checkpoint by its directory, step and config; the weights and the optimizer state
/// (which has no `Debug`) are left out.
impl<B: AutodiffBackend> std::fmt::Debug for Checkpoint<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("dir", &self.dir)
            .field("state", &self.state)
            .field("run_config", &self.run_config)
            .finish_non_exhaustive()
    }
}

/// The directory of the checkpoint after `step` steps.
pub fn checkpoint_dir(output_dir: &Path, step: usize) -> PathBuf {
    output_dir.join(format!("ckpt-{step}"))
}

/// The most advanced complete checkpoint in `output_dir`, if any (`.tmp` directories are ignored).
pub fn latest_checkpoint(output_dir: &Path) -> Result<Option<(usize, PathBuf)>> {
    Ok(checkpoints(output_dir)?.into_iter().next())
}

/// Every complete checkpoint in `output_dir` as `(step, directory)`, the most advanced first
/// (`.tmp` directories are ignored).
pub fn checkpoints(output_dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    if !output_dir.is_dir() {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(output_dir).map_err(|e| TrainError::io(output_dir, e))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| TrainError::io(output_dir, e))?;
        let name = entry.file_name();
        let Some(step) = name
            .to_str()
            .and_then(|n| n.strip_prefix("ckpt-"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        if dir.join(STATE_FILE).is_file() {
            found.push((step, dir));
        }
    }
    found.sort_by_key(|(step, _)| std::cmp::Reverse(*step));
    Ok(found)
}

/// The newest checkpoint in `output_dir` that loads, for a resume; `new_optimizer` builds the
/// fresh optimizer each attempt fills, and `base` is the model the run started from (a LoRA
/// checkpoint holds only adapters, which are put on it).
///
/// A checkpoint that fails to load (a truncated weight file, a garbled state file) is reported
/// on stderr with its error and the next older one is tried, so a damaged checkpoint costs its
/// own steps and no more. `None` when there is no checkpoint, or none loads (also reported: the
/// run then starts from the beginning).
///
/// # Errors
/// Only listing `output_dir` fails this; load errors are reported and skipped.
pub fn load_newest_checkpoint<B: AutodiffBackend>(
    output_dir: &Path,
    new_optimizer: impl Fn() -> LlamaAdamW<B>,
    base: &Llama<B>,
    device: &B::Device,
) -> Result<Option<Checkpoint<B>>> {
    let found = checkpoints(output_dir)?;
    for (_, dir) in &found {
        match load_checkpoint(dir, new_optimizer(), base, device) {
            Ok(checkpoint) => return Ok(Some(checkpoint)),
            Err(e) => eprintln!(
                "warning: {}: checkpoint does not load ({e}); trying the one before it",
                dir.display()
            ),
        }
    }
    if !found.is_empty() {
        eprintln!(
            "warning: {}: none of its {} checkpoints loads; training starts from the beginning",
            output_dir.display(),
            found.len()
        );
    }
    Ok(None)
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(write_atomic(path, |file| file.write_all(text.as_bytes()))?)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes the weights in HF layout (or, for a model with adapters, the adapters in PEFT's layout
/// with `base_model` as their base) plus the run config: the final model directory, and the
/// first half of every checkpoint.
pub(crate) fn save_model<B: AutodiffBackend>(
    dir: &Path,
    model: &Llama<B>,
    llama_config: &LlamaConfig,
    base_model: Option<&str>,
    run_config: &serde_json::Value,
) -> Result<()> {
    if model.lora().is_some() {
        save_adapter(model, dir, base_model)?;
    } else {
        save_weights(model, llama_config, dir, SaveOptions::default())?;
    }
    write_json(&dir.join(RUN_CONFIG_FILE), run_config)
}

/// Saves a checkpoint atomically (see the module docs) and returns its directory.
pub(crate) fn save_checkpoint<B: AutodiffBackend>(
    output_dir: &Path,
    model: &Llama<B>,
    llama_config: &LlamaConfig,
    base_model: Option<&str>,
    optimizer: &LlamaAdamW<B>,
    state: &TrainerState,
    run_config: &serde_json::Value,
) -> Result<PathBuf> {
    let dir = checkpoint_dir(output_dir, state.step);
    let tmp = dir.with_file_name(format!("ckpt-{}.tmp", state.step));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    save_model(&tmp, model, llama_config, base_model, run_config)?;
    if model.lora().is_some() {
        // A checkpoint also names its model's shape, which a bare adapter directory does not.
        write_atomic(tmp.join("config.json"), |file| {
            file.write_all(llama_config.to_json("float32").as_bytes())
        })?;
    }
    let optimizer_path = tmp.join(OPTIMIZER_FILE);
    let bytes = BinBytesRecorder::<FullPrecisionSettings>::default()
        .record(optimizer.to_record(), ())
        .map_err(|e| TrainError::OptimizerState {
            path: optimizer_path.clone(),
            reason: e.to_string(),
        })?;
    write_atomic(&optimizer_path, |file| file.write_all(&bytes))?;
    write_json(&tmp.join(STATE_FILE), state)?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| TrainError::io(&dir, e))?;
    w2s_data::sync_directory(&dir)?;
    Ok(dir)
}

/// Loads a checkpoint: weights, trainer state, run config and optimizer state for `optimizer`
/// (a freshly built optimizer of the same kind). A checkpoint of LoRA adapters puts them on
/// `base` (its own adapters, if any, are replaced); a full one ignores it.
pub fn load_checkpoint<B: AutodiffBackend>(
    dir: &Path,
    optimizer: LlamaAdamW<B>,
    base: &Llama<B>,
    device: &B::Device,
) -> Result<Checkpoint<B>> {
    let llama_config = LlamaConfig::from_file(dir.join("config.json"))?;
    let state: TrainerState = read_json(&dir.join(STATE_FILE))?;
    let run_config = read_json(&dir.join(RUN_CONFIG_FILE))?;
    let ids: Vec<ParamId> = state
        .param_ids
        .iter()
        .map(|&id| ParamId::from(id))
        .collect();
    let model = if dir.join(ADAPTER_CONFIG_FILE).is_file() {
        load_adapter(base.without_adapters(), dir, device)?
    } else {
        load_weights::<B>(&llama_config, dir, device)?
    };
    let model = assign_param_ids::<B, _>(model, &ids).map_err(|e| TrainError::Resume {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let optimizer_path = dir.join(OPTIMIZER_FILE);
    let bytes = std::fs::read(&optimizer_path).map_err(|e| TrainError::io(&optimizer_path, e))?;
    let record = BinBytesRecorder::<FullPrecisionSettings>::default()
        .load(bytes, device)
        .map_err(|e| TrainError::OptimizerState {
            path: optimizer_path,
            reason: e.to_string(),
        })?;
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        model,
        llama_config,
        state,
        run_config,
        optimizer: optimizer.load_record(record),
    })
}

/// The ids to store in [`TrainerState::param_ids`].
pub(crate) fn state_param_ids<B: AutodiffBackend>(model: &Llama<B>) -> Vec<u64> {
    param_ids::<B, _>(model).iter().map(ParamId::val).collect()
}
