//! Fused element-wise operations for w2s's model and losses (attention probabilities, RMSNorm,
//! rotary position embeddings, the SwiGLU gate, per-token log-probs), 2-D matrix products
//! without flex's extra output passes, attention's per-head products with the heads laid out
//! where the next operation reads them, and the decoding paths: linear maps of a few rows
//! streamed from the weights' storage (AVX-512), small products split into column blocks across
//! threads, and KV cache columns written in place.
//!
//! Each is one generic function over `B: Backend` with its gradient. On most backends it is
//! composed from burn's tensor operations (for the element-wise ones, the public `composed`
//! function beside it, which is also the reference the kernels are tested against). With the
//! `flex` feature, on burn's flex CPU backend and on flex under `Autodiff`, it runs as one
//! threaded, vectorised pass forward and one backward, as a custom autodiff operation.
//!
//! Why: flex runs each element-wise operation on the calling thread, one full pass over memory
//! at a time, while the rayon pool that runs its matrix products waits, and it zero-fills and
//! realigns every product's output there too. Composed from burn's operations, that serial work
//! is most of a small Llama's training step on 2 cores; fused, it runs on every thread
//! (docs/performance.md).

pub mod attention_probs;
pub mod grouped_matmul;
pub mod matmul;
pub mod projection;
pub mod rms_norm;
pub mod rope;
pub mod swiglu;
pub mod token_logprobs;

// An x86-64 AVX-512 kernel; other targets multiply through the backend.
#[cfg(all(feature = "flex", target_arch = "x86_64"))]
mod few_rows;
#[cfg(feature = "flex")]
mod flex_tensor;
#[cfg(feature = "flex")]
mod gemm_call;
#[cfg(feature = "flex")]
mod route;
#[cfg(feature = "flex")]
mod vector;

pub use attention_probs::attention_probs;
pub use grouped_matmul::{grouped_matmul, Order};
pub use matmul::{matmul, matmul_accumulate, matmul_into};
pub use projection::matmul_2d;
pub use rms_norm::rms_norm;
pub use rope::rope;
pub use swiglu::swiglu;
pub use token_logprobs::{logsumexp_and_pick, token_logprobs, token_logprobs_grad};

/// Writes a KV cache step's new columns `[b, g, s, e]` into a buffer `[b, g, capacity, e]` at
/// column `at` in place, when the buffer is an f32 flex tensor nothing else holds; otherwise
/// hands the buffer back for the caller to write through the backend.
#[cfg(feature = "flex")]
pub use flex_tensor::write_columns;

/// The README's example, compiled (and, unless marked `no_run`, run) as a doctest so it stays
/// true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
