//! Supervised fine-tuning with the loss on the completion of prompt-completion records and on the
//! assistant turns of conversations.
//!
//! Each record becomes one row (`prompt ++ completion`, or the rendered conversation); the loss is
//! the token-mean negative log-likelihood of the tokens it covers (its targets), over the whole
//! optimizer step (TRL's `SFTTrainer` with `completion_only_loss`, or `assistant_only_loss` for
//! conversations, normalised by the step's target-token count as TRL's
//! `num_items_in_batch` does, so gradient accumulation changes nothing). Each step also logs
//! TRL's `mean_token_accuracy`: the share of the step's target tokens whose largest logit is
//! at their label, counted from the logits the chunked loss makes anyway. The evaluation set, when
//! given, reports `eval/loss` (the same token-mean NLL) and `eval/tokens` (its target tokens).

use std::collections::BTreeMap;

use burn::tensor::backend::AutodiffBackend;
use serde_json::Value;
use w2s_llama::{Llama, LlamaConfig};
use w2s_losses::{ChunkedLogprobsBackend, SftReduction};

use crate::batching::{check_sequence, pack, token_digest, Rows, TokenizedSft};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::scoring::{frozen_logprobs, hidden, model_device, policy_sft_loss, to_host, Scope};
use crate::trainer::{run, scalar, MicroStep, Objective, TrainOptions, TrainOutcome};

/// Fine-tunes `model` on `train`, evaluating on `eval` (may be empty).
///
/// Records longer than `max_seq_len` are an error or left out (`config.overlong`); a record with
/// nothing before its first target (an empty prompt) or no target is an error. The run resumes from `options.output_dir` when it
/// holds a checkpoint of the same config and data.
///
/// # Errors
/// [`TrainError::EmptyDataset`], [`TrainError::Record`], [`TrainError::Config`],
/// [`TrainError::NonFinite`] (the last good checkpoint stays), and I/O errors naming the file.
pub fn train_sft<B: AutodiffBackend + ChunkedLogprobsBackend>(
    model: Llama<B>,
    llama_config: &LlamaConfig,
    train: &[TokenizedSft],
    eval: &[TokenizedSft],
    config: &TrainConfig,
    options: &TrainOptions,
) -> Result<TrainOutcome<B>> {
    config.validate()?;
    let max_len = config
        .max_seq_len
        .unwrap_or(usize::MAX)
        .min(model.max_positions());
    let keep = |records: &[TokenizedSft]| -> Result<Vec<TokenizedSft>> {
        let mut kept = Vec::new();
        for (index, r) in records.iter().enumerate() {
            let context = r.context_len();
            if check_sequence(
                index,
                context,
                r.ids.len() - context,
                max_len,
                config.overlong,
            )? {
                kept.push(r.clone());
            }
        }
        Ok(kept)
    };
    if train.is_empty() {
        return Err(TrainError::EmptyDataset { what: "training" });
    }
    let records = keep(train)?;
    if records.is_empty() {
        return Err(TrainError::EmptyDataset { what: "training" });
    }
    let objective = Sft {
        skipped: train.len() - records.len(),
        records,
        eval: keep(eval)?,
        batch_tokens: config.batch_tokens,
        chunk: config.logprob_chunk_size,
    };
    let skipped = objective.skipped;
    run(model, llama_config, &objective, config, options, skipped)
}

struct Sft {
    records: Vec<TokenizedSft>,
    eval: Vec<TokenizedSft>,
    skipped: usize,
    batch_tokens: usize,
    chunk: usize,
}

/// Tokens of a record's row (its padded cost and its real tokens).
fn row_length(record: &TokenizedSft) -> usize {
    record.ids.len()
}

fn rows(records: &[TokenizedSft], batch: &[usize]) -> Rows {
    let mut rows = Rows::default();
    for &i in batch {
        rows.push_record(records[i].clone());
    }
    rows
}

impl<B: AutodiffBackend + ChunkedLogprobsBackend> Objective<B> for Sft {
    fn config_json(&self) -> Value {
        serde_json::json!({ "type": "sft", "skipped_records": self.skipped })
    }

    fn lengths(&self) -> Vec<usize> {
        self.records.iter().map(row_length).collect()
    }

    fn tokens(&self, batch: &[usize]) -> usize {
        batch.iter().map(|&i| row_length(&self.records[i])).sum()
    }

    fn token_digest(&self) -> u64 {
        token_digest(self.records.iter().flat_map(TokenizedSft::segments))
    }

    fn units(&self, batch: &[usize]) -> f64 {
        batch
            .iter()
            .map(|&i| self.records[i].target_len() as f64)
            .sum()
    }

    fn micro_step(
        &self,
        model: &Llama<B>,
        batch: &[usize],
        step_units: f64,
    ) -> Result<MicroStep<B>> {
        let padded = rows(&self.records, batch).to_batch::<B>(&model_device(model));
        let states = hidden(model, &padded)?;
        // This micro-batch's token sum over the whole step's target tokens.
        let reduction = SftReduction::TokenSum {
            num_tokens: step_units,
        };
        let out = policy_sft_loss(model, states, &padded, reduction, self.chunk)?;
        // This micro-batch's correct tokens over the whole step's target tokens.
        let accuracy = scalar(out.correct_tokens.float())? / step_units;
        Ok(MicroStep {
            loss: out.loss,
            metrics: vec![("mean_token_accuracy".into(), accuracy)],
        })
    }

    fn evaluate(&self, model: &Llama<B::InnerBackend>) -> Result<Option<BTreeMap<String, f64>>> {
        if self.eval.is_empty() {
            return Ok(None);
        }
        let lengths: Vec<usize> = self.eval.iter().map(row_length).collect();
        let order: Vec<usize> = (0..lengths.len()).collect();
        let device = model_device(model);
        let (mut nll, mut tokens) = (0.0, 0.0);
        for batch in pack(&lengths, &order, self.batch_tokens) {
            let padded = rows(&self.eval, &batch).to_batch(&device);
            let states = hidden(model, &padded)?;
            let logprobs = frozen_logprobs(model, states, &padded, Scope::Completion, self.chunk)?;
            nll -= to_host(logprobs.sum)?
                .iter()
                .map(|&x| f64::from(x))
                .sum::<f64>();
            tokens += to_host(logprobs.num_tokens)?
                .iter()
                .map(|&x| f64::from(x))
                .sum::<f64>();
        }
        Ok(Some(BTreeMap::from([
            ("loss".to_string(), nll / tokens),
            ("tokens".to_string(), tokens),
        ])))
    }
}
