//! A HuggingFace model directory: `config.json`, weights and (optionally) `tokenizer.json` with
//! the files beside it (tokenizer_config.json, chat_template.jinja, special_tokens_map.json,
//! generation_config.json), which saving writes back unchanged.

use std::path::{Path, PathBuf};

use burn::prelude::*;

use crate::config::LlamaConfig;
use crate::error::{LlamaError, Result};
use crate::model::Llama;
use crate::tokenizer::Tokenizer;
use crate::weights::{load_weights, save_weights, SaveOptions};

/// Everything loaded from a model directory.
#[derive(Debug)]
pub struct ModelDir<B: Backend> {
    /// The directory.
    pub path: PathBuf,
    /// Its `config.json`.
    pub config: LlamaConfig,
    /// The model with its weights.
    pub model: Llama<B>,
    /// Its `tokenizer.json` and the files beside it, when the directory has one.
    pub tokenizer: Option<Tokenizer>,
}

impl<B: Backend> ModelDir<B> {
    /// Loads config, weights and tokenizer (if present) from `dir`.
    pub fn load(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(LlamaError::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "model directory not found"),
            ));
        }
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(LlamaError::MissingFile {
                dir: dir.to_path_buf(),
                what: "config",
                expected: "config.json".into(),
            });
        }
        let config = LlamaConfig::from_file(&config_path)?;
        let model = load_weights(&config, dir, device)?;
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = if tokenizer_path.is_file() {
            Some(Tokenizer::from_file(
                &tokenizer_path,
                config.vocab_size,
                config.bos_token_id,
            )?)
        } else {
            None
        };
        Ok(Self {
            path: dir.to_path_buf(),
            config,
            model,
            tokenizer,
        })
    }

    /// Saves config, weights and tokenizer to `dir` in HF layout; the tokenizer's files
    /// (tokenizer_config.json, chat template, special_tokens_map.json, generation_config.json)
    /// are copied unchanged from the directory it was loaded from ([`Tokenizer::save`]).
    pub fn save(&self, dir: impl AsRef<Path>, options: SaveOptions) -> Result<()> {
        let dir = dir.as_ref();
        save_weights(&self.model, &self.config, dir, options)?;
        if let Some(tokenizer) = &self.tokenizer {
            tokenizer.save(dir)?;
        }
        Ok(())
    }

    /// The tokenizer, or an error naming the directory when it has none.
    pub fn tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer
            .as_ref()
            .ok_or_else(|| LlamaError::MissingFile {
                dir: self.path.clone(),
                what: "tokenizer",
                expected: "tokenizer.json".into(),
            })
    }
}
