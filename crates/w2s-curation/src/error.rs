//! The crate's one error type.
//!
//! Errors about a file carry its path and, for JSONL, the 1-based line number, after ripgrep's
//! `ignore::Error` (see ARCHITECTURE.md, "Conventions"): a user fixing a shard must be told where
//! to look.

use std::path::PathBuf;

/// Everything that can go wrong in w2s-curation.
#[derive(Debug, thiserror::Error)]
pub enum CurationError {
    /// Reading, writing or renaming a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSONL line is not a valid record of the expected kind.
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
