//! w2s: weak-to-strong reasoning.
//!
//! A strong language model learns to reason from a weaker supervisor without copying its mistakes:
//! it keeps the weak answers its own in-context answers agree with (Stage I), then trains on
//! preference pairs mined from its own samples (Stage II). This facade re-exports the crates:
//!
//! - [`data`]: record types, JSONL, atomic writes and digests, shared by every crate;
//! - [`llama`]: the Llama model, HF checkpoints, tokenizer and generation;
//! - [`losses`]: sequence log-probs, SFT and preference losses (DPO family, ORPO, SimPO);
//! - [`eval`]: tasks, answer grading, metrics and reports;
//! - [`arith`]: the built-in arithmetic task and its shipped base models;
//! - [`curation`]: Stage I selection, Stage II pair mining, supervision quality;
//! - [`train`]: SFT and preference trainers, checkpoints and resume, sampling and evaluation runs;
//! - [`openai`]: the OpenAI API's wire types, a client that samples from any compatible server,
//!   and resumable sampling into JSONL;
//! - [`serve`]: a model served over the OpenAI API (the `serve` example).
//!
//! [`backend`] picks the tensor backend from cargo features for the example binaries;
//! [`train_args`] holds the command-line options the `sft` and `preference` examples share;
//! [`model_io`] runs a model over JSONL lines for the `generate` and `score` examples, and
//! [`remote`] runs `generate --endpoint` through an OpenAI-compatible server instead;
//! [`throughput`] measures the trainers' steps for `benches/training.rs` and the `gpu_check`
//! example.

pub mod backend;
pub mod model_io;
pub mod remote;
pub mod throughput;
pub mod train_args;

pub use w2s_arith as arith;
pub use w2s_curation as curation;
pub use w2s_data as data;
pub use w2s_eval as eval;
pub use w2s_llama as llama;
pub use w2s_losses as losses;
pub use w2s_openai as openai;
pub use w2s_serve as serve;
pub use w2s_train as train;
