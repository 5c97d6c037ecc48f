//! Parity with HuggingFace transformers.
//!
//! `tests/fixtures/make_fixtures.py` made three tiny random checkpoints with transformers (versions
//! recorded in `expected.json`) and recorded transformers' f32 logits and greedy continuations:
//! - `gqa_sharded`: GQA (4 heads over 2 kv heads), default RoPE, separate `lm_head`, 6 shards;
//! - `llama3_tied`: MQA, explicit `head_dim`, llama3 RoPE scaling (original context 32, inputs up
//!   to 100 tokens), tied embeddings, v5 `rope_parameters`;
//! - `bf16_linear`: weights stored in bf16, linear RoPE scaling.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::prelude::*;
use serde::Deserialize;
use w2s_llama::{generate, GenerationConfig, ModelDir, PaddingMask};

type B = Flex;

#[derive(Deserialize)]
struct Expected {
    tokenizer: TokenizerCase,
    models: std::collections::BTreeMap<String, ModelCases>,
}

#[derive(Deserialize)]
struct TokenizerCase {
    text: String,
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct ModelCases {
    singles: Vec<LogitsCase>,
    padded: LogitsCase,
    greedy: Vec<GreedyCase>,
}

#[derive(Deserialize)]
struct LogitsCase {
    input_ids: Vec<Vec<u32>>,
    #[serde(default)]
    attention_mask: Option<Vec<Vec<u8>>>,
    logits: Vec<Vec<Vec<f32>>>,
}

#[derive(Deserialize)]
struct GreedyCase {
    prompt: Vec<u32>,
    output: Vec<u32>,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The checkpoints of the module docs, as `expected.json` names them.
const MODELS: [&str; 3] = ["bf16_linear", "gqa_sharded", "llama3_tied"];

/// `expected.json`, holding cases for every checkpoint: a file that lost a model or its cases
/// fails here instead of leaving a loop below with nothing to compare.
fn expected() -> Expected {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).expect("expected.json");
    let expected: Expected = serde_json::from_str(&text).expect("expected.json parses");
    assert_eq!(
        expected.models.keys().collect::<Vec<_>>(),
        MODELS,
        "expected.json: models"
    );
    for (name, cases) in &expected.models {
        assert!(
            !cases.singles.is_empty() && !cases.greedy.is_empty(),
            "expected.json: `models.{name}` has no cases"
        );
    }
    expected
}

fn load(name: &str) -> ModelDir<B> {
    ModelDir::load(fixtures().join(name), &Default::default()).expect("fixture loads")
}

fn ids_tensor(ids: &[Vec<u32>]) -> Tensor<B, 2, Int> {
    let flat: Vec<i64> = ids.iter().flatten().map(|&t| t as i64).collect();
    Tensor::from_data(
        TensorData::new(flat, [ids.len(), ids[0].len()]),
        &Default::default(),
    )
}

/// Largest |ours - theirs| over the positions where `mask` (if any) marks a real token.
fn max_error(ours: Tensor<B, 3>, case: &LogitsCase) -> f32 {
    let [b, s, v] = ours.dims();
    let ours = ours.into_data().into_vec::<f32>().unwrap();
    let mut worst = 0f32;
    for i in 0..b {
        for j in 0..s {
            if case.attention_mask.as_ref().is_some_and(|m| m[i][j] == 0) {
                continue;
            }
            for k in 0..v {
                let d = (ours[(i * s + j) * v + k] - case.logits[i][j][k]).abs();
                worst = worst.max(d);
            }
        }
    }
    worst
}

#[test]
fn logits_match_transformers() {
    for (name, cases) in expected().models {
        let dir = load(&name);
        for case in &cases.singles {
            let logits = dir
                .model
                .forward(ids_tensor(&case.input_ids), None)
                .unwrap();
            let err = max_error(logits, case);
            assert!(
                err < 1e-4,
                "{name}, length {}: max |diff| {err}",
                case.input_ids[0].len()
            );
        }
        let case = &cases.padded;
        let rows = case
            .attention_mask
            .as_ref()
            .unwrap_or_else(|| {
                panic!("expected.json: `models.{name}.padded.attention_mask` is missing")
            })
            .iter()
            .map(|r| r.iter().map(|&m| m == 1).collect())
            .collect();
        let mask = PaddingMask::new(rows).unwrap();
        let logits = dir
            .model
            .forward(ids_tensor(&case.input_ids), Some(&mask))
            .unwrap();
        let err = max_error(logits, case);
        assert!(err < 1e-4, "{name}, left-padded batch: max |diff| {err}");
    }
}

#[test]
fn greedy_continuations_match_transformers_cached_and_uncached() {
    for (name, cases) in expected().models {
        let dir = load(&name);
        let prompts: Vec<Vec<u32>> = cases.greedy.iter().map(|g| g.prompt.clone()).collect();
        for use_cache in [true, false] {
            let config = GenerationConfig {
                max_new_tokens: 20,
                use_cache,
                ..Default::default()
            };
            // All prompts in one left-padded batch: padding must not change any row.
            let out = generate(&dir.model, &prompts, &config, None, &Default::default()).unwrap();
            assert_eq!(
                out.len(),
                cases.greedy.len(),
                "{name}: one output per prompt"
            );
            for (g, case) in out.iter().zip(&cases.greedy) {
                assert_eq!(
                    g.token_ids, case.output,
                    "{name}, cache {use_cache}, prompt {:?}",
                    case.prompt
                );
            }
        }
    }
}

#[test]
fn tokenizer_matches_the_python_tokenizers_library() {
    let e = expected();
    let dir = load("gqa_sharded");
    let tok = dir.tokenizer().unwrap();
    assert_eq!(
        tok.encode(&e.tokenizer.text, false).unwrap(),
        e.tokenizer.ids
    );
    let with_bos = tok.encode(&e.tokenizer.text, true).unwrap();
    assert_eq!(with_bos[0], 1);
    assert_eq!(&with_bos[1..], e.tokenizer.ids.as_slice());
    assert_eq!(
        tok.decode(&e.tokenizer.ids, true).unwrap(),
        e.tokenizer.text
    );
}
