//! Command-line options shared by the `sft` and `preference` examples: where the model and data
//! are, where the run writes, and the training options that override the `[train]` table of a
//! TOML config file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use serde::de::DeserializeOwned;
use w2s_eval::jsonl::{read_jsonl, BadLines};
use w2s_train::{LrSchedule, TrainConfig};

/// Options of a training run.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Model directory to start from (HF layout: config.json, weights, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Training data, JSONL.
    #[arg(long)]
    pub train: PathBuf,
    /// Evaluation data, JSONL (same format), evaluated every --eval-every steps and at the end.
    #[arg(long)]
    pub eval: Option<PathBuf>,
    /// Output directory: checkpoints ckpt-N/, metrics.jsonl, and the trained model in final/.
    #[arg(long)]
    pub output: PathBuf,
    /// TOML config file; its [train] table holds any field of w2s_train::TrainConfig. Options
    /// given on the command line override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Peak learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Schedule after warmup: constant, linear or cosine.
    #[arg(long)]
    pub schedule: Option<String>,
    /// Optimizer steps of linear warmup.
    #[arg(long)]
    pub warmup_steps: Option<usize>,
    /// AdamW decoupled weight decay.
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Clip gradients to this global L2 norm (0 disables clipping).
    #[arg(long)]
    pub max_grad_norm: Option<f64>,
    /// Passes over the training data.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Stop after this many optimizer steps.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Padded tokens per micro-batch (rows x longest row).
    #[arg(long)]
    pub batch_tokens: Option<usize>,
    /// Micro-batches per optimizer step.
    #[arg(long)]
    pub grad_accum: Option<usize>,
    /// Longest sequence trained on (default: the model's context).
    #[arg(long)]
    pub max_seq_len: Option<usize>,
    /// Leave out sequences over --max-seq-len instead of failing.
    #[arg(long)]
    pub skip_overlong: bool,
    /// Seed of the data order.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Evaluate every this many steps.
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// Save a checkpoint every this many steps (the last step is always saved).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Start from scratch even if --output holds a checkpoint of this run.
    #[arg(long)]
    pub no_resume: bool,
    /// Do not append the EOS token to completions.
    #[arg(long)]
    pub no_eos: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Reads `[table]` of a TOML file into `T` (the default when the file or table is absent).
pub fn config_table<T: DeserializeOwned + Default>(file: Option<&Path>, table: &str) -> Result<T> {
    let Some(path) = file else {
        return Ok(T::default());
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let mut doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    match doc.remove(table) {
        Some(value) => value
            .try_into()
            .with_context(|| format!("{}: table [{table}]", path.display())),
        None => Ok(T::default()),
    }
}

/// Reads every record of a JSONL file.
pub fn read_records<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    Ok(read_jsonl(path, BadLines::Fail)?.records)
}

/// What a run starts from: the model (on the training backend), its tokenizer, and the EOS id
/// appended to completions (none with `--no-eos` or when the config names none).
pub struct Start {
    /// The model directory given with `--model`.
    pub dir: w2s_llama::ModelDir<crate::backend::Training>,
    /// Its tokenizer.
    pub tokenizer: w2s_llama::Tokenizer,
    /// EOS id appended to every completion.
    pub eos: Option<u32>,
}

impl TrainArgs {
    /// Loads `--model` with its tokenizer.
    pub fn start(&self) -> Result<Start> {
        let dir = w2s_llama::ModelDir::load(&self.model, &crate::backend::device())
            .with_context(|| format!("loading {}", self.model.display()))?;
        let tokenizer = dir.tokenizer()?.clone();
        let eos = (!self.no_eos)
            .then(|| dir.config.eos_token_ids().first().copied())
            .flatten();
        Ok(Start {
            dir,
            tokenizer,
            eos,
        })
    }

    /// Reads `--train` and `--eval` (empty when absent) as records `T` and tokenizes them.
    pub fn datasets<T: DeserializeOwned, U>(
        &self,
        tokenize: impl Fn(&[T]) -> w2s_train::Result<Vec<U>>,
    ) -> Result<(Vec<U>, Vec<U>)> {
        let read = |path: &Path| -> Result<Vec<U>> {
            let records: Vec<T> = read_records(path)?;
            tokenize(&records).with_context(|| format!("{}", path.display()))
        };
        let eval = match &self.eval {
            Some(path) => read(path)?,
            None => Vec::new(),
        };
        Ok((read(&self.train)?, eval))
    }

    /// The config file's `[train]` table with the command-line options applied, validated.
    pub fn train_config(&self) -> Result<TrainConfig> {
        let mut c: TrainConfig = config_table(self.config.as_deref(), "train")?;
        let set = |slot: &mut usize, v: Option<usize>| v.into_iter().for_each(|v| *slot = v);
        if let Some(v) = self.lr {
            c.learning_rate = v;
        }
        if let Some(s) = &self.schedule {
            c.schedule = match s.as_str() {
                "constant" => LrSchedule::Constant,
                "linear" => LrSchedule::Linear,
                "cosine" => LrSchedule::Cosine,
                other => anyhow::bail!("--schedule {other}: expected constant, linear or cosine"),
            };
        }
        set(&mut c.warmup_steps, self.warmup_steps);
        if let Some(v) = self.weight_decay {
            c.weight_decay = v;
        }
        if let Some(v) = self.max_grad_norm {
            c.max_grad_norm = (v > 0.0).then_some(v);
        }
        set(&mut c.epochs, self.epochs);
        set(&mut c.batch_tokens, self.batch_tokens);
        set(&mut c.grad_accum_steps, self.grad_accum);
        c.max_steps = self.max_steps.or(c.max_steps);
        c.max_seq_len = self.max_seq_len.or(c.max_seq_len);
        if self.skip_overlong {
            c.overlong = w2s_train::Overlong::Skip;
        }
        if let Some(v) = self.seed {
            c.seed = v;
        }
        c.eval_every = self.eval_every.or(c.eval_every);
        c.checkpoint_every = self.checkpoint_every.or(c.checkpoint_every);
        c.validate()?;
        Ok(c)
    }

    /// Where and how the run writes.
    pub fn options(&self, tokenizer: Option<w2s_llama::Tokenizer>) -> w2s_train::TrainOptions {
        w2s_train::TrainOptions {
            resume: !self.no_resume,
            quiet: self.quiet,
            tokenizer,
            ..w2s_train::TrainOptions::new(&self.output)
        }
    }
}
