//! Where a conversation's assistant turns lie in its chat template's rendering, as TRL's
//! `assistant_only_loss` needs them, found without the `{% generation %}` tags few templates
//! carry; and the split of a prompt from its reply, as TRL's conversational preference pairs need.
//!
//! The whole conversation is rendered once (`add_generation_prompt = false`). For each assistant
//! message `i`, rendering `messages[..i]` with `add_generation_prompt = true` says where its turn
//! starts and rendering `messages[..=i]` where it ends; each must be a prefix of the whole
//! rendering. So a turn covers the assistant's text and the template's end-of-turn marker
//! (`<|im_end|>\n`, `<|eot_id|>`), as the `{% generation %}` blocks of templates that have them do
//! in practice, but not the header that opens the turn. A template that renders an earlier turn
//! differently once later ones follow (one that drops past reasoning, say) gives no such prefixes
//! and is refused ([`LlamaError::NotAPrefix`]), never guessed at.
//!
//! The byte ranges become token ranges through the tokenizer's offsets of the whole rendering,
//! encoded without added special tokens, as transformers' `apply_chat_template(tokenize=True)`
//! encodes it (the template writes its own BOS): a token belongs to a turn when its bytes overlap
//! the turn's.

use std::ops::Range;

use crate::chat_template::{ChatMessage, ChatOptions};
use crate::error::{LlamaError, Result};
use crate::tokenizer::Tokenizer;

/// A conversation rendered by its chat template, with the byte ranges of its assistant turns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedConversation {
    /// The whole rendering (`add_generation_prompt = false`).
    pub text: String,
    /// The byte range of each assistant turn with text, in order.
    pub assistant: Vec<Range<usize>>,
}

/// A conversation as token ids, with the token ranges of its assistant turns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedConversation {
    /// The ids of the whole rendering, as [`Tokenizer::encode_chat`] gives them.
    pub ids: Vec<u32>,
    /// The token ranges of the assistant turns, in order: non-empty, and apart (turns whose tokens
    /// meet are one range).
    pub assistant: Vec<Range<usize>>,
}

