//! Decoding's products, a few rows times a weight, streamed once through AVX-512.
//!
//! A decoding step multiplies `b` rows (one per sequence) by every weight. gemm, under flex,
//! packs the weight into its own panel layout on each call and then runs an 8-row product on a
//! 6-column microkernel tile plus a 2-column one, so at batch 8 the weight is read, written and
//! read again while most of each tile is idle. Here each rayon thread takes one range of output
//! columns and reads its part of the weight exactly once, straight from the tensor's storage:
//! - a row-major weight (burn's linear layers) in bands of 32 columns, `rows x 32` sums in
//!   registers, 16 weight rows at a time across the range;
//! - a transposed weight (the tied lm_head's `[v, d]` embedding) as dot products along its
//!   contiguous rows, two output columns at a time.
//!
//! The product then runs at the speed the weight streams from memory.
//!
//! Only the flex backend without autodiff, f32 tensors whose rows (or, for the weight, columns)
//! are contiguous, at most [`MAX_ROWS`] rows and a CPU with AVX-512 take this path; everything
//! else returns `None` and the caller multiplies through the backend. Results differ from gemm's
//! only in rounding (fused multiply-adds, another summation order).

use burn::prelude::*;
use burn_flex::FlexTensor;
use rayon::prelude::*;

/// Most rows per product: `rows x 2` accumulator registers plus the weight vectors must fit in
/// AVX-512's 32.
pub(crate) const MAX_ROWS: usize = 8;

/// Weight columns per register band of a row-major weight (two 16-lane vectors).
const BAND: usize = 32;

/// Weight rows per pass over a task's bands. A band reads 128 bytes from each row, and rows are
/// pages apart; taking a few rows at a time across the whole task keeps each row's page a
/// forward stream the hardware prefetcher follows.
const DEPTH: usize = 16;

/// Output columns per dot-product group of a transposed weight.
const PAIR: usize = 2;

/// Weights with fewer elements (256 KiB of f32) are multiplied on the calling thread: handing
/// them to rayon costs more than streaming them.
const PARALLEL_WEIGHT: usize = 1 << 16;

