//! Matrix products `[m, k] x [k, n]` handed to gemm directly on flex.
//!
//! flex's own product zero-fills its output buffer, then copies it once more to realign it
//! (its byte buffers are built from a `Vec<u8>`), before gemm writes every element anyway: in a
//! profile of the 10m training step those two passes, on the calling thread, were 7% of all
//! samples. Here gemm writes into fresh uninitialised memory, reading both operands through their
//! strides (transposed views cost nothing), and the backward products `∂lhs = g rhsᵀ`,
//! `∂rhs = lhsᵀ g` go the same way.

use burn::prelude::*;

/// `lhs · rhs`.
///
/// # Shapes
/// - `lhs`: `[m, k]`, `rhs`: `[k, n]`
/// - output: `[m, n]`
pub fn matmul<B: Backend>(lhs: Tensor<B, 2>, rhs: Tensor<B, 2>) -> Tensor<B, 2> {
    #[cfg(feature = "flex")]
    if lhs.dims()[1] == rhs.dims()[0] {
        use crate::route::{give, route, take, Route};
        use burn_flex::FlexTensor;
        match route::<B>(&[lhs.dtype(), rhs.dtype()]) {
            Route::Flex => {
                let (lhs, rhs): (FlexTensor, FlexTensor) = (take(lhs), take(rhs));
                return give(kernels::product(
                    kernels::View::of(&lhs),
                    kernels::View::of(&rhs),
                ));
            }
            Route::Tracked => return give(kernels::tracked(take(lhs), take(rhs))),
            Route::Composed => {}
        }
    }
    lhs.matmul(rhs)
}

/// `acc + lhs · rhs`, for sums of products such as a weight gradient built chunk by chunk. On
/// flex gemm adds into `acc`'s own buffer (when nothing else holds it), so the sum costs no pass
/// and no allocation of its own. Elsewhere (autodiff included) it is `acc + lhs.matmul(rhs)`.
///
/// # Shapes
/// - `acc`: `[m, n]`, `lhs`: `[m, k]`, `rhs`: `[k, n]`
/// - output: `[m, n]`
pub fn matmul_accumulate<B: Backend>(
    acc: Tensor<B, 2>,
    lhs: Tensor<B, 2>,
    rhs: Tensor<B, 2>,
) -> Tensor<B, 2> {
    #[cfg(feature = "flex")]
    let [acc, lhs, rhs] = match into_buffer(acc, lhs, rhs, kernels::accumulate) {
        Ok(sum) => return sum,
        Err(operands) => operands,
    };
    acc + lhs.matmul(rhs)
}

/// `lhs · rhs`, written over `out`'s buffer when nothing else holds it and its shape is
/// `[m, n]`; `out`'s values are ignored. A loop that makes one product of the same shape per
/// iteration (a chunked lm_head) hands each result back as the next `out`, so it allocates one
/// buffer instead of one per iteration: the allocator never sees the same large block freed and
/// asked for again, which glibc answers from a heap it then keeps. Elsewhere (autodiff included)
/// it is [`matmul`].
///
/// # Shapes
/// - `out`: any, `lhs`: `[m, k]`, `rhs`: `[k, n]`
/// - output: `[m, n]`
pub fn matmul_into<B: Backend>(
    out: Tensor<B, 2>,
    lhs: Tensor<B, 2>,
    rhs: Tensor<B, 2>,
) -> Tensor<B, 2> {
    #[cfg(feature = "flex")]
    let [_, lhs, rhs] = match into_buffer(out, lhs, rhs, kernels::overwrite) {
        Ok(product) => return product,
        Err(operands) => operands,
    };
    #[cfg(not(feature = "flex"))]
    drop(out);
    matmul(lhs, rhs)
}

/// `kernel(buffer, lhs, rhs)` when all three are f32 flex tensors (no autodiff) and `buffer` is
/// `[m, n]` for `[m, k] · [k, n]`; otherwise the three handed back for the composed path.
#[cfg(feature = "flex")]
fn into_buffer<B: Backend>(
    buffer: Tensor<B, 2>,
    lhs: Tensor<B, 2>,
    rhs: Tensor<B, 2>,
    kernel: fn(
        burn_flex::FlexTensor,
        kernels::View<'_>,
        kernels::View<'_>,
    ) -> burn_flex::FlexTensor,
) -> Result<Tensor<B, 2>, [Tensor<B, 2>; 3]> {
    use crate::route::{give, route, take, Route};
    use burn_flex::FlexTensor;
    let fits = lhs.dims()[1] == rhs.dims()[0] && buffer.dims() == [lhs.dims()[0], rhs.dims()[1]];
    if !fits
        || !matches!(
            route::<B>(&[buffer.dtype(), lhs.dtype(), rhs.dtype()]),
            Route::Flex
        )
    {
        return Err([buffer, lhs, rhs]);
    }
    let (lhs, rhs): (FlexTensor, FlexTensor) = (take(lhs), take(rhs));
    let (lhs, rhs) = (kernels::View::of(&lhs), kernels::View::of(&rhs));
    Ok(give(kernel(take(buffer), lhs, rhs)))
}

