//! Reading a request body: JSON into the wire types of `w2s-openai`, then every option checked
//! against the server's limits. No model and no tokenizer are involved, so the tests fuzz it on
//! arbitrary bytes; tokens are counted later ([`crate::prompts`]).
//!
//! Refused with 400: invalid JSON, a field of the wrong type, `n` outside 1..=128, `max_tokens`
//! of 0 or above `--max-tokens-limit`, `temperature` outside 0..=2, `top_p` outside (0, 1],
//! `top_k` of 0, more than 4 stop strings or an empty one, `stream: true`, an empty prompt list
//! or conversation, and more than [`MAX_COMPLETIONS`] completions in one request. A `model` other
//! than the served name is 404. Other OpenAI options (`logprobs`, `echo`, penalties, ...) are
//! accepted and ignored.

use w2s_llama::Sampling;
use w2s_openai::wire::{
    ChatCompletionRequest, ChatMessage, CompletionRequest, PromptInput, SamplingParams,
};

use crate::api_error::ApiError;

/// Most completions per prompt, as OpenAI allows.
pub const MAX_N: u32 = 128;
/// Most stop strings, as OpenAI allows.
pub const MAX_STOP: usize = 4;
/// Most completions (prompts × n) one request may ask for: one request must not fill the
/// model's batch for minutes.
pub const MAX_COMPLETIONS: usize = 1024;

/// Which completion route a body came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /v1/completions`.
    Completions,
    /// `POST /v1/chat/completions`.
    ChatCompletions,
}

/// One prompt of a request, before tokenization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptSource {
    /// Text, tokenized with the model's special tokens.
    Text(String),
    /// Token ids, used as they are.
    TokenIds(Vec<u32>),
    /// A conversation, rendered by the model's chat template with the generation prompt.
    Chat(Vec<ChatMessage>),
}

/// A request whose options are in range; `max_tokens` is resolved once the prompts are
/// tokenized.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The route it came to.
    pub route: Route,
    /// Its prompts (one for a chat).
    pub prompts: Vec<PromptSource>,
    /// `max_tokens` as asked; `None` takes what the context and the limit leave.
    pub max_tokens: Option<usize>,
    /// Temperature, top-p and top-k.
    pub sampling: Sampling,
    /// Completions per prompt.
    pub n: usize,
    /// Stop strings.
    pub stop: Vec<String>,
    /// The seed, as an unsigned 64-bit value; `None` draws one.
    pub seed: Option<u64>,
    /// Whether to answer with token ids.
    pub return_token_ids: bool,
}

/// Parses and checks a body that came to `route`.
///
/// # Errors
/// An [`ApiError`] of status 400 or 404 saying what is wrong; never a panic, whatever the bytes.
pub fn parse(
    route: Route,
    body: &[u8],
    served_model_name: &str,
    max_tokens_limit: usize,
) -> Result<Request, ApiError> {
    let invalid = |e: serde_json::Error| ApiError::bad_request(format!("invalid request: {e}"));
    let (model, prompts, max_completion_tokens, params) = match route {
        Route::Completions => {
            let request: CompletionRequest = serde_json::from_slice(body).map_err(invalid)?;
            (
                request.model,
                prompts_of(request.prompt)?,
                None,
                request.params,
            )
        }
        Route::ChatCompletions => {
            let request: ChatCompletionRequest = serde_json::from_slice(body).map_err(invalid)?;
            if request.messages.is_empty() {
                return Err(ApiError::bad_request("messages must not be empty"));
            }
            let prompts = vec![PromptSource::Chat(request.messages)];
            (
                request.model,
                prompts,
                request.max_completion_tokens,
                request.params,
            )
        }
    };
    if let Some(name) = model.filter(|name| name != served_model_name) {
        return Err(ApiError::unknown_model(&name, served_model_name));
    }
    checked(
        route,
        prompts,
        max_completion_tokens,
        params,
        max_tokens_limit,
    )
}

fn prompts_of(prompt: PromptInput) -> Result<Vec<PromptSource>, ApiError> {
    let prompts: Vec<PromptSource> = match prompt {
        PromptInput::Text(text) => vec![PromptSource::Text(text)],
        PromptInput::Texts(texts) => texts.into_iter().map(PromptSource::Text).collect(),
        PromptInput::TokenIds(ids) => vec![PromptSource::TokenIds(ids)],
        PromptInput::TokenIdLists(lists) => lists.into_iter().map(PromptSource::TokenIds).collect(),
    };
    if prompts.is_empty() {
        return Err(ApiError::bad_request("prompt must not be an empty list"));
    }
    Ok(prompts)
}

