//! Generation behaviour beyond parity: seeds, several samples, EOS and stop strings.

use std::path::Path;

use burn::backend::Flex;
use w2s_llama::{generate, FinishReason, GenerationConfig, ModelDir, Sampling};

type B = Flex;

fn model() -> ModelDir<B> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gqa_sharded");
    ModelDir::load(dir, &Default::default()).unwrap()
}

fn sampled(seed: u64, num_samples: usize) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: 12,
        sampling: Sampling {
            temperature: 1.0,
            top_k: None,
            top_p: Some(0.95),
        },
        seed,
        num_samples,
        ..Default::default()
    }
}

#[test]
fn a_sample_depends_on_its_seed_not_on_its_batch() {
    let dir = model();
    let dev = Default::default();
    let a = vec![5u32, 17, 33];
    let b = vec![9u32, 4, 61, 62, 70, 71, 2];
    let together = generate(
        &dir.model,
        &[a.clone(), b.clone()],
        &sampled(7, 3),
        None,
        &dev,
    )
    .unwrap();
    let alone = generate(
        &dir.model,
        std::slice::from_ref(&a),
        &sampled(7, 3),
        None,
        &dev,
    )
    .unwrap();
    assert_eq!(together.len(), 6);
    assert_eq!(alone.len(), 3);
    for (x, y) in together.iter().take(3).zip(&alone) {
        assert_eq!(
            (x.prompt_index, x.sample_index),
            (y.prompt_index, y.sample_index)
        );
        assert_eq!(x.token_ids, y.token_ids);
    }
    // Samples of one prompt differ from each other, and another seed changes them.
    assert!(alone[0].token_ids != alone[1].token_ids || alone[1].token_ids != alone[2].token_ids);
    let reseeded = generate(&dir.model, &[a], &sampled(8, 3), None, &dev).unwrap();
    assert_ne!(
        reseeded.iter().map(|g| &g.token_ids).collect::<Vec<_>>(),
        alone.iter().map(|g| &g.token_ids).collect::<Vec<_>>()
    );
}

#[test]
fn eos_ends_a_row_without_being_returned() {
    let dir = model();
    let dev = Default::default();
    let prompt = vec![vec![85u32, 21, 95, 65, 55, 80]];
    let greedy = GenerationConfig {
        max_new_tokens: 20,
        ..Default::default()
    };
    let free = generate(&dir.model, &prompt, &greedy, None, &dev).unwrap();
    // Declare the 4th greedy token an EOS: generation must stop right before it.
    let eos = free[0].token_ids[3];
    let first = free[0].token_ids.iter().position(|&t| t == eos).unwrap();
    let config = GenerationConfig {
        eos_token_ids: vec![eos],
        ..greedy
    };
    let stopped = generate(&dir.model, &prompt, &config, None, &dev).unwrap();
    assert_eq!(stopped[0].finish_reason, FinishReason::Eos);
    assert_eq!(stopped[0].token_ids, free[0].token_ids[..first]);
    assert_eq!(free[0].finish_reason, FinishReason::Length);
}

#[test]
fn stop_strings_cut_the_text() {
    let dir = model();
    let dev = Default::default();
    let tok = dir.tokenizer().unwrap();
    let prompt = vec![vec![85u32, 21, 95, 65, 55, 80]];
    let greedy = GenerationConfig {
        max_new_tokens: 20,
        ..Default::default()
    };
    let free = generate(&dir.model, &prompt, &greedy, Some(tok), &dev).unwrap();
    let text = free[0].text.clone().unwrap();
    assert!(text.chars().count() > 6, "{text:?}");
    let stop: String = text.chars().skip(3).take(2).collect();
    let cut = text.find(&stop).unwrap();
    let config = GenerationConfig {
        stop_strings: vec![stop.clone()],
        ..greedy
    };
    let stopped = generate(&dir.model, &prompt, &config, Some(tok), &dev).unwrap();
    assert_eq!(stopped[0].finish_reason, FinishReason::Stop);
    assert_eq!(stopped[0].text.as_deref(), Some(&text[..cut]));
    assert!(stopped[0].token_ids.len() < free[0].token_ids.len());
}

#[test]
fn bad_generation_inputs_are_errors() {
    let dir = model();
    let dev = Default::default();
    let config = GenerationConfig::default();
    assert!(generate(&dir.model, &[vec![]], &config, None, &dev).is_err());
    assert!(generate(&dir.model, &[vec![500]], &config, None, &dev).is_err());
    let stops = GenerationConfig {
        stop_strings: vec!["x".into()],
        ..Default::default()
    };
    assert!(generate(&dir.model, &[vec![5]], &stops, None, &dev).is_err());
    let zero = GenerationConfig {
        num_samples: 0,
        ..Default::default()
    };
    assert!(generate(&dir.model, &[vec![5]], &zero, None, &dev).is_err());
}
