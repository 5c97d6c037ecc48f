//! The backend the examples and pipelines run on, chosen by cargo features of the root package.
//!
//! Priority when several are enabled: `cuda`, then `wgpu`, then `ndarray`, then `flex` (the CPU
//! default). Libraries never name a backend; only binaries use these aliases.

#[cfg(feature = "cuda")]
/// The inference backend.
pub type Inference = burn::backend::Cuda;

#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
/// The inference backend.
pub type Inference = burn::backend::Wgpu;

#[cfg(all(feature = "ndarray", not(any(feature = "cuda", feature = "wgpu"))))]
/// The inference backend.
pub type Inference = burn::backend::NdArray;

#[cfg(all(
    feature = "flex",
    not(any(feature = "cuda", feature = "wgpu", feature = "ndarray"))
))]
/// The inference backend.
pub type Inference = burn::backend::Flex;

#[cfg(not(any(
    feature = "flex",
    feature = "ndarray",
    feature = "cuda",
    feature = "wgpu"
)))]
compile_error!("enable one backend feature of `w2s`: flex (default), ndarray, cuda or wgpu");

/// The training backend: the inference backend with automatic differentiation.
pub type Training = burn::backend::Autodiff<Inference>;

/// The device of the inference backend (the first GPU for `cuda`/`wgpu`).
pub fn device() -> burn::tensor::ops::Device<Inference> {
    Default::default()
}

/// A short name of the compiled-in backend, for logs and reports.
pub fn name() -> &'static str {
    if cfg!(feature = "cuda") {
        "cuda"
    } else if cfg!(feature = "wgpu") {
        "wgpu"
    } else if cfg!(feature = "ndarray") {
        "ndarray"
    } else {
        "flex"
    }
}

/// How a frozen base's weights are held (`--base-dtype`): inference, and LoRA training.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum BaseDtype {
    /// bf16 on GPU backends, f32 on CPU ones (w2s's fused CPU kernels run in f32 only).
    #[default]
    Auto,
    /// 32-bit floats.
    F32,
    /// bfloat16: half the memory; norms' statistics, softmax, logits and losses stay f32.
    Bf16,
}

impl BaseDtype {
    /// The dtype this choice means on the compiled-in backend.
    pub fn resolve(self) -> burn::tensor::FloatDType {
        use burn::tensor::FloatDType;
        match self {
            BaseDtype::Auto if matches!(name(), "cuda" | "wgpu") => FloatDType::BF16,
            BaseDtype::Auto | BaseDtype::F32 => FloatDType::F32,
            BaseDtype::Bf16 => FloatDType::BF16,
        }
    }
}
