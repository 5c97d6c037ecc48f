//! The model shapes and workloads of a check: the GPU's (a Llama-3.2-1B-shaped model) or the
//! tiny ones `--cpu` runs on flex in seconds. The parity model is the same in both.

use anyhow::Result;
use w2s::llama::LlamaConfig;
use w2s::throughput::StepShape;

/// What one run of the check measures.
#[derive(Debug)]
pub struct Shapes {
    /// `full` or `tiny`, for the report's header.
    pub name: &'static str,
    /// The random model of the parity section.
    pub parity: LlamaConfig,
    /// The model of the decode and training sections.
    pub model: LlamaConfig,
    /// Rows decoded together.
    pub decode_batches: [usize; 3],
    /// Prompt tokens per decoded row.
    pub prompt: usize,
    /// Tokens generated per row (greedy, no EOS, so every row runs to the length).
    pub new_tokens: usize,
    /// The rows of one training step.
    pub step: StepShape,
    /// Timed training steps after the warm-up step.
    pub measured_steps: usize,
}

impl Shapes {
    /// Llama-3.2-1B's shape (hidden 2048, 16 layers, 32 heads, 8 kv heads, MLP 8192, vocabulary
    /// 128,256, tied embeddings: 1.24B parameters) with random weights.
    pub fn full() -> Result<Self> {
        Ok(Self {
            name: "full",
            parity: parity_config()?,
            model: config(2048, 8192, 16, 32, 8, 128_256, true)?,
            decode_batches: [1, 8, 64],
            prompt: 32,
            new_tokens: 64,
            // benches/training.rs's step: 8 rows of 64 + 192 tokens, 2,048 tokens.
            step: StepShape {
                prompt: 64,
                completion: 192,
                rows: 8,
            },
            measured_steps: 3,
        })
    }

    /// The same sections at a size flex runs in seconds.
    pub fn tiny() -> Result<Self> {
        Ok(Self {
            name: "tiny",
            parity: parity_config()?,
            model: config(64, 128, 2, 4, 2, 256, true)?,
            decode_batches: [1, 8, 64],
            prompt: 8,
            new_tokens: 8,
            step: StepShape {
                prompt: 8,
                completion: 24,
                rows: 4,
            },
            measured_steps: 2,
        })
    }
}

/// 2 layers, hidden 256, 8 query and 2 key/value heads, vocabulary 1,000, a separate lm_head.
fn parity_config() -> Result<LlamaConfig> {
    config(256, 512, 2, 8, 2, 1_000, false)
}

fn config(
    d: usize,
    intermediate: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    vocab: usize,
    tied: bool,
) -> Result<LlamaConfig> {
    Ok(LlamaConfig::from_json(&format!(
        r#"{{"vocab_size": {vocab}, "hidden_size": {d}, "intermediate_size": {intermediate},
            "num_hidden_layers": {layers}, "num_attention_heads": {heads},
            "num_key_value_heads": {kv_heads}, "rope_theta": 500000.0,
            "max_position_embeddings": 2048, "tie_word_embeddings": {tied}}}"#
    ))?)
}
