//! Batched autoregressive generation with a KV cache.
//!
//! Prompts of different lengths are padded on the left so that every row's next token lands in the
//! same column; each prompt is repeated `num_samples` times and every row draws from its own RNG,
//! seeded from `(seed, prompt index, sample index)`, so a sample does not depend on what else was
//! in the batch. [`generate_seeded`] seeds each prompt's rows from a seed of its own instead, so a
//! prompt's samples do not depend on its position in the batch either (a server that batches
//! independent requests needs that). A row stops at an EOS id, at a stop string, or after `max_new_tokens`, and then
//! leaves the batch and the KV cache, so the remaining rows decode without it.

use burn::prelude::*;
use rand::rngs::ChaCha12Rng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{LlamaError, Result};
use crate::mask::PaddingMask;
use crate::model::Llama;
use crate::sampling::{argmax, Sampling};
use crate::tokenizer::Tokenizer;

/// What to generate and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationConfig {
    /// Most tokens generated per row.
    pub max_new_tokens: usize,
    /// Greedy or sampled decoding.
    pub sampling: Sampling,
    /// Base seed of the per-row random streams.
    pub seed: u64,
    /// Rows generated for each prompt.
    pub num_samples: usize,
    /// Token ids that end a row (the model config's `eos_token_id` is the usual choice).
    pub eos_token_ids: Vec<u32>,
    /// Strings that end a row; the text is cut before the first one. Needs a tokenizer.
    pub stop_strings: Vec<String>,
    /// Reuse keys and values of earlier tokens (false recomputes the whole sequence every step;
    /// it exists to check the cache).
    pub use_cache: bool,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 256,
            sampling: Sampling::greedy(),
            seed: 0,
            num_samples: 1,
            eos_token_ids: Vec::new(),
            stop_strings: Vec::new(),
            use_cache: true,
        }
    }
}

/// Why a row stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An EOS token was produced (it is not part of `token_ids`).
    Eos,
    /// A stop string appeared (the text is cut before it).
    Stop,
    /// `max_new_tokens` was reached.
    Length,
}

/// One generated continuation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// Index of the prompt in the input.
    pub prompt_index: usize,
    /// Index of the sample among the prompt's `num_samples`.
    pub sample_index: usize,
    /// The new token ids (without the prompt and without the EOS token).
    pub token_ids: Vec<u32>,
    /// Decoded text, cut before a stop string (present when a tokenizer was given).
    pub text: Option<String>,
    /// Why generation ended.
    pub finish_reason: FinishReason,
}

