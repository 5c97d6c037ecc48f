//! The model's hyper-parameters, read from and written to HuggingFace `config.json`.
//!
//! [`LlamaConfig`] mirrors the fields of transformers' `LlamaConfig` (`configuration_llama.py`) with
//! the same names and defaults, and keeps every field it does not interpret so that a config saved
//! by w2s still carries what the user's checkpoint had. [`LlamaConfig::validate`] checks the sizes
//! against each other and resolves RoPE scaling, written either as v4's `rope_theta` +
//! `rope_scaling` or as v5's `rope_parameters`, into [`RopeConfig`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{LlamaError, Result};

/// Hyper-parameters of a Llama model, spelled as in HF `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Number of token embeddings (rows of `embed_tokens` and `lm_head`).
    pub vocab_size: usize,
    /// Model width `d`.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads `h`.
    pub num_attention_heads: usize,
    /// Number of key/value heads; fewer than `num_attention_heads` is GQA, 1 is MQA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; `hidden_size / num_attention_heads` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    /// Epsilon of every RMSNorm.
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base (v4 spelling); v5 puts it in `rope_parameters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// RoPE scaling (v4 spelling): `null`, `{"rope_type": "linear", "factor"}` or llama3's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<Value>,
    /// RoPE base and scaling together (transformers v5 spelling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<Value>,
    /// Longest sequence the model accepts (prompt plus generated tokens).
    #[serde(default = "default_max_position_embeddings")]
    pub max_position_embeddings: usize,
    /// Whether `lm_head` reuses `embed_tokens`.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token(s); Llama 3 instruct lists several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<TokenIds>,
    /// Padding token, when the checkpoint names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<u32>,
    /// Standard deviation of the normal initializer used for models trained from scratch.
    #[serde(default = "default_initializer_range")]
    pub initializer_range: f64,
    /// Activation of the MLP; only `silu` is a Llama.
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    /// Biases on q/k/v/o projections (not part of Llama; rejected).
    #[serde(default)]
    pub attention_bias: bool,
    /// Biases on the MLP projections (not part of Llama; rejected).
    #[serde(default)]
    pub mlp_bias: bool,
    /// Every other field of the file, written back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One token id or several (HF allows both for `eos_token_id`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// A single id.
    One(u32),
    /// Several ids, any of which ends a sequence.
    Many(Vec<u32>),
}

impl TokenIds {
    /// The ids as a list.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

fn default_rms_norm_eps() -> f64 {
    1e-6
}
fn default_max_position_embeddings() -> usize {
    2048
}
fn default_initializer_range() -> f64 {
    0.02
}
fn default_hidden_act() -> String {
    "silu".to_string()
}
const DEFAULT_ROPE_THETA: f64 = 10_000.0;

/// RoPE base and frequency scaling, resolved from either spelling.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeConfig {
    /// The base `theta` of the inverse frequencies `theta^(-2i/head_dim)`.
    pub theta: f64,
    /// How the frequencies are rescaled for longer contexts.
    pub scaling: RopeScaling,
}

/// The RoPE frequency scalings w2s implements (transformers' `ROPE_INIT_FUNCTIONS` of the same name).
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE (`rope_type: "default"` or no scaling).
    None,
    /// Position interpolation: every inverse frequency divided by `factor`.
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// Llama 3.1's by-parts scaling: long wavelengths divided by `factor`, short ones kept, a
    /// smooth blend in between.
    Llama3 {
        /// Divisor of the low frequencies.
        factor: f64,
        /// Wavelengths longer than `original_max_position_embeddings / low_freq_factor` are scaled.
        low_freq_factor: f64,
        /// Wavelengths shorter than `original_max_position_embeddings / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// The context the model was pretrained with.
        original_max_position_embeddings: usize,
    },
}

