//! Root-mean-square layer norm (Zhang and Sennrich, arXiv 1910.07467) as Llama uses it:
//! `y = γ ⊙ x / sqrt(mean(x²) + ε)` over the last axis, computed in f32.
//!
//! burn's `RmsNorm` composes it from a square, a mean, a square root, a division and a product
//! with the broadcast `γ`; under autodiff each is a pass forward and one or more backward. Fused,
//! with `r = 1 / sqrt(mean(x²) + ε)` per row and `x̂ = r x`:
//!
//! ```text
//! forward:   y = γ ⊙ x̂
//! backward:  ∂x = r (g ⊙ γ - x̂ · mean(g ⊙ γ ⊙ x̂)),   ∂γ = Σ_rows g ⊙ x̂
//! ```
//!
//! `r` is recomputed in backward from `x` (one dot product per row) rather than stored.

use burn::prelude::*;
use burn::tensor::DType;

/// `gamma ⊙ x / sqrt(mean(x²) + epsilon)` over the last axis of `x`.
///
/// Equal to `burn::nn::RmsNorm::forward` with that `gamma` and `epsilon`.
///
/// # Shapes
/// - `x`: `[..., d]`, `gamma`: `[d]`
/// - output: `[..., d]`
pub fn rms_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    epsilon: f64,
) -> Tensor<B, D> {
    #[cfg(feature = "flex")]
    {
        use crate::route::{give, route, take, Route};
        match route::<B>(&[x.dtype(), gamma.dtype()]) {
            Route::Flex => {
                let gamma = take(gamma);
                return give(kernels::forward(&take(x), &gamma, epsilon as f32));
            }
            Route::Tracked => {
                return give(kernels::tracked(take(x), take(gamma), epsilon as f32));
            }
            Route::Composed => {}
        }
    }
    composed(x, gamma, epsilon)
}

/// The same through burn's tensor operations (as `burn::nn::RmsNorm`): the reference the
/// kernels are tested against.
pub fn composed<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    epsilon: f64,
) -> Tensor<B, D> {
    let dtype = x.dtype();
    let rms = (x.clone().cast(DType::F32).square().mean_dim(D - 1) + epsilon).sqrt();
    (x / rms.cast(dtype)) * gamma.unsqueeze()
}

#[cfg(feature = "flex")]
mod kernels {
    use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::NoCheckpointing};
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn_flex::{Flex, FlexTensor};

    use crate::route::{owned, row_len, tensor, values, values_mut, TrackedTensor};
    use crate::vector::{dot, multiversion, par_rows, par_rows_sum, zeros};

    /// `1 / sqrt(mean(x²) + epsilon)` of one row.
    #[inline(always)]
    fn inverse_rms(x: &[f32], epsilon: f32) -> f32 {
        1.0 / (dot(x, x) / x.len() as f32 + epsilon).sqrt()
    }

    multiversion! {
        /// Rows of `y` from rows of `x`.
        fn forward_rows(x: &[f32], gamma: &[f32], y: &mut [f32], epsilon: f32) {
            let d = gamma.len();
            for (x, y) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
                let r = inverse_rms(x, epsilon);
                for ((y, &x), &g) in y.iter_mut().zip(x).zip(gamma) {
                    *y = g * (x * r);
                }
            }
        }
    }

    multiversion! {
        /// Rows of `grad` become `∂x`; `∂γ` of these rows is added to `grad_gamma`.
        fn backward_rows(
            x: &[f32],
            gamma: &[f32],
            grad: &mut [f32],
            grad_gamma: &mut [f32],
            epsilon: f32,
        ) {
            let d = gamma.len();
            for (x, g) in x.chunks_exact(d).zip(grad.chunks_exact_mut(d)) {
                let r = inverse_rms(x, epsilon);
                let mut c = 0.0f32;
                for (((dg, &g), &x), &w) in grad_gamma.iter_mut().zip(&*g).zip(x).zip(gamma) {
                    let xhat = x * r;
                    *dg += g * xhat;
                    c += g * w * xhat;
                }
                let c = c / d as f32;
                for ((g, &x), &w) in g.iter_mut().zip(x).zip(gamma) {
                    *g = r * (*g * w - x * r * c);
                }
            }
        }
    }

    /// The normalised rows, in a new tensor (`x` itself is still needed: it is the residual).
    pub(super) fn forward(x: &FlexTensor, gamma: &FlexTensor, epsilon: f32) -> FlexTensor {
        let (x, gamma) = (x.to_contiguous(), gamma.to_contiguous());
        let d = row_len(&x);
        let (xs, gamma) = (values(&x), values(&gamma));
        let mut y = zeros(xs.len());
        par_rows(&mut y, d, |first, rows| {
            forward_rows(&xs[first * d..first * d + rows.len()], gamma, rows, epsilon);
        });
        tensor(y, x.layout().shape().clone())
    }

    #[derive(Debug)]
    struct RmsNormBackward {
        epsilon: f32,
    }

    impl Backward<Flex, 2> for RmsNormBackward {
        /// `x` and `γ`, contiguous.
        type State = (FlexTensor, FlexTensor);

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [x_node, gamma_node] = ops.parents;
            let (x, gamma) = ops.state;
            let (xs, w) = (values(&x), values(&gamma));
            let d = w.len();
            let mut grad = owned(grads.consume::<Flex>(&ops.node));
            let grad_gamma = par_rows_sum(values_mut(&mut grad), d, d, |first, rows, partial| {
                let x = &xs[first * d..first * d + rows.len()];
                backward_rows(x, w, rows, partial, self.epsilon);
            });
            if let Some(node) = x_node {
                grads.register::<Flex>(node.id, grad);
            }
            if let Some(node) = gamma_node {
                grads.register::<Flex>(node.id, tensor(grad_gamma, [d]));
            }
        }
    }

    /// [`forward`] as an autodiff operation of `x` and `gamma`.
    pub(super) fn tracked(x: TrackedTensor, gamma: TrackedTensor, epsilon: f32) -> TrackedTensor {
        let (x_flex, gamma_flex) = (x.primitive.to_contiguous(), gamma.primitive.to_contiguous());
        let y = forward(&x_flex, &gamma_flex, epsilon);
        match (RmsNormBackward { epsilon })
            .prepare::<NoCheckpointing>([x.node.clone(), gamma.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((x_flex, gamma_flex), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}
