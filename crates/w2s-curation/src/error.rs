//! The crate's one error type.
//!
//! Errors about a file carry its path and, for JSONL, the 1-based line number, after ripgrep's
//! `ignore::Error`: a user fixing a shard must be told where to look. Files are read and written
//! by w2s-data's [`jsonl`](w2s_data::jsonl) and [`atomic`](w2s_data::atomic), so those errors are
//! its [`DataError`], wrapped.

use w2s_data::DataError;
use w2s_eval::EvalError;

/// Everything that can go wrong in w2s-curation.
#[derive(Debug, thiserror::Error)]
pub enum CurationError {
    /// Reading or writing a file (JSONL or otherwise) failed; the error names the file and, for
    /// JSONL, the line.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Loading a benchmark file or computing a metric failed.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// Two records of one source share an id, so joining sources by id would be ambiguous.
    #[error("duplicate id {id:?} in the {source_name} records")]
    DuplicateId {
        /// Which input ("weak", "icl", ...).
        source_name: &'static str,
        /// The repeated id.
        id: String,
    },
    /// A record lacks a field that the operation needs (the gold answer, say).
    #[error("record {id:?} has no usable field {field:?}")]
    MissingField {
        /// The record's id, or its index when it has none.
        id: String,
        /// The field name.
        field: String,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A controlled-study builder was asked for more incorrect solutions than it was given.
    #[error("outcome error rate needs {needed} tasks with an incorrect solution, only {available} have one")]
    NotEnoughIncorrect {
        /// Tasks that must receive an incorrect solution.
        needed: usize,
        /// Tasks that have at least one incorrect solution.
        available: usize,
    },
}

/// `Result` with [`CurationError`].
pub type Result<T> = std::result::Result<T, CurationError>;
