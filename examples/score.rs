//! Scores token sequences with a model: per-token log-probabilities (and optionally logits).
//!
//! Each input line holds `"text"` (tokenized with the model's tokenizer and the special tokens
//! its files add, unless `--no-special-tokens`) or `"input_ids"`. Each output line is the input line plus `"input_ids"` and
//! `"logprobs"`: the log-probability of token t given the tokens before it, for t >= 1.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use anyhow::Result;
use clap::{ArgGroup, Parser};
use w2s::backend;
use w2s::model_io::{score_lines, Lines, ModelIoArgs, SEQUENCE_FIELDS};

/// Per-token log-probabilities of JSONL sequences under a HF Llama checkpoint.
#[derive(Parser)]
#[command(version, long_about = None)]
#[command(group(ArgGroup::new("required_model").required(true).args(["model"])))]
struct Args {
    #[command(flatten)]
    io: ModelIoArgs,
    /// JSONL file; each line has "text" or "input_ids".
    #[arg(long)]
    input: PathBuf,
    /// Also write "logits", one row of vocabulary size per position.
    #[arg(long)]
    logits: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let device = backend::device();
    let dir = args.io.load::<backend::Inference>(&device)?;
    let lines = Lines::read(
        &args.input,
        SEQUENCE_FIELDS,
        dir.tokenizer.as_ref(),
        !args.io.no_special_tokens,
    )?;
    // One sequence a batch: each is scored on its own, and an error names its line.
    lines.run(NonZeroUsize::MIN, args.io.output.as_deref(), |batch| {
        score_lines(&dir, batch, args.logits, &device)
    })?;
    Ok(())
}
