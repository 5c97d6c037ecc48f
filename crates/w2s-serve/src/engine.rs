//! What the model thread runs: an [`Engine`] generates for a group of requests that share their
//! options. [`LlamaEngine`] is w2s's Llama through [`w2s_llama::generate_seeded`]; the seam
//! exists so the server's queueing, batching and failure handling can be tested with an engine
//! that fails on purpose.

use burn::prelude::Backend;
use w2s_llama::{generate_seeded, Generation, GenerationConfig, ModelDir, Sampling};

/// The options requests must share to be generated together: one
/// [`GenerationConfig`] holds them for the whole batch.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupOptions {
    /// Most new tokens per completion.
    pub max_tokens: usize,
    /// Temperature, top-p, top-k.
    pub sampling: Sampling,
    /// Completions per prompt.
    pub n: usize,
    /// Stop strings.
    pub stop: Vec<String>,
}

/// A generator of completions.
pub trait Engine {
    /// `options.n` completions of each prompt, prompt-major, the rows of prompt `i` seeded by
    /// `seeds[i]` alone (so a prompt's samples do not depend on the other prompts); text
    /// decoded and cut before a stop string.
    ///
    /// # Errors
    /// A message for the client (answered 500).
    fn generate(
        &self,
        prompts: &[Vec<u32>],
        seeds: &[u64],
        options: &GroupOptions,
    ) -> Result<Vec<Generation>, String>;
}

/// w2s's Llama, loaded from a model directory, on `device`.
#[derive(Debug)]
pub struct LlamaEngine<B: Backend> {
    dir: ModelDir<B>,
    device: B::Device,
}

impl<B: Backend> LlamaEngine<B> {
    /// The engine of `dir`'s model on `device`.
    pub fn new(dir: ModelDir<B>, device: B::Device) -> Self {
        Self { dir, device }
    }

    /// The model directory.
    pub fn dir(&self) -> &ModelDir<B> {
        &self.dir
    }
}

impl<B: Backend> Engine for LlamaEngine<B> {
    fn generate(
        &self,
        prompts: &[Vec<u32>],
        seeds: &[u64],
        options: &GroupOptions,
    ) -> Result<Vec<Generation>, String> {
        let config = GenerationConfig {
            max_new_tokens: options.max_tokens,
            sampling: options.sampling.clone(),
            seed: 0,
            num_samples: options.n,
            eos_token_ids: self.dir.config.eos_token_ids(),
            stop_strings: options.stop.clone(),
            use_cache: true,
        };
        let tokenizer = self.dir.tokenizer.as_ref();
        generate_seeded(
            &self.dir.model,
            prompts,
            seeds,
            &config,
            tokenizer,
            &self.device,
        )
        .map_err(|e| e.to_string())
    }
}
