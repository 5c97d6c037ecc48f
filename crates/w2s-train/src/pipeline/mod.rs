//! The weak-to-strong pipeline of docs/method.md as typed stages over a run directory.
//!
//! [`run_pipeline`] runs, in order (`flow.rs`, one file per step in `stages/`): the splits (and,
//! for the built-in arithmetic task, the tokenizer and, for models from scratch, the pretraining
//! corpus); the strong and weak bases (given, built in, or from scratch and pretrained); weak SFT
//! on D_gold,1; the weak model's greedy labels on D_gold,2; the naive baseline (strong SFT on
//! every weak label) and the ceiling (strong SFT on gold D_gold,2); Stage I iterations (ICL
//! answers of the base with the weak model's solutions as demonstrations, final-answer
//! consistency, SFT on the weak, ICL and hybrid sets; later iterations take both sources from
//! the previous iteration's weak-set and ICL-set models); Stage II (n samples of M_plus,
//! confidence, pair mining against the weak labels, one preference run per configured loss);
//! greedy evaluation of every model on the test split; the report ([`PipelineReport`]).
//!
//! Every model is sampled through the [`Sampler`] seam and fine-tuned through the [`Trainer`]
//! seam. Each role (`[weak]`, `[strong]`, a [`Role`]) chooses its engines: w2s's own in this
//! process (the default), an OpenAI-compatible server for sampling, a command (TRL, accelerate,
//! ...) for training (docs/engines.md).
//!
//! Each stage writes under its own folder of the run directory and is skipped on a rerun when
//! its inputs are unchanged ([`run_dir`]).

pub(crate) mod config;
pub(crate) mod data;
mod flow;
pub(crate) mod models;
mod report;
mod role;
pub mod run_dir;
mod sampler;
mod stages;
mod trainer;

pub use config::{
    DataConfig, DecodeConfig, ModelSpec, NamedLoss, PipelineConfig, PretrainConfig, Stage1Config,
    Stage2Config, WeightedFamily,
};
pub use data::{Corpus, SplitData, SplitSizes};
pub use flow::{run_pipeline, PipelineOptions};
pub use models::{scratch_config, Trained};
pub use report::{
    summarize, summary_markdown, PipelineReport, Row, RowSpread, SetQuality, Stage1Iteration,
    Stage2Stats,
};
pub use role::{Role, SamplerSpec, TrainerSpec};
pub use sampler::{SampleRequest, Sampler};
pub use trainer::{TrainData, TrainJob, TrainKind, Trainer};
pub use w2s_arith::BaseModel;
