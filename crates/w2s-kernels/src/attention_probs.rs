//! Attention probabilities: `softmax(scale * scores + bias)` over the key axis, in one pass.
//!
//! Composed from burn's operations this is a scalar product, an addition and, under autodiff,
//! burn's default softmax (max, subtract, exp, sum, divide), each a full pass over the
//! `[b, h, s, t]` scores and each with its own backward. Fused, the forward is one pass per row
//! that overwrites the scores, and the backward, `∂scores = scale · p ⊙ (g - Σ g ⊙ p)`, is one pass
//! that overwrites the incoming gradient.

use burn::prelude::*;
use burn::tensor::activation::softmax;

/// `softmax(scale * scores + bias)` along the last axis.
///
/// `bias` is constant (no gradient flows to it): the causal and padding mask, finite. Any
/// shape works; the fused kernels take a `bias` of the scores' own shape, other shapes broadcast
/// through burn's operations.
///
/// # Shapes
/// - `scores`, `bias`: `[b, h, s, t]`
/// - output: `[b, h, s, t]`
pub fn attention_probs<B: Backend>(
    scores: Tensor<B, 4>,
    bias: Tensor<B, 4>,
    scale: f32,
) -> Tensor<B, 4> {
    #[cfg(feature = "flex")]
    if scores.dims() == bias.dims() {
        use crate::route::{give, route, take, Route, TrackedTensor};
        use burn_flex::FlexTensor;
        match route::<B>(&[scores.dtype(), bias.dtype()]) {
            Route::Flex => {
                let bias: FlexTensor = take(bias);
                return give(kernels::forward(take(scores), &bias, scale));
            }
            Route::Tracked => {
                let bias: TrackedTensor = take(bias);
                return give(kernels::tracked(take(scores), &bias.primitive, scale));
            }
            Route::Composed => {}
        }
    }
    composed(scores, bias, scale)
}

/// The same through burn's tensor operations: the reference the kernels are tested against.
pub fn composed<B: Backend>(scores: Tensor<B, 4>, bias: Tensor<B, 4>, scale: f32) -> Tensor<B, 4> {
    softmax(scores.mul_scalar(scale) + bias, 3)
}

#[cfg(feature = "flex")]
mod kernels {
    use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::NoCheckpointing};
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn_flex::{Flex, FlexTensor};

    use crate::route::{owned, row_len, values, values_mut, TrackedTensor};
    use crate::vector::{dot, exp, max, multiversion, par_rows, sum};

    multiversion! {
        /// Each row of `z` becomes `softmax(scale * z + bias)`.
        fn forward_rows(z: &mut [f32], bias: &[f32], t: usize, scale: f32) {
            for (z, bias) in z.chunks_exact_mut(t).zip(bias.chunks_exact(t)) {
                for (z, &b) in z.iter_mut().zip(bias) {
                    *z = *z * scale + b;
                }
                let m = max(z);
                for z in z.iter_mut() {
                    *z = exp(*z - m);
                }
                let total = sum(z);
                for z in z.iter_mut() {
                    *z /= total;
                }
            }
        }
    }

    multiversion! {
        /// Each row of `g` becomes `scale * p * (g - <g, p>)`.
        fn backward_rows(p: &[f32], g: &mut [f32], t: usize, scale: f32) {
            for (p, g) in p.chunks_exact(t).zip(g.chunks_exact_mut(t)) {
                let d = dot(p, g);
                for (g, &p) in g.iter_mut().zip(p) {
                    *g = scale * p * (*g - d);
                }
            }
        }
    }

    /// The probabilities, written over `scores`' buffer when nothing else holds it.
    pub(super) fn forward(scores: FlexTensor, bias: &FlexTensor, scale: f32) -> FlexTensor {
        let t = row_len(&scores);
        let bias = bias.to_contiguous();
        let bias = values(&bias);
        let mut out = owned(scores);
        par_rows(values_mut(&mut out), t, |first, rows| {
            forward_rows(rows, &bias[first * t..first * t + rows.len()], t, scale);
        });
        out
    }

    #[derive(Debug)]
    struct ProbsBackward {
        scale: f32,
    }

    impl Backward<Flex, 1> for ProbsBackward {
        /// The probabilities.
        type State = FlexTensor;

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [Some(parent)] = ops.parents else {
                return;
            };
            let probs = ops.state;
            let p = values(&probs);
            let t = row_len(&probs);
            let mut grad = owned(grads.consume::<Flex>(&ops.node));
            par_rows(values_mut(&mut grad), t, |first, rows| {
                backward_rows(&p[first * t..first * t + rows.len()], rows, t, self.scale);
            });
            grads.register::<Flex>(parent.id, grad);
        }
    }

    /// [`forward`] as an autodiff operation of `scores`.
    pub(super) fn tracked(scores: TrackedTensor, bias: &FlexTensor, scale: f32) -> TrackedTensor {
        let node = scores.node.clone();
        let probs = forward(scores.primitive, bias, scale);
        match (ProbsBackward { scale })
            .prepare::<NoCheckpointing>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(probs.clone(), probs),
            OpsKind::UnTracked(prep) => prep.finish(probs),
        }
    }
}
