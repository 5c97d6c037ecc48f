//! The Llama decoder (Touvron et al., arXiv 2302.13971; Llama 2 and 3 add grouped-query attention
//! and RoPE scaling), matching transformers' `models/llama/modeling_llama.py` layer for layer.
//!
//! Module and field names are the HF checkpoint names (`model.layers.N.self_attn.q_proj`), so the
//! weight map in [`crate::weights`] is the identity. Linear weights are stored as burn does,
//! `[d_in, d_out]`, the transpose of HF's `[out, in]`.
//!
//! # Precision
//! The base weights may be held in bf16 ([`Llama::cast_base`]); the activations then flow in
//! bf16 between layers, while RMSNorm statistics, the attention softmax, the final hidden states
//! and the logits are computed in f32, and LoRA adapters stay f32. For an f32 model every cast
//! is a no-op.
//!
//! # Shapes
//! `b` batch, `s` new tokens, `t` all columns (cached + new), `d` hidden size, `h` query heads,
//! `g` kv heads, `e` head dim, `v` vocabulary.

use burn::module::Param;
use burn::nn::{
    Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig, RmsNorm, RmsNormConfig,
};
use burn::prelude::*;
use burn::tensor::FloatDType;
use w2s_kernels::{attention_probs, grouped_matmul, rms_norm, swiglu, Order};

use crate::cache::KvCache;
use crate::config::LlamaConfig;
use crate::error::{LlamaError, Result};
use crate::lora::{LoraConfig, Projection};
use crate::mask::PaddingMask;
use crate::rope::{inverse_frequencies, RopeTables};
use w2s_kernels::matmul_2d;

/// Self-attention with grouped key/value heads.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// Query projection `[d, h*e]`.
    pub q_proj: Projection<B>,
    /// Key projection `[d, g*e]`.
    pub k_proj: Projection<B>,
    /// Value projection `[d, g*e]`.
    pub v_proj: Projection<B>,
    /// Output projection `[h*e, d]`.
    pub o_proj: Projection<B>,
    #[module(skip)]
    num_heads: usize,
    #[module(skip)]
    num_kv_heads: usize,
    #[module(skip)]
    head_dim: usize,
}

/// The SwiGLU feed-forward block: `down(silu(gate(x)) * up(x))`.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// `[d, intermediate]`.
    pub gate_proj: Projection<B>,
    /// `[d, intermediate]`.
    pub up_proj: Projection<B>,
    /// `[intermediate, d]`.
    pub down_proj: Projection<B>,
}

/// One pre-norm decoder layer.
#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    /// Attention block.
    pub self_attn: Attention<B>,
    /// Feed-forward block.
    pub mlp: Mlp<B>,
    /// Norm before attention.
    pub input_layernorm: RmsNorm<B>,
    /// Norm before the MLP.
    pub post_attention_layernorm: RmsNorm<B>,
}

/// The decoder stack without the output head (HF's `LlamaModel`).
#[derive(Module, Debug)]
pub struct LlamaModel<B: Backend> {
    /// Token embeddings `[v, d]`.
    pub embed_tokens: Embedding<B>,
    /// Decoder layers.
    pub layers: Vec<DecoderLayer<B>>,
    /// Final norm.
    pub norm: RmsNorm<B>,
}

/// A Llama causal language model (HF's `LlamaForCausalLM`).
#[derive(Module, Debug)]
pub struct Llama<B: Backend> {
    /// The decoder.
    pub model: LlamaModel<B>,
    /// Output projection `[d, v]`; `None` when tied to the embeddings.
    pub lm_head: Option<Linear<B>>,
    #[module(skip)]
    inv_freq: Vec<f32>,
    #[module(skip)]
    vocab_size: usize,
    #[module(skip)]
    max_positions: usize,
    /// The adapters' config, when LoRA is attached ([`crate::lora`]).
    #[module(skip)]
    pub(crate) lora: Option<LoraConfig>,
}

fn linear<B: Backend>(d_in: usize, d_out: usize, std: f64, device: &B::Device) -> Linear<B> {
    LinearConfig::new(d_in, d_out)
        .with_bias(false)
        .with_initializer(Initializer::Normal { mean: 0.0, std })
        .init(device)
}

fn projection<B: Backend>(
    d_in: usize,
    d_out: usize,
    std: f64,
    device: &B::Device,
) -> Projection<B> {
    Projection::new(linear(d_in, d_out, std, device))
}

