//! Operands and outputs as gemm reads and writes them, and one gemm call: the part the 2-D
//! products ([`crate::matmul`]) and attention's per-head products ([`crate::grouped_matmul`])
//! share.

use burn_flex::FlexTensor;

/// Below this many multiply-adds a product runs on one thread (flex's threshold).
pub(crate) const THREADED_FROM: usize = 192 * 192 * 192;

/// A 2-D f32 operand: a pointer to element `[0, 0]` inside its storage, and its strides.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    data: &'a [f32],
    start: usize,
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
}

impl<'a> View<'a> {
    /// The 2-D f32 `tensor` as stored.
    pub(crate) fn of(tensor: &'a FlexTensor) -> Self {
        let layout = tensor.layout();
        let (shape, strides) = (layout.shape(), layout.strides());
        Self {
            data: tensor.storage::<f32>(),
            start: layout.start_offset(),
            rows: shape[0],
            cols: shape[1],
            row_stride: strides[0],
            col_stride: strides[1],
        }
    }

    /// The `[rows, cols]` matrix at `start` in `data` with the given strides.
    pub(crate) fn new(
        data: &'a [f32],
        start: usize,
        [rows, cols]: [usize; 2],
        [row_stride, col_stride]: [isize; 2],
    ) -> Self {
        Self {
            data,
            start,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The transpose, as a view of the same storage.
    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Rows `first..first + rows` (inside the view).
    pub(crate) fn rows(self, first: usize, rows: usize) -> Self {
        debug_assert!(first + rows <= self.rows);
        Self {
            start: self.start + first * self.row_stride.unsigned_abs(),
            rows,
            ..self
        }
    }

    /// Columns `first..first + cols` (inside the view).
    pub(crate) fn cols(self, first: usize, cols: usize) -> Self {
        debug_assert!(first + cols <= self.cols);
        Self {
            start: self.start + first * self.col_stride.unsigned_abs(),
            cols,
            ..self
        }
    }

    /// Whether every element the strides reach lies inside the storage.
    fn in_bounds(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let reach = |stride: isize, len: usize| stride.unsigned_abs() * (len - 1);
        self.row_stride >= 0
            && self.col_stride >= 0
            && self.start + reach(self.row_stride, self.rows) + reach(self.col_stride, self.cols)
                < self.data.len()
    }
}

/// Checks that `lhs · rhs` is defined and both views lie inside their storage: `(m, k, n)`.
pub(crate) fn dims(lhs: &View, rhs: &View) -> (usize, usize, usize) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert!(
        rhs.rows == k && lhs.in_bounds() && rhs.in_bounds(),
        "matmul: operands [{m}, {k}] and [{}, {n}] do not fit their storage",
        rhs.rows
    );
    (m, k, n)
}

/// Where a product is written: its element `[0, 0]` and its strides. Threads that write
/// disjoint blocks of one output share it.
#[derive(Clone, Copy)]
pub(crate) struct Out {
    ptr: *mut f32,
    row_stride: isize,
    col_stride: isize,
}

// SAFETY: an `Out` is only written through `block`, whose callers promise that concurrent
// blocks are disjoint and are joined before the output is read.
unsafe impl Send for Out {}
// SAFETY: as for `Send`: shared references only hand out the pointer to `block`'s callers.
unsafe impl Sync for Out {}

impl Out {
    /// A row-major output whose rows are `row_stride` elements apart.
    pub(crate) fn rows(ptr: *mut f32, row_stride: usize) -> Self {
        Self::strided(ptr, [row_stride, 1])
    }

    /// An output with the given row and column strides.
    pub(crate) fn strided(ptr: *mut f32, [row_stride, col_stride]: [usize; 2]) -> Self {
        Self {
            ptr,
            row_stride: row_stride as isize,
            col_stride: col_stride as isize,
        }
    }

    /// The same output, moved `offset` elements on (element `[0, 0]` of a block inside it).
    pub(crate) fn at(self, offset: usize) -> Self {
        Self {
            ptr: self.ptr.wrapping_add(offset),
            ..self
        }
    }
}

/// `out (+)= lhs · rhs` by one gemm call.
///
/// # Safety
/// `out` must be valid for writes of the `[m, n]` block its strides reach, and for reads of it
/// when `accumulate`; no other thread may touch that block during the call; `k > 0`.
pub(crate) unsafe fn block(
    out: Out,
    lhs: View,
    rhs: View,
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    let (m, k, n) = dims(&lhs, &rhs);
    // SAFETY: both operands lie inside their storage (checked by `dims`); `out` as the caller
    // promises. With `accumulate` false gemm writes every element without reading.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.ptr,
            out.col_stride,
            out.row_stride,
            accumulate,
            lhs.data.as_ptr().add(lhs.start),
            lhs.col_stride,
            lhs.row_stride,
            rhs.data.as_ptr().add(rhs.start),
            rhs.col_stride,
            rhs.row_stride,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}