impl Tokenizer {
    /// `messages` rendered by the model's chat template, with the byte range of each assistant
    /// turn (see the module docs).
    ///
    /// # Errors
    /// As [`Tokenizer::apply_chat_template`]; [`LlamaError::NotAPrefix`] when the template does
    /// not render the conversation turn by turn.
    pub fn render_conversation(&self, messages: &[ChatMessage]) -> Result<RenderedConversation> {
        let render = |messages: &[ChatMessage], add_generation_prompt| {
            let options = ChatOptions {
                add_generation_prompt,
                ..ChatOptions::default()
            };
            self.apply_chat_template(messages, &options)
        };
        let text = render(messages, false)?;
        let whole = "the whole conversation";
        let mut assistant = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            if message.role != "assistant" {
                continue;
            }
            let start = render(&messages[..i], true)?;
            let part = format!(
                "messages[..{i}] with add_generation_prompt (where assistant message {i} starts)"
            );
            self.check_prefix(&start, &text, part, whole)?;
            let end = render(&messages[..=i], false)?;
            let part = format!("messages[..={i}] (where assistant message {i} ends)");
            self.check_prefix(&end, &text, part, whole)?;
            if start.len() < end.len() {
                assistant.push(start.len()..end.len());
            }
        }
        Ok(RenderedConversation { text, assistant })
    }

    /// `messages` rendered and encoded as [`Tokenizer::encode_chat`] does, with the token range of
    /// each assistant turn (see the module docs).
    ///
    /// # Errors
    /// As [`Tokenizer::render_conversation`], and a tokenizer failure.
    pub fn encode_conversation(&self, messages: &[ChatMessage]) -> Result<EncodedConversation> {
        let rendered = self.render_conversation(messages)?;
        let encoding = self
            .inner()
            .encode(rendered.text.as_str(), false)
            .map_err(|e| self.error(e))?;
        let inside: Vec<bool> = encoding
            .get_offsets()
            .iter()
            .map(|&offsets| {
                rendered
                    .assistant
                    .iter()
                    .any(|turn| overlaps(offsets, turn))
            })
            .collect();
        Ok(EncodedConversation {
            ids: encoding.get_ids().to_vec(),
            assistant: runs(&inside),
        })
    }

    /// `prompt` rendered for the model to answer (`add_generation_prompt = true`), and the text
    /// `reply` adds to it: the rendering of `prompt` followed by `reply`, less the prompt's text,
    /// which must start it. TRL splits its conversational preference pairs so.
    ///
    /// # Errors
    /// As [`Tokenizer::apply_chat_template`]; [`LlamaError::NotAPrefix`] when the prompt's text does
    /// not start the whole.
    pub fn render_reply(
        &self,
        prompt: &[ChatMessage],
        reply: &[ChatMessage],
    ) -> Result<(String, String)> {
        let prompt_text = self.apply_chat_template(prompt, &ChatOptions::generation())?;
        let whole: Vec<&ChatMessage> = prompt.iter().chain(reply).collect();
        let mut text = self.apply_chat_template(&whole, &ChatOptions::default())?;
        self.check_prefix(
            &prompt_text,
            &text,
            "the prompt with add_generation_prompt".into(),
            "the prompt followed by the reply",
        )?;
        let reply_text = text.split_off(prompt_text.len());
        Ok((prompt_text, reply_text))
    }

    /// Refuses `text` (the rendering of `part`) unless it starts `whole_text` (that of `whole`).
    fn check_prefix(
        &self,
        text: &str,
        whole_text: &str,
        part: String,
        whole: &'static str,
    ) -> Result<()> {
        if whole_text.starts_with(text) {
            return Ok(());
        }
        let at = text
            .char_indices()
            .zip(whole_text.chars())
            .find(|((_, a), b)| a != b)
            .map_or(text.len().min(whole_text.len()), |((at, _), _)| at);
        let snippet = |s: &str| s[at..].chars().take(40).collect::<String>();
        Err(LlamaError::NotAPrefix {
            path: self
                .chat_template()
                .map(|t| t.path().to_path_buf())
                .unwrap_or_default(),
            part,
            whole,
            at,
            texts: format!("{:?} against {:?}", snippet(text), snippet(whole_text)),
        })
    }
}

/// Whether a token at byte `offsets` belongs to `turn`: its bytes overlap the turn's. A token with
/// no bytes is a lone space whose offsets a ByteLevel post-processor's `trim_offsets` moved past
/// its byte, so it sits where that byte was.
fn overlaps((start, end): (usize, usize), turn: &Range<usize>) -> bool {
    if start < end {
        start < turn.end && end > turn.start
    } else {
        turn.start < start && start <= turn.end
    }
}

