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
//! `h Wᵀ` matmul per step compared with the plain path, except for a loss whose gradient with
//! respect to each token's log-prob is known beforehand (SFT's): there the forward pass takes the
//! gradients from the logits it has just made
//! ([`ChunkedLogprobsBackend::chunked_weighted_logprob_sum`], [`crate::sft_loss_from_hidden`]).
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
    Bool, ElementConversion, FloatDType, IndexingUpdateOp, Int, Tensor, TensorData,
    TensorPrimitive,
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

    /// `Σ_i coefficients[i] · logp[i]`, with `logp` as [`Self::chunked_token_logprobs`] gives
    /// it, for a loss whose gradient with respect to each token's log-prob is a constant known
    /// beforehand (SFT's, [`crate::sft_loss_from_hidden`]). The gradients are taken in the
    /// forward pass from the logits it has just made, and the backward pass only scales them:
    /// one lm_head-sized product per step fewer than `chunked_token_logprobs`, which must
    /// recompute the logits. No gradient flows to `coefficients`. The same logits also give the
    /// count of tokens whose largest logit is their label.
    ///
    /// Low-level building block; inputs are not checked.
    ///
    /// # Shapes
    /// - `hidden`: `[n, d]`, `weight`: `[v, d]`, `labels`, `coefficients`: `[n]`
    /// - output: `[1]` each
    fn chunked_weighted_logprob_sum(
        hidden: Tensor<Self, 2>,
        weight: Tensor<Self, 2>,
        labels: Tensor<Self, 1, Int>,
        coefficients: Tensor<Self, 1>,
        chunk_size: usize,
    ) -> WeightedLogprobSum<Self>;
}

/// What [`ChunkedLogprobsBackend::chunked_weighted_logprob_sum`] computes.
#[derive(Debug, Clone)]
pub struct WeightedLogprobSum<B: Backend> {
    /// `[1]` `Σ_i coefficients[i] · logp[i]`, with its gradient.
    pub sum: Tensor<B, 1>,
    /// `[1]` tokens whose largest logit is at their label (the first largest, as torch's
    /// `argmax`), counted from the logits the pass makes anyway; no gradient.
    pub correct_tokens: Tensor<B, 1, Int>,
}

/// What the one-pass weighted sum takes from each chunk's logits while they exist: the gradient
/// for the constant `g = ∂L/∂logp`, and the tokens the logits predict right.
struct OnePass<'a, B: Backend> {
    /// `[n]` `∂L/∂logp` of every token.
    coefficients: &'a Tensor<B, 1>,
    /// The gradients so far.
    sums: GradSums<B>,
    /// `[1]` tokens so far whose largest logit is at their label.
    correct_tokens: Tensor<B, 1, Int>,
}

impl<B: Backend> OnePass<'_, B> {
    /// Counts the tokens of a chunk whose largest logit in `z` `[c, v]` is at their label;
    /// one pass over the chunk's logits, against the `d` per logit that made them.
    fn count_correct(&mut self, z: &Tensor<B, 2>, labels: &Tensor<B, 1, Int>) {
        let [c, _] = z.dims();
        let predicted = z.clone().argmax(1).reshape([c]).cast(labels.dtype());
        let correct = predicted.equal(labels.clone()).int().sum();
        self.correct_tokens = self.correct_tokens.clone() + correct;
    }
}

