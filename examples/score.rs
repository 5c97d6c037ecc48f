//! Scores token sequences with a model: per-token log-probabilities (and optionally logits).
//!
//! Each input line holds `"text"` (tokenized with the model's tokenizer, BOS first unless
//! `--no-bos`) or `"input_ids"`. Each output line is the input line plus `"input_ids"` and
//! `"logprobs"`: the log-probability of token t given the tokens before it, for t >= 1.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::{Map, Value};
use w2s::backend;
use w2s::eval::jsonl::{BadLines, JsonlReader, JsonlWriter};
use w2s::llama::{score_tokens, ModelDir};

/// Per-token log-probabilities of JSONL sequences under a HF Llama checkpoint.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Model directory (config.json, model.safetensors[.index.json], tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// JSONL file; each line has "text" or "input_ids".
    #[arg(long)]
    input: PathBuf,
    /// JSONL file to write (replaced atomically when complete).
    #[arg(long)]
    output: PathBuf,
    /// Also write "logits", one row of vocabulary size per position.
    #[arg(long)]
    logits: bool,
    /// Do not put the BOS token before tokenized "text".
    #[arg(long)]
    no_bos: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let device = backend::device();
    let dir = ModelDir::<backend::Inference>::load(&args.model, &device)?;
    let mut reader = JsonlReader::<Map<String, Value>>::open(&args.input, BadLines::Fail)?;
    let mut writer = JsonlWriter::create(&args.output)?;
    while let Some(record) = reader.next() {
        let mut record = record?;
        let where_ = || format!("{}:{}", args.input.display(), reader.line());
        let ids: Vec<u32> = match (record.get("input_ids"), record.get("text")) {
            (Some(ids), _) => serde_json::from_value(ids.clone()).with_context(|| {
                format!("{}: \"input_ids\" must be a list of token ids", where_())
            })?,
            (None, Some(Value::String(text))) => dir.tokenizer()?.encode(text, !args.no_bos)?,
            _ => bail!(
                "{}: expected a \"text\" string or an \"input_ids\" list",
                where_()
            ),
        };
        let scores = score_tokens(&dir.model, &ids, args.logits, &device).with_context(where_)?;
        record.insert("input_ids".into(), ids.into());
        record.insert("logprobs".into(), scores.logprobs.into());
        if let Some(logits) = scores.logits {
            record.insert("logits".into(), logits.into());
        }
        writer.write(&record)?;
        eprint!("\rscored {} sequences", writer.written());
    }
    eprintln!();
    let written = writer.finish()?;
    println!(
        "wrote {} scored sequences to {}",
        written,
        args.output.display()
    );
    Ok(())
}
