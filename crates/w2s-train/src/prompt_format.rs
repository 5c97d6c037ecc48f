//! How a model reads the method's prompts: as they are, or as one user turn of its chat template.
//!
//! The method's prompts (`Question: ...\nAnswer:`, few-shot demonstrations) are plain text, and so
//! are the samples, SFT sets and pairs made from them, whatever the model. An instruct model
//! answers as it was trained to when they reach it through its chat template, which a model
//! directory's `chat_template = true` in a pipeline or study config asks for
//! ([`crate::pipeline::ModelSpec`]). Records keep the plain text either way, so one set trains a
//! model of either kind; each model renders what it reads:
//!
//! - a prompt to answer: one user message with the generation prompt, encoded without added
//!   special tokens, as transformers' `apply_chat_template(..., add_generation_prompt=True,
//!   tokenize=True)` does;
//! - an SFT example: a user turn and an assistant turn, the loss on the assistant turn with its
//!   end-of-turn marker, so the model learns where to stop;
//! - a preference pair: a user prompt and two one-message assistant replies.

use w2s_curation::record::{PreferencePair, PreferenceRecord, SftExample, SftRecord};
use w2s_llama::{ChatMessage, ChatOptions, Tokenizer};

use crate::error::Result;

/// How a model reads the method's prompts (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptFormat {
    /// The text as it is, with the special tokens the model's tokenizer adds.
    Text,
    /// One user turn of the model's chat template.
    Chat,
}

impl PromptFormat {
    /// The token ids the model reads for `prompt`, to answer it.
    ///
    /// # Errors
    /// A tokenizer failure; for [`PromptFormat::Chat`], a model without a chat template (the error
    /// names its directory) or a template that refuses the message.
    pub fn encode(self, tokenizer: &Tokenizer, prompt: &str) -> Result<Vec<u32>> {
        Ok(match self {
            PromptFormat::Text => tokenizer.encode_with_special_tokens(prompt)?,
            PromptFormat::Chat => tokenizer.encode_chat(
                &[ChatMessage::new("user", prompt)],
                &ChatOptions::generation(),
            )?,
        })
    }

    /// `example` as the model trains on it.
    pub fn sft_record(self, example: &SftExample) -> SftRecord {
        match self {
            PromptFormat::Text => SftRecord::Text(example.clone()),
            PromptFormat::Chat => SftRecord::Conversation(example.to_conversation()),
        }
    }

    /// `pair` as the model trains on it.
    pub fn preference_record(self, pair: &PreferencePair) -> PreferenceRecord {
        match self {
            PromptFormat::Text => PreferenceRecord::Text(pair.clone()),
            PromptFormat::Chat => PreferenceRecord::Conversation(pair.to_conversation()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_prompt_is_one_user_turn_with_the_generation_prompt_and_one_bos() {
        // A Llama 3 layout: its post-processor and its template both write <|begin_of_text|>.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../w2s-llama/tests/fixtures/tokenization/bos/tokenizer.json");
        let tok = Tokenizer::from_file(path, 320, None).unwrap();
        let bos = tok.token_id("<|begin_of_text|>").unwrap();
        let text = PromptFormat::Text.encode(&tok, "Hello").unwrap();
        assert_eq!(text, tok.encode_with_special_tokens("Hello").unwrap());
        let chat = PromptFormat::Chat.encode(&tok, "Hello").unwrap();
        assert_eq!(chat.iter().filter(|&&id| id == bos).count(), 1);
        assert!(tok
            .decode(&chat, false)
            .unwrap()
            .ends_with("<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"));
    }

    #[test]
    fn records_become_conversations_only_in_chat() {
        let example: SftExample =
            serde_json::from_str(r#"{"prompt": "Q", "completion": "A"}"#).unwrap();
        assert_eq!(
            PromptFormat::Text.sft_record(&example),
            SftRecord::Text(example.clone())
        );
        assert!(matches!(
            PromptFormat::Chat.sft_record(&example),
            SftRecord::Conversation(c) if c.messages.len() == 2
        ));
        let pair: PreferencePair =
            serde_json::from_str(r#"{"prompt": "Q", "chosen": "A", "rejected": "B"}"#).unwrap();
        assert_eq!(
            PromptFormat::Text.preference_record(&pair),
            PreferenceRecord::Text(pair.clone())
        );
        assert!(matches!(
            PromptFormat::Chat.preference_record(&pair),
            PreferenceRecord::Conversation(c) if c.chosen[0].role == "assistant"
        ));
    }
}
