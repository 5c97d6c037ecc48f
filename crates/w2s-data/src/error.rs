//! The crate's one error type. Errors about a file carry its path and, for JSONL, the 1-based line.

use std::path::{Path, PathBuf};

/// Everything that can go wrong reading or writing w2s's files.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Reading, writing, syncing or renaming a file failed.
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
    /// A path that cannot name a file (no file name, as `..` or `/`).
    #[error("{0} is not a file path")]
    NotAFile(PathBuf),
}

impl DataError {
    /// An I/O error about `path`.
    pub fn io(path: &Path, source: std::io::Error) -> DataError {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A record at `path:line` that is valid JSON but wrong for its purpose.
    pub fn line(path: &Path, line: usize, message: impl Into<String>) -> DataError {
        DataError::Line {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

/// Result with [`DataError`].
pub type Result<T> = std::result::Result<T, DataError>;
