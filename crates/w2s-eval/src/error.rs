//! The crate's one error type. Errors about a file carry its path and, for JSONL, the 1-based line.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in w2s-eval.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Reading, writing or renaming a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSONL line is not valid JSON of the expected record type.
    #[error("{path}:{line}: {source}")]
    Json {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What serde_json found wrong.
        #[source]
        source: serde_json::Error,
    },
    /// A JSONL record is valid JSON but lacks a field or holds a value out of its domain.
    #[error("{path}:{line}: {message}")]
    Line {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the record.
        message: String,
    },
    /// Serializing a record failed (a map key that is not a string, say).
    #[error("{path}: cannot serialize record {index}: {source}")]
    Serialize {
        /// The file being written.
        path: PathBuf,
        /// 0-based index of the record in the write order.
        index: usize,
        /// What serde_json found wrong.
        #[source]
        source: serde_json::Error,
    },
    /// A task name that is not gsm8k, math or arithmetic.
    #[error("unknown task {0:?} (expected gsm8k, math or arithmetic)")]
    UnknownTask(String),
    /// An argument out of its domain (split sizes larger than the pool, pass@k with k > n, ...).
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl EvalError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> EvalError {
        EvalError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn line(path: &Path, line: usize, message: impl Into<String>) -> EvalError {
        EvalError::Line {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

/// Result with [`EvalError`].
pub type Result<T> = std::result::Result<T, EvalError>;
