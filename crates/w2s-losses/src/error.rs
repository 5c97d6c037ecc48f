//! The crate's single error type.
//!
//! Everything a caller can get wrong (tensor shapes, empty completions, out-of-range labels, loss
//! parameters, a missing reference) is reported here instead of panicking or producing NaN.

/// Errors returned by the public functions of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // === Shape errors ===
    /// A tensor argument does not have the shape the function needs.
    #[error("{op}: `{arg}` has shape {actual:?}, expected {expected}")]
    Shape {
        /// The function that rejected the input.
        op: &'static str,
        /// The argument name.
        arg: &'static str,
        /// The shape that was passed.
        actual: Vec<usize>,
        /// The expected shape, in the crate's letter legend (`[b, s]`, ...).
        expected: String,
    },

    // === Data errors ===
    /// A sequence has no completion tokens, so its length-averaged log-prob would be 0/0.
    #[error("sequence {row} has no completion tokens (its mask is all false); drop it or fix truncation")]
    EmptyCompletion {
        /// Row index in the batch.
        row: usize,
    },
    /// A label under the completion mask is not a valid vocabulary index.
    #[error("label {label} at sequence {row}, position {position} is outside the vocabulary [0, {vocab})")]
    LabelOutOfRange {
        /// The offending label.
        label: i64,
        /// Row index in the batch.
        row: usize,
        /// Position in the sequence.
        position: usize,
        /// Vocabulary size (the logits' or lm_head's `v`).
        vocab: usize,
    },
    /// The chunk size of the memory-efficient path must be at least one token.
    #[error("chunk_size must be at least 1 token")]
    ZeroChunkSize,
    /// Reading a tensor back from the device failed.
    #[error("reading tensor data: {0}")]
    TensorData(String),

    // === Configuration errors ===
    /// A loss parameter is outside its valid range.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParameter {
        /// Parameter name as written in a config file.
        name: &'static str,
        /// The rejected value.
        value: f64,
        /// The valid range.
        reason: &'static str,
    },
    /// The loss compares against a reference model, but no reference log-probs were given.
    #[error("loss `{loss}` needs reference log-probs; pass them or set reference_free = true")]
    MissingReference {
        /// The loss name.
        loss: &'static str,
    },
    /// The loss needs an input that was not given.
    #[error("loss `{loss}` needs {what}")]
    MissingInput {
        /// The loss name.
        loss: &'static str,
        /// What is missing.
        what: &'static str,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
