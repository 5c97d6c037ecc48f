//! A model's tokenizer: HF `tokenizer.json` through the `tokenizers` crate, with the files beside
//! it (tokenizer_config.json, chat_template.jinja, special_tokens_map.json,
//! generation_config.json).
//!
//! Special tokens are added as the model's own files say, exactly as transformers 5 adds them:
//! the tokenizer.json post-processor decides ([`Tokenizer::encode_with_special_tokens`]). A Llama 3
//! file puts `<|begin_of_text|>` first, a SmolLM2 file adds nothing, a file without post-processor
//! adds nothing. tokenizer_config.json's `add_bos_token` and `add_eos_token` change nothing:
//! transformers 5 drops them when a tokenizer.json exists (transformers 4.57's LlamaTokenizerFast
//! rebuilt the post-processor from them instead, so the two disagree on a file whose flags and
//! post-processor differ; `tests/fixtures/tokenization/make_fixtures.py` has one).
//!
//! [`Tokenizer::encode`] with `add_bos` is the explicit path for a tokenizer whose files add
//! nothing but whose model was trained with the config's `bos_token_id` first (the synthetic
//! arithmetic task's tokenizer has no post-processor).
//!
//! Chat templates render as transformers' `apply_chat_template` renders them
//! ([`crate::chat_template`]). A check at load time makes sure every token id fits the model's
//! embedding table, and errors name the file.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::chat_template::{ChatOptions, ChatTemplate};
use crate::error::{LlamaError, Result};
use crate::tokenizer_config::{TokenizerConfig, CHAT_TEMPLATE_FILE, TOKENIZER_CONFIG_FILE};

/// A tokenizer loaded from `tokenizer.json` and the files beside it.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    bos: Option<u32>,
    config: TokenizerConfig,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("path", &self.path)
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos)
            .field("special_tokens", &self.config.special_tokens)
            .field("chat_template", &self.config.chat_template.is_some())
            .finish()
    }
}

