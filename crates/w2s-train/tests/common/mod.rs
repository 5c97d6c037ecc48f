//! Tiny models, synthetic data and weight comparison shared by the training tests.
#![allow(dead_code)]

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use w2s_llama::{generate, GenerationConfig, Llama, LlamaConfig};
use w2s_train::{TokenizedPair, TokenizedSft, TrainConfig, TrainOptions};

pub type B = Autodiff<Flex>;

/// 2 layers, d = 32, vocab 64, context 32: about 40k parameters.
pub fn tiny_config(vocab: usize) -> LlamaConfig {
    LlamaConfig::from_json(&format!(
        r#"{{"vocab_size": {vocab}, "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 32, "bos_token_id": 1, "eos_token_id": 2}}"#
    ))
    .expect("valid tiny config")
}

/// The backend's RNG is global: tests running in parallel must not interleave seeding and drawing.
static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn tiny_model(seed: u64) -> (Llama<B>, LlamaConfig) {
    seeded_model(tiny_config(64), seed)
}

/// A model of `config` drawn from `seed`.
pub fn seeded_model(config: LlamaConfig, seed: u64) -> (Llama<B>, LlamaConfig) {
    let dev = Default::default();
    let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    <B as Backend>::seed(&dev, seed);
    let model = config.init::<B>(&dev).expect("init");
    // Parameters are initialized lazily, on first use: draw them now, under the lock.
    weights::<B, _>(&model);
    (model, config)
}

/// `[1, a, b] -> [(a + b) mod 20 + 30, 2]`: a lookup table the model must memorize.
pub fn sft_data(n: usize) -> Vec<TokenizedSft> {
    (0..n as u32)
        .map(|i| {
            let (a, b) = (3 + i % 7, 5 + (i * 3) % 11);
            TokenizedSft::prompt_completion(vec![1, a, b], vec![(a + b) % 20 + 30, 2])
        })
        .collect()
}

/// Chosen continues the prompt with its answer, rejected with another token.
pub fn pairs(n: usize) -> Vec<TokenizedPair> {
    sft_data(n)
        .into_iter()
        .map(|e| {
            let (prompt, completion) = prompt_and_completion(&e);
            TokenizedPair {
                rejected: vec![(completion[0] + 7) % 20 + 30, 2],
                prompt: prompt.to_vec(),
                chosen: completion.to_vec(),
            }
        })
        .collect()
}

pub fn quick_config() -> TrainConfig {
    TrainConfig {
        learning_rate: 1e-2,
        warmup_steps: 2,
        batch_tokens: 40,
        shuffle: true,
        seed: 3,
        ..TrainConfig::default()
    }
}

pub fn options(dir: &std::path::Path) -> TrainOptions {
    TrainOptions {
        quiet: true,
        ..TrainOptions::new(dir)
    }
}

/// A prompt-completion record's prompt and completion.
pub fn prompt_and_completion(e: &TokenizedSft) -> (&[u32], &[u32]) {
    e.ids.split_at(e.targets[0].start)
}

/// Share of examples whose completion the model reproduces greedily.
pub fn greedy_accuracy<Bk: Backend>(model: &Llama<Bk>, data: &[TokenizedSft]) -> f64 {
    let prompts: Vec<Vec<u32>> = data
        .iter()
        .map(|e| prompt_and_completion(e).0.to_vec())
        .collect();
    let config = GenerationConfig {
        max_new_tokens: 2,
        ..GenerationConfig::default()
    };
    let out = generate(model, &prompts, &config, None, &Default::default()).expect("generate");
    let hits = out
        .iter()
        .zip(data)
        .filter(|(g, e)| g.token_ids == prompt_and_completion(e).1)
        .count();
    hits as f64 / data.len() as f64
}

/// Every float parameter, flattened in visiting order.
pub fn weights<Bk: Backend, M: Module<Bk>>(model: &M) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl<Bk: Backend> ModuleVisitor<Bk> for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Bk, D>>) {
            let data = param.val().into_data().convert::<f32>();
            self.0.extend(data.to_vec::<f32>().expect("f32 data"));
        }
    }
    let mut c = Collect(Vec::new());
    model.visit(&mut c);
    c.0
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The `"step"` lines of `metrics.jsonl`.
pub fn step_lines(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .expect("metrics file")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
        .filter(|v| v.get("loss").is_some())
        .collect()
}

/// Asserts that the first step line logs every metric in `keys` and that `num_tokens` grows at
/// every step and ends at `total_tokens`.
pub fn assert_logged(lines: &[serde_json::Value], keys: &[&str], total_tokens: f64) {
    for key in keys {
        assert!(lines[0].get(key).is_some(), "metric {key} logged");
    }
    let seen: Vec<f64> = lines
        .iter()
        .map(|l| {
            l["num_tokens"]
                .as_f64()
                .expect("num_tokens on every step line")
        })
        .collect();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert_eq!(seen.last().copied(), Some(total_tokens));
}
