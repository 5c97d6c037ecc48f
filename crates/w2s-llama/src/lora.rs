//! LoRA adapters (Hu et al., arXiv 2106.09685) on the Llama projections, with PEFT's semantics.
//!
//! An adapted projection computes `y = x W + scaling · dropout(x) A B`, where `W` is the frozen
//! base weight `[d_in, d_out]`, `A` is `[d_in, r]`, `B` is `[r, d_out]` and `scaling` is
//! `alpha / r` (`alpha / √r` with rsLoRA, Kalajdzievski, arXiv 2312.03732). `A` starts as PEFT's
//! `kaiming_uniform_(a = √5)`, i.e. uniform in `±1/√d_in`, and `B` at zero, so a fresh adapter
//! leaves the model's output exactly unchanged. The low-rank path is two skinny products (`x A`,
//! then `· B`); `A B` is formed only when merging.
//!
//! [`Llama::with_lora`](crate::Llama::with_lora) freezes every base parameter (no gradient, so
//! AdamW keeps no state for it) and attaches adapters; [`crate::adapter`] reads and writes them in
//! PEFT's files. Adapters are stored and trained in f32 whatever the base's dtype: the low-rank
//! path casts its input up and its output back.

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;
use burn::tensor::{Distribution, FloatDType};
use serde::{Deserialize, Serialize};
use w2s_kernels::matmul_2d;

use crate::error::{LlamaError, Result};
use crate::model::{DecoderLayer, Llama};

/// A projection LoRA can adapt, by its HF module name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoraTarget {
    /// `self_attn.q_proj`
    QProj,
    /// `self_attn.k_proj`
    KProj,
    /// `self_attn.v_proj`
    VProj,
    /// `self_attn.o_proj`
    OProj,
    /// `mlp.gate_proj`
    GateProj,
    /// `mlp.up_proj`
    UpProj,
    /// `mlp.down_proj`
    DownProj,
}

impl LoraTarget {
    /// Every projection of a decoder layer, in checkpoint order.
    pub const ALL: [LoraTarget; 7] = [
        LoraTarget::QProj,
        LoraTarget::KProj,
        LoraTarget::VProj,
        LoraTarget::OProj,
        LoraTarget::GateProj,
        LoraTarget::UpProj,
        LoraTarget::DownProj,
    ];

    /// The module name, as in `target_modules` (`"q_proj"`).
    pub fn name(self) -> &'static str {
        match self {
            LoraTarget::QProj => "q_proj",
            LoraTarget::KProj => "k_proj",
            LoraTarget::VProj => "v_proj",
            LoraTarget::OProj => "o_proj",
            LoraTarget::GateProj => "gate_proj",
            LoraTarget::UpProj => "up_proj",
            LoraTarget::DownProj => "down_proj",
        }
    }

    /// The module's path inside a decoder layer (`"self_attn.q_proj"`).
    pub fn path(self) -> &'static str {
        match self {
            LoraTarget::QProj => "self_attn.q_proj",
            LoraTarget::KProj => "self_attn.k_proj",
            LoraTarget::VProj => "self_attn.v_proj",
            LoraTarget::OProj => "self_attn.o_proj",
            LoraTarget::GateProj => "mlp.gate_proj",
            LoraTarget::UpProj => "mlp.up_proj",
            LoraTarget::DownProj => "mlp.down_proj",
        }
    }

    /// The target named `name` (`"q_proj"`), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// Which projections get adapters and how large they are: the fields of PEFT's `LoraConfig` that
/// plain LoRA uses (`r`, `lora_alpha`, `lora_dropout`, `use_rslora`, `target_modules`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraConfig {
    /// Rank `r` of every adapter.
    pub r: usize,
    /// Scaling numerator (PEFT's `lora_alpha`).
    pub alpha: f64,
    /// Dropout on the adapter's input while training (PEFT's `lora_dropout`).
    pub dropout: f64,
    /// Scale by `alpha / √r` instead of `alpha / r` (PEFT's `use_rslora`).
    pub rslora: bool,
    /// The projections adapted in every layer.
    pub targets: Vec<LoraTarget>,
}