impl Tokenizer {
    /// Loads `path` and the files beside it for a model with `model_vocab` embeddings and the
    /// config's BOS id (used only by [`Tokenizer::encode`] with `add_bos`).
    ///
    /// Fails when the tokenizer can produce an id the model has no embedding for, and when a file
    /// beside it is unreadable or malformed ([`TokenizerConfig::read`]).
    pub fn from_file(path: impl AsRef<Path>, model_vocab: usize, bos: Option<u32>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if !path.is_file() {
            return Err(LlamaError::io(
                &path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "tokenizer file not found"),
            ));
        }
        let inner = tokenizers::Tokenizer::from_file(&path).map_err(|e| LlamaError::Tokenizer {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let config = TokenizerConfig::read(path.parent().unwrap_or(Path::new(".")))?;
        let tokenizer = Self {
            inner,
            path,
            bos,
            config,
        };
        let size = tokenizer.vocab_size();
        if size > model_vocab {
            return Err(LlamaError::VocabMismatch {
                path: tokenizer.path,
                tokenizer: size,
                model: model_vocab,
            });
        }
        Ok(tokenizer)
    }

    /// Number of ids the tokenizer can produce (one past the largest id, added tokens included).
    pub fn vocab_size(&self) -> usize {
        self.inner
            .get_vocab(true)
            .values()
            .max()
            .map_or(0, |&max| max as usize + 1)
    }

    /// Token ids of `text` without special tokens, or with the model config's `bos_token_id`
    /// first when `add_bos` is true, whatever the tokenizer's files say.
    ///
    /// For tokenizers whose files add nothing but whose models were trained with BOS first (the
    /// arithmetic task's); a model's own rule is [`Tokenizer::encode_with_special_tokens`].
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>> {
        let encoding = self.inner.encode(text, false).map_err(|e| self.error(e))?;
        let mut ids = Vec::with_capacity(encoding.len() + 1);
        if add_bos {
            ids.push(self.bos.ok_or_else(|| LlamaError::Tokenizer {
                path: self.path.clone(),
                reason: "BOS requested but the model config has no bos_token_id".into(),
            })?);
        }
        ids.extend_from_slice(encoding.get_ids());
        Ok(ids)
    }

    /// Token ids of `text` with the special tokens the model's tokenizer adds, as transformers'
    /// `tokenizer(text)` gives them: the tokenizer.json post-processor's (e.g. BOS first for Llama
    /// 3, nothing for SmolLM2).
    pub fn encode_with_special_tokens(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.inner.encode(text, true).map_err(|e| self.error(e))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Token ids of a `prompt` and of the `completion` that follows it, with the model's special
    /// tokens added once to the whole sequence: those the tokenizer puts before a text (BOS) start
    /// the prompt, those it puts after a text (an EOS post-processor) end the completion. This is
    /// how TRL's SFT trainer splits `tokenizer(prompt + completion)`, except that prompt and
    /// completion are encoded separately, so the boundary is exact.
    ///
    /// When the prompt encodes to special tokens only (an empty prompt), all of them start it.
    pub fn encode_prompt_completion(
        &self,
        prompt: &str,
        completion: &str,
    ) -> Result<(Vec<u32>, Vec<u32>)> {
        let encoding = self.inner.encode(prompt, true).map_err(|e| self.error(e))?;
        let ids = encoding.get_ids();
        // The mask marks what the post-processor added (special tokens typed in the text are 0).
        let added = encoding.get_special_tokens_mask();
        let trailing = added.iter().rev().take_while(|&&m| m == 1).count();
        let split = if trailing == ids.len() {
            ids.len()
        } else {
            ids.len() - trailing
        };
        let mut completion_ids = self.encode(completion, false)?;
        completion_ids.extend_from_slice(&ids[split..]);
        Ok((ids[..split].to_vec(), completion_ids))
    }

    /// The model's chat template, when its files have one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.config.chat_template.as_ref()
    }

    /// What the files beside `tokenizer.json` say: named special tokens and chat template.
    pub fn config(&self) -> &TokenizerConfig {
        &self.config
    }

    /// `messages` rendered by the model's chat template, as transformers'
    /// `apply_chat_template(messages, tokenize=False, ...)` renders them.
    ///
    /// # Errors
    /// [`LlamaError::MissingFile`] when the model has no chat template; the errors of
    /// [`ChatTemplate::render`].
    pub fn apply_chat_template<M: Serialize>(
        &self,
        messages: &[M],
        options: &ChatOptions,
    ) -> Result<String> {
        let template = self
            .chat_template()
            .ok_or_else(|| LlamaError::MissingFile {
                dir: self.path.parent().map(Path::to_path_buf).unwrap_or_default(),
                what: "chat template",
                expected: format!(
                    "{CHAT_TEMPLATE_FILE}, or a `chat_template` string (or a list with one named \"default\") in {TOKENIZER_CONFIG_FILE}"
                ),
            })?;
        template.render(messages, options, &self.config.special_tokens)
    }

    /// Token ids of `messages` rendered by the chat template, as transformers'
    /// `apply_chat_template(messages, tokenize=True, ...)` gives them: the rendered text encoded
    /// without adding special tokens, since the template writes its own (`bos_token`, ...).
    ///
    /// # Errors
    /// As [`Tokenizer::apply_chat_template`].
    pub fn encode_chat<M: Serialize>(
        &self,
        messages: &[M],
        options: &ChatOptions,
    ) -> Result<Vec<u32>> {
        self.encode(&self.apply_chat_template(messages, options)?, false)
    }

    /// Text of `ids`; special tokens are dropped when `skip_special` is true.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| self.error(e))
    }

    /// The id of a token string (e.g. `"</s>"`), if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The file this tokenizer was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the tokenizer into a model directory as `tokenizer.json`, with every file that was
    /// beside its source (tokenizer_config.json, chat_template.jinja, special_tokens_map.json,
    /// generation_config.json) unchanged; each file atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let json = self.inner.to_string(true).map_err(|e| self.error(e))?;
        let path = dir.join("tokenizer.json");
        w2s_data::write_atomic(path, |file| {
            std::io::Write::write_all(file, json.as_bytes())
        })?;
        self.config.save(dir)
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Wraps an in-memory `tokenizers` tokenizer (e.g. one built for the synthetic task), with no
    /// files beside it.
    pub fn from_inner(inner: tokenizers::Tokenizer, path: PathBuf, bos: Option<u32>) -> Self {
        Self {
            inner,
            path,
            bos,
            config: TokenizerConfig::default(),
        }
    }

    pub(crate) fn error(&self, e: tokenizers::Error) -> LlamaError {
        LlamaError::Tokenizer {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }
}
