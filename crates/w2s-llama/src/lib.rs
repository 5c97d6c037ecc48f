//! `w2s-llama`: a Llama in burn that reads and writes HuggingFace checkpoints.
//!
//! - [`LlamaConfig`] mirrors HF `config.json` (GQA/MQA, `head_dim`, RoPE `linear`/`llama3` scaling in
//!   both the v4 and v5 spellings) and validates it.
//! - [`Llama`] is the decoder: RMSNorm, rotate-half RoPE, grouped-query attention with causal and
//!   padding masks, SwiGLU, tied or separate `lm_head`. [`Llama::forward`] gives logits and
//!   [`Llama::forward_hidden`] the final hidden states for fused output losses.
//! - [`load_weights`] / [`save_weights`] read and write safetensors (single or sharded; f32, bf16,
//!   f16), naming every mismatched tensor in one error.
//! - [`Tokenizer`] wraps `tokenizers`; [`generate`] decodes batches with a KV cache. With the
//!   `flex` feature, decoding on the flex backend multiplies its few rows through an AVX-512
//!   kernel and writes the cache in place (`few_rows`, `flex`).
//! - [`ModelDir`] loads a whole HF model directory.
//!
//! The crate knows nothing about losses, data or training.

mod atomic;
pub mod cache;
pub mod config;
pub mod error;
// An x86-64 AVX-512 kernel; other targets multiply through the backend.
#[cfg(all(feature = "flex", target_arch = "x86_64"))]
mod few_rows;
#[cfg(feature = "flex")]
mod flex;
pub mod generate;
pub mod mask;
pub mod model;
pub mod model_dir;
mod projection;
pub mod rope;
pub mod sampling;
pub mod score;
pub mod tokenizer;
pub mod weights;

pub use atomic::{write_atomic, write_atomic_with};
pub use cache::KvCache;
pub use config::{LlamaConfig, RopeConfig, RopeScaling, TokenIds};
pub use error::{LlamaError, Result};
pub use generate::{generate, FinishReason, Generation, GenerationConfig};
pub use mask::PaddingMask;
pub use model::Llama;
pub use model_dir::ModelDir;
pub use sampling::Sampling;
pub use score::{score_tokens, TokenScores};
pub use tokenizer::Tokenizer;
pub use weights::{load_weights, save_weights, SaveDtype, SaveOptions};