/// Rank 16, alpha 32, no dropout, every projection: the usual choice for fine-tuning a 1B-8B
/// Llama with TRL and PEFT.
impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            r: 16,
            alpha: 32.0,
            dropout: 0.0,
            rslora: false,
            targets: LoraTarget::ALL.to_vec(),
        }
    }
}

impl LoraConfig {
    /// The factor applied to `x A B`.
    pub fn scaling(&self) -> f64 {
        if self.rslora {
            self.alpha / (self.r as f64).sqrt()
        } else {
            self.alpha / self.r as f64
        }
    }

    /// Rejects a rank of 0, a non-positive alpha, a dropout outside `[0, 1)`, and an empty or
    /// repeated target list.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, why: String| Err(LlamaError::Lora(format!("`{what}` {why}")));
        if self.r == 0 {
            return bad("r", "must be at least 1".into());
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return bad("alpha", format!("= {} must be finite and > 0", self.alpha));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout", format!("= {} must be in [0, 1)", self.dropout));
        }
        if self.targets.is_empty() {
            return bad("targets", "is empty: name at least one projection".into());
        }
        let mut seen = self.targets.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != self.targets.len() {
            return bad("targets", "names a projection twice".into());
        }
        Ok(())
    }
}

/// The trainable low-rank update of one projection.
#[derive(Module, Debug)]
pub struct LoraAdapter<B: Backend> {
    /// `[d_in, r]`: PEFT's `lora_A.weight` transposed.
    pub a: Param<Tensor<B, 2>>,
    /// `[r, d_out]`: PEFT's `lora_B.weight` transposed.
    pub b: Param<Tensor<B, 2>>,
    dropout: Dropout,
    scaling: f64,
}

impl<B: Backend> LoraAdapter<B> {
    /// A fresh adapter as PEFT initializes one: `A` uniform in `±1/√d_in`, `B = 0`.
    pub fn init(d_in: usize, d_out: usize, config: &LoraConfig, device: &B::Device) -> Self {
        let bound = 1.0 / (d_in as f64).sqrt();
        let a = Tensor::random(
            [d_in, config.r],
            Distribution::Uniform(-bound, bound),
            device,
        );
        Self::from_tensors(a, Tensor::zeros([config.r, d_out], device), config)
    }

    /// An adapter with the given `a` `[d_in, r]` and `b` `[r, d_out]` (both trainable).
    pub fn from_tensors(a: Tensor<B, 2>, b: Tensor<B, 2>, config: &LoraConfig) -> Self {
        Self {
            a: Param::from_tensor(a),
            b: Param::from_tensor(b),
            dropout: DropoutConfig::new(config.dropout).init(),
            scaling: config.scaling(),
        }
    }

    /// `scaling · dropout(x) A B`, computed in f32 and returned in `x`'s dtype.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let dtype = x.dtype();
        let x = self.dropout.forward(x).cast(FloatDType::F32);
        let y = matmul_2d(matmul_2d(x, self.a.val()), self.b.val()).mul_scalar(self.scaling);
        y.cast(FloatDType::from(dtype))
    }

    /// `scaling · A B`, `[d_in, d_out]`: what merging adds to the base weight.
    pub fn delta(&self) -> Tensor<B, 2> {
        self.a.val().matmul(self.b.val()).mul_scalar(self.scaling)
    }
}

/// A bias-free linear map with an optional adapter: every Llama projection.
#[derive(Module, Debug)]
pub struct Projection<B: Backend> {
    /// The base map, weight `[d_in, d_out]`.
    pub base: Linear<B>,
    /// The adapter, when LoRA is attached to this projection.
    pub lora: Option<LoraAdapter<B>>,
}

impl<B: Backend> Projection<B> {
    /// A projection without an adapter.
    pub fn new(base: Linear<B>) -> Self {
        Self { base, lora: None }
    }

    /// `[d_in, d_out]` of the base weight.
    pub fn dims(&self) -> [usize; 2] {
        self.base.weight.val().dims()
    }

