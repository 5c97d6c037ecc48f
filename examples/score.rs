//! Scores token sequences with a model: per-token log-probabilities (and optionally logits).
//!
//! Each input line holds `"text"` (tokenized with the model's tokenizer, BOS first unless
//! `--no-bos`) or `"input_ids"`. Each output line is the input line plus `"input_ids"` and
//! `"logprobs"`: the log-probability of token t given the tokens before it, for t >= 1.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::{Map, Value};
use w2s::backend;
use w2s::llama::{score_tokens, write_atomic_with, ModelDir};

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
    let file =
        std::fs::File::open(&args.input).with_context(|| format!("{}", args.input.display()))?;
    let mut lines = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}", args.input.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let where_ = || format!("{}:{}", args.input.display(), n + 1);
        let mut record: Map<String, Value> = serde_json::from_str(&line).with_context(where_)?;
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
        lines.push(serde_json::to_string(&record)?);
        eprint!("\rscored {} sequences", lines.len());
    }
    eprintln!();
    write_atomic_with(&args.output, |tmp| {
        let mut out = std::io::BufWriter::new(std::fs::File::create(tmp)?);
        for line in &lines {
            writeln!(out, "{line}")?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    })?;
    println!(
        "wrote {} scored sequences to {}",
        lines.len(),
        args.output.display()
    );
    Ok(())
}
