//! The crate's one error type. Errors about a server name its endpoint and the prompt (cut short);
//! errors about a file name the file and, for JSONL, the line.

use std::path::{Path, PathBuf};

use w2s_data::DataError;

/// Everything that can go wrong sampling from an OpenAI-compatible server.
#[derive(Debug, thiserror::Error)]
pub enum OpenAiError {
    /// The sampler or the sampling options are unusable as given.
    #[error("{0}")]
    Config(String),
    /// The server refused the request with a 4xx status other than 429: retrying would not help.
    #[error("{url} refused the request for prompt {prompt}: HTTP {status}: {body}{hint}")]
    Refused {
        /// The URL the request went to.
        url: String,
        /// The prompt, cut short.
        prompt: String,
        /// The HTTP status.
        status: u16,
        /// The response body, cut short.
        body: String,
        /// A hint for a likely misconfiguration (empty when there is none).
        hint: String,
    },
    /// The server answered 200 with a body that is not the expected JSON.
    #[error("{url} answered prompt {prompt} with malformed JSON ({reason}): {body}")]
    Malformed {
        /// The URL the request went to.
        url: String,
        /// The prompt, cut short.
        prompt: String,
        /// What serde_json found wrong.
        reason: String,
        /// The response body, cut short.
        body: String,
    },
    /// The server answered with fewer choices than the `n` asked for.
    #[error("{url} gave {got} choices for prompt {prompt}, {expected} were asked for: {body}")]
    TooFewChoices {
        /// The URL the request went to.
        url: String,
        /// The prompt, cut short.
        prompt: String,
        /// Choices asked for.
        expected: usize,
        /// Choices received.
        got: usize,
        /// The response body, cut short.
        body: String,
    },
    /// Every attempt failed with a retryable error (429, 5xx, connection error, timeout).
    #[error("{url}: gave up on prompt {prompt} after {attempts} attempts; the last: {last}")]
    GaveUp {
        /// The URL the requests went to.
        url: String,
        /// The prompt, cut short.
        prompt: String,
        /// Attempts made (1 + retries).
        attempts: u32,
        /// What the last attempt got.
        last: String,
    },
    /// A request could not be sent or its answer read, for a reason no retry cures (a bad URL,
    /// say).
    #[error("{url}: prompt {prompt}: {reason}")]
    Transport {
        /// The URL the request went to.
        url: String,
        /// The prompt, cut short.
        prompt: String,
        /// What went wrong.
        reason: String,
    },
    /// A JSONL file could not be read or written (w2s-data's error, naming file and line).
    #[error(transparent)]
    Data(#[from] DataError),
    /// An output file holds lines that do not fit the stage being resumed.
    #[error("{path}:{line}: {message}")]
    Output {
        /// The output file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What does not fit.
        message: String,
    },
}

impl OpenAiError {
    /// An I/O error about `path`.
    pub fn io(path: &Path, source: std::io::Error) -> OpenAiError {
        OpenAiError::Data(DataError::io(path, source))
    }
}

/// Result with [`OpenAiError`].
pub type Result<T> = std::result::Result<T, OpenAiError>;

/// `text` cut to at most `max` characters, with `...` when cut: prompts and bodies in errors.
pub(crate) fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}
