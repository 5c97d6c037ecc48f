//! Training throughput of the SFT and DPO trainers on the compiled-in backend.
//!
//! Example-level figures: each case runs the real trainer ([`train_sft`] or
//! [`train_preference`]: forward, the completion loss through the lm_head chunk by chunk (SFT's
//! with its gradient in the same pass), backward, global-norm clipping, AdamW) on random weights and random token sequences, and reports the median of
//! `tokens_per_s` over the measured steps from the run's own `metrics.jsonl`. The first step is a
//! warm-up and is not counted. `benches/torch_training.py` runs the same shapes in transformers.
//!
//! Shapes:
//! - `10m`: d 384, 4 layers, 6 heads, MLP 1,024, vocabulary 8,192, tied (10.2M parameters);
//! - `100m`: d 768, 12 layers, 12 heads, MLP 2,048, vocabulary 32,000, tied (110M parameters).
//!
//! Rows are a 64-token prompt and a 192-token completion (256 tokens, no padding). SFT steps
//! are 8 rows (2,048 tokens); DPO steps are 4 pairs (8 rows, 2,048 tokens) against precomputed
//! reference log-probs, as TRL's `precompute_ref_log_probs`.
//!
//! `cargo bench --bench training -- [CONFIG ...] [--steps N]` (default: both configs, 4 measured
//! steps); e.g. `cargo bench --bench training -- 100m --steps 3`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::module::AutodiffModule;
use burn::prelude::*;
use w2s::backend::{device, name, Training as B};
use w2s::llama::{Llama, LlamaConfig};
use w2s::losses::PreferenceLossConfig;
use w2s::train::{
    precompute_reference, train_preference, train_sft, Reference, TokenizedPair, TokenizedSft,
    TrainConfig, TrainOptions,
};

const PROMPT: usize = 64;
const COMPLETION: usize = 192;
const ROWS_PER_STEP: usize = 8;

fn config(name: &str) -> Result<LlamaConfig> {
    let (d, i, layers, heads, vocab) = match name {
        "10m" => (384, 1024, 4, 6, 8_192),
        "100m" => (768, 2048, 12, 12, 32_000),
        other => bail!("unknown config `{other}`: expected 10m or 100m"),
    };
    Ok(LlamaConfig::from_json(&format!(
        r#"{{"vocab_size": {vocab}, "hidden_size": {d}, "intermediate_size": {i},
            "num_hidden_layers": {layers}, "num_attention_heads": {heads},
            "max_position_embeddings": 1024, "tie_word_embeddings": true}}"#
    ))?)
}

/// Deterministic token ids in `[1, vocab)`, different for every `(row, position)`.
fn ids(row: usize, len: usize, offset: usize, vocab: usize) -> Vec<u32> {
    (0..len)
        .map(|t| {
            let x = (row * 1_000_003 + (offset + t) * 7_919) as u64;
            (1 + x.wrapping_mul(6_364_136_223_846_793_005) % (vocab as u64 - 1)) as u32
        })
        .collect()
}

/// A plan one step longer than the run, so `halt_after` stops it before the final save.
fn train_config(steps: usize) -> TrainConfig {
    TrainConfig {
        learning_rate: 1e-5,
        warmup_steps: 0,
        weight_decay: 0.01,
        max_steps: Some(steps + 1),
        batch_tokens: ROWS_PER_STEP * (PROMPT + COMPLETION),
        shuffle: false,
        ..TrainConfig::default()
    }
}

/// Median `tokens_per_s` over the steps after the first, from a run's `metrics.jsonl`.
fn median_tokens_per_s(dir: &Path) -> Result<(f64, usize)> {
    let path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let mut rates = Vec::new();
    let mut tokens = 0;
    for line in text.lines().skip(1) {
        let value: serde_json::Value = serde_json::from_str(line)?;
        let (rate, seen, step) = (&value["tokens_per_s"], &value["num_tokens"], &value["step"]);
        if let (Some(rate), Some(seen), Some(step)) = (rate.as_f64(), seen.as_f64(), step.as_f64())
        {
            rates.push(rate);
            // `num_tokens` counts from the start; every step here has the same rows.
            tokens = (seen / step) as usize;
        }
    }
    if rates.is_empty() {
        bail!("{}: no measured step", path.display());
    }
    rates.sort_by(f64::total_cmp);
    Ok((rates[rates.len() / 2], tokens))
}

/// Options for a run of `steps` steps (one warm-up step, then the measured ones).
fn options(dir: &Path, steps: usize) -> TrainOptions {
    TrainOptions {
        quiet: true,
        resume: false,
        // Stop as a killed process would: the figure is about steps, not the final save.
        halt_after: Some(steps),
        ..TrainOptions::new(dir)
    }
}

fn sft(llama: &LlamaConfig, steps: usize) -> Result<(f64, usize)> {
    let vocab = llama.vocab_size;
    let records: Vec<TokenizedSft> = (0..(steps + 1) * ROWS_PER_STEP)
        .map(|r| TokenizedSft {
            prompt: ids(r, PROMPT, 0, vocab),
            completion: ids(r, COMPLETION, PROMPT, vocab),
        })
        .collect();
    let dir = tempfile::tempdir()?;
    B::seed(&device(), 0);
    let model: Llama<B> = llama.init(&device())?;
    train_sft(
        model,
        llama,
        &records,
        &[],
        &train_config(steps),
        &options(dir.path(), steps),
    )?;
    median_tokens_per_s(dir.path())
}

fn dpo(llama: &LlamaConfig, steps: usize) -> Result<(f64, usize)> {
    let vocab = llama.vocab_size;
    let pairs: Vec<TokenizedPair> = (0..(steps + 1) * ROWS_PER_STEP / 2)
        .map(|r| TokenizedPair {
            prompt: ids(r, PROMPT, 0, vocab),
            chosen: ids(r, COMPLETION, PROMPT, vocab),
            rejected: ids(r + 1_000, COMPLETION, PROMPT, vocab),
        })
        .collect();
    let dir = tempfile::tempdir()?;
    B::seed(&device(), 0);
    let model: Llama<B> = llama.init(&device())?;
    let config = train_config(steps);
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
        &options(dir.path(), steps),
    )?;
    median_tokens_per_s(dir.path())
}

fn main() -> Result<()> {
    let mut configs = Vec::new();
    let mut measured = 4;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--steps" => {
                measured = args
                    .next()
                    .context("--steps needs a number")?
                    .parse()
                    .context("--steps needs a number")?;
            }
            // cargo bench passes `--bench`; criterion-style filters are not used here.
            "--bench" => {}
            other => configs.push(other.to_string()),
        }
    }
    if configs.is_empty() {
        configs = vec!["10m".into(), "100m".into()];
    }
    let steps = measured.max(1) + 1;
    println!("backend {}, {} threads available", name(), num_threads());
    let objectives: [(&str, Objective); 2] = [("sft", sft), ("dpo", dpo)];
    for name in &configs {
        let llama = config(name)?;
        for (objective, run) in objectives {
            let (rate, tokens) = run(&llama, steps)?;
            println!(
                "{name} {objective}: median {rate:.0} tokens/s over {} steps of {tokens} tokens",
                steps - 1
            );
        }
    }
    Ok(())
}

/// A measured run: `(config, steps)` to `(median tokens/s, tokens per step)`.
type Objective = fn(&LlamaConfig, usize) -> Result<(f64, usize)>;

fn num_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
