//! Vectorisable f32 arithmetic, the CPU-feature dispatch that compiles it wide, and the split of
//! row-wise work across rayon threads.
//!
//! The kernels are written as plain loops over slices with fixed-width accumulators, which LLVM
//! turns into vector code. [`multiversion!`] compiles a kernel three times (AVX-512, AVX2 + FMA,
//! and the baseline target) and picks the widest this CPU runs, once per call.

use rayon::prelude::*;

/// Width of the explicit accumulators in reductions: one AVX-512 register of f32.
pub(crate) const LANES: usize = 16;

/// Fewest elements worth a rayon task of their own.
const TASK_ELEMENTS: usize = 1 << 14;

/// Defines `fn $name(args) -> ret` that runs `$body` compiled for the widest vector unit of the
/// running CPU. Helpers the body calls must be `#[inline(always)]` to be compiled wide with it.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) { body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) { body($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has just been checked for the enabled feature.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// `e^x` in f32 without branches, so loops over it vectorise: Cody-Waite reduction by `ln 2`
/// and Cephes' degree-5 polynomial (`expf.c`), within 2 ulp of the correctly rounded value.
/// Results below `2^-126` (x < -87.3) are 0 and x > 88.7 gives infinity; NaN stays NaN.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOW: f32 = -87.336_55;
    const HIGH: f32 = 88.722_83;
    let clamped = x.clamp(LOW, HIGH);
    let k = (clamped * std::f32::consts::LOG2_E + 0.5).floor();
    let r = clamped - k * 0.693_359_4 - k * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^k as two factors, each a normal float for k in [-126, 128].
    let k = k as i32;
    let half = k >> 1;
    let pow2 = |e: i32| f32::from_bits(((e + 127) as u32) << 23);
    let value = y * pow2(half) * pow2(k - half);
    if x < LOW {
        0.0
    } else if x > HIGH {
        f32::INFINITY
    } else {
        value
    }
}

/// `1 / (1 + e^-x)`, from `e^-|x|` so neither side overflows (flex's own form, without the
/// branch).
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    let e = exp(-x.abs());
    let r = 1.0 / (1.0 + e);
    if x >= 0.0 {
        r
    } else {
        e * r
    }
}

/// Largest element (`-inf` for an empty slice).
#[inline(always)]
pub(crate) fn max(values: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = if v > *a { v } else { *a };
        }
    }
    let mut m = tail.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for a in acc {
        m = m.max(a);
    }
    m
}

/// Sum of the elements.
#[inline(always)]
pub(crate) fn sum(values: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail.iter().sum::<f32>()
}

/// Sum of `a[i] * b[i]`.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `len` zeros, written by the rayon threads: the first touch of a new buffer (the kernel's page
/// faults, or calloc's fill of recycled heap memory) would otherwise run on the calling thread
/// while the pool waits for the kernel that fills it.
pub(crate) fn zeros(len: usize) -> Vec<f32> {
    let mut values = Vec::with_capacity(len);
    values
        .spare_capacity_mut()
        .par_chunks_mut(TASK_ELEMENTS)
        .for_each(|block| block.fill(std::mem::MaybeUninit::new(0.0)));
    // SAFETY: every element of the capacity was just written.
    unsafe { values.set_len(len) };
    values
}

/// Rows per rayon task for rows of `row_len` elements.
pub(crate) fn rows_per_task(row_len: usize) -> usize {
    TASK_ELEMENTS.div_ceil(row_len.max(1)).max(1)
}

/// `kernel(first_row, count)` for consecutive blocks of `rows` rows of `row_len` elements, in
/// parallel, with the blocks' results concatenated in order.
pub(crate) fn par_map_rows<T: Send>(
    rows: usize,
    row_len: usize,
    kernel: impl Fn(usize, usize) -> Vec<T> + Sync + Send,
) -> Vec<T> {
    let per_task = rows_per_task(row_len);
    let blocks: Vec<Vec<T>> = (0..rows.div_ceil(per_task))
        .into_par_iter()
        .map(|i| {
            let first = i * per_task;
            kernel(first, per_task.min(rows - first))
        })
        .collect();
    blocks.into_iter().flatten().collect()
}

