//! Supervised fine-tuning of a HF Llama checkpoint on `{"prompt", "completion"}` JSONL, with a
//! completion-only loss. Writes checkpoints, `metrics.jsonl` and the trained model (HF layout,
//! `OUTPUT/final/`); rerunning the same command resumes from the latest checkpoint.
//!
//! ```text
//! cargo run --release --example sft -- --model base/ --train sft.jsonl --output runs/sft \
//!     --config configs/sft.toml --epochs 2
//! ```
//! The TOML file's `[train]` table takes any field of `w2s_train::TrainConfig`.

use anyhow::{Context, Result};
use clap::Parser;
use w2s::backend;
use w2s::curation::record::SftExample;
use w2s::llama::ModelDir;
use w2s::train::{tokenize_sft, train_sft};
use w2s::train_args::{read_records, TrainArgs};

/// Fine-tune a HF Llama on prompt/completion JSONL (loss on the completion only).
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    #[command(flatten)]
    run: TrainArgs,
}

fn main() -> Result<()> {
    let args = Args::parse().run;
    let config = args.train_config()?;
    let device = backend::device();
    let dir = ModelDir::<backend::Training>::load(&args.model, &device)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let tokenizer = dir.tokenizer()?.clone();
    let eos = (!args.no_eos)
        .then(|| dir.config.eos_token_ids().first().copied())
        .flatten();
    let read = |path| -> Result<_> {
        let examples: Vec<SftExample> = read_records(path)?;
        Ok(tokenize_sft(&examples, &tokenizer, eos)?)
    };
    let train = read(&args.train)?;
    let eval = match &args.eval {
        Some(path) => read(path)?,
        None => Vec::new(),
    };
    let out = train_sft(
        dir.model,
        &dir.config,
        &train,
        &eval,
        &config,
        &args.options(Some(tokenizer.clone())),
    )?;
    let summary = serde_json::json!({
        "backend": backend::name(),
        "steps": out.steps,
        "resumed_from": out.resumed_from,
        "skipped_records": out.skipped_records,
        "final_dir": out.final_dir,
        "last_step": out.last_step,
        "last_eval": out.last_eval,
    });
    println!("{summary:#}");
    Ok(())
}