/// Mixes the seed with a row's identity (SplitMix64 finalizer), so neighbouring rows get unrelated
/// streams.
fn row_seed(seed: u64, prompt: usize, sample: usize) -> u64 {
    let mut z = seed
        ^ (prompt as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (sample as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Row {
    prompt_index: usize,
    sample_index: usize,
    rng: ChaCha12Rng,
    tokens: Vec<u32>,
    text: Option<String>,
    finished: Option<FinishReason>,
}

/// Generates continuations of `prompts` (token ids). Returns `prompts.len() * num_samples`
/// generations, prompt-major.
pub fn generate<B: Backend>(
    model: &Llama<B>,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
    tokenizer: Option<&Tokenizer>,
    device: &B::Device,
) -> Result<Vec<Generation>> {
    generate_rows(model, prompts, config, tokenizer, device, |p, s| {
        row_seed(config.seed, p, s)
    })
}

/// As [`generate`], but the rows of prompt `i` draw from streams seeded by `(seeds[i], sample
/// index)`; `config.seed` is not used. A prompt then gets the same samples wherever it sits in
/// the batch and whatever else is in it, up to the last bits of floating point that padding and
/// batch size can change in its logits.
///
/// # Errors
/// As [`generate`], and [`LlamaError::Input`] when `seeds` and `prompts` differ in length.
pub fn generate_seeded<B: Backend>(
    model: &Llama<B>,
    prompts: &[Vec<u32>],
    seeds: &[u64],
    config: &GenerationConfig,
    tokenizer: Option<&Tokenizer>,
    device: &B::Device,
) -> Result<Vec<Generation>> {
    if seeds.len() != prompts.len() {
        return Err(LlamaError::Input(format!(
            "{} seeds for {} prompts",
            seeds.len(),
            prompts.len()
        )));
    }
    generate_rows(model, prompts, config, tokenizer, device, |p, s| {
        row_seed(seeds[p], 0, s)
    })
}

/// The body of [`generate`] and [`generate_seeded`]: `seed_of(prompt, sample)` seeds each row.
fn generate_rows<B: Backend>(
    model: &Llama<B>,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
    tokenizer: Option<&Tokenizer>,
    device: &B::Device,
    seed_of: impl Fn(usize, usize) -> u64,
) -> Result<Vec<Generation>> {
    config.sampling.validate()?;
    if config.num_samples == 0 {
        return Err(LlamaError::Input("num_samples must be at least 1".into()));
    }
    if !config.stop_strings.is_empty() && tokenizer.is_none() {
        return Err(LlamaError::Input("stop strings need a tokenizer".into()));
    }
    for (index, prompt) in prompts.iter().enumerate() {
        if prompt.is_empty() {
            return Err(LlamaError::Input(format!("prompt {index} is empty")));
        }
        if let Some(&id) = prompt.iter().find(|&&id| id as usize >= model.vocab_size()) {
            return Err(LlamaError::Input(format!(
                "prompt {index} has token id {id}, but the vocabulary has {} ids",
                model.vocab_size()
            )));
        }
        let needed = prompt.len() + config.max_new_tokens;
        if needed > model.max_positions() {
            return Err(LlamaError::PromptTooLong {
                index,
                prompt_len: prompt.len(),
                max_new_tokens: config.max_new_tokens,
                needed,
                context: model.max_positions(),
            });
        }
    }
    if prompts.is_empty() || config.max_new_tokens == 0 {
        return Ok(Vec::new());
    }

    let expanded: Vec<Vec<u32>> = prompts
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.clone(), config.num_samples))
        .collect();
    let pad = config.eos_token_ids.first().copied().unwrap_or(0);
    let (mut grid, mut mask) = PaddingMask::left_pad(&expanded, pad);
    let mut rows: Vec<Row> = (0..expanded.len())
        .map(|r| {
            let (p, s) = (r / config.num_samples, r % config.num_samples);
            Row {
                prompt_index: p,
                sample_index: s,
                rng: ChaCha12Rng::seed_from_u64(seed_of(p, s)),
                tokens: Vec::new(),
                text: None,
                finished: None,
            }
        })
        .collect();

    let mut cache = model.new_cache();
    let mut step_input = grid.clone();
    // The batch row of each row still generating: finished rows leave the batch (and the cache),
    // so a long answer does not make every short one pay for its steps.
    let mut active: Vec<usize> = (0..rows.len()).collect();
    for _ in 0..config.max_new_tokens {
        let hidden = if config.use_cache {
            model.hidden_cached(int_tensor(&step_input, device), &mask, &mut cache)?
        } else {
            model.forward_hidden(int_tensor(&grid, device), Some(&mask))?
        };
        // Only the last column's logits are needed: project just that row of hidden states.
        let [b, s, d] = hidden.dims();
        let logits = model.logits(hidden.slice([0..b, s - 1..s, 0..d]));
        let v = model.vocab_size();
        let last: Vec<f32> = logits
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|e| LlamaError::Input(format!("reading logits: {e:?}")))?;
        let mut next = Vec::with_capacity(b);
        for (i, &r) in active.iter().enumerate() {
            let row = &mut rows[r];
            let scores = &last[i * v..(i + 1) * v];
            let token = if config.sampling.is_greedy() {
                argmax(scores)
            } else {
                config.sampling.pick(scores, &mut row.rng)
            };
            next.push(token);
            if config.eos_token_ids.contains(&token) {
                row.finished = Some(FinishReason::Eos);
                continue;
            }
            row.tokens.push(token);
            if let Some(tok) = tokenizer {
                let text = tok.decode(&row.tokens, true)?;
                if let Some(cut) = config
                    .stop_strings
                    .iter()
                    .filter_map(|s| text.find(s.as_str()))
                    .min()
                {
                    row.text = Some(text[..cut].to_string());
                    row.finished = Some(FinishReason::Stop);
                } else {
                    row.text = Some(text);
                }
            }
        }
        let keep: Vec<usize> = (0..active.len())
            .filter(|&i| rows[active[i]].finished.is_none())
            .collect();
        if keep.is_empty() {
            break;
        }
        if keep.len() < active.len() {
            active = keep.iter().map(|&i| active[i]).collect();
            next = keep.iter().map(|&i| next[i]).collect();
            grid = keep.iter().map(|&i| grid[i].clone()).collect();
            mask.retain_rows(&keep);
            cache.retain_rows(&keep);
        }
        mask.push_column(true);
        for (line, &token) in grid.iter_mut().zip(&next) {
            line.push(token);
        }
        step_input = next.iter().map(|&t| vec![t]).collect();
    }
    Ok(rows
        .into_iter()
        .map(|row| Generation {
            prompt_index: row.prompt_index,
            sample_index: row.sample_index,
            token_ids: row.tokens,
            text: row.text,
            finish_reason: row.finished.unwrap_or(FinishReason::Length),
        })
        .collect())
}

fn int_tensor<B: Backend>(grid: &[Vec<u32>], device: &B::Device) -> Tensor<B, 2, Int> {
    let (b, s) = (grid.len(), grid.first().map_or(0, Vec::len));
    let flat: Vec<i64> = grid.iter().flatten().map(|&t| i64::from(t)).collect();
    Tensor::from_data(TensorData::new(flat, [b, s]), device)
}
