//! The crate's one error type. Errors about a file carry its path and, for JSONL, the 1-based line.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in w2s-eval.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line of a JSONL file is malformed or lacks a field.
    #[error("{path}:{line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
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
