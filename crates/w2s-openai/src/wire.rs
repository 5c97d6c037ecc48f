//! The JSON bodies of the OpenAI API routes w2s speaks, both ways: `POST /v1/completions`,
//! `POST /v1/chat/completions`, `GET /v1/models`, and the error body every route answers with.
//!
//! Unknown fields are accepted everywhere (servers add their own, and clients send options w2s
//! does not implement), but every known field has a strict type: a string where a number belongs
//! is an error, not a default. Optional fields left out are not serialized, so a request carries
//! only what its sender set. Two fields are extensions of vLLM that SGLang, llama.cpp's server
//! and TGI accept too or ignore: `top_k`, and `return_token_ids` with the token ids it returns.

use serde::{Deserialize, Serialize};
pub use w2s_data::ChatMessage;

/// What a completion continues: OpenAI's four forms of `prompt`. A request with a list samples
/// each element, and its choices are prompt-major (`n` choices of prompt 0, then of prompt 1...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a string, a list of strings, a list of token ids or a list of token-id lists"
)]
pub enum PromptInput {
    /// One text, tokenized by the server.
    Text(String),
    /// Several texts.
    Texts(Vec<String>),
    /// One prompt as token ids, used as they are.
    TokenIds(Vec<u32>),
    /// Several prompts as token ids.
    TokenIdLists(Vec<Vec<u32>>),
}

/// A list of stop strings or a single one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, expecting = "a string or a list of strings")]
pub enum Stop {
    /// One stop string.
    One(String),
    /// Several stop strings (OpenAI allows up to 4).
    Many(Vec<String>),
}

impl Stop {
    /// The stop strings as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Stop::One(one) => vec![one.clone()],
            Stop::Many(many) => many.clone(),
        }
    }
}

/// The sampling options both completion routes share.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// Completions per prompt; OpenAI's default is 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Most tokens to generate per completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Softmax temperature, 0 to 2; 0 is greedy. OpenAI's default is 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass, in (0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Keep only the k most likely tokens (an extension of vLLM, SGLang, llama.cpp and TGI;
    /// OpenAI itself refuses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Seed of the request's random streams: the same request with the same seed gets the same
    /// samples (on servers that promise it; vLLM and w2s's `serve` do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Strings that end a completion; the text is cut before the first one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Server-sent events instead of one body. w2s never streams: `true` is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Return the prompt's and each completion's token ids (vLLM's extension; w2s's `serve`
    /// honours it too). Servers that do not know it ignore it or, like OpenAI, refuse it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_token_ids: Option<bool>,
}

/// `POST /v1/completions`: continue one prompt or several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    /// The model to sample; vLLM and w2s's `serve` take its absence as their one model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// What to continue.
    pub prompt: PromptInput,
    /// How to sample.
    #[serde(flatten)]
    pub params: SamplingParams,
}

/// `POST /v1/chat/completions`: answer a conversation, rendered by the model's chat template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    /// The model to sample, as in [`CompletionRequest::model`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The conversation so far, `{"role", "content"}` each; the model answers as the assistant.
    pub messages: Vec<ChatMessage>,
    /// OpenAI's newer name for `max_tokens` on this route; it wins when both are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// How to sample.
    #[serde(flatten)]
    pub params: SamplingParams,
}

/// Why a completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its answer (an end-of-sequence token) or a stop string appeared.
    Stop,
    /// `max_tokens` was reached.
    Length,
    /// Anything else a server may say (`content_filter`, `tool_calls`, `abort`, ...).
    #[serde(other)]
    Other,
}

/// Token counts of a response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens of the prompts (each prompt counted once, not once per choice).
    pub prompt_tokens: u64,
    /// Tokens generated over all choices.
    pub completion_tokens: u64,
    /// The sum of both.
    pub total_tokens: u64,
}

/// One choice of a [`CompletionResponse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionChoice {
    /// Position among the response's choices: prompt index × n + sample index.
    pub index: u32,
    /// The generated text, cut before a stop string.
    pub text: String,
    /// Why it ended; servers leave it null only while streaming.
    pub finish_reason: Option<FinishReason>,
    /// The prompt's token ids, special tokens included (with `return_token_ids`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_token_ids: Option<Vec<u32>>,
    /// The generated token ids (with `return_token_ids`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ids: Option<Vec<u32>>,
}

/// The answer of `POST /v1/completions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionResponse {
    /// The response's id (`cmpl-...`).
    #[serde(default)]
    pub id: String,
    /// `text_completion`.
    #[serde(default)]
    pub object: String,
    /// Unix time of the response, in seconds.
    #[serde(default)]
    pub created: u64,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// The completions, prompt-major.
    pub choices: Vec<CompletionChoice>,
    /// Token counts, when the server gives them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// The assistant turn of a [`ChatChoice`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    /// `assistant`.
    pub role: String,
    /// The reply; null when a server answers with tool calls instead.
    pub content: Option<String>,
}

