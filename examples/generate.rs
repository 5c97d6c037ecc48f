//! Generates continuations with a HF Llama checkpoint: greedy, or sampled with temperature,
//! top-k and top-p, several samples per prompt, batched with a KV cache.
//!
//! Prints one JSON object per generation with `"output_ids"` and `"text"` (and writes them as JSONL
//! with `--output`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::{json, Map, Value};
use w2s::backend;
use w2s::eval::jsonl::{BadLines, JsonlReader, JsonlWriter};
use w2s::llama::{generate, GenerationConfig, ModelDir, Sampling};

/// Generate text with a HF Llama checkpoint (greedy when --temperature is 0).
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Model directory (config.json, model.safetensors[.index.json], tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// A prompt as text (BOS is put first unless --no-bos).
    #[arg(long, group = "source")]
    prompt: Option<String>,
    /// A prompt as comma-separated token ids, e.g. 1,2,3.
    #[arg(long, group = "source", value_delimiter = ',')]
    prompt_ids: Option<Vec<u32>>,
    /// A JSONL file of prompts: each line has "prompt" (text) or "prompt_ids"; other fields are
    /// copied to the output.
    #[arg(long, group = "source")]
    input: Option<PathBuf>,
    /// Most tokens to generate per sample.
    #[arg(long, default_value_t = 128)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass.
    #[arg(long)]
    top_p: Option<f32>,
    /// Keep only the k most likely tokens.
    #[arg(long)]
    top_k: Option<usize>,
    /// Seed of the sampling streams (each sample has its own, derived from this).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Samples per prompt.
    #[arg(long, default_value_t = 1)]
    num_samples: usize,
    /// Stop a sample when this string appears (repeatable); the text is cut before it.
    #[arg(long)]
    stop: Vec<String>,
    /// Prompts per forward batch (with --input).
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Do not put the BOS token before text prompts.
    #[arg(long)]
    no_bos: bool,
    /// Also write the generations as JSONL here (replaced atomically when complete).
    #[arg(long)]
    output: Option<PathBuf>,
}

/// A prompt's input record (its fields are copied to the output) and its token ids.
type Prompt = (Map<String, Value>, Vec<u32>);

fn read_prompts(args: &Args, dir: &ModelDir<backend::Inference>) -> Result<Vec<Prompt>> {
    if let Some(text) = &args.prompt {
        return Ok(vec![(
            Map::new(),
            dir.tokenizer()?.encode(text, !args.no_bos)?,
        )]);
    }
    if let Some(ids) = &args.prompt_ids {
        return Ok(vec![(Map::new(), ids.clone())]);
    }
    let Some(path) = &args.input else {
        bail!("give one of --prompt, --prompt-ids or --input");
    };
    let mut reader = JsonlReader::<Map<String, Value>>::open(path, BadLines::Fail)?;
    let mut prompts = Vec::new();
    while let Some(record) = reader.next() {
        let record = record?;
        let where_ = || format!("{}:{}", path.display(), reader.line());
        let ids = match (record.get("prompt_ids"), record.get("prompt")) {
            (Some(ids), _) => serde_json::from_value(ids.clone()).with_context(|| {
                format!("{}: \"prompt_ids\" must be a list of token ids", where_())
            })?,
            (None, Some(Value::String(text))) => dir.tokenizer()?.encode(text, !args.no_bos)?,
            _ => bail!(
                "{}: expected a \"prompt\" string or a \"prompt_ids\" list",
                where_()
            ),
        };
        prompts.push((record, ids));
    }
    Ok(prompts)
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let device = backend::device();
    let dir = ModelDir::<backend::Inference>::load(&args.model, &device)?;
    let prompts = read_prompts(&args, &dir)?;
    let config = GenerationConfig {
        max_new_tokens: args.max_new_tokens,
        sampling: Sampling {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
        },
        seed: args.seed,
        num_samples: args.num_samples,
        eos_token_ids: dir.config.eos_token_ids(),
        stop_strings: args.stop.clone(),
        use_cache: true,
    };
    let mut output = args.output.as_ref().map(JsonlWriter::create).transpose()?;
    for (chunk_index, chunk) in prompts.chunks(args.batch_size).enumerate() {
        let ids: Vec<Vec<u32>> = chunk.iter().map(|(_, ids)| ids.clone()).collect();
        let generations = generate(&dir.model, &ids, &config, dir.tokenizer.as_ref(), &device)?;
        for g in generations {
            let mut record = chunk[g.prompt_index].0.clone();
            let prompt_index = chunk_index * args.batch_size + g.prompt_index;
            let fields = json!({
                "prompt_index": prompt_index,
                "sample_index": g.sample_index,
                "output_ids": g.token_ids,
                "text": g.text,
                "finish_reason": g.finish_reason,
            });
            if let Value::Object(fields) = fields {
                record.extend(fields);
            }
            println!("{}", serde_json::to_string(&record)?);
            if let Some(output) = &mut output {
                output.write(&record)?;
            }
        }
    }
    if let Some(output) = output {
        output.finish()?;
    }
    Ok(())
}