impl LlamaConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| LlamaError::io(path, e))?;
        let config: Self = serde_json::from_str(&text).map_err(|cause| LlamaError::Json {
            path: path.to_path_buf(),
            cause,
        })?;
        config.validate_at(path)?;
        Ok(config)
    }

    /// Parses a config from JSON text and validates it.
    pub fn from_json(text: &str) -> Result<Self> {
        let path = PathBuf::from("<memory>");
        let config: Self = serde_json::from_str(text).map_err(|cause| LlamaError::Json {
            path: path.clone(),
            cause,
        })?;
        config.validate_at(&path)?;
        Ok(config)
    }

    /// The config as HF `config.json` text, with `architectures`, `model_type` and `torch_dtype`
    /// set so that transformers' `AutoModelForCausalLM` loads it.
    pub fn to_json(&self, torch_dtype: &str) -> String {
        let mut config = self.clone();
        config.extra.insert(
            "architectures".into(),
            Value::from(vec!["LlamaForCausalLM"]),
        );
        config
            .extra
            .insert("model_type".into(), Value::from("llama"));
        // transformers v4 reads `torch_dtype`, v5 `dtype`.
        config
            .extra
            .insert("torch_dtype".into(), Value::from(torch_dtype));
        config
            .extra
            .insert("dtype".into(), Value::from(torch_dtype));
        // Serializing a struct of plain fields and a JSON map cannot fail.
        serde_json::to_string_pretty(&config).unwrap_or_default()
    }

    /// Checks that the sizes agree with each other and that RoPE is a kind w2s implements.
    pub fn validate(&self) -> Result<()> {
        self.validate_at(Path::new("<memory>"))
    }

    fn validate_at(&self, path: &Path) -> Result<()> {
        let err = |field: &'static str, reason: String| LlamaError::Config {
            path: path.to_path_buf(),
            field,
            reason,
        };
        for (field, value) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if value == 0 {
                return Err(err(field, "must be at least 1".into()));
            }
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(err(
                "hidden_size",
                format!(
                    "{} is not divisible by num_attention_heads = {} (set head_dim explicitly)",
                    self.hidden_size, self.num_attention_heads
                ),
            ));
        }
        let head_dim = self.head_dim();
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(err(
                "head_dim",
                format!("{head_dim} must be a positive even number (RoPE rotates pairs)"),
            ));
        }
        let kv = self.num_key_value_heads();
        if kv == 0 || !self.num_attention_heads.is_multiple_of(kv) {
            return Err(err(
                "num_key_value_heads",
                format!(
                    "{kv} must divide num_attention_heads = {}",
                    self.num_attention_heads
                ),
            ));
        }
        if !(self.rms_norm_eps > 0.0 && self.rms_norm_eps.is_finite()) {
            return Err(err(
                "rms_norm_eps",
                format!("{} must be > 0", self.rms_norm_eps),
            ));
        }
        if self.hidden_act != "silu" {
            return Err(err(
                "hidden_act",
                format!("`{}` is not supported; Llama uses `silu`", self.hidden_act),
            ));
        }
        if self.attention_bias {
            return Err(err(
                "attention_bias",
                "biased attention is not a Llama".into(),
            ));
        }
        if self.mlp_bias {
            return Err(err("mlp_bias", "a biased MLP is not a Llama".into()));
        }
        for (field, id) in [
            ("bos_token_id", self.bos_token_id),
            ("pad_token_id", self.pad_token_id),
        ] {
            if let Some(id) = id {
                if id as usize >= self.vocab_size {
                    return Err(err(
                        field,
                        format!("{id} >= vocab_size {}", self.vocab_size),
                    ));
                }
            }
        }
        if let Some(&id) = self
            .eos_token_ids()
            .iter()
            .find(|&&id| id as usize >= self.vocab_size)
        {
            return Err(err(
                "eos_token_id",
                format!("{id} >= vocab_size {}", self.vocab_size),
            ));
        }
        self.rope_at(path).map(|_| ())
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Number of key/value heads (equal to the query heads when the config omits it).
    pub fn num_key_value_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// All end-of-sequence ids (possibly none).
    pub fn eos_token_ids(&self) -> Vec<u32> {
        self.eos_token_id
            .as_ref()
            .map(TokenIds::to_vec)
            .unwrap_or_default()
    }

    /// RoPE base and scaling, from `rope_parameters` (v5) or `rope_theta` + `rope_scaling` (v4).
    pub fn rope(&self) -> Result<RopeConfig> {
        self.rope_at(Path::new("<memory>"))
    }

    fn rope_at(&self, path: &Path) -> Result<RopeConfig> {
        let err = |field: &'static str, reason: String| LlamaError::Config {
            path: path.to_path_buf(),
            field,
            reason,
        };
        let (field, params) = match (&self.rope_parameters, &self.rope_scaling) {
            (Some(p), _) if !p.is_null() => ("rope_parameters", Some(p)),
            (_, Some(s)) if !s.is_null() => ("rope_scaling", Some(s)),
            _ => ("rope_scaling", None),
        };
        let params = match params {
            None => {
                return Ok(RopeConfig {
                    theta: self.rope_theta.unwrap_or(DEFAULT_ROPE_THETA),
                    scaling: RopeScaling::None,
                })
            }
            Some(Value::Object(map)) => map,
            Some(other) => return Err(err(field, format!("expected an object, found {other}"))),
        };
        let number = |key: &str| -> Result<Option<f64>> {
            match params.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| err(field, format!("`{key}` must be a number, found {v}"))),
            }
        };
        let required = |key: &str| -> Result<f64> {
            number(key)?.ok_or_else(|| err(field, format!("`{key}` is required")))
        };
        let theta = match number("rope_theta")? {
            Some(theta) => theta,
            None => self.rope_theta.unwrap_or(DEFAULT_ROPE_THETA),
        };
        if !(theta > 0.0 && theta.is_finite()) {
            return Err(err(field, format!("rope_theta {theta} must be > 0")));
        }
        // v4 files used `type`, later ones `rope_type`; both appear in the wild.
        let kind = params
            .get("rope_type")
            .or_else(|| params.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("default");
        let positive = |key: &str, value: f64| -> Result<f64> {
            if value > 0.0 && value.is_finite() {
                Ok(value)
            } else {
                Err(err(field, format!("`{key}` = {value} must be > 0")))
            }
        };
        let scaling = match kind {
            "default" => RopeScaling::None,
            "linear" => RopeScaling::Linear {
                factor: positive("factor", required("factor")?)?,
            },
            "llama3" => {
                let low = positive("low_freq_factor", required("low_freq_factor")?)?;
                let high = positive("high_freq_factor", required("high_freq_factor")?)?;
                if high <= low {
                    return Err(err(
                        field,
                        format!("high_freq_factor {high} must exceed low_freq_factor {low}"),
                    ));
                }
                let original = required("original_max_position_embeddings")?;
                if original < 1.0 || original.fract() != 0.0 {
                    return Err(err(
                        field,
                        format!("`original_max_position_embeddings` = {original} must be a positive integer"),
                    ));
                }
                RopeScaling::Llama3 {
                    factor: positive("factor", required("factor")?)?,
                    low_freq_factor: low,
                    high_freq_factor: high,
                    original_max_position_embeddings: original as usize,
                }
            }
            other => {
                return Err(err(
                    field,
                    format!(
                        "rope type `{other}` is not supported (supported: default, linear, llama3)"
                    ),
                ))
            }
        };
        Ok(RopeConfig { theta, scaling })
    }
}
