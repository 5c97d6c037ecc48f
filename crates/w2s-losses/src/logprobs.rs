//! Sequence log-probabilities from logits: per token, summed, and length-averaged.
//!
//! For a sequence with logits `x_t` (over the vocabulary) and labels `y_t`,
//!
//! ```text
//! logp_t = x_t[y_t] - logsumexp(x_t)          (f32, max-subtracted)
//! sum    = Σ_{t: mask_t} logp_t               (DPO, IPO, hinge: "logps" in TRL)
//! mean   = sum / #{t: mask_t}                 (SimPO, ORPO: average_log_prob=True)
//! ```
//!
//! This is TRL's `selective_log_softmax` (`trl/trainer/utils.py`) followed by the masked sum of
//! `DPOTrainer._compute_loss` (`trl/trainer/dpo_trainer.py`). Logits in bf16/f16 are cast to f32
//! first, as TRL, Liger and the original DPO code do; f64 stays f64.
//!
//! # Alignment
//! `labels[b, t]` is the token whose probability `logits[b, t]` gives: the caller has already
//! shifted. A causal LM's logits at position `t` predict token `t + 1`, so from a model's raw
//! output use [`shift_for_next_token`], which drops the last position and the first token exactly
//! as TRL does (`logits[:, :-1]`, `input_ids[:, 1:]`, `completion_mask[:, 1:]`).
//!
//! # Shapes
//! `b` batch, `s` sequence, `v` vocabulary, `d` model dimension.

use burn::tensor::{backend::Backend, Bool, DType, FloatDType, Int, Tensor};

use crate::error::Result;
use crate::validate::{check_labels, completion_counts, expect_shape, mask_to_host};
use w2s_kernels::token_logprobs;

/// Log-probabilities of a batch of sequences under a completion mask.
///
/// All tensors are f32 (or f64 when the input was f64). `sum` and `tokens` carry gradients;
/// `num_tokens` and `logits_mean_sum` do not.
#[derive(Debug, Clone)]
pub struct SequenceLogprobs<B: Backend> {
    /// `[b, s]` per-token log-probs, exactly 0 outside the mask.
    pub tokens: Tensor<B, 2>,
    /// `[b]` summed log-prob of the masked tokens.
    pub sum: Tensor<B, 1>,
    /// `[b]` number of masked tokens (always at least 1).
    pub num_tokens: Tensor<B, 1>,
    /// `[b]` Σ over masked tokens of the vocabulary-mean logit, for TRL's `logits/*` metrics.
    pub logits_mean_sum: Tensor<B, 1>,
}

impl<B: Backend> SequenceLogprobs<B> {
    /// `[b]` length-averaged log-prob, `sum / num_tokens`.
    pub fn mean(&self) -> Tensor<B, 1> {
        self.sum.clone() / self.num_tokens.clone()
    }

    /// The same values cut from the autodiff graph, e.g. to use as precomputed reference
    /// log-probs.
    pub fn detach(self) -> Self {
        Self {
            tokens: self.tokens.detach(),
            sum: self.sum.detach(),
            num_tokens: self.num_tokens,
            logits_mean_sum: self.logits_mean_sum,
        }
    }

    /// Builds the struct from per-token log-probs computed elsewhere (e.g. by a fused kernel, or
    /// TRL-style precomputed values); values outside the mask are ignored.
    ///
    /// # Shapes
    /// `tokens`, `logits_mean` (vocabulary-mean logit per position), `mask`: `[b, s]`
    pub fn from_tokens(
        tokens: Tensor<B, 2>,
        logits_mean: Tensor<B, 2>,
        mask: Tensor<B, 2, Bool>,
    ) -> Self {
        let outside = mask.bool_not();
        let outside_tokens = outside.clone();
        let num_tokens = tokens
            .ones_like()
            .mask_fill(outside.clone(), 0.0)
            .sum_dim(1)
            .squeeze_dim(1);
        let logits_mean_sum = logits_mean
            .detach()
            .mask_fill(outside, 0.0)
            .sum_dim(1)
            .squeeze_dim(1);
        let tokens = tokens.mask_fill(outside_tokens, 0.0);
        Self {
            sum: tokens.clone().sum_dim(1).squeeze_dim(1),
            tokens,
            num_tokens,
            logits_mean_sum,
        }
    }
}

