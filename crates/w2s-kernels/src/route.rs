//! Which implementation an operation takes, decided by the backend type.
//!
//! The operations are generic over `B: Backend`. When `B` is flex itself, or flex under
//! `Autodiff` without checkpointing (the CPU training backend), the tensors are taken out of
//! `Tensor<B, D>` by an `Any` downcast and handed to the kernels; on every other backend, or for
//! a dtype other than f32, the operation is composed from burn's own tensor operations.

use std::any::{Any, TypeId};

use burn::backend::Autodiff;
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, TensorData, TensorPrimitive};
use burn_flex::{Flex, FlexTensor};

/// Flex under autodiff, as the training backend uses it.
pub(crate) type Tracked = Autodiff<Flex>;

/// A float tensor of [`Tracked`]: the flex tensor and its autodiff graph node.
pub(crate) type TrackedTensor = FloatTensor<Tracked>;

/// The implementation an operation takes for backend `B`.
pub(crate) enum Route {
    /// `B` is [`Tracked`]: a custom autodiff operation over the kernels.
    Tracked,
    /// `B` is flex: the forward kernel alone.
    Flex,
    /// Anything else: burn's tensor operations.
    Composed,
}

/// The route for `B`, if every tensor in `dtypes` is f32.
pub(crate) fn route<B: Backend>(dtypes: &[DType]) -> Route {
    if dtypes.iter().any(|d| *d != DType::F32) {
        Route::Composed
    } else if TypeId::of::<B>() == TypeId::of::<Tracked>() {
        Route::Tracked
    } else if TypeId::of::<B>() == TypeId::of::<Flex>() {
        Route::Flex
    } else {
        Route::Composed
    }
}

/// The primitive behind `tensor` as type `T`, which the caller's [`route`] has established.
pub(crate) fn take<T: 'static, B: Backend, const D: usize>(tensor: Tensor<B, D>) -> T {
    let primitive: Box<dyn Any> = Box::new(tensor.into_primitive().tensor());
    *primitive
        .downcast::<T>()
        .expect("the route was chosen by the backend type")
}

/// `primitive` as a tensor of `B`, whose float primitive the caller's [`route`] has shown is `T`.
pub(crate) fn give<T: 'static, B: Backend, const D: usize>(primitive: T) -> Tensor<B, D> {
    let primitive: Box<dyn Any> = Box::new(primitive);
    let primitive = primitive
        .downcast::<FloatTensor<B>>()
        .expect("the route was chosen by the backend type");
    Tensor::from_primitive(TensorPrimitive::Float(*primitive))
}

/// `tensor` laid out contiguously from the start of a buffer it alone holds, so its storage
/// can be overwritten in place (copied only when it is a view or shared).
pub(crate) fn owned(tensor: FlexTensor) -> FlexTensor {
    let mut contiguous = tensor.to_contiguous();
    drop(tensor);
    if contiguous.try_storage_mut::<f32>().is_none() {
        let shape = contiguous.layout().shape().clone();
        contiguous = FlexTensor::from_data(TensorData::new(values(&contiguous).to_vec(), shape));
    }
    contiguous
}

/// The elements of a tensor that covers its whole buffer in row-major order: one that
/// `to_contiguous` or [`owned`] returned.
pub(crate) fn values(tensor: &FlexTensor) -> &[f32] {
    let n = tensor.layout().num_elements();
    &tensor.storage::<f32>()[..n]
}

/// Mutable elements of a tensor [`owned`] returned.
pub(crate) fn values_mut(tensor: &mut FlexTensor) -> &mut [f32] {
    let n = tensor.layout().num_elements();
    &mut tensor
        .try_storage_mut::<f32>()
        .expect("owned tensors hold their buffer alone")[..n]
}

/// A new contiguous f32 tensor.
pub(crate) fn tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}

/// Length of the last axis of `tensor` (1 for a scalar).
pub(crate) fn row_len(tensor: &FlexTensor) -> usize {
    tensor.layout().shape().last().copied().unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused paths are only tested if the routes reach them.
    #[test]
    fn flex_and_tracked_flex_take_the_kernels_and_other_dtypes_do_not() {
        assert!(matches!(route::<Flex>(&[DType::F32]), Route::Flex));
        assert!(matches!(
            route::<Tracked>(&[DType::F32, DType::F32]),
            Route::Tracked
        ));
        assert!(matches!(
            route::<Flex>(&[DType::F32, DType::BF16]),
            Route::Composed
        ));
        type Checkpointed =
            Autodiff<Flex, burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing>;
        assert!(matches!(
            route::<Checkpointed>(&[DType::F32]),
            Route::Composed
        ));
    }
}
