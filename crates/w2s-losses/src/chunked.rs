//! Memory-efficient sequence log-probs from final hidden states and the lm_head weight.
//!
//! The plain path ([`crate::sequence_logprobs`]) needs the logits `[b, s, v]`, and autodiff keeps
//! a vocabulary-sized activation per token alive until backward: at `v = 128,256` that dwarfs a
//! small model. Here the completion tokens are gathered first (prompt and padding never reach the
//! lm_head, as in TRL's `chunked_nll`), then processed `chunk_size` tokens at a time:
//!
//! ```text
//! forward, per chunk c:   z_c = h_c Wᵀ                       [c, v]   (dropped after the chunk)
//!                         lse_c = logsumexp(z_c),  logp_c = z_c[y_c] - lse_c
//! backward, given g = ∂L/∂logp, per chunk (z_c recomputed):
//!                         δ_c = g_c ⊙ (onehot(y_c) - exp(z_c - lse_c))
//!                         ∂L/∂h_c = δ_c W,   ∂L/∂W += δ_cᵀ h_c
//! ```
//!
//! Only `lse` (one float per token) is kept between forward and backward, so at most one chunk's
//! logits and their gradient exist at any time: on flex in one buffer that every chunk of a pass
//! reuses ([`w2s_kernels::matmul_into`]), since a fresh block per chunk left glibc holding freed
//! chunks in its heap (57 MB more peak RSS at `v = 32,000`). This is the fused-linear-cross-entropy idea of
//! Liger-Kernel (`src/liger_kernel/ops/fused_linear_cross_entropy.py`) and TRL's per-chunk
//! `torch.utils.checkpoint` in `chunked_nll` (`trl/trainer/sft_trainer.py`), realised as a custom
//! burn autodiff operation ([`ChunkedLogprobsBackend`], implemented for every
//! [`Autodiff`] backend) that recomputes the logits in backward. It costs one extra
//! `h Wᵀ` matmul per step compared with the plain path.
//!
//! Values and gradients equal the plain path's within f32 rounding (see `tests/chunked.rs`).

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
    Autodiff,
};
use burn::tensor::{
    backend::Backend,
    ops::{FloatTensor, IntTensor},
    Bool, FloatDType, IndexingUpdateOp, Int, Tensor, TensorData, TensorPrimitive,
};

use crate::error::{Error, Result};
use crate::logprobs::{upcast, SequenceLogprobs};
use crate::validate::{check_labels, completion_counts, expect_shape, mask_to_host};
use w2s_kernels::{
    logsumexp_and_pick, matmul, matmul_accumulate, matmul_into, token_logprobs_grad,
};

/// Tokens per chunk when the caller has no better figure: 256 tokens × 128,256 vocab × 4 bytes
/// = 131 MB of logits per chunk, the same chunk as TRL's `_CHUNKED_LM_HEAD_CHUNK_SIZE`.
pub const DEFAULT_CHUNK_SIZE: usize = 256;

/// A backend that can compute token log-probs through the lm_head chunk by chunk, with a
/// backward pass that recomputes each chunk instead of storing it.
///
/// Implemented for [`Autodiff<B, C>`] over any inner backend `B` and checkpoint strategy `C`, so a
/// trainer generic over `B: AutodiffBackend` adds the bound `B: ChunkedLogprobsBackend`. For a pass
/// without gradients (reference model, evaluation) use [`sequence_logprobs_from_hidden_no_grad`],
/// which works on any backend.
pub trait ChunkedLogprobsBackend: Backend {
    /// `logp[i] = log softmax(hidden[i] Wᵀ)[labels[i]]`, `chunk_size` tokens at a time.
    ///
    /// Low-level building block of [`sequence_logprobs_from_hidden`]; inputs are not checked.
    ///
    /// # Shapes
    /// - `hidden`: `[n, d]`, `weight`: `[v, d]`, `labels`: `[n]` in `[0, v)`
    /// - output: `[n]`
    fn chunked_token_logprobs(
        hidden: Tensor<Self, 2>,
        weight: Tensor<Self, 2>,
        labels: Tensor<Self, 1, Int>,
        chunk_size: usize,
    ) -> Tensor<Self, 1>;
}

/// Forward of every chunk: `(logp [n], lse [n])`.
fn forward_chunks<B: Backend>(
    hidden: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    chunk_size: usize,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let [n, _] = hidden.dims();
    let weight_t = weight.transpose();
    let (mut logps, mut lses) = (Vec::new(), Vec::new());
    let mut logits = None;
    for start in (0..n).step_by(chunk_size) {
        let end = (start + chunk_size).min(n);
        let chunk = chunk_logits(
            logits.take(),
            hidden.clone().slice_dim(0, start..end),
            &weight_t,
        );
        let (logp, lse) =
            logsumexp_and_pick(chunk.clone(), labels.clone().slice_dim(0, start..end));
        logits = Some(chunk);
        logps.push(logp);
        lses.push(lse);
    }
    (Tensor::cat(logps, 0), Tensor::cat(lses, 0))
}

