//! Linear maps of `[b, s, d]` activations as 2-D matrix products, split across CPU threads when
//! a product is too small for the backend to parallelise itself.
//!
//! burn's `Linear::forward` lifts the weight to `[1, d_in, d_out]` and runs a batched product. On
//! flex that is one product per batch row, so a decoding step reads every weight `b` times, and
//! the backward pass builds a `[b, d_in, d_out]` weight gradient only to sum it over the batch.
//! Here the positions are flattened to `[b*s, d_in]` first: one product, one weight read, one
//! `[d_in, d_out]` gradient.
//!
//! A decoding step multiplies a few rows by each weight. On flex with AVX-512, up to 8 rows go
//! to `few_rows` (x86-64), which streams each weight once, straight from storage, on every
//! thread. Otherwise flex hands such a product to gemm on one thread (its threshold is 192³
//! multiply-adds, and a single row always takes gemm's matrix-vector path, which has no
//! threads), so half the cores would idle while the weights stream from memory; on a CPU backend
//! without autodiff those products are cut into column blocks, one per rayon thread (110M
//! parameters on the 2-core build machine: batch-1 decoding 20.7 → 24.9-26.8 tokens/s, batch-8
//! 57.8 → 62.4-65.9).

use burn::prelude::*;
use rayon::prelude::*;

/// Below this many multiply-adds flex runs a product on one thread (its `PARALLEL_THRESHOLD`).
const SINGLE_THREADED_BELOW: usize = 192 * 192 * 192;

/// Narrowest column block worth a thread of its own.
const MIN_BLOCK_COLUMNS: usize = 128;

/// `[b, s, k] x [k, n] -> [b, s, n]` through one `[b*s, k] x [k, n]` product.
///
/// # Shapes
/// - `x`: `[b, s, k]`
/// - `weight`: `[k, n]` (burn's `Linear` orientation)
/// - output: `[b, s, n]`
pub fn matmul_2d<B: Backend>(x: Tensor<B, 3>, weight: Tensor<B, 2>) -> Tensor<B, 3> {
    let [b, s, k] = x.dims();
    let n = weight.dims()[1];
    let rows = x.reshape([b * s, k]);
    #[cfg(all(feature = "flex", target_arch = "x86_64"))]
    if let Some(y) = crate::few_rows::matmul(&rows, &weight) {
        return y.reshape([b, s, n]);
    }
    let blocks = column_blocks::<B>(&rows.device(), b * s, k, n);
    let y = if blocks > 1 {
        by_column_blocks(rows, weight, blocks)
    } else {
        crate::matmul(rows, weight)
    };
    y.reshape([b, s, n])
}

/// How many column blocks to compute concurrently: 1 unless the backend is a CPU backend without
/// autodiff that would run this product on one thread.
fn column_blocks<B: Backend>(device: &B::Device, m: usize, k: usize, n: usize) -> usize {
    if m > 1 && m * k * n >= SINGLE_THREADED_BELOW {
        return 1;
    }
    let name = B::name(device);
    if name != "flex" && name != "ndarray" {
        return 1;
    }
    rayon::current_num_threads()
        .min(n / MIN_BLOCK_COLUMNS)
        .max(1)
}

/// `rows W` with `W`'s columns cut into `blocks` views, each multiplied on its own rayon thread.
fn by_column_blocks<B: Backend>(
    rows: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    blocks: usize,
) -> Tensor<B, 2> {
    let n = weight.dims()[1];
    let single_row = rows.dims()[0] == 1;
    let parts: Vec<Tensor<B, 2>> = (0..blocks)
        .into_par_iter()
        .map(|i| {
            let block = weight
                .clone()
                .slice_dim(1, i * n / blocks..(i + 1) * n / blocks);
            if single_row {
                // As `Wᵀ xᵀ`: gemm then streams the weight through its column-major
                // matrix-vector kernel, measured about 1.2x faster here than `x W` for one row.
                block
                    .transpose()
                    .matmul(rows.clone().transpose())
                    .transpose()
            } else {
                rows.clone().matmul(block)
            }
        })
        .collect();
    Tensor::cat(parts, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::Distribution;

    type B = Flex;

    /// Every split (one row, a few rows, any block count) equals the single product.
    #[test]
    fn column_blocks_equal_one_product() {
        let dev = Default::default();
        let weight = Tensor::<B, 2>::random([48, 300], Distribution::Normal(0.0, 1.0), &dev);
        for m in [1, 3] {
            let rows = Tensor::<B, 2>::random([m, 48], Distribution::Normal(0.0, 1.0), &dev);
            let whole = rows.clone().matmul(weight.clone());
            for blocks in [1, 2, 3] {
                let split = by_column_blocks(rows.clone(), weight.clone(), blocks);
                assert_eq!(split.dims(), [m, 300]);
                let diff = (split - whole.clone()).abs().max().into_scalar();
                assert!(diff < 1e-5, "m {m}, {blocks} blocks: max difference {diff}");
            }
        }
    }

    #[test]
    fn only_small_cpu_products_are_split() {
        let dev = Default::default();
        let threads = rayon::current_num_threads();
        assert_eq!(column_blocks::<B>(&dev, 1, 768, 32_000), threads);
        assert_eq!(column_blocks::<B>(&dev, 2048, 768, 768), 1);
        assert_eq!(column_blocks::<B>(&dev, 8, 768, 64), 1);
        type Ad = burn::backend::Autodiff<B>;
        assert_eq!(column_blocks::<Ad>(&dev, 1, 768, 32_000), 1);
    }
}