fn new_norm<B: Backend>(config: &LlamaConfig, device: &B::Device) -> RmsNorm<B> {
    RmsNormConfig::new(config.hidden_size)
        .with_epsilon(config.rms_norm_eps)
        .init(device)
}

impl LlamaConfig {
    /// A freshly initialized model (normal weights with std `initializer_range`, unit norms), as HF
    /// does for training from scratch. Seed the backend first for reproducible weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Llama<B>> {
        self.validate()?;
        let std = self.initializer_range;
        let (d, e) = (self.hidden_size, self.head_dim());
        let (h, g) = (self.num_attention_heads, self.num_key_value_heads());
        let layers = (0..self.num_hidden_layers)
            .map(|_| DecoderLayer {
                self_attn: Attention {
                    q_proj: projection(d, h * e, std, device),
                    k_proj: projection(d, g * e, std, device),
                    v_proj: projection(d, g * e, std, device),
                    o_proj: projection(h * e, d, std, device),
                    num_heads: h,
                    num_kv_heads: g,
                    head_dim: e,
                },
                mlp: Mlp {
                    gate_proj: projection(d, self.intermediate_size, std, device),
                    up_proj: projection(d, self.intermediate_size, std, device),
                    down_proj: projection(self.intermediate_size, d, std, device),
                },
                input_layernorm: new_norm(self, device),
                post_attention_layernorm: new_norm(self, device),
            })
            .collect();
        let embed_tokens = EmbeddingConfig::new(self.vocab_size, d)
            .with_initializer(Initializer::Normal { mean: 0.0, std })
            .init(device);
        let lm_head = (!self.tie_word_embeddings).then(|| linear(d, self.vocab_size, std, device));
        Ok(Llama {
            model: LlamaModel {
                embed_tokens,
                layers,
                norm: new_norm(self, device),
            },
            lm_head,
            inv_freq: inverse_frequencies(&self.rope()?, e),
            vocab_size: self.vocab_size,
            max_positions: self.max_position_embeddings,
            lora: None,
        })
    }
}

/// Per-forward constants every layer's attention shares, built once at the scores' and the
/// projections' full shapes.
struct AttentionTables<B: Backend> {
    /// RoPE for the `h` query heads.
    query: RopeTables<B>,
    /// RoPE for the `g` key heads (the query tables when `g = h`).
    key: RopeTables<B>,
    /// Causal and padding bias `[b, h, s, t]`.
    bias: Tensor<B, 4>,
}

impl<B: Backend> Attention<B> {
    fn tables(
        &self,
        inv_freq: &[f32],
        mask: &PaddingMask,
        s: usize,
        dtype: FloatDType,
        device: &B::Device,
    ) -> AttentionTables<B> {
        let (h, g) = (self.num_heads, self.num_kv_heads);
        let positions = mask.positions(s);
        let query = RopeTables::new(inv_freq, &positions, h, device).cast(dtype);
        let key = if g == h {
            query.clone()
        } else {
            RopeTables::new(inv_freq, &positions, g, device).cast(dtype)
        };
        let bias = Tensor::from_data(
            TensorData::new(mask.attention_bias(s, h), [mask.batch(), h, s, mask.len()]),
            device,
        );
        AttentionTables { query, key, bias }
    }

    fn forward(
        &self,
        x: Tensor<B, 3>,
        tables: &AttentionTables<B>,
        cache: Option<(&mut KvCache<B>, usize)>,
    ) -> Tensor<B, 3> {
        let [b, s, _] = x.dims();
        let (h, g, e) = (self.num_heads, self.num_kv_heads, self.head_dim);
        // Projections are rotated from their own `[b, s, heads, e]` layout into `[b, heads, s, e]`
        // (one fused pass on flex); V's heads axis moves forward as a view, which the per-head
        // products read strided.
        let heads = |t: Tensor<B, 3>, n: usize| t.reshape([b, s, n, e]);
        let q = tables.query.apply(heads(self.q_proj.forward(x.clone()), h));
        let k = tables.key.apply(heads(self.k_proj.forward(x.clone()), g));
        let v = heads(self.v_proj.forward(x), g).swap_dims(1, 2);
        let (k, v) = match cache {
            Some((cache, layer)) => cache.extend(layer, k, v),
            None => (k, v),
        };
        // Query head i reads kv head i/(h/g) (HF's `repeat_kv`), without repeating K and V.
        let dtype = FloatDType::from(v.dtype());
        let scores = grouped_matmul(q, k.swap_dims(2, 3), Order::HeadsFirst);
        let scale = (1.0 / (e as f64).sqrt()) as f32;
        // The softmax in f32, whatever the activations' dtype (the bias is f32).
        let probs =
            attention_probs(scores.cast(FloatDType::F32), tables.bias.clone(), scale).cast(dtype);
        // `[b, s, h, e]`, the layout the output projection reads.
        let out = grouped_matmul(probs, v, Order::RowsFirst);
        self.o_proj.forward(out.reshape([b, s, h * e]))
    }
}

