//! Prefill and decode throughput of the Llama on the compiled-in backend.
//!
//! Two configs: `tiny` (the parity fixtures' shape) and `100m` (d = 768, 12 layers, 12 heads,
//! vocab 32,000, tied embeddings: 110M parameters). Batch 1 and 8; prompts of 128 tokens; decode
//! measures 32 new tokens per row with the KV cache. `benches/torch_generation.py` runs the same
//! shapes in transformers for comparison.

use std::time::{Duration, Instant};

use burn::prelude::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use w2s::backend::{device, Inference as B};
use w2s::llama::{Llama, LlamaConfig, PaddingMask};

const PROMPT: usize = 128;
const DECODE: usize = 32;

fn config(name: &str) -> LlamaConfig {
    let (d, i, layers, heads, vocab) = match name {
        "tiny" => (64, 96, 2, 4, 128),
        _ => (768, 2048, 12, 12, 32_000),
    };
    LlamaConfig::from_json(&format!(
        r#"{{"vocab_size": {vocab}, "hidden_size": {d}, "intermediate_size": {i},
            "num_hidden_layers": {layers}, "num_attention_heads": {heads},
            "max_position_embeddings": 1024, "tie_word_embeddings": true}}"#
    ))
    .expect("bench config is valid")
}

fn tokens(b: usize, s: usize, vocab: usize) -> Tensor<B, 2, Int> {
    let ids: Vec<i64> = (0..b * s).map(|i| ((i * 7919) % vocab) as i64).collect();
    Tensor::from_data(TensorData::new(ids, [b, s]), &device())
}

fn decode(model: &Llama<B>, b: usize, vocab: usize) -> Duration {
    let mut cache = model.new_cache();
    let mut mask = PaddingMask::full(b, PROMPT);
    let _ = model
        .forward_cached(tokens(b, PROMPT, vocab), &mask, &mut cache)
        .expect("prefill");
    let start = Instant::now();
    for _ in 0..DECODE {
        mask.push_column(true);
        let logits = model
            .forward_cached(tokens(b, 1, vocab), &mask, &mut cache)
            .expect("decode");
        // Reading the logits back is part of every real decoding step (sampling runs on the host).
        let _ = logits.into_data();
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    for name in ["tiny", "100m"] {
        let config = config(name);
        B::seed(&device(), 0);
        let model: Llama<B> = config.init(&device()).expect("init");
        let vocab = config.vocab_size;
        let mut group = c.benchmark_group(format!("llama_{name}"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(20));
        for b in [1, 8] {
            group.throughput(Throughput::Elements((b * PROMPT) as u64));
            group.bench_with_input(BenchmarkId::new("prefill_tokens", b), &b, |bench, &b| {
                bench.iter(|| {
                    model
                        .forward(tokens(b, PROMPT, vocab), None)
                        .expect("forward")
                        .into_data()
                })
            });
            group.throughput(Throughput::Elements((b * DECODE) as u64));
            group.bench_with_input(BenchmarkId::new("decode_tokens", b), &b, |bench, &b| {
                bench.iter_custom(|iters| (0..iters).map(|_| decode(&model, b, vocab)).sum())
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
