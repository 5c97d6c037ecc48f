//! The three record kinds w2s reads and writes, with TRL's field names (docs/architecture.md,
//! "Stable interfaces").
//!
//! - [`Sample`]: one model response to one prompt, `{"id", "prompt", "response", ...}`. A file of
//!   samples may hold several lines per id (Stage II samples n = 10 answers a question).
//! - [`SftExample`]: `{"prompt", "completion", ...}`, TRL's prompt-completion SFT format.
//! - [`PreferencePair`]: `{"prompt", "chosen", "rejected", ...}`, TRL's preference format (the
//!   W2SR reference writes LLaMA-Factory's `"output": [chosen, rejected]` instead).
//!
//! What a user gives to train on may also be conversational ([`crate::conversation`]):
//! [`SftRecord`] and [`PreferenceRecord`] read either form of a line, told apart by its fields.
//!
//! Every other field of a line is kept in `extra` and written back, so gold answers, seeds or
//! levels travel through curation untouched.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::conversation::{PreferenceConversation, SftConversation};

/// Fields of a record that w2s does not interpret, carried through in their original order.
pub type Extra = Map<String, Value>;

/// One model response to one prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Question id; lines of different sources about one question share it. JSON integers are
    /// accepted and read as their decimal text.
    #[serde(deserialize_with = "id_from_string_or_integer")]
    pub id: String,
    /// The prompt the model answered: the exact text it saw, or the text of the one user turn it
    /// saw when it reads prompts through its chat template (a pipeline's `chat_template`).
    pub prompt: String,
    /// The model's generated text.
    pub response: String,
    /// Every other field of the line.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A supervised fine-tuning example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftExample {
    /// Model input.
    pub prompt: String,
    /// Target continuation.
    pub completion: String,
    /// Every other field of the line.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A preference pair: `chosen` should be preferred over `rejected` for `prompt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferencePair {
    /// Model input.
    pub prompt: String,
    /// The preferred response.
    pub chosen: String,
    /// The dispreferred response.
    pub rejected: String,
    /// Every other field of the line.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An SFT record in either of TRL's forms: prompt-completion, or a conversation
/// (`{"messages": [...]}`). A line with neither, or with both, is refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SftRecord {
    /// `{"prompt", "completion", ...}`: the loss covers the completion.
    Text(SftExample),
    /// `{"messages", ...}`: the loss covers the assistant turns.
    Conversation(SftConversation),
}

impl From<SftExample> for SftRecord {
    fn from(example: SftExample) -> Self {
        SftRecord::Text(example)
    }
}

impl<'de> Deserialize<'de> for SftRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = Extra::deserialize(deserializer)?;
        let conversation = object.contains_key("messages");
        let text = object.contains_key("prompt") || object.contains_key("completion");
        match (conversation, text) {
            (true, false) => from_object(object).map(SftRecord::Conversation),
            (false, true) if object.get("prompt").is_some_and(Value::is_array) => {
                Err(D::Error::custom(
                    "a conversational prompt-completion record is not read: write the whole \
                     conversation as \"messages\"",
                ))
            }
            (false, true) => from_object(object).map(SftRecord::Text),
            (true, true) => Err(D::Error::custom(
                "a record has \"messages\" (conversational) or \"prompt\" and \"completion\", \
                 not both",
            )),
            (false, false) => Err(D::Error::custom(
                "expected \"prompt\" and \"completion\" (prompt-completion) or \"messages\" \
                 (conversational)",
            )),
        }
    }
}

/// A preference record in either of TRL's forms with an explicit prompt: text, or a conversation
/// (`"prompt"`, `"chosen"` and `"rejected"` lists of messages), told apart by `"prompt"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PreferenceRecord {
    /// `{"prompt", "chosen", "rejected", ...}`, each a string.
    Text(PreferencePair),
    /// `{"prompt", "chosen", "rejected", ...}`, each a list of messages.
    Conversation(PreferenceConversation),
}

impl From<PreferencePair> for PreferenceRecord {
    fn from(pair: PreferencePair) -> Self {
        PreferenceRecord::Text(pair)
    }
}

impl<'de> Deserialize<'de> for PreferenceRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = Extra::deserialize(deserializer)?;
        match object.get("prompt") {
            Some(Value::Array(_)) => from_object(object).map(PreferenceRecord::Conversation),
            Some(_) => from_object(object).map(PreferenceRecord::Text),
            None => Err(D::Error::custom(
                "expected \"prompt\", \"chosen\" and \"rejected\" (pairs whose prompt is only \
                 inside \"chosen\" and \"rejected\" are not read)",
            )),
        }
    }
}

/// `object` read as `T`, its error as the caller's deserializer error.
fn from_object<T: DeserializeOwned, E: serde::de::Error>(object: Extra) -> Result<T, E> {
    serde_json::from_value(Value::Object(object)).map_err(E::custom)
}

