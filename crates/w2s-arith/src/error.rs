//! The crate's one error type.

use w2s_data::DataError;

/// Everything that can go wrong in w2s-arith.
#[derive(Debug, thiserror::Error)]
pub enum ArithError {
    /// Writing the tokenizer or a base model failed; the error names the file.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A family or generator setting out of its domain, or a tokenizer the `tokenizers` crate
    /// refuses to build.
    #[error("invalid argument: {0}")]
    Invalid(String),
}

/// Result with [`ArithError`].
pub type Result<T> = std::result::Result<T, ArithError>;
