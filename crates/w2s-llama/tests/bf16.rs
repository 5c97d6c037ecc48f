//! A bf16 base on the CPU backend: logits near the f32 model's, f32 outputs, decoding through the
//! KV cache, and LoRA adapters that stay f32 and train through the casts.

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::{DType, FloatDType};
use w2s_llama::{generate, GenerationConfig, Llama, LoraConfig, ModelDir};

type B = Flex;
type AD = Autodiff<Flex>;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn load<Be: Backend>(name: &str) -> Llama<Be> {
    ModelDir::<Be>::load(fixture(name), &Default::default())
        .unwrap()
        .model
}

fn tokens<Be: Backend>() -> Tensor<Be, 2, Int> {
    Tensor::from_data(
        TensorData::new(vec![1i64, 5, 9, 33, 70, 2, 17, 101, 44, 8], [2, 5]),
        &Default::default(),
    )
}

fn values<Be: Backend, const D: usize>(t: Tensor<Be, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec().unwrap()
}

#[test]
fn a_bf16_base_gives_f32_logits_near_the_f32_models() {
    // A separate head (gqa_sharded) and a tied one with llama3 RoPE (llama3_tied).
    for name in ["gqa_sharded", "llama3_tied"] {
        let model = load::<B>(name);
        let want = values(model.forward(tokens(), None).unwrap());
        let half = model.cast_base(FloatDType::BF16);
        assert_eq!(half.base_dtype(), FloatDType::BF16);
        let logits = half.forward(tokens(), None).unwrap();
        assert_eq!(logits.dtype(), DType::F32);
        assert_eq!(
            half.forward_hidden(tokens(), None).unwrap().dtype(),
            DType::F32
        );
        assert_eq!(half.lm_head_weight().dtype(), DType::F32);
        let got = values(logits);
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        // bf16 keeps 8 bits of mantissa: rounding the weights alone moves these logits (up to
        // 8.3 in size) by 0.11, the bf16 activations by as much again.
        let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(
            worst < 0.05 * scale,
            "{name}: bf16 logits differ by {worst} (largest {scale})"
        );
        assert!(worst > 0.0, "{name}: the cast did nothing");
    }
}

#[test]
fn a_bf16_base_decodes_through_the_cache_as_without_it() {
    let model = load::<B>("gqa_sharded").cast_base(FloatDType::BF16);
    let prompts = vec![vec![1u32, 5, 9, 33], vec![70, 2]];
    let run = |use_cache| {
        let config = GenerationConfig {
            max_new_tokens: 6,
            use_cache,
            ..GenerationConfig::default()
        };
        generate(&model, &prompts, &config, None, &Default::default())
            .unwrap()
            .into_iter()
            .map(|g| g.token_ids)
            .collect::<Vec<_>>()
    };
    let cached = run(true);
    assert_eq!(cached.iter().map(Vec::len).sum::<usize>(), 12);
    assert_eq!(cached, run(false));
}

#[test]
fn lora_adapters_on_a_bf16_base_stay_f32_and_get_gradients() {
    let model = load::<AD>("gqa_sharded")
        .cast_base(FloatDType::BF16)
        .with_lora(&LoraConfig::default(), &Default::default())
        .unwrap();
    let layer = &model.model.layers[0];
    let lora = layer.self_attn.q_proj.lora.as_ref().unwrap();
    assert_eq!(lora.a.val().dtype(), DType::F32);
    assert_eq!(
        layer.self_attn.q_proj.base.weight.val().dtype(),
        DType::BF16
    );
    let loss = model.forward(tokens(), None).unwrap().powi_scalar(2).mean();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    // Both matrices of every adapter, nothing of the base.
    assert_eq!(grads.len(), 2 * 7 * model.num_layers());
    let b_grad = lora.b.val().grad(&loss_grads(&model)).unwrap();
    assert_eq!(b_grad.dtype(), DType::F32);
    assert!(values(b_grad.abs().sum()).first().copied().unwrap_or(0.0) > 0.0);
}

fn loss_grads(model: &Llama<AD>) -> <AD as burn::tensor::backend::AutodiffBackend>::Gradients {
    model
        .forward(tokens(), None)
        .unwrap()
        .powi_scalar(2)
        .mean()
        .backward()
}
