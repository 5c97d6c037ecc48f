//! Log-probability of one label per row of logits: `z[y] - logsumexp(z)`, without the log-softmax.
//!
//! Composed (TRL's `selective_log_softmax` in burn), a `[n, v]` log-softmax is built, gathered and,
//! under autodiff, differentiated through its max, subtract, exp, sum and log. Fused, forward keeps
//! only `logsumexp` per row, and backward writes `∂z = g (onehot(y) - e^(z - lse))` over the
//! stored logits.
//!
//! The two halves are also offered without autodiff ([`logsumexp_and_pick`],
//! [`token_logprobs_grad`]) for operations that recompute logits in backward themselves (the
//! chunked lm_head path of `w2s-losses`).

use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;

/// `log softmax(logits[i])[labels[i]]` for every row `i`, differentiable in `logits`.
///
/// Labels must lie in `[0, v)`: callers check them (the flex kernels panic on one outside).
///
/// # Shapes
/// - `logits`: `[n, v]`, `labels`: `[n]`
/// - output: `[n]`
pub fn token_logprobs<B: Backend>(logits: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    #[cfg(feature = "flex")]
    {
        use crate::route::{give, route, take, Route};
        match route::<B>(&[logits.dtype()]) {
            Route::Flex => {
                let (logp, _) = kernels::forward(&take(logits), &host(labels));
                return give(logp);
            }
            Route::Tracked => return give(kernels::tracked(take(logits), host(labels))),
            Route::Composed => {}
        }
    }
    let (logp, _) = composed_forward(logits, labels);
    logp
}

/// `(log softmax(logits[i])[labels[i]], logsumexp(logits[i]))` for every row, for a caller that
/// differentiates by itself (with [`token_logprobs_grad`]).
///
/// # Shapes
/// - `logits`: `[n, v]`, `labels`: `[n]`
/// - output: `[n]`, `[n]`
pub fn logsumexp_and_pick<B: Backend>(
    logits: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    #[cfg(feature = "flex")]
    {
        use crate::route::{give, route, take, Route};
        if let Route::Flex = route::<B>(&[logits.dtype()]) {
            let (logp, lse) = kernels::forward(&take(logits), &host(labels));
            return (give(logp), give(lse));
        }
    }
    composed_forward(logits, labels)
}

/// `∂L/∂logits = grad[i] · (onehot(labels[i]) - exp(logits[i] - lse[i]))`: the gradient of
/// [`token_logprobs`] given `∂L/∂logp = grad` and the `lse` of [`logsumexp_and_pick`].
///
/// # Shapes
/// - `logits`: `[n, v]`, `lse`, `grad`: `[n]`, `labels`: `[n]`
/// - output: `[n, v]`
pub fn token_logprobs_grad<B: Backend>(
    logits: Tensor<B, 2>,
    lse: Tensor<B, 1>,
    labels: Tensor<B, 1, Int>,
    grad: Tensor<B, 1>,
) -> Tensor<B, 2> {
    #[cfg(feature = "flex")]
    {
        use crate::route::{give, route, take, Route};
        if let Route::Flex = route::<B>(&[logits.dtype(), lse.dtype(), grad.dtype()]) {
            let (lse, grad) = (take(lse), take(grad));
            return give(kernels::backward(take(logits), &lse, &grad, &host(labels)));
        }
    }
    let g = grad.unsqueeze_dim::<2>(1);
    let probs = (logits - lse.unsqueeze_dim(1)).exp();
    // The label entry is g·(1 - p_y) from one addition, not a difference of two large terms.
    (probs * g.clone().neg()).scatter(1, labels.unsqueeze_dim(1), g, IndexingUpdateOp::Add)
}

/// Through burn's operations: `(logp, lse)`.
fn composed_forward<B: Backend>(
    logits: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let max = logits.clone().detach().max_dim(1);
    let lse = (logits.clone() - max.clone()).exp().sum_dim(1).log() + max;
    let picked = logits.gather(1, labels.unsqueeze_dim(1));
    ((picked - lse.clone()).squeeze_dim(1), lse.squeeze_dim(1))
}

/// The labels on the host.
#[cfg(feature = "flex")]
fn host<B: Backend>(labels: Tensor<B, 1, Int>) -> Vec<usize> {
    labels
        .into_data()
        .iter::<i64>()
        .map(|y| usize::try_from(y).expect("labels are non-negative"))
        .collect()
}