impl<B: Backend> Mlp<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let gate = self.gate_proj.forward(x.clone());
        self.down_proj
            .forward(swiglu(gate, self.up_proj.forward(x)))
    }
}

impl<B: Backend> Llama<B> {
    /// Logits `[b, s, v]` for every position.
    ///
    /// `mask` marks padding (left or right); `None` means every token is real.
    pub fn forward(
        &self,
        tokens: Tensor<B, 2, Int>,
        mask: Option<&PaddingMask>,
    ) -> Result<Tensor<B, 3>> {
        Ok(self.logits(self.forward_hidden(tokens, mask)?))
    }

    /// Final hidden states `[b, s, d]` (after the last norm, before `lm_head`) in f32, for losses
    /// that fuse the output projection (see [`Llama::lm_head_weight`]).
    pub fn forward_hidden(
        &self,
        tokens: Tensor<B, 2, Int>,
        mask: Option<&PaddingMask>,
    ) -> Result<Tensor<B, 3>> {
        let [b, s] = tokens.dims();
        let full;
        let mask = match mask {
            Some(mask) => mask,
            None => {
                full = PaddingMask::full(b, s);
                &full
            }
        };
        self.run(tokens, mask, None)
    }

    /// Logits `[b, s, v]` of `s` new columns, reading and extending `cache`. `mask` covers every
    /// column, cached and new (`t = cache.len() + s`).
    pub fn forward_cached(
        &self,
        tokens: Tensor<B, 2, Int>,
        mask: &PaddingMask,
        cache: &mut KvCache<B>,
    ) -> Result<Tensor<B, 3>> {
        Ok(self.logits(self.hidden_cached(tokens, mask, cache)?))
    }

    /// Final hidden states `[b, s, d]` of `s` new columns, reading and extending `cache`.
    pub fn hidden_cached(
        &self,
        tokens: Tensor<B, 2, Int>,
        mask: &PaddingMask,
        cache: &mut KvCache<B>,
    ) -> Result<Tensor<B, 3>> {
        self.run(tokens, mask, Some(cache))
    }

    /// The output projection as `[v, d]` (HF's orientation), whether tied or not, in f32 (a
    /// bf16 base's is cast), so that losses compute logits and log-softmax in f32.
    pub fn lm_head_weight(&self) -> Tensor<B, 2> {
        match &self.lm_head {
            Some(head) => head.weight.val().transpose(),
            None => self.model.embed_tokens.weight.val(),
        }
        .cast(FloatDType::F32)
    }

