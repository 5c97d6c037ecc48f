//! Direct access to flex tensors, for the CPU fast paths of decoding.
//!
//! The model is generic over `B: Backend`; these helpers recover the concrete [`FlexTensor`]
//! behind a tensor when `B` is flex itself (not flex under autodiff), so `few_rows` can read
//! weights straight from storage and [`write_columns`] can write a KV cache's new columns into
//! its buffers in place. On any other backend they hand the tensor back untouched.

use burn::prelude::*;
use burn::tensor::{DType, TensorPrimitive};
use burn_flex::FlexTensor;
use std::any::Any;

/// The flex tensor behind `tensor`, or `tensor` itself on another backend.
pub(crate) fn unwrap<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
) -> Result<FlexTensor, Tensor<B, D>> {
    match tensor.into_primitive() {
        TensorPrimitive::Float(t) => {
            let boxed: Box<dyn Any> = Box::new(t);
            match boxed.downcast::<FlexTensor>() {
                Ok(flex) => Ok(*flex),
                Err(other) => Err(float::<B, D>(other)),
            }
        }
        quantized => Err(Tensor::from_primitive(quantized)),
    }
}

/// A flex tensor as a tensor of `B`, which [`unwrap`] has shown to be flex.
pub(crate) fn wrap<B: Backend, const D: usize>(tensor: FlexTensor) -> Tensor<B, D> {
    float::<B, D>(Box::new(tensor))
}

fn float<B: Backend, const D: usize>(primitive: Box<dyn Any>) -> Tensor<B, D> {
    let primitive = primitive
        .downcast::<B::FloatTensorPrimitive>()
        .expect("the primitive came from this backend");
    Tensor::from_primitive(TensorPrimitive::Float(*primitive))
}

/// Writes `new` `[b, g, s, e]` into columns `at..at + s` of `buffer` `[b, g, capacity, e]` in
/// place, when `buffer` is a contiguous f32 flex tensor nothing else holds. Otherwise hands
/// `buffer` back and the caller writes through the backend (which copies the whole buffer).
pub fn write_columns<B: Backend>(
    buffer: Tensor<B, 4>,
    at: usize,
    new: &Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let mut dst = unwrap(buffer)?;
    let [b, g, s, e] = new.dims();
    let layout = dst.layout();
    let fits = dst.dtype() == DType::F32
        && layout.is_contiguous()
        && layout.start_offset() == 0
        && layout.shape()[0] == b
        && layout.shape()[1] == g
        && layout.shape()[3] == e
        && at + s <= layout.shape()[2];
    let capacity = layout.shape()[2];
    let src = match (fits, unwrap(new.clone())) {
        (true, Ok(src)) => src.to_contiguous(),
        _ => return Err(wrap(dst)),
    };
    let src = &src.storage::<f32>()[src.layout().start_offset()..];
    let Some(data) = dst.try_storage_mut::<f32>() else {
        return Err(wrap(dst));
    };
    let span = s * e;
    for (row, values) in src.chunks_exact(span).take(b * g).enumerate() {
        let start = (row * capacity + at) * e;
        data[start..start + span].copy_from_slice(values);
    }
    Ok(wrap(dst))
}
