//! `w2s-train`: the only crate of w2s that owns an optimizer.
//!
//! - [`train_sft`]: supervised fine-tuning with the loss on the completion, or on a
//!   conversation's assistant turns.
//! - [`train_preference`]: DPO and its family, ORPO and SimPO (any [`PreferenceLossConfig`]),
//!   with a frozen reference model, precomputed reference log-probs
//!   ([`precompute_reference`]), or no reference for reference-free losses.
//! - Both share one loop: burn's AdamW with decoupled weight decay, warmup + cosine/linear
//!   schedule ([`schedule`]), gradient accumulation, clipping by global norm, token-budget
//!   batches with right padding, periodic evaluation, metrics as JSONL with a progress bar, and
//!   crash-safe checkpoints ([`checkpoint`]) from which a run resumes exactly.
//! - [`sample_dataset`]: n seeded samples per prompt over a dataset, as resumable JSONL.
//! - [`evaluate`]: greedy answers over a split, graded by w2s-eval into its report.
//! - [`PromptFormat`]: how a model reads the method's prompts, as text or through its chat
//!   template.
//! - [`memory_plan`]: what a training or sampling stage will hold, printed before it starts and
//!   checked against the memory there is.
//! - [`pipeline`]: the whole weak-to-strong method as stages over a run directory, sampling and
//!   training through seams whose engines each role's config chooses (in process, an
//!   OpenAI-compatible server, an external command).
//! - [`study`]: the supervision-quality study (hard vs subtask supervision, step-wise error rate,
//!   subtasks vs rephrased copies) over the same run directory.
//!
//! [`PreferenceLossConfig`]: w2s_losses::PreferenceLossConfig
#![warn(missing_docs)]

pub mod batching;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod evaluate;
pub mod memory_plan;
mod metrics_log;
pub mod optimizer;
pub mod pipeline;
pub mod preference;
pub mod prompt_format;
pub mod sampling;
pub mod schedule;
mod scoring;
pub mod sft;
pub mod study;
mod trainer;

pub use batching::{tokenize_pairs, tokenize_sft, TokenizedPair, TokenizedSft};
pub use checkpoint::{
    checkpoints, latest_checkpoint, load_checkpoint, load_newest_checkpoint, Checkpoint,
    TrainerState,
};
pub use config::{LrSchedule, Overlong, TrainConfig};
pub use error::{Result, TrainError};
pub use evaluate::{evaluate, grade_responses, EvalRun};
pub use memory_plan::{
    adapter_parameter_count, parameter_count, trained_parameter_count, MemoryBudget, MemoryPlan,
    MicroBatch, SamplingShape, TrainingShape,
};
pub use preference::{
    load_reference_cache, precompute_reference, save_reference_cache, train_preference, Reference,
};
pub use prompt_format::PromptFormat;
pub use sampling::{sample_dataset, PromptRecord, SamplingSummary};
pub use sft::train_sft;
pub use trainer::{TrainOptions, TrainOutcome};

/// The README's example, compiled (and, unless marked `no_run`, run) as a doctest so it stays
/// true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
