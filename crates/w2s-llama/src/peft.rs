//! LoRA adapters in PEFT's files, so PEFT, vLLM and w2s load each other's adapters.
//!
//! An adapter directory holds two files:
//!
//! | file | what |
//! |---|---|
//! | `adapter_config.json` | PEFT's `LoraConfig`: `peft_type = "LORA"`, `r`, `lora_alpha`, `lora_dropout`, `use_rslora`, `target_modules`, `task_type = "CAUSAL_LM"`, `base_model_name_or_path`, ... |
//! | `adapter_model.safetensors` | per adapted projection, `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight` `[r, d_in]` and `...lora_B.weight` `[d_out, r]` |
//!
//! Which projections are adapted is read from the tensors themselves, so `target_modules` may be
//! a list, a regular expression or `"all-linear"`. Refused, with the file and the field: DoRA,
//! biases, `fan_in_fan_out`, `modules_to_save`, per-module rank or alpha patterns, adapters on
//! some layers only, and any tensor w2s has no place for.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use burn::prelude::*;
use safetensors::SafeTensors;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use w2s_data::write_atomic;

use crate::error::{LlamaError, Result};
use crate::lora::{LoraAdapter, LoraConfig, LoraTarget};
use crate::model::Llama;
use crate::weights::{decode_floats, encode, map_file, transposed, write_safetensors, SaveDtype};

/// PEFT's adapter config file.
pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";
/// PEFT's adapter weights file.
pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// The fields of `adapter_config.json` w2s reads; PEFT writes many more, which are ignored.
#[derive(Deserialize)]
struct PeftConfig {
    peft_type: String,
    r: usize,
    lora_alpha: f64,
    #[serde(default)]
    lora_dropout: f64,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    fan_in_fan_out: bool,
    #[serde(default)]
    bias: Option<String>,
    #[serde(default)]
    use_dora: bool,
    #[serde(default)]
    lora_bias: bool,
    #[serde(default)]
    modules_to_save: Option<Vec<String>>,
    #[serde(default)]
    layers_to_transform: Option<Value>,
    #[serde(default)]
    rank_pattern: Map<String, Value>,
    #[serde(default)]
    alpha_pattern: Map<String, Value>,
}

impl PeftConfig {
    /// The first setting w2s does not implement, as `(field, why)`.
    fn unsupported(&self) -> Option<(&'static str, String)> {
        if self.peft_type != "LORA" {
            return Some((
                "peft_type",
                format!("is {:?}; only \"LORA\"", self.peft_type),
            ));
        }
        if self.use_dora {
            return Some(("use_dora", "DoRA adapters are not supported".into()));
        }
        if self.fan_in_fan_out {
            return Some((
                "fan_in_fan_out",
                "is true; Llama weights are [out, in]".into(),
            ));
        }
        if self.bias.as_deref().is_some_and(|b| b != "none") || self.lora_bias {
            return Some((
                "bias",
                "trained biases are not supported (Llama has none)".into(),
            ));
        }
        if self.modules_to_save.as_ref().is_some_and(|m| !m.is_empty()) {
            return Some((
                "modules_to_save",
                "fully trained extra modules are not supported".into(),
            ));
        }
        if self
            .layers_to_transform
            .as_ref()
            .is_some_and(|v| !v.is_null())
        {
            return Some(("layers_to_transform", "w2s adapts every layer".into()));
        }
        if !self.rank_pattern.is_empty() || !self.alpha_pattern.is_empty() {
            return Some((
                "rank_pattern",
                "per-module ranks or alphas are not supported".into(),
            ));
        }
        None
    }
}

/// The safetensors name of an adapter matrix (`"A"` or `"B"`).
fn tensor_name(layer: usize, target: LoraTarget, matrix: &str) -> String {
    format!(
        "base_model.model.model.layers.{layer}.{}.lora_{matrix}.weight",
        target.path()
    )
}

/// Writes `model`'s adapters to `dir` (created if needed) in PEFT's layout, as f32;
/// `base_model` is recorded as `base_model_name_or_path` (an HF id or the base's directory;
/// `None` writes `null`, and the base is then named when loading).
///
/// The weights are written before the config, each atomically, so a directory with a config
/// always has its weights.
///
/// # Errors
/// A model without adapters, or a file that cannot be written.
pub fn save_adapter<B: Backend>(
    model: &Llama<B>,
    dir: &Path,
    base_model: Option<&str>,
) -> Result<()> {
    let config = model
        .lora()
        .ok_or_else(|| LlamaError::Lora("the model has no adapters to save".into()))?;
    std::fs::create_dir_all(dir).map_err(|e| LlamaError::io(dir, e))?;
    let mut tensors = Vec::new();
    for (layer, block) in model.model.layers.iter().enumerate() {
        for &target in &config.targets {
            let lora = block.projection(target).lora.as_ref().ok_or_else(|| {
                LlamaError::Lora(format!("layer {layer} has no adapter on {}", target.name()))
            })?;
            tensors.push(encode(
                tensor_name(layer, target, "A"),
                lora.a.val().transpose(),
                SaveDtype::F32,
            )?);
            tensors.push(encode(
                tensor_name(layer, target, "B"),
                lora.b.val().transpose(),
                SaveDtype::F32,
            )?);
        }
    }
    write_safetensors(
        &dir.join(ADAPTER_WEIGHTS_FILE),
        &tensors.iter().collect::<Vec<_>>(),
    )?;
    let text = serde_json::to_string_pretty(&peft_config_json(config, base_model))
        .map_err(|e| LlamaError::Input(format!("adapter config: {e}")))?;
    Ok(write_atomic(dir.join(ADAPTER_CONFIG_FILE), |file| {
        file.write_all(text.as_bytes())
    })?)
}

