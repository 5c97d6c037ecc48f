//! The bodies of a request's answer, from its generations.
//!
//! OpenAI's API has no end-of-sequence reason of its own: a completion that ended with the
//! model's EOS token or with a stop string is `"stop"`, one that ran into `max_tokens` is
//! `"length"`. Choices are prompt-major (index = prompt × n + sample). With `return_token_ids`
//! each completion choice carries `prompt_token_ids` and `token_ids` as vLLM's do (a chat answer
//! carries `prompt_token_ids` once, at its top level, as vLLM's does).

use w2s_llama::{FinishReason as LlamaFinish, Generation};
use w2s_openai::wire::{
    AssistantMessage, ChatChoice, ChatCompletionResponse, CompletionChoice, CompletionResponse,
    FinishReason, Usage,
};

/// What every answer is stamped with.
#[derive(Debug, Clone, Copy)]
pub struct Stamp<'a> {
    /// The response id.
    pub id: &'a str,
    /// Unix time, in seconds.
    pub created: u64,
    /// The served model name.
    pub model: &'a str,
}

fn finish_reason(reason: LlamaFinish) -> FinishReason {
    match reason {
        LlamaFinish::Eos | LlamaFinish::Stop => FinishReason::Stop,
        LlamaFinish::Length => FinishReason::Length,
    }
}

fn usage(prompts: &[Vec<u32>], generations: &[Generation]) -> Usage {
    let prompt_tokens = prompts.iter().map(|p| p.len() as u64).sum();
    let completion_tokens = generations.iter().map(|g| g.token_ids.len() as u64).sum();
    Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
    }
}

/// The answer of `/v1/completions`.
pub fn completion(
    stamp: Stamp<'_>,
    prompts: &[Vec<u32>],
    generations: &[Generation],
    return_token_ids: bool,
) -> CompletionResponse {
    let choices = generations
        .iter()
        .enumerate()
        .map(|(index, g)| CompletionChoice {
            index: index as u32,
            text: g.text.clone().unwrap_or_default(),
            finish_reason: Some(finish_reason(g.finish_reason)),
            prompt_token_ids: return_token_ids.then(|| prompts[g.prompt_index].clone()),
            token_ids: return_token_ids.then(|| g.token_ids.clone()),
        })
        .collect();
    CompletionResponse {
        id: stamp.id.to_string(),
        object: "text_completion".into(),
        created: stamp.created,
        model: stamp.model.to_string(),
        choices,
        usage: Some(usage(prompts, generations)),
    }
}

/// The answer of `/v1/chat/completions` (one prompt: the rendered conversation).
pub fn chat(
    stamp: Stamp<'_>,
    prompts: &[Vec<u32>],
    generations: &[Generation],
    return_token_ids: bool,
) -> ChatCompletionResponse {
    let choices = generations
        .iter()
        .enumerate()
        .map(|(index, g)| ChatChoice {
            index: index as u32,
            message: AssistantMessage {
                role: "assistant".into(),
                content: Some(g.text.clone().unwrap_or_default()),
            },
            finish_reason: Some(finish_reason(g.finish_reason)),
            token_ids: return_token_ids.then(|| g.token_ids.clone()),
        })
        .collect();
    ChatCompletionResponse {
        id: stamp.id.to_string(),
        object: "chat.completion".into(),
        created: stamp.created,
        model: stamp.model.to_string(),
        choices,
        prompt_token_ids: return_token_ids.then(|| prompts.first().cloned().unwrap_or_default()),
        usage: Some(usage(prompts, generations)),
    }
}