fn checked(
    route: Route,
    prompts: Vec<PromptSource>,
    max_completion_tokens: Option<u32>,
    params: SamplingParams,
    max_tokens_limit: usize,
) -> Result<Request, ApiError> {
    if params.stream == Some(true) {
        return Err(ApiError::bad_request(
            "stream is not supported: send stream false or leave it out",
        ));
    }
    let n = params.n.unwrap_or(1);
    if !(1..=MAX_N).contains(&n) {
        return Err(ApiError::bad_request(format!(
            "n must be in 1..={MAX_N}, not {n}"
        )));
    }
    let n = n as usize;
    if prompts.len().saturating_mul(n) > MAX_COMPLETIONS {
        return Err(ApiError::bad_request(format!(
            "{} prompts × n = {n} is more than the {MAX_COMPLETIONS} completions one request may ask for",
            prompts.len()
        )));
    }
    let max_tokens = max_completion_tokens
        .or(params.max_tokens)
        .map(|m| m as usize);
    if let Some(max_tokens) = max_tokens {
        if max_tokens == 0 || max_tokens > max_tokens_limit {
            return Err(ApiError::bad_request(format!(
                "max_tokens must be in 1..={max_tokens_limit} (--max-tokens-limit), not {max_tokens}"
            )));
        }
    }
    let temperature = params.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::bad_request(format!(
            "temperature must be in [0, 2], not {temperature}"
        )));
    }
    if let Some(top_p) = params.top_p {
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::bad_request(format!(
                "top_p must be in (0, 1], not {top_p}"
            )));
        }
    }
    if params.top_k == Some(0) {
        return Err(ApiError::bad_request("top_k must be at least 1"));
    }
    let stop = params.stop.map(|stop| stop.to_vec()).unwrap_or_default();
    if stop.len() > MAX_STOP || stop.iter().any(String::is_empty) {
        return Err(ApiError::bad_request(format!(
            "stop must be at most {MAX_STOP} non-empty strings"
        )));
    }
    Ok(Request {
        route,
        prompts,
        max_tokens,
        sampling: Sampling {
            temperature,
            // top_p = 1 keeps every token: the same as none, and the same group.
            top_p: params.top_p.filter(|&p| p < 1.0),
            top_k: params.top_k.map(|k| k as usize),
        },
        n,
        stop,
        seed: params.seed.map(|seed| seed as u64),
        return_token_ids: params.return_token_ids == Some(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(body: &str) -> u16 {
        match parse(Route::Completions, body.as_bytes(), "m", 64) {
            Ok(_) => 200,
            Err(e) => e.status,
        }
    }

    #[test]
    fn bad_requests_are_4xx_with_a_message() {
        let cases = [
            (r#"{"prompt": "p"}"#, 200),
            (
                r#"{"prompt": "p", "model": "m", "n": 2, "stop": ["a"]}"#,
                200,
            ),
            (r#"{"prompt": "p", "n": -1}"#, 400),
            (r#"{"prompt": "p", "n": 0}"#, 400),
            (r#"{"prompt": "p", "n": "2"}"#, 400),
            (r#"{"prompt": "p", "max_tokens": 65}"#, 400),
            (r#"{"prompt": "p", "max_tokens": 0}"#, 400),
            (r#"{"prompt": "p", "max_tokens": 1e9}"#, 400),
            (r#"{"prompt": "p", "temperature": 2.5}"#, 400),
            (r#"{"prompt": "p", "top_p": 0}"#, 400),
            (r#"{"prompt": "p", "top_k": 0}"#, 400),
            (r#"{"prompt": "p", "stop": ["a", "b", "c", "d", "e"]}"#, 400),
            (r#"{"prompt": "p", "stop": ""}"#, 400),
            (r#"{"prompt": "p", "stream": true}"#, 400),
            (r#"{"prompt": []}"#, 400),
            (r#"{"prompt": [[1], [-2]]}"#, 400),
            (r#"{"prompt": "p", "model": "other"}"#, 404),
            (r#"{"prompt": ["a", "b"], "n": 128}"#, 200),
            (
                r#"{"prompt": ["a", "b", "c", "d", "e", "f", "g", "h", "i"], "n": 128}"#,
                400,
            ),
            ("{not json", 400),
            ("", 400),
        ];
        for (body, expected) in cases {
            assert_eq!(status(body), expected, "{body}");
        }
        let err = parse(Route::Completions, br#"{"prompt": "p", "n": "2"}"#, "m", 64).err();
        let message = err.map(|e| e.body.error.message).unwrap_or_default();
        assert!(message.contains("invalid type"), "{message}");
    }

    #[test]
    fn a_chat_takes_max_completion_tokens_over_max_tokens() {
        let body = br#"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3,
                        "max_completion_tokens": 5, "seed": -1}"#;
        let request =
            parse(Route::ChatCompletions, body, "m", 64).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(request.max_tokens, Some(5));
        assert_eq!(request.seed, Some(u64::MAX));
        let empty = parse(Route::ChatCompletions, br#"{"messages": []}"#, "m", 64);
        assert_eq!(empty.err().map(|e| e.status), Some(400));
    }
}
