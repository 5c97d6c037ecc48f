//! [`TrainConfig`]: every option that decides what a training run computes.
//!
//! The config is serde-(de)serializable (TOML or JSON, unknown keys rejected), checked by
//! [`TrainConfig::validate`], and saved as `train_config.json` in every checkpoint so that a run can
//! be reproduced, and resumed only with the config it started with. Defaults follow TRL's
//! `SFTConfig`/`DPOConfig` where they have one (AdamW β = (0.9, 0.999), ε = 1e-8, clipping at global
//! norm 1.0); the learning rate default is TRL's SFT one (2e-5).
//!
//! ```toml
//! learning_rate = 1e-5
//! schedule = "cosine"        # constant | linear | cosine
//! warmup_steps = 10
//! batch_tokens = 4096        # padded tokens (rows x longest row) per micro-batch
//! grad_accum_steps = 4       # micro-batches per optimizer step
//! epochs = 2
//! checkpoint_every = 100
//! ```

use serde::{Deserialize, Serialize};
use w2s_llama::LoraConfig;

use crate::error::{Result, TrainError};

/// Shape of the learning rate after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// Stay at the peak rate.
    Constant,
    /// Decay linearly towards `min_lr_ratio` x peak.
    Linear,
    /// Decay along half a cosine towards `min_lr_ratio` x peak.
    #[default]
    Cosine,
}

/// What to do with a sequence longer than the context (`max_seq_len`).
///
/// Truncation is not offered: cutting a reasoning completion removes its final answer, which
/// teaches the model to stop mid-solution; a too-long record is either an error or left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlong {
    /// Fail before training, naming the record.
    #[default]
    Error,
    /// Leave the record out and report how many were left out.
    Skip,
}

/// Options of an SFT or preference training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Peak learning rate, reached at the end of warmup.
    pub learning_rate: f64,
    /// Decay after warmup.
    pub schedule: LrSchedule,
    /// Optimizer steps of linear warmup from 0.
    pub warmup_steps: usize,
    /// Final learning rate as a fraction of the peak (0 decays to zero).
    pub min_lr_ratio: f64,
    /// Decoupled weight decay of AdamW (applied to every parameter, norms included: burn's AdamW
    /// has no parameter groups).
    pub weight_decay: f64,
    /// AdamW β1.
    pub adam_beta1: f64,
    /// AdamW β2.
    pub adam_beta2: f64,
    /// AdamW ε.
    pub adam_epsilon: f64,
    /// Clip the gradient to this global L2 norm (over all parameters together); `None` disables.
    pub max_grad_norm: Option<f64>,
    /// Passes over the training data.
    pub epochs: usize,
    /// Stop after this many optimizer steps even if epochs remain (the schedule spans these).
    pub max_steps: Option<usize>,
    /// Train at least this many optimizer steps, adding whole epochs as needed, so that a small
    /// set still gets enough updates (the schedule spans them all).
    pub min_steps: Option<usize>,
    /// Padded tokens per micro-batch: rows x longest row stays within this budget (a single
    /// longer record forms a micro-batch of its own). For preference pairs a row is one pair's
    /// chosen and rejected sequence together.
    pub batch_tokens: usize,
    /// Micro-batches whose gradients are summed before one optimizer step.
    pub grad_accum_steps: usize,
    /// Longest sequence (prompt + completion) trained on; `None` uses the model's context.
    pub max_seq_len: Option<usize>,
    /// What happens to longer sequences.
    pub overlong: Overlong,
    /// Reshuffle the data every epoch (seeded by `seed` and the epoch).
    pub shuffle: bool,
    /// Batch records of similar length together (within windows of the shuffled order, then the
    /// micro-batches are shuffled), so less of each batch is padding; HF's `group_by_length`.
    pub group_by_length: bool,
    /// Seed of the data order.
    pub seed: u64,
    /// Evaluate on the evaluation set every this many steps (and at the end), when one is given.
    pub eval_every: Option<usize>,
    /// Save a checkpoint every this many steps; the last step is always saved.
    pub checkpoint_every: Option<usize>,
    /// Tokens per chunk of the memory-efficient log-prob path (the lm_head never materializes
    /// more than `chunk x vocab` logits).
    pub logprob_chunk_size: usize,
    /// Train LoRA adapters on a frozen base instead of every weight (a `[lora]` table; absent
    /// means full fine-tuning). The adapters are drawn from `seed`; the run saves them in PEFT's
    /// layout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraConfig>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            learning_rate: 2e-5,
            schedule: LrSchedule::Cosine,
            warmup_steps: 0,
            min_lr_ratio: 0.0,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            max_grad_norm: Some(1.0),
            epochs: 1,
            max_steps: None,
            min_steps: None,
            batch_tokens: 8192,
            grad_accum_steps: 1,
            max_seq_len: None,
            overlong: Overlong::Error,
            shuffle: true,
            group_by_length: false,
            seed: 42,
            eval_every: None,
            checkpoint_every: None,
            logprob_chunk_size: w2s_losses::DEFAULT_CHUNK_SIZE,
            lora: None,
        }
    }
}

