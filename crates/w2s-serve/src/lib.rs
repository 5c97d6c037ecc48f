//! `w2s-serve`: w2s's Llama served over the OpenAI API, so that anything that samples from an
//! OpenAI-compatible server (w2s's own `generate --endpoint`, the OpenAI SDK, curl) samples from
//! a w2s model, and w2s's pipeline can swap `serve` for vLLM or SGLang without a change.
//!
//! Routes: `POST /v1/completions`, `POST /v1/chat/completions` (rendered by the model's own chat
//! template), `GET /v1/models`, `GET /health`. Threads only, no async runtime: a fixed pool of
//! HTTP threads reads one request per connection ([`http`]), checks and tokenizes it
//! ([`request`], [`prompts`]), a bounded queue feeds one model thread that batches what is
//! waiting ([`batcher`]) and runs it through [`Engine`] ([`LlamaEngine`] for w2s's Llama), and
//! a full queue is answered 429 at once ([`server`]). Bad requests get OpenAI's error body with a
//! 4xx status ([`ApiError`]); a panic of the model answers its batch 500 and serving goes on;
//! a shutdown (Ctrl-C) answers what was taken before the process ends.
//!
//! Its own crate rather than part of `w2s-openai`, which stays burn-free (it is the client,
//! and the wire types both share), and rather than a module of the root package, so that its
//! tests build without the trainers.

pub mod api_error;
pub mod batcher;
pub mod config;
pub mod engine;
pub mod error;
pub mod http;
pub mod prompts;
pub mod request;
pub mod response;
pub mod server;

use burn::prelude::Backend;
use w2s_llama::ModelDir;

pub use api_error::ApiError;
pub use config::ServeConfig;
pub use engine::{Engine, GroupOptions, LlamaEngine};
pub use error::{Result, ServeError};
pub use prompts::PromptEncoder;
pub use server::{start, RunningServer, ServerStats, ShutdownHandle};

/// Serves the model of `dir` on `device`: its tokenizer, vocabulary and context for the
/// prompts, [`LlamaEngine`] for the batches.
///
/// # Errors
/// [`ServeError::Model`] when the directory has no `tokenizer.json`; the errors of [`start`].
pub fn serve_model<B: Backend>(
    dir: ModelDir<B>,
    device: B::Device,
    config: ServeConfig,
) -> Result<RunningServer>
where
    ModelDir<B>: Send,
{
    let tokenizer = dir.tokenizer.clone().ok_or_else(|| {
        ServeError::Model(format!(
            "{}: serving needs the model's tokenizer.json",
            dir.path.display()
        ))
    })?;
    let encoder = PromptEncoder::new(tokenizer, dir.config.vocab_size, dir.model.max_positions());
    start(LlamaEngine::new(dir, device), encoder, config)
}

/// The README's example, compiled as a doctest so it stays true (not run: it needs a model
/// directory and serves until interrupted).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
