//! Rotary position embeddings (Su et al., arXiv 2104.09864) in HuggingFace's rotate-half layout,
//! fused with the move of the heads axis in front of the positions.
//!
//! A projection comes out as `[b, s, n, e]`; attention wants `[b, n, s, e]`. Composed, the
//! rotation is two products and a sum over the projection's layout, and the heads move as a
//! strided view, so every element-wise pass of the backward runs over strided gradients. Fused,
//! one pass reads `x` once and writes the rotated values straight into `[b, n, s, e]`, and the
//! backward reads that layout and writes `∂x` back in `[b, s, n, e]`. With `h = e/2`:
//!
//! ```text
//! forward:   y[j] = x[j] cos[j] - x[j+h] sin[j],      y[j+h] = x[j+h] cos[j+h] + x[j] sin[j+h]
//! backward:  ∂x[j] = g[j] cos[j] + g[j+h] sin[j+h],   ∂x[j+h] = g[j+h] cos[j+h] - g[j] sin[j]
//! ```

use burn::prelude::*;

/// `x cos + rotate_half(x) sin`, with the heads axis moved forward.
///
/// `rotate_half(x) = [-x[h..], x[..h]]` over the last axis (transformers'
/// `modeling_llama.py::rotate_half`). `cos` and `sin` are constant (no gradient flows to them).
///
/// # Shapes
/// - `x`, `cos`, `sin`: `[b, s, n, e]`, `e` even
/// - output: `[b, n, s, e]`
pub fn rope<B: Backend>(x: Tensor<B, 4>, cos: Tensor<B, 4>, sin: Tensor<B, 4>) -> Tensor<B, 4> {
    #[cfg(feature = "flex")]
    if x.dims() == cos.dims() && x.dims() == sin.dims() {
        use crate::route::{give, route, take, Route, TrackedTensor};
        use burn_flex::FlexTensor;
        match route::<B>(&[x.dtype(), cos.dtype(), sin.dtype()]) {
            Route::Flex => {
                let (cos, sin): (FlexTensor, FlexTensor) = (take(cos), take(sin));
                return give(kernels::forward(&take(x), &cos, &sin));
            }
            Route::Tracked => {
                let (cos, sin): (TrackedTensor, TrackedTensor) = (take(cos), take(sin));
                return give(kernels::tracked(take(x), cos.primitive, sin.primitive));
            }
            Route::Composed => {}
        }
    }
    composed(x, cos, sin)
}

/// The same through burn's tensor operations: the reference the kernels are tested against.
pub fn composed<B: Backend>(x: Tensor<B, 4>, cos: Tensor<B, 4>, sin: Tensor<B, 4>) -> Tensor<B, 4> {
    let half = x.dims()[3] / 2;
    let rotated = Tensor::cat(
        vec![
            x.clone().slice_dim(3, half..).neg(),
            x.clone().slice_dim(3, ..half),
        ],
        3,
    );
    (x * cos + rotated * sin).swap_dims(1, 2)
}

#[cfg(feature = "flex")]
mod kernels {
    use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::NoCheckpointing};
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn_flex::{Flex, FlexTensor};

    use crate::route::{tensor, values, TrackedTensor};
    use crate::vector::{multiversion, par_rows, zeros};

    /// `[b, s, n, e]` of a tensor.
    fn dims(x: &FlexTensor) -> [usize; 4] {
        let shape = x.layout().shape();
        [shape[0], shape[1], shape[2], shape[3]]
    }

    /// Row `r` of `[b, n, s, e]` as a row of `[b, s, n, e]`.
    fn positions_first(r: usize, [_, s, n, _]: [usize; 4]) -> usize {
        let (bi, hi, si) = (r / (n * s), r / s % n, r % s);
        (bi * s + si) * n + hi
    }

    /// Row `r` of `[b, s, n, e]` as a row of `[b, n, s, e]`.
    fn heads_first(r: usize, [_, s, n, _]: [usize; 4]) -> usize {
        let (bi, si, hi) = (r / (s * n), r / n % s, r % n);
        (bi * n + hi) * s + si
    }

    multiversion! {
        /// One rotated row: `y = x cos + rotate_half(x) sin`.
        fn rotate(x: &[f32], cos: &[f32], sin: &[f32], y: &mut [f32]) {
            let h = x.len() / 2;
            let (y0, y1) = y.split_at_mut(h);
            let (x0, x1) = x.split_at(h);
            for j in 0..h {
                y0[j] = x0[j] * cos[j] - x1[j] * sin[j];
                y1[j] = x1[j] * cos[j + h] + x0[j] * sin[j + h];
            }
        }
    }

    multiversion! {
        /// One row of `∂x` from one row of `g`.
        fn unrotate(g: &[f32], cos: &[f32], sin: &[f32], dx: &mut [f32]) {
            let h = g.len() / 2;
            let (d0, d1) = dx.split_at_mut(h);
            let (g0, g1) = g.split_at(h);
            for j in 0..h {
                d0[j] = g0[j] * cos[j] + g1[j] * sin[j + h];
                d1[j] = g1[j] * cos[j + h] - g0[j] * sin[j];
            }
        }
    }

    /// Rotated `x` as `[b, n, s, e]`.
    pub(super) fn forward(x: &FlexTensor, cos: &FlexTensor, sin: &FlexTensor) -> FlexTensor {
        let shape = dims(x);
        let [b, s, n, e] = shape;
        let (x, cos, sin) = (x.to_contiguous(), cos.to_contiguous(), sin.to_contiguous());
        let (x, cos, sin) = (values(&x), values(&cos), values(&sin));
        let mut y = zeros(x.len());
        par_rows(&mut y, e, |first, rows| {
            for (i, y) in rows.chunks_exact_mut(e).enumerate() {
                let at = positions_first(first + i, shape) * e;
                rotate(&x[at..at + e], &cos[at..at + e], &sin[at..at + e], y);
            }
        });
        tensor(y, [b, n, s, e])
    }

    /// `∂x` as `[b, s, n, e]` from `g` as `[b, n, s, e]`.
    fn backward(g: &FlexTensor, cos: &FlexTensor, sin: &FlexTensor) -> FlexTensor {
        let shape = dims(cos);
        let e = shape[3];
        let g = g.to_contiguous();
        let (g, cos, sin) = (values(&g), values(cos), values(sin));
        let mut dx = zeros(g.len());
        par_rows(&mut dx, e, |first, rows| {
            for (i, dx) in rows.chunks_exact_mut(e).enumerate() {
                let (at, from) = ((first + i) * e, heads_first(first + i, shape) * e);
                unrotate(&g[from..from + e], &cos[at..at + e], &sin[at..at + e], dx);
            }
        });
        tensor(dx, shape)
    }

    #[derive(Debug)]
    struct RopeBackward;

    impl Backward<Flex, 1> for RopeBackward {
        /// `cos` and `sin`, contiguous.
        type State = (FlexTensor, FlexTensor);

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [Some(parent)] = ops.parents else {
                return;
            };
            let (cos, sin) = ops.state;
            let grad = grads.consume::<Flex>(&ops.node);
            grads.register::<Flex>(parent.id, backward(&grad, &cos, &sin));
        }
    }

    /// [`forward`] as an autodiff operation of `x`.
    pub(super) fn tracked(x: TrackedTensor, cos: FlexTensor, sin: FlexTensor) -> TrackedTensor {
        let (cos, sin) = (cos.to_contiguous(), sin.to_contiguous());
        let y = forward(&x.primitive, &cos, &sin);
        match RopeBackward
            .prepare::<NoCheckpointing>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((cos, sin), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}