    /// Projects hidden states `[b, s, d]` to logits `[b, s, v]`, in f32 (a bf16 base multiplies
    /// in bf16, accumulating in f32 on GPU backends).
    pub fn logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        let weight = match &self.lm_head {
            Some(head) => head.weight.val(),
            // The transposed embedding as a view: lifting it to 3-D would make burn copy the
            // whole [v, d] matrix on every call (measured 12x slower on flex).
            None => self.model.embed_tokens.weight.val().transpose(),
        };
        let dtype = FloatDType::from(weight.dtype());
        matmul_2d(hidden.cast(dtype), weight).cast(FloatDType::F32)
    }

    /// The model with every base weight (embeddings, projections, output head) in `dtype`;
    /// RMSNorm weights and LoRA adapters stay f32. For a frozen base (inference, LoRA training):
    /// a trained weight in bf16 would lose small updates, so full fine-tuning keeps f32.
    pub fn cast_base(mut self, dtype: FloatDType) -> Self {
        let cast = |param: Param<Tensor<B, 2>>| {
            let value = param.val();
            let require_grad = value.is_require_grad();
            Param::from_tensor(value.cast(dtype).detach()).set_require_grad(require_grad)
        };
        self.model.embed_tokens.weight = cast(self.model.embed_tokens.weight);
        for layer in &mut self.model.layers {
            for target in crate::lora::LoraTarget::ALL {
                let base = &mut layer.projection_mut(target).base;
                base.weight = cast(base.weight.clone());
            }
        }
        if let Some(head) = &mut self.lm_head {
            head.weight = cast(head.weight.clone());
        }
        self
    }

    /// The dtype the base weights are held in.
    pub fn base_dtype(&self) -> FloatDType {
        FloatDType::from(self.model.embed_tokens.weight.val().dtype())
    }

    /// Vocabulary size `v`.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Longest sequence the model accepts.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Number of decoder layers.
    pub fn num_layers(&self) -> usize {
        self.model.layers.len()
    }

    /// An empty KV cache sized for this model.
    pub fn new_cache(&self) -> KvCache<B> {
        KvCache::new(self.num_layers())
    }

    fn run(
        &self,
        tokens: Tensor<B, 2, Int>,
        mask: &PaddingMask,
        mut cache: Option<&mut KvCache<B>>,
    ) -> Result<Tensor<B, 3>> {
        let [b, s] = tokens.dims();
        let past = cache.as_ref().map_or(0, |c| c.len());
        if mask.batch() != b || mask.len() != past + s {
            return Err(LlamaError::Input(format!(
                "padding mask is [{}, {}] but the input is [{b}, {s}] after {past} cached columns",
                mask.batch(),
                mask.len()
            )));
        }
        if past + s > self.max_positions {
            return Err(LlamaError::Input(format!(
                "{} columns exceed the model's context of {} positions",
                past + s,
                self.max_positions
            )));
        }
        let device = tokens.device();
        let dtype = self.base_dtype();
        let tables = self.model.layers.first().map(|layer| {
            layer
                .self_attn
                .tables(&self.inv_freq, mask, s, dtype, &device)
        });
        let mut x = self.model.embed_tokens.forward(tokens);
        for (i, (layer, tables)) in self
            .model
            .layers
            .iter()
            .zip(tables.iter().cycle())
            .enumerate()
        {
            let attn = layer.self_attn.forward(
                norm(&layer.input_layernorm, x.clone()),
                tables,
                cache.as_deref_mut().map(|c| (c, i)),
            );
            x = x + attn;
            x = x.clone() + layer.mlp.forward(norm(&layer.post_attention_layernorm, x));
        }
        Ok(rms_norm(
            x.cast(FloatDType::F32),
            self.model.norm.gamma.val(),
            self.model.norm.epsilon,
        ))
    }
}

/// `norm.forward(x)`, fused (see `w2s_kernels::rms_norm`), with its statistics in f32 and its
/// output in `x`'s dtype.
fn norm<B: Backend>(norm: &RmsNorm<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let dtype = FloatDType::from(x.dtype());
    rms_norm(x.cast(FloatDType::F32), norm.gamma.val(), norm.epsilon).cast(dtype)
}

/// Parts for [`crate::weights`] to assemble a model from loaded tensors.
pub(crate) struct Parts<B: Backend> {
    pub model: LlamaModel<B>,
    pub lm_head: Option<Linear<B>>,
}

impl<B: Backend> Llama<B> {
    pub(crate) fn from_parts(config: &LlamaConfig, parts: Parts<B>) -> Result<Self> {
        Ok(Self {
            model: parts.model,
            lm_head: parts.lm_head,
            inv_freq: inverse_frequencies(&config.rope()?, config.head_dim()),
            vocab_size: config.vocab_size,
            max_positions: config.max_position_embeddings,
            lora: None,
        })
    }
}

impl<B: Backend> Attention<B> {
    pub(crate) fn from_projections(config: &LlamaConfig, [q, k, v, o]: [Projection<B>; 4]) -> Self {
        Self {
            q_proj: q,
            k_proj: k,
            v_proj: v,
            o_proj: o,
            num_heads: config.num_attention_heads,
            num_kv_heads: config.num_key_value_heads(),
            head_dim: config.head_dim(),
        }
    }
}

pub(crate) fn norm_from<B: Backend>(config: &LlamaConfig, gamma: Tensor<B, 1>) -> RmsNorm<B> {
    RmsNorm {
        gamma: Param::from_tensor(gamma),
        epsilon: config.rms_norm_eps,
    }
}
