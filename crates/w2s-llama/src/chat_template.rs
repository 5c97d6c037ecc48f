//! A model's chat template, rendered as transformers' `apply_chat_template` renders it.
//!
//! The template is Jinja, rendered with minijinja set up as transformers sets up jinja2: block
//! tags take the newline after them and the spaces before them (`trim_blocks`, `lstrip_blocks`),
//! `{% break %}` and `{% continue %}` work, strings, lists and dicts have their Python methods
//! (`.strip()`, `.startswith()`, `.items()`, ...), `raise_exception(message)` refuses a
//! conversation, and `tojson` writes JSON as Python's `json.dumps` does. Nothing is escaped.
//!
//! The template sees `messages` (each without the fields whose value is none, as transformers
//! drops them), `tools` and `documents` (none unless the caller passes them),
//! `add_generation_prompt`, the tokenizer's named special tokens (`bos_token`, `eos_token`, ...)
//! and the caller's variables, which win over special tokens of the same name.
//!
//! Not provided: `strftime_now` (the templates that call it check `strftime_now is defined` and
//! fall back to a fixed date) and the `{% generation %}` tag that marks assistant tokens (few
//! templates carry it; [`crate::conversation`] finds assistant turns by rendering turn by turn).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Serde, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Value};
use serde::Serialize;

use crate::error::{LlamaError, Result};
use crate::python_json;

/// One turn of a conversation, as chat templates read it (`message['role']`,
/// `message['content']`); the record type of w2s-data's conversational records. Messages with more
/// fields (tool calls, ...) can be any `Serialize` value instead.
pub use w2s_data::ChatMessage;

/// How to render a conversation: transformers' `apply_chat_template` arguments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatOptions {
    /// End with the opening of an assistant turn, so that the model answers next.
    pub add_generation_prompt: bool,
    /// Further template variables (transformers' `**kwargs`, `tools` and `documents` included).
    pub variables: serde_json::Map<String, serde_json::Value>,
}

impl ChatOptions {
    /// Options that end with the opening of an assistant turn (to generate a reply).
    pub fn generation() -> Self {
        Self {
            add_generation_prompt: true,
            ..Self::default()
        }
    }
}

/// A Jinja chat template and the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTemplate {
    source: String,
    path: PathBuf,
}

/// The error `raise_exception` returns, recognised after rendering so that a refused
/// conversation is told apart from a broken template.
#[derive(Debug)]
struct Raised(String);

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

/// `messages` without the fields whose value is none: APIs send `"content": null` beside tool
/// calls, and templates ask `'content' in message`.
fn without_none_fields<M: Serialize>(messages: &[M]) -> std::result::Result<Value, Error> {
    Value::from(Serde(messages))
        .try_iter()?
        .map(|message| {
            if message.kind() != ValueKind::Map {
                return Ok(message);
            }
            let mut fields = Vec::new();
            for key in message.try_iter()? {
                let value = message.get_item(&key)?;
                if !value.is_none() {
                    fields.push((key, value));
                }
            }
            Ok(Value::from_pairs(fields))
        })
        .collect()
}

fn raise_exception(message: String) -> std::result::Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message.clone()).with_source(Raised(message)))
}

/// Variables the caller may not set: they are the arguments of the render itself.
const RESERVED: [&str; 2] = ["messages", "add_generation_prompt"];