/// The text of a field that holds a string or a number (gold answers are often JSON numbers).
pub fn field_text(extra: &Extra, name: &str) -> Option<String> {
    match extra.get(name)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn id_from_string_or_integer<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Signed(i64),
        Unsigned(u64),
    }
    Ok(match Id::deserialize(deserializer)? {
        Id::Text(text) => text,
        Id::Signed(n) => n.to_string(),
        Id::Unsigned(n) => n.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_fields_round_trip_in_order() {
        let line = r#"{"id":7,"prompt":"Q","response":"R","seed":3,"gold":"72","meta":{"a":[1]}}"#;
        let sample: Sample = serde_json::from_str(line).unwrap();
        assert_eq!(sample.id, "7");
        assert_eq!(
            sample.extra.keys().collect::<Vec<_>>(),
            ["seed", "gold", "meta"]
        );
        let back = serde_json::to_string(&sample).unwrap();
        assert_eq!(
            back,
            r#"{"id":"7","prompt":"Q","response":"R","seed":3,"gold":"72","meta":{"a":[1]}}"#
        );
    }

    #[test]
    fn missing_required_field_is_an_error() {
        assert!(serde_json::from_str::<SftExample>(r#"{"prompt":"Q"}"#).is_err());
        assert!(
            serde_json::from_str::<Sample>(r#"{"id":1.5,"prompt":"Q","response":"R"}"#).is_err()
        );
    }

    #[test]
    fn sft_records_are_told_apart_by_their_fields() {
        let read = |line: &str| serde_json::from_str::<SftRecord>(line);
        let text = read(r#"{"prompt": "Q", "completion": "A", "gold": 3}"#).unwrap();
        assert!(matches!(&text, SftRecord::Text(e) if e.completion == "A" && e.extra["gold"] == 3));
        let line = r#"{"messages": [{"role": "user", "content": "Q"}], "gold": 3}"#;
        let conversation = read(line).unwrap();
        assert!(
            matches!(&conversation, SftRecord::Conversation(c) if c.messages[0].content == "Q")
        );
        assert_eq!(
            serde_json::to_string(&conversation).unwrap(),
            line.replace(": ", ":").replace(", ", ",")
        );
        for (line, says) in [
            (r#"{"text": "Q"}"#, "expected \"prompt\" and \"completion\""),
            (
                r#"{"prompt": "Q", "completion": "A", "messages": []}"#,
                "not both",
            ),
            (r#"{"prompt": [], "completion": []}"#, "\"messages\""),
            (r#"{"prompt": "Q"}"#, "completion"),
            (r#"{"messages": [{"role": "user"}]}"#, "content"),
        ] {
            let err = read(line).unwrap_err().to_string();
            assert!(err.contains(says), "{line}: {err}");
        }
        let file = b"{\"prompt\": \"Q\", \"completion\": \"A\"}\n{\"text\": \"Q\"}\n";
        let err = crate::jsonl::JsonlReader::<SftRecord, _>::from_reader(
            &file[..],
            "sft.jsonl",
            crate::jsonl::BadLines::Fail,
        )
        .read_all()
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("sft.jsonl:2: expected \"prompt\""), "{err}");
    }

    #[test]
    fn preference_records_are_told_apart_by_their_prompt() {
        let read = |line: &str| serde_json::from_str::<PreferenceRecord>(line);
        let text = read(r#"{"prompt": "Q", "chosen": "A", "rejected": "B"}"#).unwrap();
        assert!(matches!(text, PreferenceRecord::Text(p) if p.rejected == "B"));
        let user = r#"[{"role": "user", "content": "Q"}]"#;
        let answer = |a: &str| format!(r#"[{{"role": "assistant", "content": "{a}"}}]"#);
        let line = format!(
            r#"{{"prompt": {user}, "chosen": {}, "rejected": {}, "gold": 1}}"#,
            answer("A"),
            answer("B")
        );
        let conversation = read(&line).unwrap();
        assert!(matches!(
            conversation,
            PreferenceRecord::Conversation(c) if c.rejected[0].content == "B" && c.extra["gold"] == 1
        ));
        let mixed = format!(r#"{{"prompt": {user}, "chosen": "A", "rejected": "B"}}"#);
        assert!(read(&mixed).is_err());
        let implicit = read(r#"{"chosen": "A", "rejected": "B"}"#).unwrap_err();
        assert!(implicit.to_string().contains("\"prompt\""), "{implicit}");
    }

    #[test]
    fn field_text_reads_strings_and_numbers_only() {
        let pair: PreferencePair = serde_json::from_str(
            r#"{"prompt":"","chosen":"","rejected":"","g":18,"s":"x","n":null}"#,
        )
        .unwrap();
        assert_eq!(field_text(&pair.extra, "g").as_deref(), Some("18"));
        assert_eq!(field_text(&pair.extra, "s").as_deref(), Some("x"));
        assert_eq!(field_text(&pair.extra, "n"), None);
        assert_eq!(field_text(&pair.extra, "absent"), None);
    }
}
