//! A thin wrapper over the `tokenizers` crate for HF `tokenizer.json` files.
//!
//! It adds what w2s needs on top: a check at load time that every token id fits the model's
//! embedding table, BOS handling that does not depend on the file's post-processor (so "with BOS"
//! means the same thing for Llama 2 and Llama 3 files), and errors that name the file.

use std::path::{Path, PathBuf};

use crate::error::{LlamaError, Result};

/// A tokenizer loaded from `tokenizer.json`.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    bos: Option<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("path", &self.path)
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos)
            .finish()
    }
}

impl Tokenizer {
    /// Loads `path` for a model with `model_vocab` embeddings and the given BOS id.
    ///
    /// Fails when the tokenizer can produce an id the model has no embedding for.
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
        let tokenizer = Self { inner, path, bos };
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

    /// Token ids of `text`, with the model's BOS id first when `add_bos` is true.
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

    /// Copies the tokenizer into a model directory as `tokenizer.json` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let json = self.inner.to_string(true).map_err(|e| self.error(e))?;
        crate::atomic::write_atomic(&dir.join("tokenizer.json"), json.as_bytes())
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Wraps an in-memory `tokenizers` tokenizer (e.g. one built for the synthetic task).
    pub fn from_inner(inner: tokenizers::Tokenizer, path: PathBuf, bos: Option<u32>) -> Self {
        Self { inner, path, bos }
    }

    fn error(&self, e: tokenizers::Error) -> LlamaError {
        LlamaError::Tokenizer {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }
}
