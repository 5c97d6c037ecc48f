//! Fused element-wise operations for w2s's model and losses (attention probabilities, RMSNorm,
//! rotary position embeddings, the SwiGLU gate, per-token log-probs), 2-D matrix products
//! without flex's extra output passes, and attention's per-head products with the heads laid out
//! where the next operation reads them.
//!
//! Each is one generic function over `B: Backend` with its gradient. On most backends it is
//! composed from burn's tensor operations (for the element-wise ones, the public `composed`
//! function beside it, which is also the reference the kernels are tested against). With the
//! `flex` feature, on burn's flex CPU backend and on flex under `Autodiff`, it runs as one
//! threaded, vectorised pass forward and one backward, as a custom autodiff operation.
//!
//! Why: flex runs each element-wise operation on the calling thread, one full pass over memory
//! at a time, while the rayon pool that runs its matrix products waits. A training step of a
//! small Llama on 2 cores spent about 60% of its wall time there (README, "Where the time goes
//! on CPU"); these five operations were most of that work, and zero-filling and realigning
//! every product's output most of the rest. Once they were fused, the copies that moved the
//! heads axis of attention's operands were the largest part of what the calling thread still
//! did alone.

pub mod attention_probs;
pub mod grouped_matmul;
pub mod matmul;
pub mod rms_norm;
pub mod rope;
pub mod swiglu;
pub mod token_logprobs;

#[cfg(feature = "flex")]
mod gemm_call;
#[cfg(feature = "flex")]
mod route;
#[cfg(feature = "flex")]
mod vector;

pub use attention_probs::attention_probs;
pub use grouped_matmul::{grouped_matmul, Order};
pub use matmul::{matmul, matmul_accumulate, matmul_into};
pub use rms_norm::rms_norm;
pub use rope::rope;
pub use swiglu::swiglu;
pub use token_logprobs::{logsumexp_and_pick, token_logprobs, token_logprobs_grad};
