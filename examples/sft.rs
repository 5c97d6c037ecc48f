//! Supervised fine-tuning of a HF Llama checkpoint on `{"prompt", "completion"}` JSONL, with a
//! completion-only loss, or on conversations `{"messages": [{"role", "content"}, ...]}` (TRL's
//! conversational format), rendered by the model's chat template with the loss on the assistant
//! turns only (TRL's `assistant_only_loss`). A file may mix both. Writes checkpoints,
//! `metrics.jsonl` and the trained model (HF layout, `OUTPUT/final/`); rerunning the same command
//! resumes from the latest checkpoint.
//!
//! ```text
//! cargo run --release --example sft -- --model base/ --train sft.jsonl --output runs/sft \
//!     --config sft.toml --epochs 2
//! ```
//! The TOML file's `[train]` table takes any field of `w2s_train::TrainConfig`. Defaults are TRL's
//! `SFTConfig` ones (learning rate 2e-5, linear decay, 3 epochs); `--help` shows them.
//!
//! With `--lora-r R` (or a `[train.lora]` table) only LoRA adapters on a frozen base are trained
//! and `final/` holds them in PEFT's layout; `generate --adapter` uses them as they are, the
//! `merge` example folds them into a plain checkpoint.
//!
//! Before the first step the run prints its memory plan (`w2s_train::memory_plan`) and is
//! refused, with what to change, when the plan exceeds `--memory-budget GIB` (by default this
//! machine's memory on CPU backends).

use anyhow::Result;
use clap::Parser;
use w2s::backend;
use w2s::curation::record::SftRecord;
use w2s::train::{tokenize_sft, train_sft};
use w2s::train_args::{parse_with_defaults, trl_sft_defaults, Start, TrainArgs};

/// Fine-tune a HF Llama on prompt/completion JSONL (loss on the completion only) or on
/// conversations (loss on the assistant turns only).
#[derive(Parser)]
#[command(version, long_about = None)]
struct Args {
    #[command(flatten)]
    run: TrainArgs,
}

fn main() -> Result<()> {
    let defaults = trl_sft_defaults();
    let args = parse_with_defaults::<Args>(&defaults).run;
    let config = args.train_config(&defaults)?;
    let Start {
        dir,
        tokenizer,
        eos,
    } = args.start(&config)?;
    let (train, eval) =
        args.datasets(|records: &[SftRecord]| tokenize_sft(records, &tokenizer, eos))?;
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