    /// `[b, s, d_in] -> [b, s, d_out]`: the base map as one 2-D product
    /// (see `w2s_kernels::matmul_2d`), plus the adapter's update.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match &self.lora {
            None => matmul_2d(x, self.base.weight.val()),
            Some(lora) => matmul_2d(x.clone(), self.base.weight.val()) + lora.forward(x),
        }
    }

    /// Adds the adapter's update into the base weight (in the base's dtype) and drops the
    /// adapter.
    pub fn merge(&mut self) {
        let Some(lora) = self.lora.take() else {
            return;
        };
        let weight = self.base.weight.val();
        let require_grad = weight.is_require_grad();
        let dtype = FloatDType::from(weight.dtype());
        // A plain weight again: detached from whatever graph trained the adapter.
        let merged = (weight.cast(FloatDType::F32) + lora.delta()).detach();
        self.base.weight = Param::from_tensor(merged.cast(dtype)).set_require_grad(require_grad);
    }
}

impl<B: Backend> DecoderLayer<B> {
    /// The projection `target` of this layer.
    pub fn projection(&self, target: LoraTarget) -> &Projection<B> {
        match target {
            LoraTarget::QProj => &self.self_attn.q_proj,
            LoraTarget::KProj => &self.self_attn.k_proj,
            LoraTarget::VProj => &self.self_attn.v_proj,
            LoraTarget::OProj => &self.self_attn.o_proj,
            LoraTarget::GateProj => &self.mlp.gate_proj,
            LoraTarget::UpProj => &self.mlp.up_proj,
            LoraTarget::DownProj => &self.mlp.down_proj,
        }
    }

    /// The projection `target` of this layer, to change.
    pub fn projection_mut(&mut self, target: LoraTarget) -> &mut Projection<B> {
        match target {
            LoraTarget::QProj => &mut self.self_attn.q_proj,
            LoraTarget::KProj => &mut self.self_attn.k_proj,
            LoraTarget::VProj => &mut self.self_attn.v_proj,
            LoraTarget::OProj => &mut self.self_attn.o_proj,
            LoraTarget::GateProj => &mut self.mlp.gate_proj,
            LoraTarget::UpProj => &mut self.mlp.up_proj,
            LoraTarget::DownProj => &mut self.mlp.down_proj,
        }
    }
}

impl<B: Backend> Llama<B> {
    /// The model with its base frozen and fresh adapters on `config.targets` of every layer
    /// (PEFT's initialization: the output is unchanged until the adapters are trained).
    ///
    /// # Errors
    /// An invalid `config`, or a model that already has adapters.
    pub fn with_lora(self, config: &LoraConfig, device: &B::Device) -> Result<Self> {
        self.with_adapters(config, |_, _, [d_in, d_out]| {
            Ok(LoraAdapter::init(d_in, d_out, config, device))
        })
    }

    /// The model with its base frozen and the adapters `make(layer, target, [d_in, d_out])`
    /// returns on `config.targets` of every layer (loading a saved adapter goes through here).
    pub(crate) fn with_adapters(
        self,
        config: &LoraConfig,
        mut make: impl FnMut(usize, LoraTarget, [usize; 2]) -> Result<LoraAdapter<B>>,
    ) -> Result<Self> {
        config.validate()?;
        if self.lora.is_some() {
            return Err(LlamaError::Lora(
                "the model already has adapters; merge or remove them first".into(),
            ));
        }
        let mut model = self.no_grad();
        for (i, layer) in model.model.layers.iter_mut().enumerate() {
            for &target in &config.targets {
                let projection = layer.projection_mut(target);
                projection.lora = Some(make(i, target, projection.dims())?);
            }
        }
        model.lora = Some(config.clone());
        Ok(model)
    }

    /// The adapters' config, when the model has adapters.
    pub fn lora(&self) -> Option<&LoraConfig> {
        self.lora.as_ref()
    }

    /// The base model alone: the same (shared) base tensors, no adapters. A DPO reference built
    /// this way costs no second copy of the weights.
    pub fn without_adapters(&self) -> Self {
        let mut base = self.clone();
        for layer in &mut base.model.layers {
            for target in LoraTarget::ALL {
                layer.projection_mut(target).lora = None;
            }
        }
        base.lora = None;
        base
    }

    /// The model with every adapter's update added into its base weight (PEFT's
    /// `merge_and_unload`): a plain model that computes what the adapted one did.
    pub fn merge_adapters(mut self) -> Self {
        for layer in &mut self.model.layers {
            for target in LoraTarget::ALL {
                layer.projection_mut(target).merge();
            }
        }
        self.lora = None;
        self
    }
}