/// The maximal runs of `true` in `inside`, as ranges.
fn runs(inside: &[bool]) -> Vec<Range<usize>> {
    let mut ranges: Vec<Range<usize>> = Vec::new();
    for (t, _) in inside.iter().enumerate().filter(|(_, &inside)| inside) {
        match ranges.last_mut() {
            Some(last) if last.end == t => last.end = t + 1,
            _ => ranges.push(t..t + 1),
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenization")
    }

    /// A fixture tokenizer of `tests/fixtures/tokenization`: `bos` has a Llama 3 style template
    /// with a system turn, `no_bos` SmolLM2's ChatML one.
    fn tokenizer(name: &str) -> Tokenizer {
        Tokenizer::from_file(fixtures().join(name).join("tokenizer.json"), 320, None)
            .expect("fixture tokenizer loads")
    }

    /// Two assistant turns between a system turn and user turns.
    fn chat() -> Vec<ChatMessage> {
        vec![
            ChatMessage::new("system", "  Be brief.  "),
            ChatMessage::new("user", "Say hi."),
            ChatMessage::new("assistant", "Hi there!"),
            ChatMessage::new("user", "What is 6 times 7?"),
            ChatMessage::new("assistant", "6 * 7 = 42."),
        ]
    }

    /// What each template writes for an assistant turn, end-of-turn marker included.
    const TURNS: [(&str, [&str; 2]); 2] = [
        (
            "no_bos",
            ["Hi there!<|im_end|>\n", "6 * 7 = 42.<|im_end|>\n"],
        ),
        ("bos", ["Hi there!<|eot_id|>", "6 * 7 = 42.<|eot_id|>"]),
    ];

    #[test]
    fn assistant_turns_are_the_text_between_the_generation_prompt_and_the_turns_end() {
        for (name, turns) in TURNS {
            let rendered = tokenizer(name).render_conversation(&chat()).unwrap();
            let texts: Vec<&str> = rendered
                .assistant
                .iter()
                .map(|turn| &rendered.text[turn.clone()])
                .collect();
            assert_eq!(texts, turns, "{name}: {:?}", rendered.text);
        }
    }

    #[test]
    fn assistant_tokens_are_the_tokens_of_the_assistant_turns() {
        for (name, turns) in TURNS {
            let tok = tokenizer(name);
            let encoded = tok.encode_conversation(&chat()).unwrap();
            assert_eq!(
                encoded.ids,
                tok.encode_chat(&chat(), &ChatOptions::default()).unwrap(),
                "{name}: the ids of apply_chat_template"
            );
            let texts: Vec<String> = encoded
                .assistant
                .iter()
                .map(|turn| tok.decode(&encoded.ids[turn.clone()], false).unwrap())
                .collect();
            assert_eq!(texts, turns, "{name}");
        }
    }

    #[test]
    fn a_reply_is_what_it_adds_to_the_prompt_rendered_for_generation() {
        for (name, turns) in TURNS {
            let tok = tokenizer(name);
            let (prompt, reply) = (&chat()[..4], &chat()[4..]);
            let (prompt_text, reply_text) = tok.render_reply(prompt, reply).unwrap();
            assert_eq!(
                prompt_text,
                tok.apply_chat_template(prompt, &ChatOptions::generation())
                    .unwrap()
            );
            assert_eq!(reply_text, turns[1], "{name}");
        }
    }

    #[test]
    fn a_template_that_rewrites_earlier_turns_is_refused_naming_the_turn() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::copy(
            fixtures().join("no_bos/tokenizer.json"),
            tmp.path().join("tokenizer.json"),
        )
        .unwrap();
        // Only the last turn is written in full, as templates that drop past reasoning do.
        let template = "{% for m in messages %}{{ m.role }}: {% if loop.last %}{{ m.content }}\
                        {% else %}...{% endif %}\n{% endfor %}";
        std::fs::write(tmp.path().join("chat_template.jinja"), template).unwrap();
        let tok = Tokenizer::from_file(tmp.path().join("tokenizer.json"), 320, None).unwrap();
        let err = tok.encode_conversation(&chat()).unwrap_err();
        match &err {
            LlamaError::NotAPrefix { path, part, .. } => {
                assert!(path.ends_with("chat_template.jinja"), "{err}");
                assert!(part.contains("assistant message 2 starts"), "{err}");
            }
            other => panic!("expected NotAPrefix, got {other}"),
        }
        let err = tok.render_reply(&chat()[..2], &chat()[2..3]).unwrap_err();
        assert!(matches!(err, LlamaError::NotAPrefix { .. }), "{err}");
    }

    #[test]
    fn a_model_without_a_chat_template_is_named() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gqa_sharded");
        let tok = Tokenizer::from_file(path.join("tokenizer.json"), 1000, Some(1)).unwrap();
        let err = tok.encode_conversation(&chat()).unwrap_err();
        assert!(
            matches!(&err, LlamaError::MissingFile { dir, .. } if dir == &path),
            "{err}"
        );
    }

    #[test]
    fn token_runs_and_trimmed_spaces() {
        assert_eq!(
            runs(&[false, true, true, false, true, false, false, true]),
            [1..3, 4..5, 7..8]
        );
        assert_eq!(runs(&[]), Vec::<Range<usize>>::new());
        let turn = 4..8;
        assert!(!overlaps((2, 4), &turn) && overlaps((3, 5), &turn) && !overlaps((8, 9), &turn));
        // A lone space trimmed to the end of its byte: inside when that byte was.
        assert!(!overlaps((4, 4), &turn) && overlaps((5, 5), &turn) && overlaps((8, 8), &turn));
    }
}
