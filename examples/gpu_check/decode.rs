//! Decoding throughput through `w2s_llama::generate` (greedy, KV cache, no EOS, so every row
//! runs to the full length) with an f32 and a bf16 base at each batch size.
//!
//! After a warm-up call (kernel compilation and autotuning), one call generates `new_tokens`
//! per row and one generates a single token; their difference is the time of `new_tokens - 1`
//! decoding steps without the prefill. Each step reads the logits back to the host, as sampling
//! does.

use std::time::Instant;

use anyhow::{ensure, Result};
use burn::prelude::*;
use burn::tensor::FloatDType;
use w2s::llama::{generate, GenerationConfig, Llama};
use w2s::throughput::token_ids;

use crate::report::{Report, Row};
use crate::shapes::Shapes;

/// One row per base dtype and batch size.
pub fn run<D: Backend>(shapes: &Shapes, report: &mut Report) {
    let device = Default::default();
    for (name, dtype) in [("f32", FloatDType::F32), ("bf16", FloatDType::BF16)] {
        let model = report.attempt("decode", &format!("{name} base: model"), || {
            D::seed(&device, 0);
            let model: Llama<D> = shapes.model.init(&device)?;
            Ok(match dtype {
                FloatDType::F32 => model,
                _ => model.cast_base(dtype),
            })
        });
        let Some(model) = model else { continue };
        for batch in shapes.decode_batches {
            let case = format!("{name} base, batch {batch}");
            report.check("decode", &case, || {
                let rate = tokens_per_s(&model, shapes, batch, &device)?;
                let unit = format!("tokens/s ({} new per row)", shapes.new_tokens);
                Ok(vec![Row::measured(
                    case.clone(),
                    format!("{rate:.1}"),
                    unit,
                )])
            });
        }
    }
}

/// Decoded tokens per second over all rows of a batch.
fn tokens_per_s<B: Backend>(
    model: &Llama<B>,
    shapes: &Shapes,
    batch: usize,
    device: &B::Device,
) -> Result<f64> {
    let prompts: Vec<Vec<u32>> = (0..batch)
        .map(|row| token_ids(row, shapes.prompt, 0, shapes.model.vocab_size))
        .collect();
    let seconds = |new_tokens: usize| -> Result<f64> {
        let config = GenerationConfig {
            max_new_tokens: new_tokens,
            ..GenerationConfig::default()
        };
        let start = Instant::now();
        let generations = generate(model, &prompts, &config, None, device)?;
        let elapsed = start.elapsed().as_secs_f64();
        let tokens: usize = generations.iter().map(|g| g.token_ids.len()).sum();
        ensure!(
            tokens == batch * new_tokens,
            "generated {tokens} tokens, not {}",
            batch * new_tokens
        );
        Ok(elapsed)
    };
    seconds(shapes.new_tokens)?;
    let all = seconds(shapes.new_tokens)?;
    let first = seconds(1)?;
    Ok((batch * (shapes.new_tokens - 1)) as f64 / (all - first).max(1e-9))
}
