//! The SwiGLU gate (Shazeer, arXiv 2002.05202): `silu(a) ⊙ u` with `silu(a) = a σ(a)`.
//!
//! Composed, burn runs a sigmoid, two products and, backward, five more element-wise passes.
//! Fused, with `s = σ(a)`:
//!
//! ```text
//! forward:   y = a s u
//! backward:  ∂a = g u s (1 + a (1 - s)),   ∂u = g a s
//! ```
//!
//! Forward writes a new buffer; backward writes `∂a` and `∂u` over the stored `a` and `u` when
//! nothing else holds them (the projections that made them keep only their inputs).

use burn::prelude::*;
use burn::tensor::activation::silu;

/// `silu(gate) ⊙ up`, element-wise.
///
/// # Shapes
/// - `gate`, `up`: any, the same
/// - output: as `gate`
pub fn swiglu<B: Backend, const D: usize>(gate: Tensor<B, D>, up: Tensor<B, D>) -> Tensor<B, D> {
    #[cfg(feature = "flex")]
    if gate.dims() == up.dims() {
        use crate::route::{give, route, take, Route};
        match route::<B>(&[gate.dtype(), up.dtype()]) {
            Route::Flex => {
                let (gate, up) = (take(gate), take(up));
                return give(kernels::forward(&gate, &up));
            }
            Route::Tracked => return give(kernels::tracked(take(gate), take(up))),
            Route::Composed => {}
        }
    }
    composed(gate, up)
}

/// The same through burn's tensor operations: the reference the kernels are tested against.
pub fn composed<B: Backend, const D: usize>(gate: Tensor<B, D>, up: Tensor<B, D>) -> Tensor<B, D> {
    silu(gate) * up
}

#[cfg(feature = "flex")]
mod kernels {
    use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::NoCheckpointing};
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn_flex::{Flex, FlexTensor};

    use crate::route::{owned, row_len, tensor, values, values_mut, TrackedTensor};
    use crate::vector::{multiversion, par_row_pairs, par_rows, sigmoid, zeros};

    multiversion! {
        /// `y = silu(a) u`.
        fn forward_rows(a: &[f32], u: &[f32], y: &mut [f32]) {
            for ((y, &a), &u) in y.iter_mut().zip(a).zip(u) {
                *y = a * sigmoid(a) * u;
            }
        }
    }

    multiversion! {
        /// `a` and `u` become `∂a` and `∂u` for the incoming gradient `g`.
        fn backward_rows(g: &[f32], a: &mut [f32], u: &mut [f32]) {
            for ((g, a), u) in g.iter().zip(a.iter_mut()).zip(u.iter_mut()) {
                let (x, up) = (*a, *u);
                let s = sigmoid(x);
                *a = g * up * s * (1.0 + x * (1.0 - s));
                *u = g * x * s;
            }
        }
    }

    /// `silu(gate) up`, in a new buffer (the tracked path keeps `gate` for the backward, so
    /// writing over it would first cost a copy on the calling thread).
    pub(super) fn forward(gate: &FlexTensor, up: &FlexTensor) -> FlexTensor {
        let (gate, up) = (gate.to_contiguous(), up.to_contiguous());
        let (a, u) = (values(&gate), values(&up));
        let n = row_len(&gate);
        let mut y = zeros(a.len());
        par_rows(&mut y, n, |first, rows| {
            let at = first * n..first * n + rows.len();
            forward_rows(&a[at.clone()], &u[at], rows);
        });
        tensor(y, gate.layout().shape().clone())
    }

    #[derive(Debug)]
    struct SwigluBackward;

    impl Backward<Flex, 2> for SwigluBackward {
        /// `gate` and `up`.
        type State = (FlexTensor, FlexTensor);

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [gate_node, up_node] = ops.parents;
            let (gate, up) = ops.state;
            let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
            let g = values(&grad);
            let (mut da, mut du) = (owned(gate), owned(up));
            let n = row_len(&da);
            par_row_pairs(
                values_mut(&mut da),
                values_mut(&mut du),
                n,
                |first, da, du| {
                    backward_rows(&g[first * n..first * n + da.len()], da, du);
                },
            );
            if let Some(node) = gate_node {
                grads.register::<Flex>(node.id, da);
            }
            if let Some(node) = up_node {
                grads.register::<Flex>(node.id, du);
            }
        }
    }

    /// [`forward`] as an autodiff operation of `gate` and `up`.
    pub(super) fn tracked(gate: TrackedTensor, up: TrackedTensor) -> TrackedTensor {
        let (gate_flex, up_flex) = (gate.primitive.to_contiguous(), up.primitive.to_contiguous());
        let y = forward(&gate_flex, &up_flex);
        match SwigluBackward
            .prepare::<NoCheckpointing>([gate.node.clone(), up.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((gate_flex, up_flex), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}