/// Runs `kernel(first_row, a_rows, b_rows)` over the same blocks of rows of `a` and `b`, as
/// [`par_rows`] does for one slice.
pub(crate) fn par_row_pairs(
    a: &mut [f32],
    b: &mut [f32],
    row_len: usize,
    kernel: impl Fn(usize, &mut [f32], &mut [f32]) + Sync + Send,
) {
    let per_task = rows_per_task(row_len);
    let block = per_task * row_len.max(1);
    a.par_chunks_mut(block)
        .zip(b.par_chunks_mut(block))
        .enumerate()
        .for_each(|(i, (a, b))| kernel(i * per_task, a, b));
}

/// Runs `kernel(first_row, rows, partial)` over `out` as [`par_rows`] does, each block adding into
/// its own zeroed `partial` of `len` elements, and returns the partials' sum. The blocks are fixed
/// by `row_len` and summed in order, so the result does not depend on thread timing.
pub(crate) fn par_rows_sum(
    out: &mut [f32],
    row_len: usize,
    len: usize,
    kernel: impl Fn(usize, &mut [f32], &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    let per_task = rows_per_task(row_len);
    let partials: Vec<Vec<f32>> = out
        .par_chunks_mut(per_task * row_len.max(1))
        .enumerate()
        .map(|(i, block)| {
            let mut partial = vec![0.0; len];
            kernel(i * per_task, block, &mut partial);
            partial
        })
        .collect();
    let mut total = vec![0.0; len];
    for partial in partials {
        for (t, p) in total.iter_mut().zip(partial) {
            *t += p;
        }
    }
    total
}

/// Runs `kernel(first_row, rows)` over `out`, cut into blocks of whole rows of `row_len`, in
/// parallel. `first_row` is the index of the block's first row.
pub(crate) fn par_rows(
    out: &mut [f32],
    row_len: usize,
    kernel: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    let per_task = rows_per_task(row_len);
    out.par_chunks_mut(per_task * row_len.max(1))
        .enumerate()
        .for_each(|(i, block)| kernel(i * per_task, block));
}

#[cfg(test)]
mod tests {
    use super::*;

    multiversion! {
        fn exp_all(input: &[f32], out: &mut [f32]) {
            for (o, &x) in out.iter_mut().zip(input) {
                *o = exp(x);
            }
        }
    }

    /// Distance in units in the last place between two positive normal floats.
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_is_within_two_ulp_of_f64_everywhere_it_is_normal() {
        let input: Vec<f32> = (0..400_001)
            .map(|i| -87.3 + 176.0 * i as f32 / 400_000.0)
            .filter(|x| *x < 88.72)
            .collect();
        let mut out = vec![0.0; input.len()];
        exp_all(&input, &mut out);
        for (&x, &y) in input.iter().zip(&out) {
            let want = (x as f64).exp() as f32;
            assert!(ulps(y, want) <= 2, "exp({x}) = {y}, want {want}");
        }
    }

    #[test]
    fn exp_limits() {
        let input = [
            f32::NEG_INFINITY,
            -1e30,
            -88.0,
            0.0,
            89.0,
            f32::INFINITY,
            f32::NAN,
        ];
        let mut out = [1.0; 7];
        exp_all(&input, &mut out);
        assert_eq!(
            &out[..6],
            &[0.0, 0.0, 0.0, 1.0, f32::INFINITY, f32::INFINITY]
        );
        assert!(out[6].is_nan());
    }

    #[test]
    fn reductions_match_sequential_sums() {
        for n in [0, 1, 15, 16, 17, 100] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 13) % 7) as f32 * 0.5).collect();
            assert_eq!(sum(&a), a.iter().sum::<f32>());
            assert_eq!(
                dot(&a, &b),
                a.iter().zip(&b).map(|(x, y)| x * y).sum::<f32>()
            );
            assert_eq!(max(&a), a.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)));
        }
    }

    #[test]
    fn par_rows_visits_every_row_once_with_its_index() {
        let row_len = 3;
        let rows = rows_per_task(row_len) * 2 + 5;
        let mut out = vec![0.0f32; rows * row_len];
        par_rows(&mut out, row_len, |first, block| {
            for (i, row) in block.chunks_exact_mut(row_len).enumerate() {
                row.fill((first + i) as f32);
            }
        });
        for (i, row) in out.chunks_exact(row_len).enumerate() {
            assert!(row.iter().all(|&v| v == i as f32));
        }
    }
}
