//! Merges a LoRA adapter into its base model and writes the result as a plain HF checkpoint
//! (PEFT's `merge_and_unload`): config.json, safetensors and the base's tokenizer files, which
//! transformers and vLLM load without PEFT.
//!
//! ```text
//! cargo run --release --example merge -- --model base/ --adapter runs/sft/final --output merged/
//! ```
//! The adapter is PEFT's layout (adapter_config.json, adapter_model.safetensors): one written by
//! `sft` or `preference` with `--lora-r`, or by PEFT itself. Each adapted weight becomes
//! `W + scaling · B·A` (`scaling` = alpha/r, or alpha/√r with rsLoRA), computed in f32.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use w2s::backend;
use w2s::llama::{load_adapter, ModelDir, SaveDtype, SaveOptions};

/// Write base + LoRA adapter as one plain HF checkpoint.
#[derive(Parser)]
#[command(version, long_about = None)]
struct Args {
    /// The base model directory the adapter was trained on.
    #[arg(long)]
    model: PathBuf,
    /// The adapter directory (adapter_config.json, adapter_model.safetensors).
    #[arg(long, value_name = "DIR")]
    adapter: PathBuf,
    /// Where to write the merged model (created if needed).
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// Stored dtype of the merged weights.
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    dtype: Dtype,
}

/// `--dtype`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Dtype {
    /// 32-bit floats, exact.
    F32,
    /// bfloat16, as most HF checkpoints are stored.
    Bf16,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let device = backend::device();
    let mut dir = ModelDir::<backend::Inference>::load(&args.model, &device)
        .with_context(|| format!("--model {}", args.model.display()))?;
    dir.model = load_adapter(dir.model, &args.adapter, &device)
        .with_context(|| format!("--adapter {}", args.adapter.display()))?
        .merge_adapters();
    let dtype = match args.dtype {
        Dtype::F32 => SaveDtype::F32,
        Dtype::Bf16 => SaveDtype::Bf16,
    };
    dir.save(
        &args.output,
        SaveOptions {
            dtype,
            ..SaveOptions::default()
        },
    )
    .with_context(|| format!("--output {}", args.output.display()))?;
    println!("{}", args.output.display());
    Ok(())
}
