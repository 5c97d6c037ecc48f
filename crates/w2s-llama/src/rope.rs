//! Rotary position embeddings in HuggingFace's rotate-half layout.
//!
//! RoFormer (Su et al., arXiv 2104.09864) rotates pairs of features by position-dependent angles.
//! HF Llama checkpoints pair feature `i` with feature `i + head_dim/2` ("rotate half",
//! `modeling_llama.py::rotate_half`), not neighbours as Meta's original code and
//! `burn::nn::RotaryEncoding` do, so w2s implements the HF layout directly instead of permuting
//! the q/k weights. The inverse frequencies follow transformers' `modeling_rope_utils.py` in f32:
//! `default`, `linear` and `llama3`.

use burn::prelude::*;

use crate::config::{RopeConfig, RopeScaling};

/// Inverse frequencies `theta^(-2i/head_dim)` for `i < head_dim/2`, rescaled as the config says.
pub fn inverse_frequencies(rope: &RopeConfig, head_dim: usize) -> Vec<f32> {
    let base: Vec<f32> = (0..head_dim / 2)
        .map(|i| 1.0 / (rope.theta as f32).powf((2 * i) as f32 / head_dim as f32))
        .collect();
    match rope.scaling {
        RopeScaling::None => base,
        RopeScaling::Linear { factor } => base.iter().map(|f| f / factor as f32).collect(),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => {
            let (factor, low, high) = (
                factor as f32,
                low_freq_factor as f32,
                high_freq_factor as f32,
            );
            let original = original_max_position_embeddings as f32;
            let low_freq_wavelen = original / low;
            let high_freq_wavelen = original / high;
            base.iter()
                .map(|&freq| {
                    let wavelen = 2.0 * std::f32::consts::PI / freq;
                    if wavelen < high_freq_wavelen {
                        freq
                    } else if wavelen > low_freq_wavelen {
                        freq / factor
                    } else {
                        let smooth = (original / wavelen - low) / (high - low);
                        (1.0 - smooth) * freq / factor + smooth * freq
                    }
                })
                .collect()
        }
    }
}

/// Cosine and sine tables for given positions, each `[b, s, heads, head_dim]`: the layout of the
/// projections themselves, so the composed path (`w2s_kernels::rope::composed`, on backends
/// without the fused kernel) rotates without a transpose or a broadcast.
#[derive(Clone, Debug)]
pub struct RopeTables<B: Backend> {
    /// `cos(position * freq)`, the frequencies repeated twice along the last axis.
    pub cos: Tensor<B, 4>,
    /// `sin(position * freq)`, laid out like `cos`.
    pub sin: Tensor<B, 4>,
}

impl<B: Backend> RopeTables<B> {
    /// Builds the tables for `positions` (`b` rows of `s` positions each) and `heads` heads.
    pub fn new(
        inv_freq: &[f32],
        positions: &[Vec<usize>],
        heads: usize,
        device: &B::Device,
    ) -> Self {
        let batch = positions.len();
        let seq = positions.first().map_or(0, Vec::len);
        let head_dim = 2 * inv_freq.len();
        let mut cos = Vec::with_capacity(batch * seq * heads * head_dim);
        let mut sin = Vec::with_capacity(batch * seq * heads * head_dim);
        for row in positions {
            for &pos in row {
                // Same f32 product as HF (`inv_freq @ position_ids` in float32).
                let angles: Vec<f32> = inv_freq.iter().map(|f| f * pos as f32).collect();
                let start = cos.len();
                for _ in 0..2 {
                    cos.extend(angles.iter().map(|a| a.cos()));
                    sin.extend(angles.iter().map(|a| a.sin()));
                }
                for _ in 1..heads {
                    cos.extend_from_within(start..start + head_dim);
                    sin.extend_from_within(start..start + head_dim);
                }
            }
        }
        let shape = [batch, seq, heads, head_dim];
        Self {
            cos: Tensor::from_data(TensorData::new(cos, shape), device),
            sin: Tensor::from_data(TensorData::new(sin, shape), device),
        }
    }

    /// The tables in `dtype`, the activations' (f32 is built; a bf16 base rotates in bf16).
    pub fn cast(self, dtype: burn::tensor::FloatDType) -> Self {
        Self {
            cos: self.cos.cast(dtype),
            sin: self.sin.cast(dtype),
        }
    }

    /// Rotates `x` (`[b, s, heads, head_dim]`, `x * cos + rotate_half(x) * sin`) and moves the
    /// heads forward: `[b, heads, s, head_dim]`.
    pub fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        w2s_kernels::rope(x, self.cos.clone(), self.sin.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_scaling_keeps_high_and_divides_low_frequencies() {
        let rope = RopeConfig {
            theta: 500_000.0,
            scaling: RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192,
            },
        };
        let plain = inverse_frequencies(
            &RopeConfig {
                theta: 500_000.0,
                scaling: RopeScaling::None,
            },
            128,
        );
        let scaled = inverse_frequencies(&rope, 128);
        // Highest frequency: wavelength 2*pi < 8192/4, untouched.
        assert_eq!(scaled[0], plain[0]);
        // Lowest frequency: wavelength far above 8192, divided by the factor.
        assert_eq!(scaled[63], plain[63] / 8.0);
        // Everything in between lies between the two.
        for (s, p) in scaled.iter().zip(&plain) {
            assert!(*s <= *p && *s >= p / 8.0);
        }
    }
}