impl TrainConfig {
    /// Checks every option's range.
    ///
    /// # Errors
    /// [`TrainError::Config`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        let positive = |field, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(TrainError::config(
                    field,
                    format!("= {v} must be finite and > 0"),
                ))
            }
        };
        let unit = |field, v: f64, open_top: bool| {
            let ok = v >= 0.0 && if open_top { v < 1.0 } else { v <= 1.0 };
            if ok {
                Ok(())
            } else {
                let range = if open_top { "[0, 1)" } else { "[0, 1]" };
                Err(TrainError::config(
                    field,
                    format!("= {v} must lie in {range}"),
                ))
            }
        };
        let nonzero = |field, v: usize| {
            if v > 0 {
                Ok(())
            } else {
                Err(TrainError::config(field, "must be at least 1"))
            }
        };
        positive("learning_rate", self.learning_rate)?;
        unit("min_lr_ratio", self.min_lr_ratio, false)?;
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(TrainError::config(
                "weight_decay",
                format!("= {} must be finite and >= 0", self.weight_decay),
            ));
        }
        unit("adam_beta1", self.adam_beta1, true)?;
        unit("adam_beta2", self.adam_beta2, true)?;
        positive("adam_epsilon", self.adam_epsilon)?;
        if let Some(norm) = self.max_grad_norm {
            positive("max_grad_norm", norm)?;
        }
        nonzero("epochs", self.epochs)?;
        if let Some(steps) = self.min_steps {
            nonzero("min_steps", steps)?;
        }
        if let Some(steps) = self.max_steps {
            nonzero("max_steps", steps)?;
        }
        nonzero("batch_tokens", self.batch_tokens)?;
        nonzero("grad_accum_steps", self.grad_accum_steps)?;
        if let Some(len) = self.max_seq_len {
            if len < 2 {
                return Err(TrainError::config(
                    "max_seq_len",
                    "must be at least 2 (one prompt and one completion token)",
                ));
            }
        }
        if let Some(n) = self.eval_every {
            nonzero("eval_every", n)?;
        }
        if let Some(n) = self.checkpoint_every {
            nonzero("checkpoint_every", n)?;
        }
        nonzero("logprob_chunk_size", self.logprob_chunk_size)?;
        if let Some(lora) = &self.lora {
            lora.validate()
                .map_err(|e| TrainError::config("lora", e.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_fills_defaults_and_rejects_unknown_keys() -> anyhow::Result<()> {
        let config: TrainConfig = toml::from_str("learning_rate = 1e-4\nschedule = \"linear\"")?;
        assert_eq!(config.learning_rate, 1e-4);
        assert_eq!(config.schedule, LrSchedule::Linear);
        assert_eq!(config.adam_beta2, 0.999);
        config.validate()?;
        assert!(toml::from_str::<TrainConfig>("learning_rat = 1e-4").is_err());
        Ok(())
    }

    #[test]
    fn validate_names_the_bad_field() {
        type Break = fn(&mut TrainConfig);
        let cases: [(&str, Break); 7] = [
            ("learning_rate", |c| c.learning_rate = 0.0),
            ("learning_rate", |c| c.learning_rate = f64::NAN),
            ("adam_beta1", |c| c.adam_beta1 = 1.0),
            ("max_grad_norm", |c| c.max_grad_norm = Some(-1.0)),
            ("batch_tokens", |c| c.batch_tokens = 0),
            ("grad_accum_steps", |c| c.grad_accum_steps = 0),
            ("min_lr_ratio", |c| c.min_lr_ratio = 1.5),
        ];
        for (field, break_it) in cases {
            let mut config = TrainConfig::default();
            break_it(&mut config);
            match config.validate() {
                Err(TrainError::Config { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected a config error, got {other:?}"),
            }
        }
    }
}
