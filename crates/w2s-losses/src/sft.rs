//! Supervised fine-tuning loss: completion-only cross entropy.
//!
//! ```text
//! token mean    (TRL default):  −Σ_i Σ_t logp_it / Σ_i n_i
//! sequence mean (option):       −(1/b) Σ_i (Σ_t logp_it / n_i)
//! token sum / N (accumulation): −Σ_i Σ_t logp_it / N
//! ```
//!
//! Only masked (completion) tokens count: prompt and padding carry no loss, as with TRL's
//! `completion_only_loss` (labels −100 outside `completion_mask`, `trl/trainer/sft_trainer.py`).
//! The token mean weights every token equally, so long completions dominate; the sequence mean
//! weights every example equally. For gradient accumulation over several micro-batches, divide
//! each micro-batch's token sum by the token count of the whole accumulated batch
//! ([`SftReduction::TokenSum`]; TRL's `num_items_in_batch`), which makes the accumulated gradient
//! equal that of one big batch.

use burn::tensor::{backend::Backend, Bool, Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::chunked::{weighted_logprob_sum_from_hidden, ChunkedLogprobsBackend};
use crate::error::{Error, Result};
use crate::logprobs::SequenceLogprobs;
#[cfg(doc)]
use crate::sequence_logprobs_from_hidden;

/// How token NLLs are reduced to one loss.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SftReduction {
    /// Mean over all completion tokens of the batch (TRL's default).
    #[default]
    TokenMean,
    /// Mean over sequences of each sequence's token-mean NLL.
    SequenceMean,
    /// Sum of token NLLs divided by `num_tokens`, the completion-token count of the whole
    /// accumulated batch.
    TokenSum {
        /// Normaliser, > 0.
        num_tokens: f64,
    },
}

/// The SFT loss of a batch.
///
/// # Shapes
/// `logprobs.sum`, `logprobs.num_tokens`: `[b]` → `[1]`
///
/// # Errors
/// [`Error::InvalidParameter`] if a [`SftReduction::TokenSum`] normaliser is not positive.
pub fn sft_loss<B: Backend>(
    logprobs: &SequenceLogprobs<B>,
    reduction: SftReduction,
) -> Result<Tensor<B, 1>> {
    reduction.check()?;
    let nll = logprobs.sum.clone().neg();
    Ok(match reduction {
        SftReduction::TokenMean => nll.sum() / logprobs.num_tokens.clone().sum(),
        SftReduction::SequenceMean => (nll / logprobs.num_tokens.clone()).mean(),
        SftReduction::TokenSum { num_tokens } => nll.sum().div_scalar(num_tokens),
    })
}

/// What [`sft_loss_from_hidden`] computes.
#[derive(Debug, Clone)]
pub struct SftLossOutput<B: Backend> {
    /// `[1]` the loss, with its gradient.
    pub loss: Tensor<B, 1>,
    /// `[1]` completion tokens whose largest logit is at their label (the first largest, as
    /// torch's `argmax`); no gradient.
    pub correct_tokens: Tensor<B, 1, Int>,
    /// Completion tokens of the batch.
    pub num_tokens: usize,
}

/// The SFT loss straight from final hidden states and the lm_head weight, chunk by chunk, with
/// its gradient taken in the same pass, and how many completion tokens the logits predict right
/// (TRL's `mean_token_accuracy` is `correct_tokens / num_tokens`), counted from the logits the
/// pass makes anyway.
///
/// Equal to [`sft_loss`] over [`sequence_logprobs_from_hidden`] (within f32 rounding), and as
/// sparing of memory, but one lm_head-sized product per step cheaper: the loss is a weighted
/// sum of token log-probs whose weights (`-1/N` for the token sums, `-1/(b·n_i)` for the
/// sequence mean) are known before it is computed, so each chunk's gradient is taken from the
/// logits the forward pass has just made instead of recomputing them in backward
/// ([`ChunkedLogprobsBackend::chunked_weighted_logprob_sum`]).
///
/// # Shapes
/// As [`sequence_logprobs_from_hidden`]; `loss` and `correct_tokens` `[1]`.
///
/// # Errors
/// As [`sequence_logprobs_from_hidden`] and [`sft_loss`].
pub fn sft_loss_from_hidden<B: ChunkedLogprobsBackend>(
    hidden: Tensor<B, 3>,
    weight: Tensor<B, 2>,
    labels: Tensor<B, 2, Int>,
    mask: Tensor<B, 2, Bool>,
    reduction: SftReduction,
    chunk_size: usize,
) -> Result<SftLossOutput<B>> {
    reduction.check()?;
    let (total, num_tokens) = weighted_logprob_sum_from_hidden(
        hidden,
        weight,
        labels,
        mask,
        chunk_size,
        |row, counts| match reduction {
            SftReduction::TokenMean => -1.0 / counts.iter().sum::<usize>() as f32,
            SftReduction::SequenceMean => -1.0 / (counts.len() * counts[row]) as f32,
            SftReduction::TokenSum { num_tokens } => (-1.0 / num_tokens) as f32,
        },
    )?;
    Ok(SftLossOutput {
        loss: total.sum,
        correct_tokens: total.correct_tokens,
        num_tokens,
    })
}

impl SftReduction {
    /// Rejects a [`SftReduction::TokenSum`] normaliser that is not positive.
    fn check(self) -> Result<()> {
        match self {
            Self::TokenSum { num_tokens } if !(num_tokens.is_finite() && num_tokens > 0.0) => {
                Err(Error::InvalidParameter {
                    name: "num_tokens",
                    value: num_tokens,
                    reason: "must be finite and > 0",
                })
            }
            Self::TokenSum { .. } | Self::TokenMean | Self::SequenceMean => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::{Bool, TensorData};

    #[test]
    fn token_vs_sequence_mean_by_hand() -> anyhow::Result<()> {
        // Token log-probs [[−0.1, −0.5, −2.0], [−1.0]], by hand:
        // token mean 3.6 / 4 = 0.9, sequence mean (2.6/3 + 1.0)/2 = 0.933333.
        let dev = Default::default();
        let tokens = Tensor::<Flex, 2>::from_data(
            TensorData::from([[-0.1, -0.5, -2.0], [-1.0, 0.0, 0.0]]),
            &dev,
        );
        let mask = Tensor::<Flex, 2, Bool>::from_data(
            TensorData::from([[true, true, true], [true, false, false]]),
            &dev,
        );
        let lp = SequenceLogprobs::from_tokens(tokens.clone(), tokens.zeros_like(), mask);
        let value = |r| -> anyhow::Result<f64> { Ok(f64::from(sft_loss(&lp, r)?.into_scalar())) };
        assert!((value(SftReduction::TokenMean)? - 0.9).abs() < 1e-6);
        assert!((value(SftReduction::SequenceMean)? - 0.933333).abs() < 1e-6);
        assert!((value(SftReduction::TokenSum { num_tokens: 8.0 })? - 0.45).abs() < 1e-6);
        assert!(sft_loss(&lp, SftReduction::TokenSum { num_tokens: 0.0 }).is_err());
        Ok(())
    }
}
