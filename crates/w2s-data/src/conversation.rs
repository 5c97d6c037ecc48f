//! TRL's conversational records, whose text is a list of messages `{"role", "content"}` that the
//! model's chat template renders (w2s-llama does; these types only hold the messages).
//!
//! - [`SftConversation`]: `{"messages": [...], ...}`, TRL's conversational language-modeling
//!   format. Training on it takes the loss on the assistant turns only, as TRL's
//!   `assistant_only_loss` does.
//! - [`PreferenceConversation`]: `{"prompt": [...], "chosen": [...], "rejected": [...], ...}`,
//!   TRL's conversational preference format: the prompt's messages, then each response as its
//!   (assistant) messages.
//!
//! A message has exactly `role` and `content`: a field a template could also render (`name`,
//! `tool_calls`, ...) is refused rather than silently left out of the text.

use serde::{Deserialize, Serialize};

use crate::record::{Extra, PreferencePair, SftExample};

/// One turn of a conversation, as chat templates read it (`message['role']`,
/// `message['content']`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, ...
    pub role: String,
    /// The text of the turn.
    pub content: String,
}

impl ChatMessage {
    /// A message of `role` saying `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A conversation to fine-tune on; the loss covers its assistant turns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftConversation {
    /// The turns in order.
    pub messages: Vec<ChatMessage>,
    /// Every other field of the line.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A preference pair in conversational form: `chosen` should be preferred over `rejected` as the
/// continuation of `prompt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferenceConversation {
    /// The conversation so far.
    pub prompt: Vec<ChatMessage>,
    /// The preferred response, as (assistant) messages.
    pub chosen: Vec<ChatMessage>,
    /// The dispreferred response, as (assistant) messages.
    pub rejected: Vec<ChatMessage>,
    /// Every other field of the line.
    #[serde(flatten)]
    pub extra: Extra,
}

impl SftExample {
    /// The example as a conversation of one user turn (the prompt) and one assistant turn (the
    /// completion): how an instruct model is taught to answer the prompt.
    pub fn to_conversation(&self) -> SftConversation {
        SftConversation {
            messages: vec![
                ChatMessage::new("user", &self.prompt),
                ChatMessage::new("assistant", &self.completion),
            ],
            extra: self.extra.clone(),
        }
    }
}

impl PreferencePair {
    /// The pair as a conversation: the prompt as one user turn, each response as one assistant
    /// turn.
    pub fn to_conversation(&self) -> PreferenceConversation {
        PreferenceConversation {
            prompt: vec![ChatMessage::new("user", &self.prompt)],
            chosen: vec![ChatMessage::new("assistant", &self.chosen)],
            rejected: vec![ChatMessage::new("assistant", &self.rejected)],
            extra: self.extra.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_with_a_field_the_template_could_render_is_refused() {
        let line = r#"{"role": "assistant", "content": "", "tool_calls": []}"#;
        let err = serde_json::from_str::<ChatMessage>(line).unwrap_err();
        assert!(err.to_string().contains("tool_calls"), "{err}");
    }

    #[test]
    fn text_records_become_one_user_and_one_assistant_turn() {
        let example: SftExample =
            serde_json::from_str(r#"{"prompt": "Q", "completion": "A", "gold": 3}"#).unwrap();
        let conversation = example.to_conversation();
        assert_eq!(
            conversation.messages,
            [
                ChatMessage::new("user", "Q"),
                ChatMessage::new("assistant", "A")
            ]
        );
        assert_eq!(conversation.extra["gold"], 3);

        let pair: PreferencePair =
            serde_json::from_str(r#"{"prompt": "Q", "chosen": "A", "rejected": "B"}"#).unwrap();
        let conversation = pair.to_conversation();
        assert_eq!(conversation.prompt, [ChatMessage::new("user", "Q")]);
        assert_eq!(conversation.chosen, [ChatMessage::new("assistant", "A")]);
        assert_eq!(conversation.rejected, [ChatMessage::new("assistant", "B")]);
    }
}
