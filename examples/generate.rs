//! Generates continuations with a HF Llama checkpoint: greedy, or sampled with temperature,
//! top-k and top-p, several samples per prompt, batched with a KV cache.
//!
//! Each output line is a curation sample `{"id", "prompt", "response", ...}`: the input line's
//! `id` (its line number when it has none), the prompt text the model saw and the generated
//! text, then every other field of the input line (a benchmark's gold `answer`, say), then
//! `sample_index`, `output_ids` and `finish_reason`. With `--num-samples N` each input line gives
//! N lines with the same id. A line may hold a conversation, `"messages": [{"role", "content"},
//! ...]`, instead of a prompt: the model's chat template renders it with the generation prompt,
//! and the output's `prompt` is that rendering (`prompt_ids` what the model saw). So
//! `grade --input` and `curate` read the output as it is:
//!
//! ```text
//! cargo run --release --example generate -- --model weak/ --input gsm8k_test.jsonl \
//!     --output gen.jsonl
//! cargo run --release --example grade -- --task gsm8k --input gen.jsonl --output graded.jsonl
//! ```
//!
//! First it prints the memory plan of the batch (`w2s_train::memory_plan`: weights, prefill,
//! the KV cache of `--batch-size` x `--num-samples` rows) to stderr, and refuses to start when it
//! exceeds `--memory-budget GIB` (by default this machine's memory on CPU backends).
//!
//! With `--endpoint URL` instead of `--model`, an OpenAI-compatible server (vLLM, SGLang,
//! llama.cpp's server, TGI, or the `serve` example) samples the same lines, `--concurrency` at a
//! time, and a rerun with the same `--output` resumes where a killed run stopped
//! (`w2s::remote`, docs/serving.md):
//!
//! ```text
//! cargo run --release --example generate -- --endpoint http://127.0.0.1:8000/v1 \
//!     --input gsm8k_test.jsonl --num-samples 10 --temperature 1 --output gen.jsonl
//! ```

use std::num::NonZeroUsize;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{ArgGroup, Parser};
use w2s::backend;
use w2s::llama::{GenerationConfig, ModelDir, Sampling};
use w2s::model_io::{generate_lines, Lines, ModelIoArgs, PROMPT_FIELDS};
use w2s::openai::SamplingOptions;
use w2s::remote::{self, EndpointArgs, RemoteLine};
use w2s::train::memory_plan::print_and_check;
use w2s::train::{MemoryPlan, SamplingShape};
use w2s::train_args::{memory_budget, parse_gib};

/// Generate text with a HF Llama checkpoint (greedy when --temperature is 0).
#[derive(Parser)]
#[command(version, long_about = None)]
#[command(group(ArgGroup::new("engine").required(true).args(["model", "endpoint"])))]
struct Args {
    #[command(flatten)]
    io: ModelIoArgs,
    #[command(flatten)]
    remote: EndpointArgs,
    /// A prompt as text, tokenized with the model's special tokens unless --no-special-tokens.
    #[arg(long, group = "source")]
    prompt: Option<String>,
    /// A prompt as comma-separated token ids, e.g. 1,2,3.
    #[arg(long, group = "source", value_delimiter = ',')]
    prompt_ids: Option<Vec<u32>>,
    /// A JSONL file of prompts: each line has "prompt" (text), "messages" (a conversation,
    /// rendered by the model's chat template with the generation prompt) or "prompt_ids"; every
    /// field is carried to the output lines.
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
    /// Samples per prompt, one output line each.
    #[arg(long, default_value = "1")]
    num_samples: NonZeroUsize,
    /// Stop a sample when this string appears (repeatable); the text is cut before it.
    #[arg(long)]
    stop: Vec<String>,
    /// Prompts per forward batch (with --input).
    #[arg(long, default_value = "8")]
    batch_size: NonZeroUsize,
    /// Memory generation may use, in GiB: it is refused up front when its memory plan (printed
    /// first) is larger. Default: this machine's memory on CPU backends; GPU backends have no
    /// memory query in burn 0.21, so there the plan is checked only with this.
    #[arg(long, value_name = "GIB", value_parser = parse_gib)]
    memory_budget: Option<f64>,
}

impl Args {
    /// The prompts of `--prompt`, `--prompt-ids` or `--input`.
    fn lines(&self, dir: &ModelDir<backend::Inference>) -> Result<Lines> {
        let (tokenizer, special_tokens) = (dir.tokenizer.as_ref(), !self.io.no_special_tokens);
        match (&self.prompt, &self.prompt_ids, &self.input) {
            (Some(text), _, _) => Lines::from_text("--prompt", text, tokenizer, special_tokens),
            (_, Some(ids), _) => Lines::from_ids("--prompt-ids", ids.clone(), tokenizer),
            (_, _, Some(path)) => Lines::read(path, PROMPT_FIELDS, tokenizer, special_tokens),
            (None, None, None) => bail!("give one of --prompt, --prompt-ids or --input"),
        }
    }

    /// Samples through `--endpoint` instead of a loaded model.
    fn generate_remote(&self, endpoint: &str) -> Result<()> {
        let lines = match (&self.prompt, &self.prompt_ids, &self.input) {
            (Some(text), _, _) => vec![RemoteLine::from_text(text)],
            (_, Some(ids), _) => vec![RemoteLine::from_ids(ids.clone())],
            (_, _, Some(path)) => remote::read_lines(path, PROMPT_FIELDS)?,
            (None, None, None) => bail!("give one of --prompt, --prompt-ids or --input"),
        };
        let options = SamplingOptions {
            n: self.num_samples.get(),
            max_tokens: self.max_new_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            seed: Some(self.seed),
            stop: self.stop.clone(),
            return_token_ids: self.remote.return_token_ids,
        };
        let sampler = self.remote.sampler(endpoint)?;
        remote::generate(&sampler, &lines, &options, self.io.output.as_deref())?;
        Ok(())
    }

    fn generation_config(&self, dir: &ModelDir<backend::Inference>) -> GenerationConfig {
        GenerationConfig {
            max_new_tokens: self.max_new_tokens,
            sampling: Sampling {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
            },
            seed: self.seed,
            num_samples: self.num_samples.get(),
            eos_token_ids: dir.config.eos_token_ids(),
            stop_strings: self.stop.clone(),
            use_cache: true,
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(endpoint) = &args.remote.endpoint {
        return args.generate_remote(endpoint);
    }
    let device = backend::device();
    let dir = args.io.load::<backend::Inference>(&device)?;
    let lines = args.lines(&dir)?;
    let config = args.generation_config(&dir);
    let plan = MemoryPlan::sampling(&SamplingShape {
        model: &dir.config,
        rows: args.batch_size.get().min(lines.lines().len()) * config.num_samples,
        prompt_len: lines.lines().iter().map(|l| l.ids.len()).max().unwrap_or(0),
        max_new_tokens: config.max_new_tokens,
        lora: dir.model.lora(),
        base_dtype: dir.model.base_dtype(),
    });
    print_and_check(&plan, memory_budget(args.memory_budget).as_ref(), false)?;
    lines.run(args.batch_size, args.io.output.as_deref(), |batch| {
        generate_lines(&dir, batch, &config, &device)
    })?;
    Ok(())
}
