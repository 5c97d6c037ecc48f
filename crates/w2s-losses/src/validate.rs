//! Input checks shared by the public functions: shapes, completion masks and labels.
//!
//! Checks that need values (empty rows, label ranges) read small `[b, s]` tensors back to the host;
//! the `[b, s, v]` logits are never read.

use burn::tensor::{backend::Backend, Bool, Int, Tensor};

use crate::error::{Error, Result};

/// Fails with [`Error::Shape`] unless `actual == expected`.
pub(crate) fn expect_shape(
    op: &'static str,
    arg: &'static str,
    actual: &[usize],
    expected: &[usize],
    legend: &str,
) -> Result<()> {
    if actual == expected {
        Ok(())
    } else {
        Err(Error::Shape {
            op,
            arg,
            actual: actual.to_vec(),
            expected: format!("{legend} = {expected:?}"),
        })
    }
}

/// The completion mask as host booleans, row-major `[b, s]`.
pub(crate) fn mask_to_host<B: Backend>(mask: &Tensor<B, 2, Bool>) -> Result<Vec<bool>> {
    mask.to_data()
        .to_vec::<bool>()
        .map_err(|e| Error::TensorData(format!("{e:?}")))
}

/// A float tensor as host `f64`s, whatever its dtype.
pub(crate) fn to_host_f64<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Result<Vec<f64>> {
    tensor
        .into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .map_err(|e| Error::TensorData(format!("{e:?}")))
}

/// Token counts per row of a `[b, s]` mask; an all-false row is [`Error::EmptyCompletion`].
pub(crate) fn completion_counts(mask: &[bool], seq_len: usize) -> Result<Vec<usize>> {
    mask.chunks(seq_len.max(1))
        .enumerate()
        .map(|(row, m)| match m.iter().filter(|&&x| x).count() {
            0 => Err(Error::EmptyCompletion { row }),
            n => Ok(n),
        })
        .collect()
}

/// Checks that every label under the mask is in `[0, vocab)`.
pub(crate) fn check_labels<B: Backend>(
    labels: &Tensor<B, 2, Int>,
    mask: &[bool],
    seq_len: usize,
    vocab: usize,
) -> Result<()> {
    let values = labels
        .to_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .map_err(|e| Error::TensorData(format!("{e:?}")))?;
    let bad = values
        .iter()
        .zip(mask)
        .enumerate()
        .find(|(_, (&label, &m))| m && (label < 0 || label as u64 >= vocab as u64));
    match bad {
        Some((i, (&label, _))) => Err(Error::LabelOutOfRange {
            label,
            row: i / seq_len,
            position: i % seq_len,
            vocab,
        }),
        None => Ok(()),
    }
}
