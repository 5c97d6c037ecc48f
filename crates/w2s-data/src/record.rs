//! The three record kinds w2s reads and writes, with TRL's field names (docs/architecture.md,
//! "Stable interfaces").
//!
//! - [`Sample`]: one model response to one prompt, `{"id", "prompt", "response", ...}`. A file of
//!   samples may hold several lines per id (Stage II samples n = 10 answers a question).
//! - [`SftExample`]: `{"prompt", "completion", ...}`, TRL's prompt-completion SFT format.
//! - [`PreferencePair`]: `{"prompt", "chosen", "rejected", ...}`, TRL's preference format (the
//!   W2SR reference writes LLaMA-Factory's `"output": [chosen, rejected]` instead).
//!
//! Every other field of a line is kept in `extra` and written back, so gold answers, seeds or
//! levels travel through curation untouched.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Fields of a record that w2s does not interpret, carried through in their original order.
pub type Extra = Map<String, Value>;

/// One model response to one prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Question id; lines of different sources about one question share it. JSON integers are
    /// accepted and read as their decimal text.
    #[serde(deserialize_with = "id_from_string_or_integer")]
    pub id: String,
    /// The exact prompt the model saw.
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