/// `adapter_config.json` as PEFT writes it for plain LoRA on a causal LM (keys sorted).
fn peft_config_json(
    config: &LoraConfig,
    base_model: Option<&str>,
) -> BTreeMap<&'static str, Value> {
    // PEFT writes an integral alpha as an integer.
    let alpha = if config.alpha.fract() == 0.0 && config.alpha.abs() < 1e15 {
        json!(config.alpha as i64)
    } else {
        json!(config.alpha)
    };
    let targets: Vec<&str> = config.targets.iter().map(|t| t.name()).collect();
    BTreeMap::from([
        ("alpha_pattern", json!({})),
        ("base_model_name_or_path", json!(base_model)),
        ("bias", json!("none")),
        ("fan_in_fan_out", json!(false)),
        ("inference_mode", json!(true)),
        ("init_lora_weights", json!(true)),
        ("layers_pattern", Value::Null),
        ("layers_to_transform", Value::Null),
        ("lora_alpha", alpha),
        ("lora_bias", json!(false)),
        ("lora_dropout", json!(config.dropout)),
        ("modules_to_save", Value::Null),
        ("peft_type", json!("LORA")),
        ("r", json!(config.r)),
        ("rank_pattern", json!({})),
        ("revision", Value::Null),
        ("target_modules", json!(targets)),
        ("task_type", json!("CAUSAL_LM")),
        ("use_dora", json!(false)),
        ("use_rslora", json!(config.rslora)),
    ])
}

/// Reads the adapter config of `dir` as a [`LoraConfig`], its targets still empty (they come
/// from the weights).
fn read_config(dir: &Path) -> Result<LoraConfig> {
    let path = dir.join(ADAPTER_CONFIG_FILE);
    if !path.is_file() {
        return Err(LlamaError::MissingFile {
            dir: dir.to_path_buf(),
            what: "LoRA adapter",
            expected: format!("{ADAPTER_CONFIG_FILE} and {ADAPTER_WEIGHTS_FILE}"),
        });
    }
    let text = std::fs::read_to_string(&path).map_err(|e| LlamaError::io(&path, e))?;
    let peft: PeftConfig = serde_json::from_str(&text).map_err(|cause| LlamaError::Json {
        path: path.clone(),
        cause,
    })?;
    if let Some((field, why)) = peft.unsupported() {
        return Err(LlamaError::Adapter {
            path,
            reason: format!("field `{field}` {why}"),
        });
    }
    Ok(LoraConfig {
        r: peft.r,
        alpha: peft.lora_alpha,
        dropout: peft.lora_dropout,
        rslora: peft.use_rslora,
        targets: Vec::new(),
    })
}

/// `model` with the PEFT adapter of `dir` attached (its base frozen), ready to generate, score,
/// merge or train further.
///
/// # Errors
/// A missing or unsupported adapter config, a weights file that does not parse, and every
/// missing, mis-shaped or unexpected tensor (all listed in one error).
pub fn load_adapter<B: Backend>(
    model: Llama<B>,
    dir: &Path,
    device: &B::Device,
) -> Result<Llama<B>> {
    let mut config = read_config(dir)?;
    let path = dir.join(ADAPTER_WEIGHTS_FILE);
    let map = map_file(&path)?;
    let file = SafeTensors::deserialize(&map).map_err(|e| LlamaError::Safetensors {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let names: BTreeSet<String> = file.names().into_iter().map(str::to_string).collect();
    config.targets = LoraTarget::ALL
        .into_iter()
        .filter(|&t| (0..model.num_layers()).any(|l| names.contains(&tensor_name(l, t, "A"))))
        .collect();
    if config.targets.is_empty() {
        return Err(LlamaError::Adapter {
            path,
            reason: "holds no lora_A tensor of a Llama projection".into(),
        });
    }
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    let r = config.r;
    let mut read = |name: String, shape: [usize; 2]| -> Option<Vec<f32>> {
        let view = match file.tensor(&name) {
            Ok(view) => view,
            Err(_) => {
                problems.push(format!("missing {name} {shape:?}"));
                return None;
            }
        };
        used.insert(name.clone());
        if view.shape() != shape {
            problems.push(format!(
                "{name}: expected shape {shape:?}, found {:?}",
                view.shape()
            ));
            return None;
        }
        let values = decode_floats(&view);
        if values.is_none() {
            problems.push(format!("{name}: unreadable dtype {:?}", view.dtype()));
        }
        values
    };
    let model = model.with_adapters(&config, |layer, target, [d_in, d_out]| {
        let a = read(tensor_name(layer, target, "A"), [r, d_in]).unwrap_or(vec![0.0; r * d_in]);
        let b = read(tensor_name(layer, target, "B"), [d_out, r]).unwrap_or(vec![0.0; d_out * r]);
        Ok(LoraAdapter::from_tensors(
            transposed(&a, [r, d_in], device),
            transposed(&b, [d_out, r], device),
            &config,
        ))
    })?;
    problems.extend(
        names
            .difference(&used)
            .map(|name| format!("unexpected tensor {name}")),
    );
    if !problems.is_empty() {
        return Err(LlamaError::Adapter {
            path,
            reason: format!("does not fit the model:\n  {}", problems.join("\n  ")),
        });
    }
    Ok(model)
}
