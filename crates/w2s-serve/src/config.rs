//! The server's options.

use crate::error::{Result, ServeError};

/// Where to listen and how much to take in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// Address to bind, `HOST:PORT`; port 0 picks a free one ([`crate::RunningServer::addr`]).
    pub addr: String,
    /// The name `/v1/models` lists and requests must give as `model` (or leave out).
    pub served_model_name: String,
    /// Most requests the model thread runs together in one step.
    pub max_batch: usize,
    /// Most requests waiting for the model thread; one more is answered 429 at once.
    pub queue: usize,
    /// Largest request body, in bytes; a larger one is answered 413.
    pub max_body_bytes: usize,
    /// Largest `max_tokens` a request may ask for; the model's context limits it too.
    pub max_tokens_limit: usize,
}

impl ServeConfig {
    /// The defaults for serving `served_model_name` on `addr`: batches of 16, a queue of 64,
    /// bodies up to 4 MiB, up to 4096 new tokens.
    pub fn new(addr: impl Into<String>, served_model_name: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            served_model_name: served_model_name.into(),
            max_batch: 16,
            queue: 64,
            max_body_bytes: 4 << 20,
            max_tokens_limit: 4096,
        }
    }

    /// Checks that every limit is at least 1.
    ///
    /// # Errors
    /// [`ServeError::Config`] naming the option.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("--max-batch", self.max_batch),
            ("--queue", self.queue),
            ("--max-body-bytes", self.max_body_bytes),
            ("--max-tokens-limit", self.max_tokens_limit),
        ] {
            if value == 0 {
                return Err(ServeError::Config(format!("{name} must be at least 1")));
            }
        }
        if self.served_model_name.is_empty() {
            return Err(ServeError::Config(
                "--served-model-name must not be empty".into(),
            ));
        }
        Ok(())
    }
}
