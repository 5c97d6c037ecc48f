//! The one error type of `w2s-llama`.
//!
//! Every error that concerns a file carries its path; weight mismatches list every offending tensor
//! at once so a user fixes a checkpoint in one go instead of one tensor per run.

use std::path::PathBuf;

/// Errors raised while reading configs, checkpoints and tokenizers, or while generating.
#[derive(Debug, thiserror::Error)]
pub enum LlamaError {
    /// Writing a model file failed; the error names the file.
    #[error(transparent)]
    File(#[from] w2s_data::DataError),
    // === Files ===
    /// A file could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error (shown in the message, so not repeated as a source).
        cause: std::io::Error,
    },
    /// A JSON file (config, index) did not parse.
    #[error("{path}: invalid JSON: {cause}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error, with line and column.
        cause: serde_json::Error,
    },
    /// A model directory lacks a file it needs.
    #[error("{dir}: no {what} found (expected {expected})")]
    MissingFile {
        /// The model directory.
        dir: PathBuf,
        /// What is missing, e.g. "weights".
        what: &'static str,
        /// The file names that were looked for.
        expected: String,
    },

    // === Config ===
    /// A config field has a value w2s cannot use.
    #[error("{path}: field `{field}`: {reason}")]
    Config {
        /// The config file (or `<memory>`).
        path: PathBuf,
        /// The offending field, in HF spelling.
        field: &'static str,
        /// What was wrong and what was expected.
        reason: String,
    },

    // === Weights ===
    /// A safetensors file is corrupt or truncated.
    #[error("{path}: not a valid safetensors file: {reason}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What the safetensors reader reported.
        reason: String,
    },
    /// The checkpoint's tensors do not match the config.
    #[error("{path}: checkpoint does not match the config:{}", describe_mismatch(.missing, .unexpected, .shapes, .dtypes))]
    WeightsMismatch {
        /// The checkpoint (file or index).
        path: PathBuf,
        /// Tensors the model needs that the checkpoint lacks.
        missing: Vec<String>,
        /// Tensors in the checkpoint the model has no place for.
        unexpected: Vec<String>,
        /// `(name, expected shape, found shape)` for tensors with the wrong shape.
        shapes: Vec<(String, Vec<usize>, Vec<usize>)>,
        /// `(name, dtype)` for tensors stored in a dtype w2s cannot read.
        dtypes: Vec<(String, String)>,
    },

    // === Tokenizer ===
    /// The tokenizer file could not be loaded or used.
    #[error("{path}: tokenizer: {reason}")]
    Tokenizer {
        /// The tokenizer.json file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The tokenizer knows more tokens than the model has embeddings for.
    #[error("{path}: tokenizer has {tokenizer} tokens but the model's vocab_size is {model}")]
    VocabMismatch {
        /// The tokenizer.json file.
        path: PathBuf,
        /// Tokens in the tokenizer (added tokens included).
        tokenizer: usize,
        /// The model's `vocab_size`.
        model: usize,
    },

    /// A chat template does not parse or fails to render.
    #[error("{path}: chat template: {reason}")]
    ChatTemplate {
        /// The file the template came from (tokenizer_config.json or chat_template.jinja).
        path: PathBuf,
        /// What the template engine reported, with the template line.
        reason: String,
    },
    /// A chat template refused the conversation through `raise_exception` (e.g. an unknown role).
    #[error("{path}: the chat template refused the conversation: {message}")]
    ChatTemplateRaised {
        /// The file the template came from.
        path: PathBuf,
        /// The template's message.
        message: String,
    },
    /// A chat template renders part of a conversation as text that does not start its rendering
    /// of more of it, so the rendering does not show where a turn begins or ends (a template that
    /// renders earlier turns differently once later ones follow, say).
    #[error("{path}: the chat template's rendering of {part} does not start its rendering of {whole}: from byte {at}, {texts}")]
    NotAPrefix {
        /// The file the template came from.
        path: PathBuf,
        /// What the shorter rendering is of, e.g. `messages[..2] with add_generation_prompt`.
        part: String,
        /// What the longer rendering is of.
        whole: &'static str,
        /// The byte where the two renderings first differ.
        at: usize,
        /// Both renderings from there, cut short: `"..." against "..."`, the shorter first.
        texts: String,
    },

    // === Adapters ===
    /// A LoRA config that cannot be used, or adapters attached where they cannot be.
    #[error("LoRA: {0}")]
    Lora(String),
    /// A PEFT adapter directory w2s cannot load, with the file and what is wrong.
    #[error("{path}: {reason}")]
    Adapter {
        /// adapter_config.json or adapter_model.safetensors.
        path: PathBuf,
        /// What is wrong and what was expected.
        reason: String,
    },

    // === Inputs ===
    /// A prompt (plus the tokens to generate) does not fit in the model's context.
    #[error("prompt {index} has {prompt_len} tokens; with max_new_tokens = {max_new_tokens} it needs {needed} positions but the model's context is {context}")]
    PromptTooLong {
        /// Index of the prompt in the batch.
        index: usize,
        /// Its length in tokens.
        prompt_len: usize,
        /// Requested new tokens.
        max_new_tokens: usize,
        /// prompt_len + max_new_tokens.
        needed: usize,
        /// `max_position_embeddings`.
        context: usize,
    },
    /// An input that cannot be used (empty prompt, token id out of range, bad sampling option).
    #[error("invalid input: {0}")]
    Input(String),
}

fn describe_mismatch(
    missing: &[String],
    unexpected: &[String],
    shapes: &[(String, Vec<usize>, Vec<usize>)],
    dtypes: &[(String, String)],
) -> String {
    let mut out = String::new();
    if !missing.is_empty() {
        out += &format!("\n  missing tensors: {}", missing.join(", "));
    }
    if !unexpected.is_empty() {
        out += &format!("\n  unexpected tensors: {}", unexpected.join(", "));
    }
    for (name, want, got) in shapes {
        out += &format!("\n  {name}: expected shape {want:?}, found {got:?}");
    }
    for (name, dtype) in dtypes {
        out += &format!("\n  {name}: unsupported dtype {dtype} (f32, bf16 and f16 are read)");
    }
    out
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, LlamaError>;

impl LlamaError {
    pub(crate) fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            cause,
        }
    }
}
