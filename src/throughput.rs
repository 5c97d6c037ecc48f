//! Training-step throughput of the real trainers on synthetic token rows: the body of
//! `benches/training.rs` and of the training section of the `gpu_check` example.
//!
//! A measurement runs [`train_sft`] or [`train_preference`] (DPO against reference log-probs
//! precomputed from the starting model, as TRL's `precompute_ref_log_probs`) on deterministic
//! token rows for one warm-up step and `measured` more: forward, the completion loss through the
//! lm_head chunk by chunk, backward, global-norm clipping, AdamW. The run stops as a killed
//! process would, before the final save, and the figure is the median `tokens_per_s` of the
//! measured steps, read from the run's own `metrics.jsonl`.

use std::fmt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use w2s_llama::{Llama, LlamaConfig};
use w2s_losses::{ChunkedLogprobsBackend, PreferenceLossConfig};
use w2s_train::{
    precompute_reference, train_preference, train_sft, Reference, TokenizedPair, TokenizedSft,
    TrainConfig, TrainOptions,
};

/// The rows of every optimizer step: `rows` sequences of `prompt + completion` tokens without
/// padding; a DPO step holds `rows / 2` pairs.
#[derive(Debug, Clone, Copy)]
pub struct StepShape {
    /// Prompt tokens per row (no loss on them).
    pub prompt: usize,
    /// Completion tokens per row.
    pub completion: usize,
    /// Rows per optimizer step.
    pub rows: usize,
}

impl StepShape {
    /// Tokens per row.
    pub fn row_tokens(&self) -> usize {
        self.prompt + self.completion
    }
}

/// What a measured run optimizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// Completion-only cross entropy ([`train_sft`]).
    Sft,
    /// DPO, β = 0.1, against precomputed reference log-probs ([`train_preference`]).
    Dpo,
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Objective::Sft => "sft",
            Objective::Dpo => "dpo",
        })
    }
}

/// The figures of a measured run.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Median tokens per second of the measured steps.
    pub tokens_per_s: f64,
    /// Tokens per optimizer step, as the trainer counted them.
    pub tokens_per_step: usize,
}

/// Trains `model` (of `llama`; LoRA adapters and dtypes as the caller set them) for one warm-up
/// step and `measured` more on rows of `shape`, writing the run to `dir`.
pub fn measure<B: AutodiffBackend + ChunkedLogprobsBackend>(
    objective: Objective,
    model: Llama<B>,
    llama: &LlamaConfig,
    shape: StepShape,
    measured: usize,
    dir: &Path,
) -> Result<Throughput> {
    let steps = measured.max(1) + 1;
    let vocab = llama.vocab_size;
    let config = TrainConfig {
        learning_rate: 1e-5,
        warmup_steps: 0,
        weight_decay: 0.01,
        // One step more than the run, so `halt_after` stops it before the final save.
        max_steps: Some(steps + 1),
        batch_tokens: shape.rows * shape.row_tokens(),
        shuffle: false,
        ..TrainConfig::default()
    };
    let options = TrainOptions {
        quiet: true,
        resume: false,
        halt_after: Some(steps),
        ..TrainOptions::new(dir)
    };
    let row = |r: usize, offset: usize, len: usize| token_ids(r, len, offset, vocab);
    match objective {
        Objective::Sft => {
            let records: Vec<TokenizedSft> = (0..(steps + 1) * shape.rows)
                .map(|r| {
                    TokenizedSft::prompt_completion(
                        row(r, 0, shape.prompt),
                        row(r, shape.prompt, shape.completion),
                    )
                })
                .collect();
            train_sft(model, llama, &records, &[], &config, &options)?;
        }
        Objective::Dpo => {
            let pairs: Vec<TokenizedPair> = (0..(steps + 1) * shape.rows / 2)
                .map(|r| TokenizedPair {
                    prompt: row(r, 0, shape.prompt),
                    chosen: row(r, shape.prompt, shape.completion),
                    rejected: row(r + 1_000, shape.prompt, shape.completion),
                })
                .collect();
            let reference = Reference::Precomputed {
                train: precompute_reference(&model.valid(), &pairs, &config)?,
                eval: Vec::new(),
            };
            let loss = PreferenceLossConfig::Dpo {
                beta: 0.1,
                label_smoothing: 0.0,
                nll_alpha: 0.0,
                reference_free: false,
            };
            train_preference(
                model,
                llama,
                &pairs,
                &[],
                &loss,
                reference,
                &config,
                &options,
            )?;
        }
    }
    median_tokens_per_s(dir)
}

/// Deterministic token ids in `[1, vocab)`, different for every `(row, position)`.
pub fn token_ids(row: usize, len: usize, offset: usize, vocab: usize) -> Vec<u32> {
    (0..len)
        .map(|t| {
            let x = (row * 1_000_003 + (offset + t) * 7_919) as u64;
            (1 + x.wrapping_mul(6_364_136_223_846_793_005) % (vocab as u64 - 1)) as u32
        })
        .collect()
}

/// Median `tokens_per_s` over the steps after the first, from a run's `metrics.jsonl`.
fn median_tokens_per_s(dir: &Path) -> Result<Throughput> {
    let path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let mut rates = Vec::new();
    let mut tokens_per_step = 0;
    for line in text.lines().skip(1) {
        let value: serde_json::Value = serde_json::from_str(line)?;
        let (rate, seen, step) = (&value["tokens_per_s"], &value["num_tokens"], &value["step"]);
        if let (Some(rate), Some(seen), Some(step)) = (rate.as_f64(), seen.as_f64(), step.as_f64())
        {
            rates.push(rate);
            // `num_tokens` counts from the start; every step here has the same rows.
            tokens_per_step = (seen / step) as usize;
        }
    }
    if rates.is_empty() {
        bail!("{}: no measured step", path.display());
    }
    rates.sort_by(f64::total_cmp);
    Ok(Throughput {
        tokens_per_s: rates[rates.len() / 2],
        tokens_per_step,
    })
}
