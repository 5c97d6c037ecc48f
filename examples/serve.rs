//! Serves a model over the OpenAI API: `POST /v1/completions`, `POST /v1/chat/completions`
//! (rendered with the model's own chat template), `GET /v1/models`, `GET /health`.
//!
//! Requests that arrive together are batched: the HTTP threads put each on a queue of `--queue`
//! requests (one more is answered 429 at once) and the model thread runs up to `--max-batch` of
//! them at a time, those with equal sampling options in one batch. A request with a `seed` gets
//! the same samples whatever it is batched with. Ctrl-C stops taking requests, answers those
//! taken, and exits (docs/serving.md):
//!
//! ```text
//! cargo run --release --example serve -- --model runs/weak_to_strong/stage2_dpo/final --port 8000
//! cargo run --release --example generate -- --endpoint http://127.0.0.1:8000/v1 \
//!     --input questions.jsonl --num-samples 10 --temperature 1 --output samples.jsonl
//! ```

use std::num::NonZeroUsize;

use anyhow::Result;
use clap::{ArgGroup, Parser};
use w2s::backend;
use w2s::model_io::ModelArgs;
use w2s::serve::{serve_model, ServeConfig};

/// Serve a HF Llama checkpoint (with an optional LoRA adapter) over the OpenAI API.
#[derive(Parser)]
#[command(version, long_about = None)]
#[command(group(ArgGroup::new("required_model").required(true).args(["model"])))]
struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one, printed at start).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Most requests run together in one batch.
    #[arg(long, default_value = "16")]
    max_batch: NonZeroUsize,
    /// Most requests waiting for the model; one more is answered 429 (clients back off and
    /// retry).
    #[arg(long, default_value = "64")]
    queue: NonZeroUsize,
    /// Largest request body, in bytes (a larger one is answered 413).
    #[arg(long, default_value_t = 4 << 20)]
    max_body_bytes: usize,
    /// Largest `max_tokens` a request may ask for (the model's context also limits it).
    #[arg(long, default_value_t = 4096)]
    max_tokens_limit: usize,
    /// The name requests give as `model` and /v1/models lists (default: --model as given, as
    /// vLLM names a model by its path).
    #[arg(long, value_name = "NAME")]
    served_model_name: Option<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let device = backend::device();
    let dir = args.model.load::<backend::Inference>(&device)?;
    let path = args.model.model.as_ref().map(|p| p.display().to_string());
    let name = args.served_model_name.clone().or(path).unwrap_or_default();
    let host = match args.host.contains(':') {
        true => format!("[{}]", args.host),
        false => args.host.clone(),
    };
    let config = ServeConfig {
        addr: format!("{host}:{}", args.port),
        served_model_name: name.clone(),
        max_batch: args.max_batch.get(),
        queue: args.queue.get(),
        max_body_bytes: args.max_body_bytes,
        max_tokens_limit: args.max_tokens_limit,
    };
    let server = serve_model(dir, device, config)?;
    server.shutdown_on_ctrl_c()?;
    eprintln!(
        "serving {name} ({} backend) at {} (batches of up to {}, a queue of {}); Ctrl-C stops",
        backend::name(),
        server.base_url(),
        args.max_batch,
        args.queue
    );
    let stats = server.wait()?;
    eprintln!(
        "stopped: {} completions answered, {} refused with 429, {} other 4xx, {} 5xx",
        stats.completed, stats.queue_full, stats.refused, stats.failed
    );
    Ok(())
}
