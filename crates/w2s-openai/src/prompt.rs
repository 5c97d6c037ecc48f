//! What a sampler sends, and what it gets back for one prompt.

use crate::error::cut;
use crate::wire::{ChatMessage, FinishReason};

/// One prompt: a text or token ids for `/v1/completions`, or a conversation for
/// `/v1/chat/completions` (rendered by the server with its model's chat template).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// A text, tokenized by the server with its model's special tokens.
    Text(String),
    /// Token ids, used as they are.
    TokenIds(Vec<u32>),
    /// A conversation for the model to answer as the assistant.
    Chat(Vec<ChatMessage>),
}

impl Prompt {
    /// The prompt as errors show it: quoted and cut to 80 characters (for a conversation, its
    /// last message).
    pub fn preview(&self) -> String {
        let text = match self {
            Prompt::Text(text) => format!("{text:?}"),
            Prompt::TokenIds(ids) => format!("{ids:?}"),
            Prompt::Chat(messages) => match messages.last() {
                Some(last) => format!("[.. {}: {:?}]", last.role, last.content),
                None => "[]".to_string(),
            },
        };
        cut(&text, 80)
    }
}

/// How to sample each prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingOptions {
    /// Completions per prompt.
    pub n: usize,
    /// Most tokens per completion.
    pub max_tokens: usize,
    /// Softmax temperature; 0 is greedy.
    pub temperature: f32,
    /// Nucleus sampling mass, in (0, 1].
    pub top_p: Option<f32>,
    /// Keep the k most likely tokens (an extension OpenAI itself refuses; see [`crate::wire`]).
    pub top_k: Option<usize>,
    /// The base seed. [`crate::OpenAiSampler::sample`] sends it as it is (its low 63 bits,
    /// since servers take a signed 64-bit seed); the many-prompt methods send prompt `i` the
    /// seed [`prompt_seed`]`(seed, i)`, so prompts get unrelated random streams. `None` lets the
    /// server choose, and samples are not reproducible.
    pub seed: Option<u64>,
    /// Strings that end a completion (cut before them).
    pub stop: Vec<String>,
    /// Ask for token ids (vLLM's `return_token_ids`, honoured by w2s's `serve`). Off by
    /// default: OpenAI itself refuses unknown options.
    pub return_token_ids: bool,
}

impl Default for SamplingOptions {
    fn default() -> Self {
        Self {
            n: 1,
            max_tokens: 256,
            temperature: 1.0,
            top_p: None,
            top_k: None,
            seed: None,
            stop: Vec::new(),
            return_token_ids: false,
        }
    }
}

/// The seed prompt `index` of a stage is sent: SplitMix64 of `(seed, index)`, in 63 bits.
pub fn prompt_seed(seed: u64, index: usize) -> u64 {
    let mut z = seed
        ^ (index as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) >> 1
}

/// One completion of a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The generated text, cut before a stop string.
    pub text: String,
    /// Why it ended: `Stop` (end of sequence or a stop string) or `Length`.
    pub finish_reason: FinishReason,
    /// The generated token ids, when the server gave them.
    pub token_ids: Option<Vec<u32>>,
}

/// A prompt's `n` completions, in sample order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The completions.
    pub completions: Vec<Completion>,
    /// The prompt's token ids as the server's model saw them, when the server gave them.
    pub prompt_token_ids: Option<Vec<u32>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_quoted_and_cut() {
        let long = Prompt::Text("x".repeat(200));
        assert_eq!(long.preview().chars().count(), 83);
        assert!(long.preview().ends_with("..."));
        assert_eq!(Prompt::TokenIds(vec![1, 2]).preview(), "[1, 2]");
        let chat = Prompt::Chat(vec![ChatMessage::new("user", "hi")]);
        assert_eq!(chat.preview(), "[.. user: \"hi\"]");
    }

    #[test]
    fn prompt_seeds_differ_by_index_and_fit_a_signed_seed() {
        let seeds: Vec<u64> = (0..100).map(|i| prompt_seed(7, i)).collect();
        let distinct: std::collections::BTreeSet<u64> = seeds.iter().copied().collect();
        assert_eq!(distinct.len(), seeds.len());
        assert!(seeds.iter().all(|&s| i64::try_from(s).is_ok()));
        assert_ne!(prompt_seed(7, 0), prompt_seed(8, 0));
    }
}
