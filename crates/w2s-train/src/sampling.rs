//! Sampling a model over a dataset: `n` seeded samples per prompt, written as JSONL samples
//! `{"id", "prompt", "response", "sample_index", "seed", "finish_reason", ...extra}`.
//!
//! Prompts go through [`w2s_llama::generate`] in fixed chunks of `prompts_per_batch` (chunk `k`
//! holds prompts `k·P .. (k+1)·P` of the input), and chunk `k` is generated with the seed mixed
//! from `(seed, k)`. Because the chunking depends only on the input, a rerun regenerates exactly
//! what an uninterrupted run would have written. The run is resumable: ids that already have all
//! their samples in the output are skipped; lines of ids with only some samples, and a line cut
//! short by a crash, are dropped before continuing.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use w2s_curation::record::Sample;
use w2s_data::jsonl::write_jsonl;
use w2s_llama::{generate, GenerationConfig, Llama, LlamaConfig, Tokenizer};

use crate::error::{Result, TrainError};
use crate::memory_plan::{print_and_check, MemoryPlan, SamplingShape};
use crate::metrics_log::progress_bar;
use crate::prompt_format::PromptFormat;

/// One prompt to sample: `{"id", "prompt", ...}`; other fields are copied to every sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptRecord {
    /// Unique id of the prompt.
    pub id: String,
    /// The text the model continues.
    pub prompt: String,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What a sampling run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamplingSummary {
    /// Prompts in the input.
    pub prompts: usize,
    /// Prompts whose samples were already in the output.
    pub already_done: usize,
    /// Sample lines written by this run.
    pub written: usize,
}

/// Samples `generation.num_samples` responses to every prompt into `output` (see module docs),
/// after printing the memory plan ([`crate::memory_plan`]) of the model with `llama_config`
/// unless `quiet`. The model reads each prompt in `format`; a sample's `prompt` is the prompt's
/// text as given.
///
/// # Errors
/// Duplicate ids, an unreadable existing output, tokenizer and generation errors.
#[allow(clippy::too_many_arguments)]
pub fn sample_dataset<B: Backend>(
    model: &Llama<B>,
    llama_config: &LlamaConfig,
    tokenizer: &Tokenizer,
    format: PromptFormat,
    prompts: &[PromptRecord],
    generation: &GenerationConfig,
    prompts_per_batch: usize,
    output: &Path,
    quiet: bool,
) -> Result<SamplingSummary> {
    if prompts_per_batch == 0 {
        return Err(TrainError::config(
            "prompts_per_batch",
            "must be at least 1",
        ));
    }
    let mut ids = BTreeSet::new();
    for (index, p) in prompts.iter().enumerate() {
        if !ids.insert(p.id.as_str()) {
            return Err(TrainError::Record {
                index,
                reason: format!("duplicate id {:?}", p.id),
            });
        }
    }
    let encoded = prompts
        .iter()
        .map(|p| format.encode(tokenizer, &p.prompt))
        .collect::<Result<Vec<_>>>()?;
    let memory = MemoryPlan::sampling(&SamplingShape {
        model: llama_config,
        rows: prompts_per_batch.min(prompts.len()) * generation.num_samples,
        prompt_len: encoded.iter().map(Vec::len).max().unwrap_or(0),
        max_new_tokens: generation.max_new_tokens,
        lora: model.lora(),
        base_dtype: model.base_dtype(),
    });
    print_and_check(&memory, None, quiet)?;
    let done = completed_ids(output, generation.num_samples)?;
    let already_done = prompts.iter().filter(|p| done.contains(&p.id)).count();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(output)
        .map_err(|e| TrainError::io(output, e))?;
    let device = crate::scoring::model_device(model);
    let bar = progress_bar(prompts.len(), already_done, "prompts", quiet);
    let mut written = 0;
    let chunks = prompts
        .chunks(prompts_per_batch)
        .zip(encoded.chunks(prompts_per_batch));
    for (k, (chunk, ids)) in chunks.enumerate() {
        if chunk.iter().all(|p| done.contains(&p.id)) {
            continue;
        }
        let config = GenerationConfig {
            seed: chunk_seed(generation.seed, k),
            ..generation.clone()
        };
        let generations = generate(model, ids, &config, Some(tokenizer), &device)?;
        let mut text = String::new();
        for g in generations {
            let p = &chunk[g.prompt_index];
            if done.contains(&p.id) {
                continue;
            }
            let mut extra = p.extra.clone();
            extra.insert("sample_index".into(), g.sample_index.into());
            extra.insert("seed".into(), generation.seed.into());
            extra.insert(
                "finish_reason".into(),
                serde_json::to_value(g.finish_reason).unwrap_or(Value::Null),
            );
            let sample = Sample {
                id: p.id.clone(),
                prompt: p.prompt.clone(),
                response: g.text.unwrap_or_default(),
                extra,
            };
            let line = serde_json::to_string(&sample).map_err(|source| TrainError::Json {
                path: output.to_path_buf(),
                source,
            })?;
            text.push_str(&line);
            text.push('\n');
            written += 1;
        }
        // One write per chunk, so an interruption cuts at most this chunk.
        file.write_all(text.as_bytes())
            .and_then(|()| file.flush())
            .map_err(|e| TrainError::io(output, e))?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    Ok(SamplingSummary {
        prompts: prompts.len(),
        already_done,
        written,
    })
}

/// Chunk `k`'s generation seed (SplitMix64 of the run seed and `k`).
fn chunk_seed(seed: u64, k: usize) -> u64 {
    let mut z = seed ^ (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Ids with all `num_samples` samples in `output`. Lines of other ids and a trailing partial line
/// are removed from the file.
fn completed_ids(output: &Path, num_samples: usize) -> Result<BTreeSet<String>> {
    if !output.is_file() {
        return Ok(BTreeSet::new());
    }
    let text = std::fs::read_to_string(output).map_err(|e| TrainError::io(output, e))?;
    let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
    let mut lines: Vec<(String, Map<String, Value>)> = Vec::new();
    for line in complete.lines().filter(|l| !l.trim().is_empty()) {
        let json_error = |source| TrainError::Json {
            path: output.to_path_buf(),
            source,
        };
        let object: Map<String, Value> = serde_json::from_str(line).map_err(json_error)?;
        let sample: Sample =
            serde_json::from_value(Value::Object(object.clone())).map_err(json_error)?;
        lines.push((sample.id, object));
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, _) in &lines {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let done: BTreeSet<String> = counts
        .into_iter()
        .filter(|&(_, n)| n >= num_samples)
        .map(|(id, _)| id.to_string())
        .collect();
    let total = lines.len();
    let keep: Vec<Map<String, Value>> = lines
        .into_iter()
        .filter(|(id, _)| done.contains(id))
        .map(|(_, object)| object)
        .collect();
    if complete.len() != text.len() || keep.len() != total {
        write_jsonl(output, keep)?;
    }
    Ok(done)
}
