//! Turning a checked [`Request`] into token ids and the options of its generation, on the HTTP
//! thread that received it (the model thread only generates).
//!
//! Text is tokenized with the special tokens the model's tokenizer adds, as vLLM's completions
//! do and as `generate` does by default; a conversation is rendered by the model's chat template
//! with the generation prompt and encoded without added special tokens (the template writes its
//! own), as `generate` renders a `messages` line. Token ids must be in the vocabulary. Every
//! prompt plus `max_tokens` must fit the model's context; a request without `max_tokens` gets
//! what the context leaves after its longest prompt, up to `--max-tokens-limit`.

use w2s_llama::{ChatOptions, Tokenizer};

use crate::api_error::ApiError;
use crate::engine::GroupOptions;
use crate::request::{PromptSource, Request};

/// What the HTTP threads need of the model: its tokenizer, vocabulary size and context length.
#[derive(Debug, Clone)]
pub struct PromptEncoder {
    tokenizer: Tokenizer,
    vocab_size: usize,
    context: usize,
}

/// A request ready for the model: its prompts' token ids and the options of its group.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// Token ids of each prompt.
    pub prompts: Vec<Vec<u32>>,
    /// How to generate; requests with equal options run together.
    pub options: GroupOptions,
}

impl PromptEncoder {
    /// An encoder for a model with `vocab_size` embeddings and `context` positions.
    pub fn new(tokenizer: Tokenizer, vocab_size: usize, context: usize) -> Self {
        Self {
            tokenizer,
            vocab_size,
            context,
        }
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The request's prompts as token ids and its generation options.
    ///
    /// # Errors
    /// 400 for a conversation the model has no chat template for (or that its template
    /// refuses), an empty prompt, a token id outside the vocabulary, or a prompt that leaves no
    /// room for `max_tokens` in the context.
    pub fn prepare(
        &self,
        request: &Request,
        max_tokens_limit: usize,
    ) -> Result<Prepared, ApiError> {
        let prompts = request
            .prompts
            .iter()
            .enumerate()
            .map(|(i, source)| self.encode(i, source))
            .collect::<Result<Vec<_>, _>>()?;
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let room = self.context.saturating_sub(longest);
        let max_tokens = request.max_tokens.unwrap_or(room.min(max_tokens_limit));
        if max_tokens == 0 || longest + max_tokens > self.context {
            return Err(ApiError::bad_request(format!(
                "This model's maximum context length is {} tokens. However, you requested {} \
                 tokens ({longest} in the prompt, {max_tokens} for the completion).",
                self.context,
                longest + max_tokens
            )));
        }
        Ok(Prepared {
            prompts,
            options: GroupOptions {
                max_tokens,
                sampling: request.sampling.clone(),
                n: request.n,
                stop: request.stop.clone(),
            },
        })
    }

    fn encode(&self, index: usize, source: &PromptSource) -> Result<Vec<u32>, ApiError> {
        let ids = match source {
            PromptSource::Text(text) => self
                .tokenizer
                .encode_with_special_tokens(text)
                .map_err(|e| ApiError::bad_request(format!("prompt {index}: {e}")))?,
            PromptSource::TokenIds(ids) => ids.clone(),
            PromptSource::Chat(messages) => self
                .tokenizer
                .encode_chat(messages, &ChatOptions::generation())
                .map_err(|e| ApiError::bad_request(format!("messages: {e}")))?,
        };
        if ids.is_empty() {
            return Err(ApiError::bad_request(format!(
                "prompt {index} is empty (no tokens)"
            )));
        }
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            return Err(ApiError::bad_request(format!(
                "prompt {index} has token id {id}, but the vocabulary has {} ids",
                self.vocab_size
            )));
        }
        Ok(ids)
    }
}