/// How the weight `[k, n]` lies in memory.
#[derive(Clone, Copy)]
enum Weight<'a> {
    /// Row `p` starts at `data[p * stride]` and its columns are adjacent: burn's `[d_in, d_out]`
    /// linear weights.
    Rows { data: &'a [f32], stride: usize },
    /// Column `j` starts at `data[j * stride]` and its rows are adjacent: a transposed `[n, k]`
    /// matrix, as the tied lm_head's embedding.
    Columns { data: &'a [f32], stride: usize },
}

/// `rows W` (`[m, k] x [k, n]`) when both are flex f32 tensors this kernel takes; `None` otherwise.
pub(crate) fn matmul<B: Backend>(
    rows: &Tensor<B, 2>,
    weight: &Tensor<B, 2>,
) -> Option<Tensor<B, 2>> {
    let [m, k] = rows.dims();
    let n = weight.dims()[1];
    if m == 0 || m > MAX_ROWS || k == 0 || n == 0 || !avx512() {
        return None;
    }
    let x = crate::flex_tensor::unwrap(rows.clone()).ok()?;
    let w = crate::flex_tensor::unwrap(weight.clone()).ok()?;
    let (x, ldx) = match strided_f32(&x)? {
        (data, row, 1) => (data, row),
        _ => return None,
    };
    let weight = match strided_f32(&w)? {
        (data, stride, 1) => Weight::Rows { data, stride },
        (data, 1, stride) => Weight::Columns { data, stride },
        _ => return None,
    };
    let product = multiply(x, ldx, m, k, weight, n);
    Some(crate::flex_tensor::wrap(FlexTensor::from_data(
        TensorData::new(product, [m, n]),
    )))
}

/// An f32 matrix's storage from its first element, with its row and column strides, when both
/// strides are positive and the storage covers the last element.
fn strided_f32(t: &FlexTensor) -> Option<(&[f32], usize, usize)> {
    let layout = t.layout();
    let &[row, col] = layout.strides() else {
        return None;
    };
    let (rows, cols) = (layout.shape()[0], layout.shape()[1]);
    if t.dtype() != burn::tensor::DType::F32 || row < 1 || col < 1 {
        return None;
    }
    let (row, col) = (row as usize, col as usize);
    let data = t.storage::<f32>().get(layout.start_offset()..)?;
    let last = (rows - 1) * row + (cols - 1) * col;
    (last < data.len()).then_some((data, row, col))
}

fn avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// `x W` for `x` `[m, k]` (row stride `ldx`, columns adjacent), row-major `[m, n]`. Each rayon
/// thread takes one range of output columns (one range in all below [`PARALLEL_WEIGHT`]).
///
/// The caller has checked [`avx512`], `1 <= m <= MAX_ROWS`, and that `x` and the weight cover
/// their last element.
fn multiply(x: &[f32], ldx: usize, m: usize, k: usize, weight: Weight<'_>, n: usize) -> Vec<f32> {
    let granule = match weight {
        Weight::Rows { .. } => BAND,
        Weight::Columns { .. } => PAIR,
    };
    let threads = if k * n < PARALLEL_WEIGHT {
        1
    } else {
        rayon::current_num_threads()
    };
    let width = n.div_ceil(threads).div_ceil(granule) * granule;
    let blocks: Vec<(usize, Vec<f32>)> = (0..n.div_ceil(width))
        .into_par_iter()
        .map(|task| {
            let columns = task * width..((task + 1) * width).min(n);
            (columns.start, columns_block(x, ldx, m, k, weight, columns))
        })
        .collect();
    let mut out = vec![0.0; m * n];
    for (start, block) in blocks {
        let width = block.len() / m;
        for (row, values) in block.chunks_exact(width).enumerate() {
            out[row * n + start..row * n + start + width].copy_from_slice(values);
        }
    }
    out
}

/// Output columns `columns` of `x W`, row-major `[m, columns.len()]`.
fn columns_block(
    x: &[f32],
    ldx: usize,
    m: usize,
    k: usize,
    weight: Weight<'_>,
    columns: std::ops::Range<usize>,
) -> Vec<f32> {
    let ldo = columns.len();
    let mut block = vec![0.0; m * ldo];
    let out = block.as_mut_ptr();
    match weight {
        Weight::Rows { data, stride } => {
            for depth in (0..k).step_by(DEPTH) {
                for band in columns.clone().step_by(BAND) {
                    let cols = BAND.min(columns.end - band);
                    // SAFETY: AVX-512 is present and `x` covers `m` rows of `k` (the caller's
                    // checks); the weight covers rows `depth..k` of columns `band..band + cols`
                    // (inside `[k, n]`); the block has `m` rows of `ldo` columns.
                    unsafe {
                        kernel::band(
                            x.as_ptr().add(depth),
                            ldx,
                            m,
                            DEPTH.min(k - depth),
                            data.as_ptr().add(depth * stride + band),
                            stride,
                            cols,
                            out.add(band - columns.start),
                            ldo,
                            depth > 0,
                        )
                    };
                }
            }
        }
        Weight::Columns { data, stride } => {
            for pair in columns.clone().step_by(PAIR) {
                let cols = PAIR.min(columns.end - pair);
                // SAFETY: as above, with the weight's columns `pair..pair + cols` each `k` long.
                unsafe {
                    kernel::dots(
                        x.as_ptr(),
                        ldx,
                        m,
                        k,
                        data.as_ptr().add(pair * stride),
                        stride,
                        cols,
                        out.add(pair - columns.start),
                        ldo,
                    )
                };
            }
        }
    }
    block
}

mod kernel {
    use super::{BAND, PAIR};
    use std::arch::x86_64::*;

    /// Expands `$call::<R>` for the row count `$m` in `1..=MAX_ROWS`.
    macro_rules! by_rows {
        ($m:expr, $call:ident($($arg:expr),*)) => {
            match $m {
                1 => $call::<1>($($arg),*),
                2 => $call::<2>($($arg),*),
                3 => $call::<3>($($arg),*),
                4 => $call::<4>($($arg),*),
                5 => $call::<5>($($arg),*),
                6 => $call::<6>($($arg),*),
                7 => $call::<7>($($arg),*),
                8 => $call::<8>($($arg),*),
                _ => unreachable!("at most MAX_ROWS rows"),
            }
        };
    }

    /// The first `live` (at most 16) lanes.
    fn lanes(live: usize) -> __mmask16 {
        ((1u32 << live.min(16)) - 1) as __mmask16
    }

    /// `out[r][c] (+)= sum_p x[r][p] w[p][c]` over one band of at most [`BAND`] columns of a
    /// row-major weight; with `add` the sums start from `out`.
    ///
    /// # Safety
    /// AVX-512F must be available; `x` must hold `m` rows of `k` (stride `ldx`), `w` `k` rows of
    /// `cols` (stride `ldw`), `out` `m` rows of `cols` (stride `ldo`).
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn band(
        x: *const f32,
        ldx: usize,
        m: usize,
        k: usize,
        w: *const f32,
        ldw: usize,
        cols: usize,
        out: *mut f32,
        ldo: usize,
        add: bool,
    ) {
        debug_assert!(cols <= BAND);
        by_rows!(m, band_rows(x, ldx, k, w, ldw, cols, out, ldo, add))
    }

    /// [`band`] with the row count fixed, so the `R x 2` sums live in registers.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn band_rows<const R: usize>(
        x: *const f32,
        ldx: usize,
        k: usize,
        w: *const f32,
        ldw: usize,
        cols: usize,
        out: *mut f32,
        ldo: usize,
        add: bool,
    ) {
        let (lo, hi) = (lanes(cols), lanes(cols.saturating_sub(16)));
        let mut sums = [[_mm512_setzero_ps(); 2]; R];
        if add {
            for (r, sum) in sums.iter_mut().enumerate() {
                sum[0] = _mm512_maskz_loadu_ps(lo, out.add(r * ldo));
                sum[1] = _mm512_maskz_loadu_ps(hi, out.add(r * ldo + 16));
            }
        }
        for p in 0..k {
            let row = w.add(p * ldw);
            let w0 = _mm512_maskz_loadu_ps(lo, row);
            let w1 = _mm512_maskz_loadu_ps(hi, row.add(16));
            for (r, sum) in sums.iter_mut().enumerate() {
                let a = _mm512_set1_ps(*x.add(r * ldx + p));
                sum[0] = _mm512_fmadd_ps(a, w0, sum[0]);
                sum[1] = _mm512_fmadd_ps(a, w1, sum[1]);
            }
        }
        for (r, sum) in sums.iter().enumerate() {
            _mm512_mask_storeu_ps(out.add(r * ldo), lo, sum[0]);
            _mm512_mask_storeu_ps(out.add(r * ldo + 16), hi, sum[1]);
        }
    }

    /// `out[r][c] = sum_p x[r][p] w[c][p]` for at most [`PAIR`] weight columns stored as
    /// contiguous rows of length `k` (stride `ldw`).
    ///
    /// # Safety
    /// AVX-512F must be available; `x` must hold `m` rows of `k` (stride `ldx`), `w` `cols` rows
    /// of `k` (stride `ldw`), `out` `m` rows of `cols` (stride `ldo`).
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn dots(
        x: *const f32,
        ldx: usize,
        m: usize,
        k: usize,
        w: *const f32,
        ldw: usize,
        cols: usize,
        out: *mut f32,
        ldo: usize,
    ) {
        debug_assert!(cols <= PAIR);
        by_rows!(m, dots_rows(x, ldx, k, w, ldw, cols, out, ldo))
    }

    /// [`dots`] with the row count fixed.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn dots_rows<const R: usize>(
        x: *const f32,
        ldx: usize,
        k: usize,
        w: *const f32,
        ldw: usize,
        cols: usize,
        out: *mut f32,
        ldo: usize,
    ) {
        let mut sums = [[_mm512_setzero_ps(); PAIR]; R];
        for p in (0..k).step_by(16) {
            let live = lanes(k - p);
            let mut wv = [_mm512_setzero_ps(); PAIR];
            for (c, v) in wv.iter_mut().enumerate().take(cols) {
                *v = _mm512_maskz_loadu_ps(live, w.add(c * ldw + p));
            }
            for (r, sum) in sums.iter_mut().enumerate() {
                let a = _mm512_maskz_loadu_ps(live, x.add(r * ldx + p));
                for (s, v) in sum.iter_mut().zip(wv) {
                    *s = _mm512_fmadd_ps(a, v, *s);
                }
            }
        }
        for (r, sum) in sums.iter().enumerate() {
            for (c, s) in sum.iter().enumerate().take(cols) {
                *out.add(r * ldo + c) = _mm512_reduce_add_ps(*s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::Distribution;

    type B = Flex;

    fn random(shape: [usize; 2]) -> Tensor<B, 2> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
    }

    /// Every row count, partial bands and column slices of the weight equal flex's own product.
    #[test]
    fn equals_the_backend_product() {
        if !avx512() {
            assert!(matmul(&random([2, 8]), &random([8, 40])).is_none());
            return;
        }
        for m in 1..=MAX_ROWS {
            for (k, n) in [(1, 1), (7, 33), (17, 3), (64, 96), (48, 300), (300, 1000)] {
                let rows = random([m, k]);
                // Row-major, and transposed as the tied lm_head's embedding.
                for weight in [random([k, n]), random([n, k]).transpose()] {
                    let fast = matmul(&rows, &weight).expect("flex f32 rows take the kernel");
                    let diff = (fast - rows.clone().matmul(weight))
                        .abs()
                        .max()
                        .into_scalar();
                    assert!(diff < 1e-4, "m {m}, k {k}, n {n}: max difference {diff}");
                }
            }
        }
        // A column slice of a wider weight: row stride larger than the row.
        let (rows, wide) = (random([3, 50]), random([50, 90]));
        let weight = wide.slice_dim(1, 20..71);
        let fast = matmul(&rows, &weight).expect("a column slice is row-major");
        let diff = (fast - rows.matmul(weight)).abs().max().into_scalar();
        assert!(diff < 1e-4, "column slice: max difference {diff}");
    }

    #[test]
    fn declines_what_it_does_not_take() {
        let weight = random([16, 32]);
        // Too many rows, autodiff tensors.
        assert!(matmul(&random([MAX_ROWS + 1, 16]), &weight).is_none());
        let dev = Default::default();
        let rows = Tensor::<Autodiff<B>, 2>::random([2, 16], Distribution::Default, &dev);
        let weight = Tensor::<Autodiff<B>, 2>::random([16, 32], Distribution::Default, &dev);
        assert!(matmul(&rows, &weight).is_none());
    }
}
