//! `w2s-openai`: the OpenAI completions API for w2s, so that a pipeline stage can be sampled by
//! any OpenAI-compatible engine (vLLM, SGLang, llama.cpp's server, TGI, or w2s's own `serve`),
//! on one machine or many, instead of by the in-process model.
//!
//! - [`wire`]: the request and response bodies of `/v1/completions`, `/v1/chat/completions` and
//!   `/v1/models`, and OpenAI's error body; shared by the client here and the server in
//!   `w2s-serve`.
//! - [`OpenAiSampler`] ([`client`]): a blocking client that samples `n` completions per prompt
//!   (text, token ids or a conversation) on a bounded number of threads, with a timeout per
//!   request and retries with jittered exponential backoff ([`retry`]).
//! - [`sample_to_jsonl`] ([`resume`]): a stage's prompts sampled into a JSONL file that a killed
//!   run resumes without losing or duplicating a prompt.
//!
//! Burn-free, and free of async runtimes: HTTP is `ureq`, blocking, on plain threads. HTTPS
//! needs the `tls` feature (rustls), off by default to keep the build small; engines on a
//! cluster usually speak plain HTTP.
#![warn(missing_docs)]

pub mod client;
pub mod error;
pub mod prompt;
pub mod resume;
pub mod retry;
pub mod wire;

pub use client::{OpenAiSampler, SamplerConfig};
pub use error::{OpenAiError, Result};
pub use prompt::{prompt_seed, Answer, Completion, Prompt, SamplingOptions};
pub use resume::{sample_to_jsonl, StagePrompt, StageSummary};
pub use retry::RetryPolicy;
pub use wire::FinishReason;

/// The README's example, compiled as a doctest so it stays true (not run: it needs a server).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