impl ChatTemplate {
    /// The template `source`, read from `path` (named in errors).
    pub fn new(source: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            source: source.into(),
            path: path.into(),
        }
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The file the template was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renders `messages` with `options` and the tokenizer's named `special_tokens`.
    ///
    /// # Errors
    /// [`LlamaError::ChatTemplateRaised`] when the template calls `raise_exception`;
    /// [`LlamaError::ChatTemplate`] when it does not parse or fails to render;
    /// [`LlamaError::Input`] when `options.variables` names `messages` or `add_generation_prompt`.
    pub fn render<M: Serialize>(
        &self,
        messages: &[M],
        options: &ChatOptions,
        special_tokens: &BTreeMap<String, String>,
    ) -> Result<String> {
        if let Some(name) = RESERVED
            .iter()
            .find(|name| options.variables.contains_key(**name))
        {
            return Err(LlamaError::Input(format!(
                "chat template variable `{name}` is set by the render itself, not by a variable"
            )));
        }
        let mut context: BTreeMap<String, Value> = special_tokens
            .iter()
            .map(|(name, token)| (name.clone(), Value::from(token.as_str())))
            .collect();
        context.insert("tools".into(), Value::from(()));
        context.insert("documents".into(), Value::from(()));
        for (name, value) in &options.variables {
            context.insert(name.clone(), Value::from(Serde(value)));
        }
        context.insert(
            "messages".into(),
            without_none_fields(messages).map_err(|e| self.error(e))?,
        );
        context.insert(
            "add_generation_prompt".into(),
            Value::from(options.add_generation_prompt),
        );
        let env = self.environment()?;
        env.template_from_named_str("chat_template", &self.source)
            .and_then(|template| template.render(context))
            .map_err(|e| self.error(e))
    }

    fn environment(&self) -> Result<Environment<'_>> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| self.error(e))?;
        env.set_syntax(syntax);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_filter("tojson", python_json::tojson);
        Ok(env)
    }

    fn error(&self, e: Error) -> LlamaError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = source {
            if let Some(raised) = err.downcast_ref::<Raised>() {
                return LlamaError::ChatTemplateRaised {
                    path: self.path.clone(),
                    message: raised.0.clone(),
                };
            }
            source = err.source();
        }
        LlamaError::ChatTemplate {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str, messages: &[ChatMessage], options: &ChatOptions) -> Result<String> {
        let specials = BTreeMap::from([("eos_token".to_string(), "</s>".to_string())]);
        ChatTemplate::new(source, "memory").render(messages, options, &specials)
    }

    #[test]
    fn blocks_take_their_newline_and_indent() -> Result<()> {
        let source = "{% for m in messages %}\n    {% if m.role == 'user' %}\n[{{ m.content }}]\n    {% endif %}\n{% endfor %}\n";
        let out = render(
            source,
            &[ChatMessage::new("user", "hi")],
            &ChatOptions::default(),
        )?;
        assert_eq!(out, "[hi]\n");
        Ok(())
    }

    #[test]
    fn variables_override_special_tokens_and_reserved_names_are_refused() -> Result<()> {
        let mut options = ChatOptions::default();
        assert_eq!(
            render("{{ eos_token }}", &[] as &[ChatMessage], &options)?,
            "</s>"
        );
        options.variables.insert("eos_token".into(), "<end>".into());
        assert_eq!(
            render("{{ eos_token }}", &[] as &[ChatMessage], &options)?,
            "<end>"
        );
        options
            .variables
            .insert("messages".into(), serde_json::json!([]));
        let err = render("", &[] as &[ChatMessage], &options).unwrap_err();
        assert!(
            matches!(err, LlamaError::Input(ref m) if m.contains("messages")),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn fields_whose_value_is_none_are_dropped_from_messages() -> Result<()> {
        let messages =
            [serde_json::json!({"role": "assistant", "content": null, "tool_calls": []})];
        let source =
            "{% for m in messages %}{{ 'content' in m }} {{ 'tool_calls' in m }}{% endfor %}";
        let specials = BTreeMap::new();
        let out = ChatTemplate::new(source, "memory").render(
            &messages,
            &ChatOptions::default(),
            &specials,
        )?;
        assert_eq!(out, "False True");
        Ok(())
    }

    #[test]
    fn tools_and_documents_are_none_unless_given() -> Result<()> {
        let source = "{% if tools is none and documents is none %}none{% endif %}";
        assert_eq!(
            render(source, &[] as &[ChatMessage], &ChatOptions::default())?,
            "none"
        );
        Ok(())
    }

    #[test]
    fn a_template_that_does_not_parse_is_a_template_error_naming_the_file() {
        let err = render("{% if %}", &[] as &[ChatMessage], &ChatOptions::default()).unwrap_err();
        assert!(matches!(err, LlamaError::ChatTemplate { .. }), "{err}");
        assert!(
            err.to_string().starts_with("memory: chat template:"),
            "{err}"
        );
    }
}
