//! Attention's per-head products `[b, h, m, k] · [b, g, k, n]`, where each group of `h/g` query
//! heads shares one key/value head (grouped-query attention; `g = h` is multi-head attention):
//! head `i` reads kv head `i / (h/g)`, as transformers' `repeat_kv` lays them out.
//!
//! Composed on flex, a batched product zero-fills its output and copies it once more to realign
//! it, on the calling thread, before gemm overwrites it; the values' heads axis, moved in front
//! of the positions as a view, and the output's, moved back behind them, are copied element by
//! element on that thread too, forward and again in the backward of the reshapes around them.
//! In a profile of the 10m training step these copies were about two fifths of the calling
//! thread's samples, time in which the second core idled.
//!
//! Here each head's product is one gemm call, the heads spread over rayon threads, both operands
//! read through their strides (a transposed or head-moved view costs nothing), and the output is
//! written in the order asked for: heads first, or rows first (`[b, m, h, n]`, the layout the
//! output projection reads, so no copy follows). The backward writes each operand's gradient
//! with that operand's own axis order, so the gradient of a view the model took (the keys
//! transposed, the values' heads moved forward) comes out of the view's backward contiguous.

use burn::prelude::*;

/// The axis order of [`grouped_matmul`]'s output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// `[b, h, m, n]`.
    HeadsFirst,
    /// `[b, m, h, n]`: the heads-first product with its heads and rows axes swapped.
    RowsFirst,
}

/// `lhs · rhs` per head, kv head `i / (h/g)` serving query head `i`.
///
/// # Shapes
/// - `lhs`: `[b, h, m, k]`, `rhs`: `[b, g, k, n]`, `h` a multiple of `g`
/// - output: `[b, h, m, n]` ([`Order::HeadsFirst`]) or `[b, m, h, n]` ([`Order::RowsFirst`])
pub fn grouped_matmul<B: Backend>(
    lhs: Tensor<B, 4>,
    rhs: Tensor<B, 4>,
    order: Order,
) -> Tensor<B, 4> {
    #[cfg(feature = "flex")]
    {
        let ([b, h, _, k], [rb, g, rk, _]) = (lhs.dims(), rhs.dims());
        if b == rb && k == rk && g > 0 && h % g == 0 {
            use crate::route::{give, route, take, Route};
            use burn_flex::FlexTensor;
            match route::<B>(&[lhs.dtype(), rhs.dtype()]) {
                Route::Flex => {
                    let (lhs, rhs): (FlexTensor, FlexTensor) = (take(lhs), take(rhs));
                    let (lhs, rhs) = (kernels::readable(lhs), kernels::readable(rhs));
                    return give(kernels::forward(&lhs, &rhs, order));
                }
                Route::Tracked => return give(kernels::tracked(take(lhs), take(rhs), order)),
                Route::Composed => {}
            }
        }
    }
    composed(lhs, rhs, order)
}

/// The same through burn's tensor operations: the reference the kernels are tested against.
/// Each group's query heads are stacked along the rows, so the kv heads are used as they are
/// instead of being repeated.
pub fn composed<B: Backend>(lhs: Tensor<B, 4>, rhs: Tensor<B, 4>, order: Order) -> Tensor<B, 4> {
    let [b, h, m, k] = lhs.dims();
    let [_, g, _, n] = rhs.dims();
    let out = if h == g {
        lhs.matmul(rhs)
    } else {
        lhs.reshape([b, g, (h / g) * m, k])
            .matmul(rhs)
            .reshape([b, h, m, n])
    };
    match order {
        Order::HeadsFirst => out,
        Order::RowsFirst => out.swap_dims(1, 2),
    }
}

