//! What the files beside `tokenizer.json` say: the named special tokens and the chat template.
//!
//! They are read as transformers 5 reads them:
//!
//! - Named special tokens (`bos_token`, `eos_token`, `unk_token`, `sep_token`, `pad_token`,
//!   `cls_token`, `mask_token`) come from tokenizer_config.json, as strings or as
//!   `{"content": ...}` objects, together with a model's own `*_token` names given as strings.
//!   When tokenizer_config.json has no `added_tokens_decoder` (an older layout),
//!   special_tokens_map.json is read too, and its named tokens win.
//! - The chat template is chat_template.jinja when present, otherwise tokenizer_config.json's
//!   `chat_template`: a string, or a list of `{"name", "template"}` of which `default` is used.
//!
//! `add_bos_token` and `add_eos_token` are not read: transformers 5 drops them when a
//! tokenizer.json exists, whose post-processor alone decides (see [`crate::Tokenizer`]).
//!
//! The files themselves (with generation_config.json, which names the tokens that end a turn)
//! are kept byte for byte, so a saved model carries them unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::chat_template::ChatTemplate;
use crate::error::{LlamaError, Result};

/// tokenizer_config.json.
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
/// special_tokens_map.json (older layouts).
pub const SPECIAL_TOKENS_MAP_FILE: &str = "special_tokens_map.json";
/// chat_template.jinja.
pub const CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";
/// generation_config.json.
pub const GENERATION_CONFIG_FILE: &str = "generation_config.json";

/// The files that travel with a tokenizer, in the order they are read.
const COMPANION_FILES: [&str; 4] = [
    TOKENIZER_CONFIG_FILE,
    SPECIAL_TOKENS_MAP_FILE,
    CHAT_TEMPLATE_FILE,
    GENERATION_CONFIG_FILE,
];

/// The special-token names every tokenizer has (transformers' `SPECIAL_TOKENS_ATTRIBUTES`).
const NAMED_TOKENS: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];

/// The files beside a `tokenizer.json` and what they say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenizerConfig {
    /// Named special tokens, e.g. `bos_token` -> `<|begin_of_text|>`.
    pub special_tokens: BTreeMap<String, String>,
    /// The chat template, when the files have a usable one.
    pub chat_template: Option<ChatTemplate>,
    /// `(file name, bytes)` of each companion file found.
    files: Vec<(&'static str, Vec<u8>)>,
}

impl TokenizerConfig {
    /// Reads the companion files in `dir`; a directory without any gives an empty config.
    ///
    /// # Errors
    /// An unreadable file, invalid JSON, or a `chat_template` that is neither a string nor a list
    /// of named templates; each error names the file.
    pub fn read(dir: &Path) -> Result<Self> {
        let mut files = Vec::new();
        for name in COMPANION_FILES {
            let path = dir.join(name);
            if path.is_file() {
                let bytes = std::fs::read(&path).map_err(|e| LlamaError::io(&path, e))?;
                files.push((name, bytes));
            }
        }
        let mut config = Self {
            files,
            ..Self::default()
        };
        let tokenizer_config = config.json(dir, TOKENIZER_CONFIG_FILE)?;
        let mut chat_template = None;
        if let Some(json) = &tokenizer_config {
            let path = dir.join(TOKENIZER_CONFIG_FILE);
            for (name, value) in json.iter().filter(|(name, _)| name.ends_with("_token")) {
                if let Some(token) = token_text(value, NAMED_TOKENS.contains(&name.as_str())) {
                    config.special_tokens.insert(name.clone(), token);
                }
            }
            chat_template = default_template(json.get("chat_template"), &path)?;
        }
        let legacy = tokenizer_config
            .as_ref()
            .is_none_or(|json| !json.contains_key("added_tokens_decoder"));
        if legacy {
            for (name, value) in config
                .json(dir, SPECIAL_TOKENS_MAP_FILE)?
                .unwrap_or_default()
            {
                if NAMED_TOKENS.contains(&name.as_str()) {
                    if let Some(token) = token_text(&value, true) {
                        config.special_tokens.insert(name, token);
                    }
                }
            }
        }
        if let Some(source) = config.file(CHAT_TEMPLATE_FILE) {
            let path = dir.join(CHAT_TEMPLATE_FILE);
            let source = String::from_utf8(source.to_vec()).map_err(|e| {
                LlamaError::io(
                    &path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                )
            })?;
            chat_template = Some(ChatTemplate::new(source, path));
        }
        config.chat_template = chat_template;
        Ok(config)
    }

    /// Writes every companion file that was read into `dir`, unchanged (each atomically).
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn save(&self, dir: &Path) -> Result<()> {
        for (name, bytes) in &self.files {
            w2s_data::write_atomic(dir.join(name), |file| {
                std::io::Write::write_all(file, bytes)
            })?;
        }
        Ok(())
    }

    fn file(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, bytes)| bytes.as_slice())
    }

    /// The JSON object in companion file `name`, if it was read.
    fn json(
        &self,
        dir: &Path,
        name: &str,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
        let Some(bytes) = self.file(name) else {
            return Ok(None);
        };
        let path = dir.join(name);
        match serde_json::from_slice(bytes) {
            Ok(serde_json::Value::Object(map)) => Ok(Some(map)),
            Ok(_) => Err(LlamaError::Config {
                path,
                field: "(top level)",
                reason: "expected a JSON object".into(),
            }),
            Err(cause) => Err(LlamaError::Json { path, cause }),
        }
    }
}

/// The token a special-token entry names: a string, or (for the named tokens) an added-token
/// object's `content`. `null`, booleans and anything else name none.
fn token_text(value: &serde_json::Value, object_allowed: bool) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) if object_allowed => {
            o.get("content")?.as_str().map(str::to_string)
        }
        _ => None,
    }
}

/// The template of tokenizer_config.json's `chat_template`: a string, or the one named `default`
/// of a list of named templates (none when the list has no default).
fn default_template(
    value: Option<&serde_json::Value>,
    path: &Path,
) -> Result<Option<ChatTemplate>> {
    let invalid = || LlamaError::Config {
        path: PathBuf::from(path),
        field: "chat_template",
        reason: "expected a string or a list of {\"name\": ..., \"template\": ...}".into(),
    };
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(source)) => {
            Ok(Some(ChatTemplate::new(source.clone(), path)))
        }
        Some(serde_json::Value::Array(named)) => {
            for entry in named {
                let name = entry
                    .get("name")
                    .and_then(|n| n.as_str())
                    .ok_or_else(invalid)?;
                let source = entry
                    .get("template")
                    .and_then(|t| t.as_str())
                    .ok_or_else(invalid)?;
                if name == "default" {
                    return Ok(Some(ChatTemplate::new(source, path)));
                }
            }
            Ok(None)
        }
        Some(_) => Err(invalid()),
    }
}
