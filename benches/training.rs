//! Training throughput of the SFT and DPO trainers on the compiled-in backend.
//!
//! Example-level figures: each case runs the real trainer on random weights and deterministic
//! token rows through `w2s::throughput` (forward, the completion loss through the lm_head chunk
//! by chunk, SFT's with its gradient in the same pass, backward, global-norm clipping, AdamW) and
//! reports the median of `tokens_per_s` over the measured steps from the run's own
//! `metrics.jsonl`. The first step is a warm-up and is not counted. `benches/torch_training.py`
//! runs the same shapes in transformers.
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

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use w2s::backend::{device, name, Training as B};
use w2s::llama::{Llama, LlamaConfig};
use w2s::throughput::{measure, Objective, StepShape};

/// A 64-token prompt and a 192-token completion, 8 rows (2,048 tokens) per step.
const SHAPE: StepShape = StepShape {
    prompt: 64,
    completion: 192,
    rows: 8,
};

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
    let measured = measured.max(1);
    println!("backend {}, {} threads available", name(), num_threads());
    for name in &configs {
        let llama = config(name)?;
        for objective in [Objective::Sft, Objective::Dpo] {
            let dir = tempfile::tempdir()?;
            B::seed(&device(), 0);
            let model: Llama<B> = llama.init(&device())?;
            let run = measure(objective, model, &llama, SHAPE, measured, dir.path())?;
            println!(
                "{name} {objective}: median {:.0} tokens/s over {measured} steps of {} tokens",
                run.tokens_per_s, run.tokens_per_step
            );
        }
    }
    Ok(())
}

fn num_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