#[cfg(feature = "flex")]
mod kernels {
    use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::NoCheckpointing};
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::tensor::Shape;
    use burn_flex::{Flex, FlexTensor, Layout};
    use rayon::prelude::*;

    use super::Order;
    use crate::gemm_call::{block, Out, View, THREADED_FROM};
    use crate::route::{tensor, TrackedTensor};

    /// `tensor`, copied if any stride is negative (a flipped view), so gemm reads it forwards.
    pub(super) fn readable(tensor: FlexTensor) -> FlexTensor {
        if tensor.layout().has_positive_strides() {
            tensor
        } else {
            tensor.to_contiguous()
        }
    }

    /// A 4-D f32 tensor as stored: the matrices of its last two axes, indexed by the first two.
    #[derive(Clone, Copy)]
    struct Batch<'a> {
        data: &'a [f32],
        start: usize,
        shape: [usize; 4],
        strides: [isize; 4],
    }

    impl<'a> Batch<'a> {
        fn of(tensor: &'a FlexTensor) -> Self {
            let layout = tensor.layout();
            let (shape, strides) = (layout.shape(), layout.strides());
            Self {
                data: tensor.storage::<f32>(),
                start: layout.start_offset(),
                shape: [shape[0], shape[1], shape[2], shape[3]],
                strides: [strides[0], strides[1], strides[2], strides[3]],
            }
        }

        /// A `[b, m, h, n]` tensor seen as `[b, h, m, n]`.
        fn rows_first(self) -> Self {
            let ([b, m, h, n], [sb, sm, sh, sn]) = (self.shape, self.strides);
            Self {
                shape: [b, h, m, n],
                strides: [sb, sh, sm, sn],
                ..self
            }
        }

        /// Matrix `[i, j]`.
        fn item(&self, i: usize, j: usize) -> View<'a> {
            let start = self.start + i * self.strides[0] as usize + j * self.strides[1] as usize;
            View::new(
                self.data,
                start,
                [self.shape[2], self.shape[3]],
                [self.strides[2], self.strides[3]],
            )
        }
    }

    /// Strides of a new buffer for `shape` that stores the axes in the order of `like`'s
    /// strides (the largest outermost; ties keep the axes' own order).
    fn ordered_like(shape: [usize; 4], like: [isize; 4]) -> [usize; 4] {
        let mut order = [0, 1, 2, 3];
        order.sort_by_key(|&axis| std::cmp::Reverse(like[axis].unsigned_abs()));
        let mut strides = [0; 4];
        let mut step = 1;
        for &axis in order.iter().rev() {
            strides[axis] = step;
            step *= shape[axis];
        }
        strides
    }

    /// A new buffer for `shape` (stored with `strides`) in which `write` has put matrix
    /// `[i, j]` for every `i < shape[0]`, `j < shape[1]`; zeros when `depth`, the products'
    /// shared dimension, is 0. `work` is all the products' multiply-adds together: below
    /// [`THREADED_FROM`] they run on the calling thread, otherwise the matrices are spread over
    /// rayon threads (or, when there are fewer matrices than threads, each one is threaded).
    fn filled(
        shape: [usize; 4],
        strides: [usize; 4],
        depth: usize,
        work: usize,
        write: impl Fn(Out, usize, usize, gemm::Parallelism) + Sync,
    ) -> Vec<f32> {
        let len = shape.iter().product();
        if depth == 0 {
            return vec![0.0; len];
        }
        let mut values: Vec<f32> = Vec::with_capacity(len);
        let base = Out::strided(values.as_mut_ptr(), [strides[2], strides[3]]);
        let item = |index: usize, parallelism| {
            let (i, j) = (index / shape[1], index % shape[1]);
            write(base.at(i * strides[0] + j * strides[1]), i, j, parallelism);
        };
        let (count, threads) = (shape[0] * shape[1], rayon::current_num_threads());
        if work < THREADED_FROM || threads == 1 {
            (0..count).for_each(|index| item(index, gemm::Parallelism::None));
        } else if count >= threads {
            (0..count)
                .into_par_iter()
                .for_each(|index| item(index, gemm::Parallelism::None));
        } else {
            (0..count).for_each(|index| item(index, gemm::Parallelism::Rayon(0)));
        }
        // SAFETY: the strides place the matrices side by side without gaps, so writing every
        // matrix (each `write` does) wrote all `len` elements.
        unsafe { values.set_len(len) };
        values
    }

    /// `values` as a `shape` tensor stored with `strides`.
    fn strided(values: Vec<f32>, shape: [usize; 4], strides: [usize; 4]) -> FlexTensor {
        let len = values.len();
        let strides = strides.iter().map(|&s| s as isize).collect();
        tensor(values, [len]).with_layout(Layout::new(Shape::from(shape), strides, 0))
    }

    /// `(b, h, m, k, n, h / g)` of `lhs · rhs`.
    fn dims(lhs: &Batch, rhs: &Batch) -> (usize, usize, usize, usize, usize, usize) {
        let ([b, h, m, k], [_, g, _, n]) = (lhs.shape, rhs.shape);
        (b, h, m, k, n, h / g)
    }

    /// The product, `[b, h, m, n]` or `[b, m, h, n]`.
    pub(super) fn forward(lhs: &FlexTensor, rhs: &FlexTensor, order: Order) -> FlexTensor {
        let (l, r) = (Batch::of(lhs), Batch::of(rhs));
        let (b, h, m, k, n, rep) = dims(&l, &r);
        let (shape, strides) = match order {
            Order::HeadsFirst => ([b, h, m, n], [h * m * n, m * n, n, 1]),
            Order::RowsFirst => ([b, m, h, n], [m * h * n, n, h * n, 1]),
        };
        let values = filled(
            [b, h, m, n],
            strides,
            k,
            b * h * m * k * n,
            |out, i, j, parallelism| {
                // SAFETY: matrix `[i, j]` of the output, written by this call alone.
                unsafe { block(out, l.item(i, j), r.item(i, j / rep), false, parallelism) }
            },
        );
        tensor(values, shape)
    }

    /// `∂lhs[i, j] = g[i, j] · rhs[i, j / (h/g)]ᵀ`, in `lhs`'s axis order.
    fn lhs_grad(l: &Batch, r: &Batch, g: &Batch) -> FlexTensor {
        let (b, h, m, k, n, rep) = dims(l, r);
        let strides = ordered_like(l.shape, l.strides);
        let values = filled(
            l.shape,
            strides,
            n,
            b * h * m * k * n,
            |out, i, j, parallelism| {
                // SAFETY: matrix `[i, j]` of `∂lhs`, written by this call alone.
                unsafe {
                    block(
                        out,
                        g.item(i, j),
                        r.item(i, j / rep).t(),
                        false,
                        parallelism,
                    )
                }
            },
        );
        strided(values, l.shape, strides)
    }

    /// `∂rhs[i, c] = Σ lhs[i, j]ᵀ · g[i, j]` over the query heads `j` of group `c`, in `rhs`'s
    /// axis order.
    fn rhs_grad(l: &Batch, r: &Batch, g: &Batch) -> FlexTensor {
        let (b, h, m, k, n, rep) = dims(l, r);
        let strides = ordered_like(r.shape, r.strides);
        let values = filled(
            r.shape,
            strides,
            m,
            b * h * m * k * n,
            |out, i, c, parallelism| {
                for j in c * rep..(c + 1) * rep {
                    let first = j == c * rep;
                    // SAFETY: matrix `[i, c]` of `∂rhs`, written (then added to) by this call alone.
                    unsafe { block(out, l.item(i, j).t(), g.item(i, j), !first, parallelism) }
                }
            },
        );
        strided(values, r.shape, strides)
    }

    #[derive(Debug)]
    struct GroupedMatmulBackward {
        order: Order,
    }

    impl Backward<Flex, 2> for GroupedMatmulBackward {
        /// `lhs` and `rhs`, as stored.
        type State = (FlexTensor, FlexTensor);

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [lhs_node, rhs_node] = ops.parents;
            let (lhs, rhs) = ops.state;
            let grad = readable(grads.consume::<Flex>(&ops.node));
            let (l, r) = (Batch::of(&lhs), Batch::of(&rhs));
            let g = match self.order {
                Order::HeadsFirst => Batch::of(&grad),
                Order::RowsFirst => Batch::of(&grad).rows_first(),
            };
            if let Some(node) = lhs_node {
                grads.register::<Flex>(node.id, lhs_grad(&l, &r, &g));
            }
            if let Some(node) = rhs_node {
                grads.register::<Flex>(node.id, rhs_grad(&l, &r, &g));
            }
        }
    }

    /// [`forward`] as an autodiff operation of both operands.
    pub(super) fn tracked(lhs: TrackedTensor, rhs: TrackedTensor, order: Order) -> TrackedTensor {
        let (l, r) = (readable(lhs.primitive), readable(rhs.primitive));
        let y = forward(&l, &r, order);
        match (GroupedMatmulBackward { order })
            .prepare::<NoCheckpointing>([lhs.node.clone(), rhs.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((l, r), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}
