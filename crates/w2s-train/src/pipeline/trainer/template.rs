//! Command templates: a command line with `{placeholder}`s, run without a shell.
//!
//! A template is split into words first, then each word's placeholders are filled, so a value
//! that holds spaces (a path, say) stays one argument and no value is ever parsed again:
//!
//! - words are separated by whitespace; `'...'` and `"..."` group a word's text with its spaces
//!   (`--tag 'two words'` is two words, the second `two words`), and a quote character can stand
//!   inside the other kind of quotes; there are no backslash escapes;
//! - `{name}` is a placeholder (letters, digits and `_`), filled inside quotes too;
//! - `{{` and `}}` are a literal `{` and `}` (for JSON in an argument).
//!
//! Filling a placeholder the template's context does not know is an error naming it; so is one
//! the context knows but cannot fill for this stage (an unset option), with the reason.

use std::collections::BTreeMap;

use crate::error::{Result, TrainError};

/// A parsed template (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTemplate {
    text: String,
    words: Vec<Vec<Piece>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Placeholder(String),
}

/// The value of a placeholder in one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fill {
    /// Its text.
    Set(String),
    /// Known, but without a value here; why.
    Unset(String),
}

impl CommandTemplate {
    /// Parses `text`.
    ///
    /// # Errors
    /// [`TrainError::Template`]: no words, an unclosed quote or `{`, a lone `}`, or a
    /// placeholder name of other characters.
    pub fn parse(text: &str) -> Result<Self> {
        let error = |reason: String| TrainError::Template {
            template: text.to_string(),
            reason,
        };
        let mut words = Vec::new();
        let mut word: Option<Vec<Piece>> = None;
        let mut quote: Option<char> = None;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if quote.is_none() && c.is_whitespace() {
                words.extend(word.take());
                continue;
            }
            let pieces = word.get_or_insert_with(Vec::new);
            match c {
                '\'' | '"' if quote.is_none() => quote = Some(c),
                _ if quote == Some(c) => quote = None,
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    push_text(pieces, '{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    push_text(pieces, '}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if c.is_ascii_alphanumeric() || c == '_' => name.push(c),
                            _ => {
                                return Err(error(format!(
                                    "`{{{name}` is not a placeholder: a name of letters, digits \
                                     and `_` closed by `}}` (write `{{{{` for a literal `{{`)"
                                )))
                            }
                        }
                    }
                    if name.is_empty() {
                        return Err(error("`{}` names no placeholder".into()));
                    }
                    pieces.push(Piece::Placeholder(name));
                }
                '}' => return Err(error("a lone `}` (write `}}` for a literal `}`)".into())),
                _ => push_text(pieces, c),
            }
        }
        if let Some(q) = quote {
            return Err(error(format!("the quote {q} is not closed")));
        }
        words.extend(word);
        if words.is_empty() {
            return Err(error(
                "is empty: it needs at least the program to run".into(),
            ));
        }
        Ok(Self {
            text: text.to_string(),
            words,
        })
    }

    /// The template as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The words with every placeholder filled from `fills`.
    ///
    /// # Errors
    /// [`TrainError::Template`] naming the first placeholder `fills` does not know (with the
    /// names it knows) or leaves unset (with why).
    pub fn render(&self, fills: &BTreeMap<String, Fill>) -> Result<Vec<String>> {
        let error = |reason: String| TrainError::Template {
            template: self.text.clone(),
            reason,
        };
        self.words
            .iter()
            .map(|pieces| {
                let mut word = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(text) => word.push_str(text),
                        Piece::Placeholder(name) => match fills.get(name) {
                            Some(Fill::Set(value)) => word.push_str(value),
                            Some(Fill::Unset(why)) => {
                                return Err(error(format!("`{{{name}}}` has no value: {why}")))
                            }
                            None => {
                                let known: Vec<&str> = fills.keys().map(String::as_str).collect();
                                return Err(error(format!(
                                    "unknown placeholder `{{{name}}}`; known: {}",
                                    known.join(", ")
                                )));
                            }
                        },
                    }
                }
                Ok(word)
            })
            .collect()
    }
}

fn push_text(pieces: &mut Vec<Piece>, c: char) {
    match pieces.last_mut() {
        Some(Piece::Text(text)) => text.push(c),
        _ => pieces.push(Piece::Text(c.to_string())),
    }
}

/// `argv` as a person reads it: words with spaces or quotes single-quoted (a `'` inside one
/// written `'\''`, as in a POSIX shell).
pub fn display_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|word| {
            let plain = !word.is_empty()
                && word
                    .chars()
                    .all(|c| !c.is_whitespace() && !matches!(c, '\'' | '"' | '\\' | '$' | '`'));
            if plain {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fills(pairs: &[(&str, &str)]) -> BTreeMap<String, Fill> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Fill::Set(v.to_string())))
            .collect()
    }

    fn render(template: &str, pairs: &[(&str, &str)]) -> Result<Vec<String>> {
        CommandTemplate::parse(template)?.render(&fills(pairs))
    }

    #[test]
    fn values_with_spaces_stay_one_argument() -> Result<()> {
        let argv = render(
            "trl sft --model_name_or_path {model} --output_dir={output}",
            &[("model", "/runs/my model"), ("output", "/out dir/x")],
        )?;
        assert_eq!(
            argv,
            [
                "trl",
                "sft",
                "--model_name_or_path",
                "/runs/my model",
                "--output_dir=/out dir/x"
            ]
        );
        Ok(())
    }

    #[test]
    fn quotes_group_words_and_braces_double_as_literals() -> Result<()> {
        let argv = render(
            r#"sh -c 'echo "{lr}" done'  --kwargs '{{"dtype": "bf16"}}' ''"#,
            &[("lr", "2e-05")],
        )?;
        assert_eq!(
            argv,
            [
                "sh",
                "-c",
                r#"echo "2e-05" done"#,
                "--kwargs",
                r#"{"dtype": "bf16"}"#,
                ""
            ]
        );
        Ok(())
    }

    #[test]
    fn an_unknown_placeholder_is_an_error_naming_it() {
        let err = render("run {modle}", &[("model", "m")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown placeholder `{modle}`"), "{err}");
        assert!(err.contains("known: model"), "{err}");
    }

    #[test]
    fn an_unset_value_says_why() {
        let template = CommandTemplate::parse("run --max_steps {max_steps}").unwrap();
        let fills = BTreeMap::from([(
            "max_steps".to_string(),
            Fill::Unset("`max_steps` is not set in this stage's [train] config".into()),
        )]);
        let err = template.render(&fills).unwrap_err().to_string();
        assert!(
            err.contains("`{max_steps}` has no value: `max_steps` is not set"),
            "{err}"
        );
    }

    #[test]
    fn malformed_templates_are_refused() {
        for (template, says) in [
            ("", "is empty"),
            ("  ", "is empty"),
            ("run 'open", "quote ' is not closed"),
            ("run {model", "is not a placeholder"),
            ("run {a-b}", "is not a placeholder"),
            ("run {}", "names no placeholder"),
            ("run }", "a lone `}`"),
        ] {
            let err = CommandTemplate::parse(template).unwrap_err().to_string();
            assert!(err.contains(says), "{template:?}: {err}");
        }
    }

    #[test]
    fn argv_displays_with_shell_quoting() {
        let argv = ["trl", "sft", "my dir", "it's", ""].map(String::from);
        assert_eq!(display_argv(&argv), r"trl sft 'my dir' 'it'\''s' ''");
    }
}