/// One chunk's logits `h Wᵀ`, written over the previous chunk's buffer when there is one of
/// the same shape (see [`matmul_into`]).
fn chunk_logits<B: Backend>(
    previous: Option<Tensor<B, 2>>,
    h: Tensor<B, 2>,
    weight_t: &Tensor<B, 2>,
) -> Tensor<B, 2> {
    match previous {
        Some(buffer) => matmul_into(buffer, h, weight_t.clone()),
        None => matmul(h, weight_t.clone()),
    }
}

/// What the backward pass needs from the forward pass.
#[derive(Debug, Clone)]
struct ChunkedState<B: Backend> {
    hidden: FloatTensor<B>,
    weight: FloatTensor<B>,
    labels: IntTensor<B>,
    lse: FloatTensor<B>,
    chunk_size: usize,
}

/// Recomputes each chunk's softmax and returns `(∂L/∂hidden, ∂L/∂weight)`, each only if wanted.
fn backward_chunks<B: Backend>(
    state: ChunkedState<B>,
    grad: Tensor<B, 1>,
    want_hidden: bool,
    want_weight: bool,
) -> (Option<Tensor<B, 2>>, Option<Tensor<B, 2>>) {
    let hidden = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(state.hidden));
    let weight = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(state.weight));
    let labels = Tensor::<B, 1, Int>::from_primitive(state.labels);
    let lse = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(state.lse));
    let [n, _] = hidden.dims();
    let weight_t = weight.clone().transpose();
    let mut grad_hidden = Vec::new();
    // The first chunk's product starts the sum: a zeroed `[v, d]` accumulator would cost two
    // passes over it on the calling thread (flex fills it, then copies it to realign it).
    let mut grad_weight: Option<Tensor<B, 2>> = None;
    let mut buffer = None;
    for start in (0..n).step_by(state.chunk_size) {
        let end = (start + state.chunk_size).min(n);
        let h = hidden.clone().slice_dim(0, start..end);
        // δ = g·onehot(y) - g·p, with the label entry g·(1 - p_y) from one addition, written
        // over the recomputed logits, whose buffer the next chunk's logits reuse.
        let delta = token_logprobs_grad(
            chunk_logits(buffer.take(), h.clone(), &weight_t),
            lse.clone().slice_dim(0, start..end),
            labels.clone().slice_dim(0, start..end),
            grad.clone().slice_dim(0, start..end),
        );
        if want_hidden {
            grad_hidden.push(matmul(delta.clone(), weight.clone()));
        }
        if want_weight {
            let delta_t = delta.clone().transpose();
            grad_weight = Some(match grad_weight.take() {
                Some(acc) => matmul_accumulate(acc, delta_t, h),
                None => matmul(delta_t, h),
            });
        }
        buffer = Some(delta);
    }
    drop(buffer);
    let grad_hidden = want_hidden.then(|| Tensor::cat(grad_hidden, 0));
    let grad_weight = want_weight.then(|| grad_weight.unwrap_or_else(|| weight.zeros_like()));
    (grad_hidden, grad_weight)
}

#[derive(Debug)]
struct ChunkedLogprobsOp;

impl<B: Backend> Backward<B, 2> for ChunkedLogprobsOp {
    type State = ChunkedState<B>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [hidden_node, weight_node] = ops.parents;
        let grad =
            Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(grads.consume::<B>(&ops.node)));
        let (grad_hidden, grad_weight) = backward_chunks(
            ops.state,
            grad,
            hidden_node.is_some(),
            weight_node.is_some(),
        );
        if let (Some(node), Some(g)) = (hidden_node, grad_hidden) {
            grads.register::<B>(node.id, g.into_primitive().tensor());
        }
        if let (Some(node), Some(g)) = (weight_node, grad_weight) {
            grads.register::<B>(node.id, g.into_primitive().tensor());
        }
    }
}

impl<B: Backend, C: CheckpointStrategy> ChunkedLogprobsBackend for Autodiff<B, C> {
    fn chunked_token_logprobs(
        hidden: Tensor<Self, 2>,
        weight: Tensor<Self, 2>,
        labels: Tensor<Self, 1, Int>,
        chunk_size: usize,
    ) -> Tensor<Self, 1> {
        let hidden = hidden.into_primitive().tensor();
        let weight = weight.into_primitive().tensor();
        let labels: IntTensor<B> = labels.into_primitive();
        let (logp, lse) = forward_chunks(
            Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(hidden.primitive.clone())),
            Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(weight.primitive.clone())),
            Tensor::<B, 1, Int>::from_primitive(labels.clone()),
            chunk_size,
        );
        let logp = logp.into_primitive().tensor();
        let output = match ChunkedLogprobsOp
            .prepare::<C>([hidden.node.clone(), weight.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let state = ChunkedState {
                    hidden: hidden.primitive,
                    weight: weight.primitive,
                    labels,
                    lse: lse.into_primitive().tensor(),
                    chunk_size,
                };
                prep.finish(state, logp)
            }
            OpsKind::UnTracked(prep) => prep.finish(logp),
        };
        Tensor::from_primitive(TensorPrimitive::Float(output))
    }
}