#[cfg(feature = "flex")]
mod kernels {
    use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::NoCheckpointing};
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn_flex::{Flex, FlexTensor};

    use rayon::prelude::*;

    pub(super) use crate::gemm_call::View;
    use crate::gemm_call::{block, dims, Out, THREADED_FROM};
    use crate::route::{owned, tensor, values_mut, TrackedTensor};

    /// Products whose left operand gemm would pack into more than this many elements (16 MB)
    /// run as row blocks of [`PACKED_BLOCK`] elements, one after another. gemm packs a depth
    /// slice (up to about [`MAX_DEPTH`] deep) of the left operand for all of the output's rows
    /// at once, in a buffer it allocates per call, one per thread when the columns are split:
    /// 33 MB for the chunked lm_head's weight gradient, `[32,000 × 256] · [256 × d]`, once per
    /// chunk. Only such vocabulary-tall products are cut; the model's own keep their shape.
    const PACKED_LIMIT: usize = 1 << 22;

    /// Left-operand elements per row block of a product over [`PACKED_LIMIT`] (2 MB; the
    /// memory-efficient loss path's peak RSS at v = 32,000 was 203 MB with 4 MB blocks, 198 MB
    /// with 2 MB).
    const PACKED_BLOCK: usize = 1 << 19;

    /// Deepest slice of the shared dimension gemm packs at once (its `kc` is at most this).
    const MAX_DEPTH: usize = 512;

    /// Fewest rows of a block cut by [`PACKED_BLOCK`].
    const MIN_BLOCK_ROWS: usize = 64;

    /// Fewest output columns per thread for a product split by columns (below, gemm's own
    /// threading runs it).
    const MIN_BLOCK_COLUMNS: usize = 64;

    /// `dst = lhs · rhs`, or `dst += lhs · rhs` when `accumulate`, for a row-major `[m, n]` `dst`.
    ///
    /// Vocabulary-tall products run as row blocks ([`PACKED_LIMIT`]). A product of at least
    /// [`THREADED_FROM`] multiply-adds is cut into one column block per rayon thread, each a
    /// single-threaded gemm call of its own, rather than handed to gemm's threading, whose
    /// threads share packed blocks and meet at a barrier after each: in the 100m model's training
    /// step, with the two ways picked at random per call and timed in the same run, the split
    /// ran its products 5.5% faster overall (3-11% for the layers' products; the lm_head's
    /// about equal).
    ///
    /// # Safety
    /// `dst` must be valid for writes of `m * n` elements, and for reads of them when
    /// `accumulate`; `k > 0`.
    unsafe fn gemm_into(dst: *mut f32, lhs: View, rhs: View, accumulate: bool) {
        let (m, k, n) = dims(&lhs, &rhs);
        let depth = k.min(MAX_DEPTH);
        let tallest = (PACKED_BLOCK / depth).max(MIN_BLOCK_ROWS);
        if m * depth > PACKED_LIMIT && m > tallest {
            for first in (0..m).step_by(tallest) {
                let rows = lhs.rows(first, tallest.min(m - first));
                // SAFETY: row blocks of `dst`, inside what the caller promised.
                unsafe { gemm_into(dst.add(first * n), rows, rhs, accumulate) };
            }
            return;
        }
        let threads = rayon::current_num_threads();
        let out = Out::rows(dst, n);
        if m * n * k < THREADED_FROM || threads == 1 {
            // SAFETY: as the caller promises.
            unsafe { block(out, lhs, rhs, accumulate, gemm::Parallelism::None) };
        } else if n >= threads * MIN_BLOCK_COLUMNS {
            (0..threads).into_par_iter().for_each(|i| {
                let (first, end) = (i * n / threads, (i + 1) * n / threads);
                let cols = rhs.cols(first, end - first);
                // SAFETY: the blocks write disjoint columns of `dst`.
                unsafe {
                    block(
                        out.at(first),
                        lhs,
                        cols,
                        accumulate,
                        gemm::Parallelism::None,
                    )
                };
            });
        } else {
            // SAFETY: as the caller promises.
            unsafe { block(out, lhs, rhs, accumulate, gemm::Parallelism::Rayon(0)) };
        }
    }

    /// `lhs · rhs` as a new contiguous `[m, n]` tensor.
    pub(super) fn product(lhs: View, rhs: View) -> FlexTensor {
        let (m, k, n) = dims(&lhs, &rhs);
        if k == 0 {
            return tensor(vec![0.0; m * n], [m, n]);
        }
        let mut out: Vec<f32> = Vec::with_capacity(m * n);
        // SAFETY: `out` has room for m * n elements, which gemm writes in full (k > 0) before
        // `set_len` exposes them.
        unsafe {
            gemm_into(out.as_mut_ptr(), lhs, rhs, false);
            out.set_len(m * n);
        }
        tensor(out, [m, n])
    }

    /// `acc + lhs · rhs`, added into `acc`'s buffer when nothing else holds it.
    pub(super) fn accumulate(acc: FlexTensor, lhs: View, rhs: View) -> FlexTensor {
        let (m, k, n) = dims(&lhs, &rhs);
        let shape = acc.layout().shape();
        assert!(
            shape[0] == m && shape[1] == n,
            "matmul_accumulate: accumulator {shape:?} for a [{m}, {n}] product"
        );
        let mut acc = owned(acc);
        if k > 0 {
            let dst = values_mut(&mut acc);
            // SAFETY: `dst` holds exactly the m * n elements of a contiguous accumulator.
            unsafe { gemm_into(dst.as_mut_ptr(), lhs, rhs, true) };
        }
        acc
    }

    /// `lhs · rhs` in `out`'s buffer when it is a contiguous `[m, n]` tensor that nothing else
    /// holds, else in a new one.
    pub(super) fn overwrite(mut out: FlexTensor, lhs: View, rhs: View) -> FlexTensor {
        let (m, k, n) = dims(&lhs, &rhs);
        let layout = out.layout();
        let reusable = k > 0
            && layout.shape()[0] == m
            && layout.shape()[1] == n
            && layout.is_contiguous()
            && layout.start_offset() == 0
            && out.try_storage_mut::<f32>().is_some();
        if !reusable {
            return product(lhs, rhs);
        }
        let dst = values_mut(&mut out);
        // SAFETY: `dst` holds exactly the m * n elements of a contiguous `[m, n]` buffer, which
        // gemm writes in full without reading (k > 0).
        unsafe { gemm_into(dst.as_mut_ptr(), lhs, rhs, false) };
        out
    }

    #[derive(Debug)]
    struct MatmulBackward;

    impl Backward<Flex, 2> for MatmulBackward {
        /// `lhs` and `rhs`.
        type State = (FlexTensor, FlexTensor);

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [lhs_node, rhs_node] = ops.parents;
            let (lhs, rhs) = ops.state;
            let grad = grads.consume::<Flex>(&ops.node);
            let g = View::of(&grad);
            if let Some(node) = lhs_node {
                grads.register::<Flex>(node.id, product(g, View::of(&rhs).t()));
            }
            if let Some(node) = rhs_node {
                grads.register::<Flex>(node.id, product(View::of(&lhs).t(), g));
            }
        }
    }

    /// [`product`] as an autodiff operation of both operands.
    pub(super) fn tracked(lhs: TrackedTensor, rhs: TrackedTensor) -> TrackedTensor {
        let y = product(View::of(&lhs.primitive), View::of(&rhs.primitive));
        match MatmulBackward
            .prepare::<NoCheckpointing>([lhs.node.clone(), rhs.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((lhs.primitive, rhs.primitive), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::backend::Flex;
    use burn::prelude::*;

    use super::matmul_into;
    use crate::route::take;

    /// Where a flex tensor's elements live.
    fn address(tensor: &Tensor<Flex, 2>) -> usize {
        let primitive: burn_flex::FlexTensor = take(tensor.clone());
        primitive.storage::<f32>().as_ptr() as usize
    }

    /// The buffer a loop hands back is the one the next product is written into, unless
    /// something else still holds it.
    #[test]
    fn matmul_into_writes_into_an_owned_buffer_of_the_right_shape() {
        let dev = Default::default();
        let (x, w) = (
            Tensor::<Flex, 2>::ones([16, 8], &dev),
            Tensor::<Flex, 2>::ones([8, 12], &dev),
        );
        let out = Tensor::<Flex, 2>::zeros([16, 12], &dev);
        let before = address(&out);
        let out = matmul_into(out, x.clone(), w.clone());
        assert_eq!(address(&out), before);
        assert_eq!(out.clone().sum().into_scalar(), (16 * 12 * 8) as f32);
        // Held elsewhere too: a new buffer, since the holder still reads the old one.
        let kept = out.clone();
        assert_ne!(address(&matmul_into(out, x, w)), address(&kept));
    }
}
