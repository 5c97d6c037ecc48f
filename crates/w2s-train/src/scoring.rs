//! Completion log-probs of a padded batch under a model: with gradients for the policy being
//! trained, without for a frozen reference or an evaluation.
//!
//! Both go through the final hidden states and the lm_head chunk by chunk
//! ([`w2s_losses::sequence_logprobs_from_hidden`]), so the `[b, s, v]` logits never exist; the SFT
//! loss goes the same way with its gradient taken in the forward pass
//! ([`w2s_losses::sft_loss_from_hidden`]).

use burn::prelude::*;
use w2s_llama::Llama;
use w2s_losses::{
    sequence_logprobs_from_hidden, sequence_logprobs_from_hidden_no_grad, sft_loss_from_hidden,
    shift_for_next_token, ChunkedLogprobsBackend, SequenceLogprobs, SftLossOutput, SftReduction,
};

use crate::batching::PaddedBatch;
use crate::error::Result;

/// Which tokens of a row count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The completion only.
    Completion,
    /// Every real token after the first (ORPO's NLL).
    Sequence,
}

fn mask<B: Backend>(batch: &PaddedBatch<B>, scope: Scope) -> Tensor<B, 2, Bool> {
    match scope {
        Scope::Completion => batch.completion.clone(),
        Scope::Sequence => batch.real.clone(),
    }
}

/// Log-probs that carry gradients into `model`, from `hidden` `[b, s, d]` (its forward over
/// `batch`).
pub(crate) fn policy_logprobs<B: ChunkedLogprobsBackend>(
    model: &Llama<B>,
    hidden: Tensor<B, 3>,
    batch: &PaddedBatch<B>,
    scope: Scope,
    chunk: usize,
) -> Result<SequenceLogprobs<B>> {
    let shifted = shift_for_next_token(hidden, batch.ids.clone(), mask(batch, scope))?;
    Ok(sequence_logprobs_from_hidden(
        shifted.inputs,
        model.lm_head_weight(),
        shifted.labels,
        shifted.mask,
        chunk,
    )?)
}

/// The completion-only SFT loss that carries gradients into `model`, from `hidden` as above,
/// with the completion tokens its logits predict right.
pub(crate) fn policy_sft_loss<B: ChunkedLogprobsBackend>(
    model: &Llama<B>,
    hidden: Tensor<B, 3>,
    batch: &PaddedBatch<B>,
    reduction: SftReduction,
    chunk: usize,
) -> Result<SftLossOutput<B>> {
    let shifted = shift_for_next_token(hidden, batch.ids.clone(), mask(batch, Scope::Completion))?;
    Ok(sft_loss_from_hidden(
        shifted.inputs,
        model.lm_head_weight(),
        shifted.labels,
        shifted.mask,
        reduction,
        chunk,
    )?)
}

/// Log-probs without gradients (reference model, evaluation), from `hidden` as above.
pub(crate) fn frozen_logprobs<B: Backend>(
    model: &Llama<B>,
    hidden: Tensor<B, 3>,
    batch: &PaddedBatch<B>,
    scope: Scope,
    chunk: usize,
) -> Result<SequenceLogprobs<B>> {
    let shifted = shift_for_next_token(hidden, batch.ids.clone(), mask(batch, scope))?;
    Ok(sequence_logprobs_from_hidden_no_grad(
        shifted.inputs,
        model.lm_head_weight(),
        shifted.labels,
        shifted.mask,
        chunk,
    )?)
}

/// The model's final hidden states `[b, s, d]` over `batch`.
pub(crate) fn hidden<B: Backend>(model: &Llama<B>, batch: &PaddedBatch<B>) -> Result<Tensor<B, 3>> {
    Ok(model.forward_hidden(batch.ids.clone(), Some(&batch.padding))?)
}

/// Rows `range` of sequence log-probs.
pub(crate) fn select_rows<B: Backend>(
    lp: &SequenceLogprobs<B>,
    range: std::ops::Range<usize>,
) -> SequenceLogprobs<B> {
    SequenceLogprobs {
        tokens: lp.tokens.clone().slice_dim(0, range.clone()),
        sum: lp.sum.clone().slice_dim(0, range.clone()),
        num_tokens: lp.num_tokens.clone().slice_dim(0, range.clone()),
        logits_mean_sum: lp.logits_mean_sum.clone().slice_dim(0, range),
    }
}

/// Reads a `[b]` tensor back to the host.
pub(crate) fn to_host<B: Backend>(t: Tensor<B, 1>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| crate::error::TrainError::TensorData(format!("{e:?}")))
}

/// The device a model's weights live on.
pub(crate) fn model_device<B: Backend>(model: &Llama<B>) -> B::Device {
    model.model.norm.gamma.val().device()
}
