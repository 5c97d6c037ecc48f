//! The sampler seam: prompts with ids and how to sample them in, each prompt's `n` completions
//! with their finish reasons out.
//!
//! Two engines implement it: [`BurnSampler`], w2s's Llama in this process, and
//! [`OpenAiSampler`], any server of the OpenAI completions API (vLLM, SGLang, ...) through
//! w2s-openai's client. A role's `sampler` table ([`super::SamplerSpec`]) picks one. Both write
//! the same JSONL lines, `{"id", "prompt", "response", ...the prompt's fields, "sample_index",
//! "seed", "finish_reason"}`, append them as prompts are answered, and resume a killed stage
//! from its last complete prompt.

mod burn;
mod openai;

use std::path::Path;

use w2s_curation::record::Sample;
use w2s_data::jsonl::{read_jsonl, BadLines};
use w2s_llama::{GenerationConfig, LlamaConfig, Sampling};

pub(crate) use self::burn::BurnSampler;
pub(crate) use self::openai::OpenAiSampler;
use super::config::DecodeConfig;
use crate::error::Result;
use crate::sampling::PromptRecord;

/// How to sample every prompt of a stage.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRequest {
    /// Completions per prompt.
    pub n: usize,
    /// Softmax temperature; 0 is greedy.
    pub temperature: f32,
    /// Nucleus mass in (0, 1]; `None` keeps every token.
    pub top_p: Option<f32>,
    /// Seed of the stage's draws.
    pub seed: u64,
    /// Strings that end a completion (cut before them).
    pub stop: Vec<String>,
    /// Most new tokens per completion.
    pub max_new_tokens: usize,
}

impl SampleRequest {
    /// `n` completions at `temperature` with `decode`'s stop strings and token budget.
    pub fn new(decode: &DecodeConfig, n: usize, temperature: f32, seed: u64) -> Self {
        Self {
            n,
            temperature,
            top_p: None,
            seed,
            stop: decode.stop_strings.clone(),
            max_new_tokens: decode.max_new_tokens,
        }
    }

    /// One greedy answer per prompt.
    pub fn greedy(decode: &DecodeConfig, seed: u64) -> Self {
        Self::new(decode, 1, 0.0, seed)
    }

    /// The request as w2s-llama's generation config for `model`, whose EOS tokens end a row.
    pub fn generation(&self, model: &LlamaConfig) -> GenerationConfig {
        GenerationConfig {
            max_new_tokens: self.max_new_tokens,
            sampling: Sampling {
                temperature: self.temperature,
                top_p: self.top_p,
                ..Sampling::greedy()
            },
            seed: self.seed,
            num_samples: self.n,
            eos_token_ids: model.eos_token_ids(),
            stop_strings: self.stop.clone(),
            use_cache: true,
        }
    }
}

/// Samples models (see the module docs).
pub trait Sampler {
    /// Samples the model in directory `model` on every prompt into `out` (resuming what is
    /// there) and returns every line of `out`, responses as generated.
    ///
    /// # Errors
    /// The engine's errors; duplicate prompt ids; an unreadable `out`.
    fn sample(
        &self,
        model: &Path,
        prompts: &[PromptRecord],
        request: &SampleRequest,
        out: &Path,
    ) -> Result<Vec<Sample>>;
}

/// Every sample line of `path`.
fn read_lines(path: &Path) -> Result<Vec<Sample>> {
    Ok(read_jsonl(path, BadLines::Fail)?.records)
}
