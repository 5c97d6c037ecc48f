//! `w2s-llama`: a Llama in burn that reads and writes HuggingFace checkpoints.
//!
//! - [`LlamaConfig`] mirrors HF `config.json` (GQA/MQA, `head_dim`, RoPE `linear`/`llama3` scaling in
//!   both the v4 and v5 spellings) and validates it.
//! - [`Llama`] is the decoder: RMSNorm, rotate-half RoPE, grouped-query attention with causal and
//!   padding masks, SwiGLU, tied or separate `lm_head`. [`Llama::forward`] gives logits and
//!   [`Llama::forward_hidden`] the final hidden states for fused output losses.
//! - [`load_weights`] / [`save_weights`] read and write safetensors (single or sharded; f32, bf16,
//!   f16), naming every mismatched tensor in one error.
//! - [`Tokenizer`] wraps `tokenizers` and adds special tokens as the model's tokenizer files say;
//!   [`ChatTemplate`] renders its chat template as transformers does, and
//!   [`Tokenizer::encode_conversation`] finds the assistant turns of its rendering (for a loss on
//!   them only). [`generate`] decodes
//!   batches with a KV cache. With the `flex` feature, decoding on the flex backend multiplies
//!   its few rows through an AVX-512 kernel and writes the cache in place (both in w2s-kernels).
//! - [`ModelDir`] loads a whole HF model directory and saves it with its tokenizer files.
//! - [`LoraConfig`] and [`Llama::with_lora`] attach LoRA adapters to a frozen base;
//!   [`save_adapter`] / [`load_adapter`] read and write them in PEFT's layout, and
//!   [`Llama::merge_adapters`] folds them into the base.
//!
//! The crate knows nothing about losses, data or training.

pub mod cache;
pub mod chat_template;
pub mod config;
pub mod conversation;
pub mod error;
pub mod generate;
pub mod lora;
pub mod mask;
pub mod model;
pub mod model_dir;
pub mod peft;
mod python_json;
pub mod rope;
pub mod sampling;
pub mod score;
pub mod tokenizer;
pub mod tokenizer_config;
pub mod weights;

pub use cache::KvCache;
pub use chat_template::{ChatMessage, ChatOptions, ChatTemplate};
pub use config::{LlamaConfig, RopeConfig, RopeScaling, TokenIds};
pub use conversation::{EncodedConversation, RenderedConversation};
pub use error::{LlamaError, Result};
pub use generate::{generate, generate_seeded, FinishReason, Generation, GenerationConfig};
pub use lora::{LoraAdapter, LoraConfig, LoraTarget, Projection};
pub use mask::PaddingMask;
pub use model::Llama;
pub use model_dir::ModelDir;
pub use peft::{load_adapter, save_adapter, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE};
pub use sampling::Sampling;
pub use score::{score_tokens, TokenScores};
pub use tokenizer::Tokenizer;
pub use tokenizer_config::TokenizerConfig;
pub use weights::{load_weights, save_weights, SaveDtype, SaveOptions};

/// The README's example, compiled as a doctest so it stays true (not run: it needs a model
/// directory).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