/// Inputs aligned for next-token prediction; see [`shift_for_next_token`].
#[derive(Debug, Clone)]
pub struct NextTokenInputs<B: Backend> {
    /// `[b, s - 1, v]` logits (or `[b, s - 1, d]` hidden states) of positions `0..s-1`.
    pub inputs: Tensor<B, 3>,
    /// `[b, s - 1]` tokens `1..s`: the label of each remaining position.
    pub labels: Tensor<B, 2, Int>,
    /// `[b, s - 1]` completion mask of tokens `1..s`.
    pub mask: Tensor<B, 2, Bool>,
}

/// Aligns a causal LM's output with the tokens it predicts.
///
/// `inputs` is either the logits `[b, s, v]` or the final hidden states `[b, s, d]` of a forward
/// pass over `input_ids`; `completion_mask` marks the tokens of `input_ids` that count (the
/// completion, not the prompt or the padding).
///
/// # Shapes
/// - `inputs`: `[b, s, v]` or `[b, s, d]`, `input_ids`: `[b, s]`, `completion_mask`: `[b, s]`
/// - output: `[b, s - 1, ·]`, `[b, s - 1]`, `[b, s - 1]`
///
/// # Errors
/// [`crate::Error::Shape`] if the batch or sequence sizes differ or `s < 2`.
pub fn shift_for_next_token<B: Backend>(
    inputs: Tensor<B, 3>,
    input_ids: Tensor<B, 2, Int>,
    completion_mask: Tensor<B, 2, Bool>,
) -> Result<NextTokenInputs<B>> {
    let [b, s, _] = inputs.dims();
    let op = "shift_for_next_token";
    expect_shape(op, "input_ids", &input_ids.dims(), &[b, s], "[b, s]")?;
    expect_shape(
        op,
        "completion_mask",
        &completion_mask.dims(),
        &[b, s],
        "[b, s]",
    )?;
    if s < 2 {
        return Err(crate::Error::Shape {
            op,
            arg: "inputs",
            actual: inputs.dims().to_vec(),
            expected: "at least 2 positions (s >= 2)".into(),
        });
    }
    Ok(NextTokenInputs {
        inputs: inputs.slice_dim(1, 0..s - 1),
        labels: input_ids.slice_dim(1, 1..s),
        mask: completion_mask.slice_dim(1, 1..s),
    })
}

/// Casts half-precision floats to f32; f32 and f64 pass through unchanged.
pub(crate) fn upcast<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    match x.dtype() {
        DType::F16 | DType::BF16 => x.cast(FloatDType::F32),
        _ => x,
    }
}

