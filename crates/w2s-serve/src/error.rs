//! The crate's one error type: what stops a server from starting or ends it badly. What goes
//! wrong with one request is not an error of the server but an answer: [`crate::ApiError`].

/// Everything that can stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The options are unusable (a zero queue, say).
    #[error("{0}")]
    Config(String),
    /// The model directory cannot be served (no tokenizer).
    #[error("{0}")]
    Model(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why not.
        reason: String,
    },
    /// A thread of the server could not be started or ended with a panic.
    #[error("{0}")]
    Thread(String),
}

/// Result with [`ServeError`].
pub type Result<T> = std::result::Result<T, ServeError>;