/// One choice of a [`ChatCompletionResponse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    /// Position among the response's choices (the sample index).
    pub index: u32,
    /// The reply.
    pub message: AssistantMessage,
    /// Why it ended.
    pub finish_reason: Option<FinishReason>,
    /// The generated token ids (with `return_token_ids`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ids: Option<Vec<u32>>,
}

/// The answer of `POST /v1/chat/completions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionResponse {
    /// The response's id (`chatcmpl-...`).
    #[serde(default)]
    pub id: String,
    /// `chat.completion`.
    #[serde(default)]
    pub object: String,
    /// Unix time of the response, in seconds.
    #[serde(default)]
    pub created: u64,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// The replies.
    pub choices: Vec<ChatChoice>,
    /// Token ids of the rendered conversation (with `return_token_ids`; vLLM puts them here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_token_ids: Option<Vec<u32>>,
    /// Token counts, when the server gives them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// One model a server offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelCard {
    /// The name requests give as `model`.
    pub id: String,
    /// `model`.
    #[serde(default)]
    pub object: String,
    /// Unix time the model was loaded, in seconds.
    #[serde(default)]
    pub created: u64,
    /// Who serves it.
    #[serde(default)]
    pub owned_by: String,
}

/// The answer of `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelList {
    /// `list`.
    #[serde(default)]
    pub object: String,
    /// The models.
    pub data: Vec<ModelCard>,
}

/// What went wrong, inside an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// What a person reads.
    pub message: String,
    /// The class: `invalid_request_error`, `rate_limit_error`, `server_error`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The request field at fault, when one is.
    #[serde(default)]
    pub param: Option<String>,
    /// A machine-readable code (`model_not_found`, ...). OpenAI sends a string; vLLM sends the
    /// HTTP status as a number, which this type refuses, so clients that must read any server's
    /// errors should keep the raw body (as [`crate::OpenAiSampler`] does).
    #[serde(default)]
    pub code: Option<String>,
}

/// The body of every error answer: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

impl ErrorBody {
    /// An error body of class `kind` saying `message`, with an optional `code`.
    pub fn new(kind: &str, message: impl Into<String>, code: Option<&str>) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                message: message.into(),
                kind: kind.to_string(),
                param: None,
                code: code.map(str::to_string),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_prompt_forms_parse_and_anything_else_is_named() {
        let forms = [
            (r#""hi""#, PromptInput::Text("hi".into())),
            (
                r#"["a","b"]"#,
                PromptInput::Texts(vec!["a".into(), "b".into()]),
            ),
            ("[1,2]", PromptInput::TokenIds(vec![1, 2])),
            (
                "[[1],[2,3]]",
                PromptInput::TokenIdLists(vec![vec![1], vec![2, 3]]),
            ),
        ];
        for (json, expected) in forms {
            assert_eq!(
                serde_json::from_str::<PromptInput>(json).ok(),
                Some(expected)
            );
        }
        let err = serde_json::from_str::<PromptInput>("[-1]").err();
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("a list of token-id lists"), "{message}");
    }

    #[test]
    fn requests_drop_unknown_fields_and_refuse_wrong_types() {
        let request: CompletionRequest = serde_json::from_str(
            r#"{"model": "m", "prompt": "p", "n": 2, "stop": "\n", "logprobs": null, "user": "u"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(request.params.n, Some(2));
        assert_eq!(request.params.stop, Some(Stop::One("\n".into())));
        assert_eq!(
            serde_json::to_string(&request).ok().as_deref(),
            Some(r#"{"model":"m","prompt":"p","n":2,"stop":"\n"}"#)
        );
        for bad in [
            r#"{"prompt": "p", "n": -1}"#,
            r#"{"prompt": "p", "n": "2"}"#,
            r#"{"prompt": "p", "temperature": "hot"}"#,
            r#"{"prompt": 3}"#,
            r#"{"n": 1}"#,
        ] {
            assert!(
                serde_json::from_str::<CompletionRequest>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn finish_reasons_other_than_stop_and_length_are_other() {
        let reasons: Vec<FinishReason> =
            serde_json::from_str(r#"["stop", "length", "content_filter"]"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            reasons,
            [
                FinishReason::Stop,
                FinishReason::Length,
                FinishReason::Other
            ]
        );
    }

    #[test]
    fn error_bodies_have_openais_shape() {
        let body = ErrorBody::new("invalid_request_error", "bad n", Some("invalid_n"));
        assert_eq!(
            serde_json::to_string(&body).ok().as_deref(),
            Some(
                r#"{"error":{"message":"bad n","type":"invalid_request_error","param":null,"code":"invalid_n"}}"#
            )
        );
    }
}
