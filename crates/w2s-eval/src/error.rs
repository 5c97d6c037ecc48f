//! The crate's one error type. File errors come from w2s-data and name the file and, for JSONL,
//! the 1-based line.

use std::path::Path;

use w2s_data::DataError;

/// Everything that can go wrong in w2s-eval.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Reading or writing a file failed, or a JSONL line is malformed or lacks a field.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A task name that is not gsm8k, math or arithmetic.
    #[error("unknown task {0:?} (expected gsm8k, math or arithmetic)")]
    UnknownTask(String),
    /// An argument out of its domain (split sizes larger than the pool, pass@k with k > n, ...).
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl EvalError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> EvalError {
        DataError::io(path, source).into()
    }

    pub(crate) fn line(path: &Path, line: usize, message: impl Into<String>) -> EvalError {
        DataError::line(path, line, message).into()
    }
}

/// Result with [`EvalError`].
pub type Result<T> = std::result::Result<T, EvalError>;