/// Sequence log-probs from hidden states, memory-efficient in forward and backward.
///
/// Equal to [`crate::sequence_logprobs`] on `hidden Wᵀ`, without ever holding those logits:
/// see the module docs. `labels` are aligned with `hidden` (use
/// [`crate::shift_for_next_token`] on the model's hidden states). bf16/f16 inputs are computed in
/// f32; gradients flow back to `hidden` and `weight` in their own dtype.
///
/// # Shapes
/// - `hidden`: `[b, s, d]`, `weight` (lm_head, `nn.Linear` layout): `[v, d]`
/// - `labels`, `mask`: `[b, s]`
///
/// # Errors
/// As [`crate::sequence_logprobs`], plus [`Error::ZeroChunkSize`].
pub fn sequence_logprobs_from_hidden<B: ChunkedLogprobsBackend>(
    hidden: Tensor<B, 3>,
    weight: Tensor<B, 2>,
    labels: Tensor<B, 2, Int>,
    mask: Tensor<B, 2, Bool>,
    chunk_size: usize,
) -> Result<SequenceLogprobs<B>> {
    from_hidden(hidden, weight, labels, mask, chunk_size, |h, w, y| {
        B::chunked_token_logprobs(h, w, y, chunk_size)
    })
}

/// Sequence log-probs from hidden states on any backend, without gradients.
///
/// For the reference model's pass and for evaluation: the inputs are detached, so even on an
/// autodiff backend no graph is recorded and only one chunk of logits exists at a time.
///
/// # Shapes
/// As [`sequence_logprobs_from_hidden`].
///
/// # Errors
/// As [`sequence_logprobs_from_hidden`].
pub fn sequence_logprobs_from_hidden_no_grad<B: Backend>(
    hidden: Tensor<B, 3>,
    weight: Tensor<B, 2>,
    labels: Tensor<B, 2, Int>,
    mask: Tensor<B, 2, Bool>,
    chunk_size: usize,
) -> Result<SequenceLogprobs<B>> {
    from_hidden(
        hidden.detach(),
        weight.detach(),
        labels,
        mask,
        chunk_size,
        |h, w, y| forward_chunks(h, w, y, chunk_size).0,
    )
}

/// Checks the inputs, gathers the completion tokens, runs `token_logprobs` on them and scatters
/// the result back to `[b, s]`.
fn from_hidden<B: Backend>(
    hidden: Tensor<B, 3>,
    weight: Tensor<B, 2>,
    labels: Tensor<B, 2, Int>,
    mask: Tensor<B, 2, Bool>,
    chunk_size: usize,
    token_logprobs: impl FnOnce(Tensor<B, 2>, Tensor<B, 2>, Tensor<B, 1, Int>) -> Tensor<B, 1>,
) -> Result<SequenceLogprobs<B>> {
    let op = "sequence_logprobs_from_hidden";
    let [b, s, d] = hidden.dims();
    let [v, _] = weight.dims();
    expect_shape(op, "weight", &weight.dims(), &[v, d], "[v, d]")?;
    expect_shape(op, "labels", &labels.dims(), &[b, s], "[b, s]")?;
    expect_shape(op, "mask", &mask.dims(), &[b, s], "[b, s]")?;
    if chunk_size == 0 {
        return Err(Error::ZeroChunkSize);
    }
    let host_mask = mask_to_host(&mask)?;
    completion_counts(&host_mask, s)?;
    check_labels(&labels, &host_mask, s, v)?;

    let device = hidden.device();
    let positions: Vec<i64> = (0..b * s)
        .filter(|&i| host_mask[i])
        .map(|i| i as i64)
        .collect();
    let n = positions.len();
    // When every position is a completion token the gather is the identity: skipping it saves
    // a copy of the hidden states, and a scatter of their gradient, for the whole step.
    let index = (n < b * s)
        .then(|| Tensor::<B, 1, Int>::from_data(TensorData::new(positions, [n]), &device));
    let hidden = upcast(hidden).reshape([b * s, d]);
    let labels = labels.reshape([b * s]);
    let (hidden, labels) = match &index {
        Some(index) => (
            hidden.select(0, index.clone()),
            labels.select(0, index.clone()),
        ),
        None => (hidden, labels),
    };
    let weight = upcast(weight);
    let logits_mean = hidden
        .clone()
        .detach()
        .matmul(weight.clone().detach().mean_dim(0).transpose())
        .reshape([n]);
    let logp = token_logprobs(hidden, weight, labels);

    let dtype = FloatDType::from(logp.dtype());
    let scatter = |values: Tensor<B, 1>| match &index {
        Some(index) => Tensor::<B, 1>::zeros([b * s], &device)
            .cast(dtype)
            .select_assign(0, index.clone(), values, IndexingUpdateOp::Add)
            .reshape([b, s]),
        None => values.reshape([b, s]),
    };
    Ok(SequenceLogprobs::from_tokens(
        scatter(logp),
        scatter(logits_mean),
        mask,
    ))
}