/// Sequence log-probs from full logits (the plain path).
///
/// ```text
/// logp[b, t] = logits[b, t, labels[b, t]] - logsumexp_v(logits[b, t, :])   where mask[b, t]
/// ```
///
/// Labels outside the mask are ignored (they may hold padding or `-100`).
///
/// # Shapes
/// - `logits`: `[b, s, v]` (any float dtype; computed in f32 or wider)
/// - `labels`: `[b, s]`, already aligned with `logits` (see [`shift_for_next_token`])
/// - `mask`: `[b, s]`, true on completion tokens
///
/// # Errors
/// - [`crate::Error::Shape`] on mismatched shapes,
/// - [`crate::Error::EmptyCompletion`] if a row has no masked token,
/// - [`crate::Error::LabelOutOfRange`] if a masked label is not in `[0, v)`.
pub fn sequence_logprobs<B: Backend>(
    logits: Tensor<B, 3>,
    labels: Tensor<B, 2, Int>,
    mask: Tensor<B, 2, Bool>,
) -> Result<SequenceLogprobs<B>> {
    let [b, s, v] = logits.dims();
    expect_shape(
        "sequence_logprobs",
        "labels",
        &labels.dims(),
        &[b, s],
        "[b, s]",
    )?;
    expect_shape("sequence_logprobs", "mask", &mask.dims(), &[b, s], "[b, s]")?;
    let host_mask = mask_to_host(&mask)?;
    completion_counts(&host_mask, s)?;
    check_labels(&labels, &host_mask, s, v)?;

    let logits = upcast(logits);
    // Out-of-mask labels may be -100 or padding: make them a valid index before the gather.
    let labels = labels.mask_fill(mask.clone().bool_not(), 0);
    let logits_mean = logits.clone().detach().mean_dim(2).squeeze_dim(2);
    let tokens =
        token_logprobs(logits.reshape([b * s, v]), labels.reshape([b * s])).reshape([b, s]);
    Ok(SequenceLogprobs::from_tokens(tokens, logits_mean, mask))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    type B = Flex;

    fn host(t: Tensor<B, 1>) -> Vec<f64> {
        t.into_data()
            .convert::<f64>()
            .to_vec::<f64>()
            .unwrap_or_default()
    }

    #[test]
    fn uniform_logits_give_minus_log_v_per_token() -> anyhow::Result<()> {
        let dev = Default::default();
        let logits = Tensor::<B, 3>::zeros([2, 3, 4], &dev);
        let labels =
            Tensor::<B, 2, Int>::from_data(TensorData::from([[0, 1, 2], [3, -100, 0]]), &dev);
        let mask = Tensor::<B, 2, Bool>::from_data(
            TensorData::from([[true, true, true], [true, false, false]]),
            &dev,
        );
        let lp = sequence_logprobs(logits, labels, mask)?;
        let ln4 = 4f64.ln();
        assert_eq!(host(lp.num_tokens.clone()), vec![3.0, 1.0]);
        let sum = host(lp.sum.clone());
        assert!((sum[0] + 3.0 * ln4).abs() < 1e-6 && (sum[1] + ln4).abs() < 1e-6);
        let mean = host(lp.mean());
        assert!((mean[0] + ln4).abs() < 1e-6 && (mean[1] + ln4).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn empty_completion_is_an_error() {
        let dev = Default::default();
        let err = sequence_logprobs(
            Tensor::<B, 3>::zeros([2, 2, 3], &dev),
            Tensor::<B, 2, Int>::zeros([2, 2], &dev),
            Tensor::<B, 2, Bool>::from_data(
                TensorData::from([[true, false], [false, false]]),
                &dev,
            ),
        );
        assert!(matches!(err, Err(crate::Error::EmptyCompletion { row: 1 })));
    }

    #[test]
    fn out_of_range_label_and_bad_shape_are_errors() {
        let dev = Default::default();
        let mask = Tensor::<B, 2, Bool>::from_data(TensorData::from([[true, true]]), &dev);
        let labels = Tensor::<B, 2, Int>::from_data(TensorData::from([[0, 3]]), &dev);
        let err = sequence_logprobs(Tensor::<B, 3>::zeros([1, 2, 3], &dev), labels, mask.clone());
        assert!(matches!(
            err,
            Err(crate::Error::LabelOutOfRange {
                label: 3,
                position: 1,
                ..
            })
        ));
        let err = sequence_logprobs(
            Tensor::<B, 3>::zeros([1, 3, 3], &dev),
            Tensor::<B, 2, Int>::zeros([1, 2], &dev),
            mask,
        );
        assert!(matches!(
            err,
            Err(crate::Error::Shape { arg: "labels", .. })
        ));
    }

    #[test]
    fn shift_drops_last_position_and_first_token() -> anyhow::Result<()> {
        let dev = Default::default();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::from([[5, 6, 7]]), &dev);
        let mask = Tensor::<B, 2, Bool>::from_data(TensorData::from([[false, true, true]]), &dev);
        let shifted = shift_for_next_token(Tensor::<B, 3>::zeros([1, 3, 8], &dev), ids, mask)?;
        assert_eq!(shifted.inputs.dims(), [1, 2, 8]);
        assert_eq!(
            shifted
                .labels
                .into_data()
                .convert::<i64>()
                .to_vec::<i64>()
                .ok(),
            Some(vec![6, 7])
        );
        assert_eq!(
            shifted.mask.into_data().to_vec::<bool>().ok(),
            Some(vec![true, true])
        );
        Ok(())
    }
}