/// Forward of every chunk: `(logp [n], lse [n])`. With `one_pass`, each chunk's gradient for
/// `g = ∂L/∂logp` (known beforehand) is added to its sums from the logits just made, and its
/// correct tokens counted, before the next chunk reuses their buffer.
fn forward_chunks<B: Backend>(
    hidden: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    chunk_size: usize,
    mut one_pass: Option<&mut OnePass<'_, B>>,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let [n, _] = hidden.dims();
    let weight_t = weight.clone().transpose();
    let (mut logps, mut lses) = (Vec::new(), Vec::new());
    let mut logits = None;
    for start in (0..n).step_by(chunk_size) {
        let end = (start + chunk_size).min(n);
        let h = hidden.clone().slice_dim(0, start..end);
        let labels = labels.clone().slice_dim(0, start..end);
        let chunk = chunk_logits(logits.take(), h.clone(), &weight_t);
        let (logp, lse) = logsumexp_and_pick(chunk.clone(), labels.clone());
        logits = Some(match one_pass.as_deref_mut() {
            Some(pass) => {
                pass.count_correct(&chunk, &labels);
                let g = pass.coefficients.clone().slice_dim(0, start..end);
                pass.sums.add(chunk, lse.clone(), labels, g, h, &weight)
            }
            None => chunk,
        });
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

/// The gradients of a chunked pass, chunk by chunk: `∂L/∂h` as one block per chunk, `∂L/∂W` as
/// a running sum, each only if wanted.
struct GradSums<B: Backend> {
    hidden: Option<Vec<Tensor<B, 2>>>,
    weight: Option<Tensor<B, 2>>,
    want_weight: bool,
}

impl<B: Backend> GradSums<B> {
    fn new(want_hidden: bool, want_weight: bool) -> Self {
        Self {
            hidden: want_hidden.then(Vec::new),
            weight: None,
            want_weight,
        }
    }

    /// Adds the chunk of hidden states `h` whose logits are `z`, for `g = ∂L/∂logp` of its
    /// tokens. Returns `δ = g ⊙ (onehot(y) - softmax(z))`, written over `z` (the label entry
    /// `g·(1 - p_y)` from one addition), whose buffer the next chunk's logits reuse; `z` itself
    /// when no gradient is wanted.
    fn add(
        &mut self,
        z: Tensor<B, 2>,
        lse: Tensor<B, 1>,
        labels: Tensor<B, 1, Int>,
        g: Tensor<B, 1>,
        h: Tensor<B, 2>,
        weight: &Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        if self.hidden.is_none() && !self.want_weight {
            return z;
        }
        let delta = token_logprobs_grad(z, lse, labels, g);
        if let Some(blocks) = &mut self.hidden {
            blocks.push(matmul(delta.clone(), weight.clone()));
        }
        if self.want_weight {
            // The first chunk's product starts the sum: a zeroed `[v, d]` accumulator would cost
            // two passes over it on the calling thread (flex fills it, then realigns it).
            let delta_t = delta.clone().transpose();
            self.weight = Some(match self.weight.take() {
                Some(acc) => matmul_accumulate(acc, delta_t, h),
                None => matmul(delta_t, h),
            });
        }
        delta
    }

    /// `(∂L/∂hidden, ∂L/∂weight)`, each only if wanted.
    fn finish(self, weight: &Tensor<B, 2>) -> (Option<Tensor<B, 2>>, Option<Tensor<B, 2>>) {
        let hidden = self.hidden.map(|blocks| Tensor::cat(blocks, 0));
        let weight = self
            .want_weight
            .then(|| self.weight.unwrap_or_else(|| weight.zeros_like()));
        (hidden, weight)
    }
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
    let mut sums = GradSums::new(want_hidden, want_weight);
    let mut buffer = None;
    for start in (0..n).step_by(state.chunk_size) {
        let end = (start + state.chunk_size).min(n);
        let h = hidden.clone().slice_dim(0, start..end);
        buffer = Some(sums.add(
            chunk_logits(buffer.take(), h.clone(), &weight_t),
            lse.clone().slice_dim(0, start..end),
            labels.clone().slice_dim(0, start..end),
            grad.clone().slice_dim(0, start..end),
            h,
            &weight,
        ));
    }
    drop(buffer);
    sums.finish(&weight)
}

/// `Σ_i c[i] logp[i]` with the correct-token count, and its gradients, each only if wanted, in
/// one pass over the chunks: the gradient with respect to each `logp[i]` is the constant `c[i]`,
/// so each chunk's `δ` is taken from the logits the forward pass has just made.
fn weighted_chunks<B: Backend>(
    hidden: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    coefficients: Tensor<B, 1>,
    chunk_size: usize,
    [want_hidden, want_weight]: [bool; 2],
) -> (
    WeightedLogprobSum<B>,
    Option<Tensor<B, 2>>,
    Option<Tensor<B, 2>>,
) {
    let mut pass = OnePass {
        coefficients: &coefficients,
        sums: GradSums::new(want_hidden, want_weight),
        correct_tokens: Tensor::zeros([1], &hidden.device()),
    };
    let (logp, _) = forward_chunks(hidden, weight.clone(), labels, chunk_size, Some(&mut pass));
    let OnePass {
        sums,
        correct_tokens,
        ..
    } = pass;
    let (grad_hidden, grad_weight) = sums.finish(&weight);
    let sum = (logp * coefficients).sum();
    let total = WeightedLogprobSum {
        sum,
        correct_tokens,
    };
    (total, grad_hidden, grad_weight)
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

/// The backward of [`ChunkedLogprobsBackend::chunked_weighted_logprob_sum`]: the gradients the
/// forward pass took, times the upstream gradient.
#[derive(Debug)]
struct WeightedSumOp;

impl<B: Backend> Backward<B, 2> for WeightedSumOp {
    /// `∂sum/∂hidden` and `∂sum/∂weight`, each if wanted.
    type State = (Option<FloatTensor<B>>, Option<FloatTensor<B>>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [hidden_node, weight_node] = ops.parents;
        let upstream =
            Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(grads.consume::<B>(&ops.node)));
        // 1 when the sum is the loss itself, and then no pass over the [v, d] weight gradient.
        let scale: f32 = upstream.into_scalar().elem();
        let scaled = |g: FloatTensor<B>| {
            if scale == 1.0 {
                g
            } else {
                let g = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(g));
                g.mul_scalar(scale).into_primitive().tensor()
            }
        };
        let (grad_hidden, grad_weight) = ops.state;
        if let (Some(node), Some(g)) = (hidden_node, grad_hidden) {
            grads.register::<B>(node.id, scaled(g));
        }
        if let (Some(node), Some(g)) = (weight_node, grad_weight) {
            grads.register::<B>(node.id, scaled(g));
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
            None,
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

    fn chunked_weighted_logprob_sum(
        hidden: Tensor<Self, 2>,
        weight: Tensor<Self, 2>,
        labels: Tensor<Self, 1, Int>,
        coefficients: Tensor<Self, 1>,
        chunk_size: usize,
    ) -> WeightedLogprobSum<Self> {
        let hidden = hidden.into_primitive().tensor();
        let weight = weight.into_primitive().tensor();
        let inner = |t: FloatTensor<B>| Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(t));
        let run = |want| {
            weighted_chunks(
                inner(hidden.primitive.clone()),
                inner(weight.primitive.clone()),
                Tensor::<B, 1, Int>::from_primitive(labels.clone().into_primitive()),
                Tensor::from_primitive(TensorPrimitive::Float(
                    coefficients.clone().into_primitive().tensor().primitive,
                )),
                chunk_size,
                want,
            )
        };
        let (output, correct_tokens) = match WeightedSumOp
            .prepare::<C>([hidden.node.clone(), weight.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let want = [&hidden, &weight].map(|t| !t.node.requirement.is_none());
                let (total, grad_hidden, grad_weight) = run(want);
                let primitive = |g: Tensor<B, 2>| g.into_primitive().tensor();
                let output = prep.finish(
                    (grad_hidden.map(primitive), grad_weight.map(primitive)),
                    total.sum.into_primitive().tensor(),
                );
                (output, total.correct_tokens)
            }
            OpsKind::UnTracked(prep) => {
                let (total, _, _) = run([false; 2]);
                let output = prep.finish(total.sum.into_primitive().tensor());
                (output, total.correct_tokens)
            }
        };
        WeightedLogprobSum {
            sum: Tensor::from_primitive(TensorPrimitive::Float(output)),
            // Integer tensors carry no autodiff state: the inner backend's is the outer one's.
            correct_tokens: Tensor::from_primitive(correct_tokens.into_primitive()),
        }
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
        |h, w, y| forward_chunks(h, w, y, chunk_size, None).0,
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
    let [b, s, _] = hidden.dims();
    let device = hidden.device();
    let tokens = Completions::gather(hidden, weight, labels, &mask, chunk_size)?;
    let n = tokens.rows.len();
    let logits_mean = tokens
        .hidden
        .clone()
        .detach()
        .matmul(tokens.weight.clone().detach().mean_dim(0).transpose())
        .reshape([n]);
    let index = tokens.index;
    let logp = token_logprobs(tokens.hidden, tokens.weight, tokens.labels);

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

/// `Σ c_t logp_t` over the completion tokens `t` of a batch, `[1]`, with `c_t =
/// coefficient(row of t, completion tokens per row)`, through
/// [`ChunkedLogprobsBackend::chunked_weighted_logprob_sum`], and the number of those tokens.
/// Inputs as [`sequence_logprobs_from_hidden`], and checked as there.
pub(crate) fn weighted_logprob_sum_from_hidden<B: ChunkedLogprobsBackend>(
    hidden: Tensor<B, 3>,
    weight: Tensor<B, 2>,
    labels: Tensor<B, 2, Int>,
    mask: Tensor<B, 2, Bool>,
    chunk_size: usize,
    coefficient: impl Fn(usize, &[usize]) -> f32,
) -> Result<(WeightedLogprobSum<B>, usize)> {
    let device = hidden.device();
    let tokens = Completions::gather(hidden, weight, labels, &mask, chunk_size)?;
    let n = tokens.rows.len();
    let coefficients: Vec<f32> = tokens
        .rows
        .iter()
        .map(|&row| coefficient(row, &tokens.counts))
        .collect();
    let coefficients = Tensor::from_data(TensorData::new(coefficients, [n]), &device);
    let total = B::chunked_weighted_logprob_sum(
        tokens.hidden,
        tokens.weight,
        tokens.labels,
        coefficients,
        chunk_size,
    );
    Ok((total, n))
}

/// A batch's completion tokens, gathered for the lm_head.
struct Completions<B: Backend> {
    /// Their hidden states, f32: `[n, d]`.
    hidden: Tensor<B, 2>,
    /// The lm_head weight, f32: `[v, d]`.
    weight: Tensor<B, 2>,
    /// Their labels: `[n]`.
    labels: Tensor<B, 1, Int>,
    /// Their flat positions in `[b · s]`; `None` when every position is a completion token.
    index: Option<Tensor<B, 1, Int>>,
    /// The row of each.
    rows: Vec<usize>,
    /// Completion tokens per row: `[b]`.
    counts: Vec<usize>,
}

impl<B: Backend> Completions<B> {
    /// Checks the inputs of [`sequence_logprobs_from_hidden`] and gathers the tokens under
    /// `mask`.
    fn gather(
        hidden: Tensor<B, 3>,
        weight: Tensor<B, 2>,
        labels: Tensor<B, 2, Int>,
        mask: &Tensor<B, 2, Bool>,
        chunk_size: usize,
    ) -> Result<Self> {
        let op = "sequence_logprobs_from_hidden";
        let [b, s, d] = hidden.dims();
        let [v, _] = weight.dims();
        expect_shape(op, "weight", &weight.dims(), &[v, d], "[v, d]")?;
        expect_shape(op, "labels", &labels.dims(), &[b, s], "[b, s]")?;
        expect_shape(op, "mask", &mask.dims(), &[b, s], "[b, s]")?;
        if chunk_size == 0 {
            return Err(Error::ZeroChunkSize);
        }
        if b == 0 || s == 0 {
            return Err(Error::Shape {
                op,
                arg: "hidden",
                actual: vec![b, s, d],
                expected: "[b, s, d] with at least one sequence of at least one token".into(),
            });
        }
        let host_mask = mask_to_host(mask)?;
        // Every row has a completion token, so there is at least one to gather.
        let counts = completion_counts(&host_mask, s)?;
        check_labels(&labels, &host_mask, s, v)?;

        let device = hidden.device();
        let positions: Vec<usize> = (0..b * s).filter(|&i| host_mask[i]).collect();
        let n = positions.len();
        let rows = positions.iter().map(|&i| i / s).collect();
        // When every position is a completion token the gather is the identity: skipping it
        // saves a copy of the hidden states, and a scatter of their gradient, for the whole step.
        let index = (n < b * s).then(|| {
            let positions = positions.iter().map(|&i| i as i64).collect();
            Tensor::<B, 1, Int>::from_data(TensorData::new(positions, [n]), &device)
        });
        let hidden = upcast(hidden).reshape([b * s, d]);
        let labels = labels.reshape([b * s]);
        let (hidden, labels) = match &index {
            Some(index) => (
                hidden.select(0, index.clone()),
                labels.select(0, index.clone()),
            ),
            None => (hidden, labels),
        };
        Ok(Self {
            hidden,
            weight: upcast(weight),
            labels,
            index,
            rows,
            counts,
        })
    }
}
