//! The one error type of `w2s-train`.
//!
//! Errors about files carry the path; errors about data carry the record index, so a user can find
//! the offending line; a diverged run names the step it diverged at.

use std::path::{Path, PathBuf};

/// Errors raised while preparing data, training, checkpointing, sampling or evaluating.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    // === Configuration and data ===
    /// A training option has a value that cannot work.
    #[error("invalid training config: `{field}` {reason}")]
    Config {
        /// The offending field, as spelled in the config file.
        field: &'static str,
        /// What was wrong and what is allowed.
        reason: String,
    },
    /// The dataset has no usable record.
    #[error("the {what} dataset is empty")]
    EmptyDataset {
        /// Which dataset ("training", "evaluation", ...).
        what: &'static str,
    },
    /// A record cannot be trained on.
    #[error("record {index}: {reason}")]
    Record {
        /// 0-based index of the record in its dataset.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },

    // === Training ===
    /// The loss or the gradient norm became NaN or infinite; the last good checkpoint is kept.
    #[error("{what} is {value} at step {step}; stopping (the last good checkpoint is kept)")]
    NonFinite {
        /// "loss" or "gradient norm".
        what: &'static str,
        /// The 1-based optimizer step that diverged.
        step: usize,
        /// The loss value.
        value: f64,
    },
    /// A checkpoint does not belong to this run (different config or data) or is damaged.
    #[error("{path}: cannot resume: {reason}")]
    Resume {
        /// The checkpoint directory.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },

    /// The memory plan of a stage is larger than the memory budget; nothing was run.
    #[error("not enough memory: {reason}")]
    OverMemoryBudget {
        /// What the stage needs, its largest parts, and what to change.
        reason: String,
    },

    // === External engines ===
    /// The config of a role's sampler or trainer (`[strong.sampler]`, `[weak.trainer]`, ...)
    /// cannot work.
    #[error("invalid engine config: `{field}` {reason}")]
    Engine {
        /// The offending key, as spelled in the pipeline config (`weak.trainer.sft`).
        field: String,
        /// What was wrong and what is allowed.
        reason: String,
    },
    /// A command template does not parse or names a placeholder it cannot fill.
    #[error("command template {template:?}: {reason}")]
    Template {
        /// The template as written.
        template: String,
        /// What was wrong.
        reason: String,
    },
    /// An external command could not start or exited unsuccessfully; the log holds its output.
    #[error("command `{command}` {status}; the last lines of {log}:\n{tail}")]
    Command {
        /// The command line as run (words quoted where they hold spaces).
        command: String,
        /// `failed (exit status: 3)`, `could not start: ...`
        status: String,
        /// Its combined stdout and stderr.
        log: PathBuf,
        /// The last lines of the log.
        tail: String,
    },
    /// An external trainer finished without a usable model where the config says it writes one.
    #[error("{dir}: {reason}")]
    TrainedModel {
        /// Where the model was expected.
        dir: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// An OpenAI-compatible server does not serve the model a stage samples.
    #[error(
        "{endpoint} does not serve model {model:?} (it serves: {served}); start the engine on \
         that model (e.g. `vllm serve {model}`) and rerun: finished stages are reused"
    )]
    NotServed {
        /// The API's base URL.
        endpoint: String,
        /// The model name the stage asks for.
        model: String,
        /// The names the server lists, comma-separated.
        served: String,
    },

    // === Files ===
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file did not parse.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// The optimizer state could not be encoded or decoded.
    #[error("{path}: optimizer state: {reason}")]
    OptimizerState {
        /// The file.
        path: PathBuf,
        /// The recorder's error.
        reason: String,
    },

    // === Other crates ===
    /// The model, its checkpoint or generation failed.
    #[error(transparent)]
    Llama(#[from] w2s_llama::LlamaError),
    /// A loss rejected its inputs.
    #[error(transparent)]
    Loss(#[from] w2s_losses::Error),
    /// Loading a benchmark, grading or a report failed.
    #[error(transparent)]
    Eval(#[from] w2s_eval::EvalError),
    /// Reading or writing a file failed; the error names the file and, for JSONL, the line.
    #[error(transparent)]
    Data(#[from] w2s_data::DataError),
    /// The built-in arithmetic task refused a setting, or its files could not be written.
    #[error(transparent)]
    Arith(#[from] w2s_arith::ArithError),
    /// Curation (Stage I selection, Stage II mining, quality) failed.
    #[error(transparent)]
    Curation(#[from] w2s_curation::CurationError),
    /// Sampling over the OpenAI API failed.
    #[error(transparent)]
    OpenAi(#[from] w2s_openai::OpenAiError),
    /// Reading a tensor back from the device failed.
    #[error("reading tensor data: {0}")]
    TensorData(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, TrainError>;

impl TrainError {
    pub(crate) fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Config {
            field,
            reason: reason.into(),
        }
    }
}