#[cfg(feature = "flex")]
mod kernels {
    use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::NoCheckpointing};
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn_flex::{Flex, FlexTensor};

    use crate::route::{owned, row_len, tensor, values, values_mut, TrackedTensor};
    use crate::vector::{exp, max, multiversion, par_map_rows, par_rows, LANES};

    multiversion! {
        /// `(z[y] - lse, lse)` of each row of `z` into `out`.
        fn forward_rows(z: &[f32], labels: &[usize], out: &mut [(f32, f32)]) {
            let v = z.len() / labels.len().max(1);
            for ((z, &y), out) in z.chunks_exact(v).zip(labels).zip(out) {
                let m = max(z);
                let mut acc = [0.0f32; LANES];
                let chunks = z.chunks_exact(LANES);
                let tail: f32 = chunks.remainder().iter().map(|&x| exp(x - m)).sum();
                for chunk in chunks {
                    for (a, &x) in acc.iter_mut().zip(chunk) {
                        *a += exp(x - m);
                    }
                }
                let lse = m + (acc.iter().sum::<f32>() + tail).ln();
                *out = (z[y] - lse, lse);
            }
        }
    }

    multiversion! {
        /// Rows of `z` become `g (onehot(y) - e^(z - lse))`.
        fn backward_rows(z: &mut [f32], lse: &[f32], g: &[f32], labels: &[usize]) {
            let v = z.len() / labels.len().max(1);
            for (((z, &lse), &g), &y) in z.chunks_exact_mut(v).zip(lse).zip(g).zip(labels) {
                for z in z.iter_mut() {
                    *z = exp(*z - lse) * -g;
                }
                z[y] += g;
            }
        }
    }

    /// `(logp, lse)`, each `[n]`.
    pub(super) fn forward(logits: &FlexTensor, labels: &[usize]) -> (FlexTensor, FlexTensor) {
        let logits = logits.to_contiguous();
        let v = row_len(&logits);
        let z = values(&logits);
        let n = labels.len();
        let rows = par_map_rows(n, v, |first, count| {
            let mut out = vec![(0.0, 0.0); count];
            let z = &z[first * v..(first + count) * v];
            forward_rows(z, &labels[first..first + count], &mut out);
            out
        });
        let (logp, lse): (Vec<f32>, Vec<f32>) = rows.into_iter().unzip();
        (tensor(logp, [n]), tensor(lse, [n]))
    }

    /// The gradient with respect to the logits, written over `logits`' buffer when nothing else
    /// holds it.
    pub(super) fn backward(
        logits: FlexTensor,
        lse: &FlexTensor,
        grad: &FlexTensor,
        labels: &[usize],
    ) -> FlexTensor {
        let (lse, grad) = (lse.to_contiguous(), grad.to_contiguous());
        let (lse, g) = (values(&lse), values(&grad));
        let mut out = owned(logits);
        let v = row_len(&out);
        par_rows(values_mut(&mut out), v, |first, rows| {
            let range = first..first + rows.len() / v;
            backward_rows(rows, &lse[range.clone()], &g[range.clone()], &labels[range]);
        });
        out
    }

    #[derive(Debug)]
    struct TokenLogprobsBackward;

    impl Backward<Flex, 1> for TokenLogprobsBackward {
        /// The logits, their labels and `lse`.
        type State = (FlexTensor, Vec<usize>, FlexTensor);

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [Some(parent)] = ops.parents else {
                return;
            };
            let (logits, labels, lse) = ops.state;
            let grad = grads.consume::<Flex>(&ops.node);
            grads.register::<Flex>(parent.id, backward(logits, &lse, &grad, &labels));
        }
    }

    /// [`forward`] as an autodiff operation of `logits`.
    pub(super) fn tracked(logits: TrackedTensor, labels: Vec<usize>) -> TrackedTensor {
        let node = logits.node.clone();
        let (logp, lse) = forward(&logits.primitive, &labels);
        match TokenLogprobsBackward
            .prepare::<NoCheckpointing>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((logits.primitive, labels, lse), logp),
            OpsKind::UnTracked(prep) => prep.finish(logp),
        }
    }
}
