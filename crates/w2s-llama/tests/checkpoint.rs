//! Saving and loading HF checkpoints: round trips, sharding and every bad input a user can hand us.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::prelude::*;
use w2s_llama::{
    generate, GenerationConfig, LlamaConfig, LlamaError, ModelDir, SaveDtype, SaveOptions,
    Tokenizer,
};

type B = Flex;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn load(dir: &Path) -> Result<ModelDir<B>, LlamaError> {
    ModelDir::load(dir, &Default::default())
}

/// Every file of a directory, by name, as bytes.
fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for (name, bytes) in files(from) {
        std::fs::write(to.join(name), bytes).unwrap();
    }
}

fn weights_of(dir: &ModelDir<B>) -> Vec<f32> {
    let probe: Tensor<B, 2, Int> = Tensor::from_data(
        TensorData::new(vec![1i64, 5, 9, 33, 70], [1, 5]),
        &Default::default(),
    );
    dir.model
        .forward(probe, None)
        .unwrap()
        .into_data()
        .into_vec::<f32>()
        .unwrap()
}

#[test]
fn save_then_load_round_trips_bit_for_bit() {
    for (name, dtype) in [
        ("gqa_sharded", SaveDtype::F32),
        ("llama3_tied", SaveDtype::F32),
        ("bf16_linear", SaveDtype::Bf16),
    ] {
        let original = load(&fixture(name)).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let first = tmp.path().join("a");
        let second = tmp.path().join("b");
        original
            .save(
                &first,
                SaveOptions {
                    dtype,
                    ..Default::default()
                },
            )
            .unwrap();
        let reloaded = load(&first).unwrap();
        reloaded
            .save(
                &second,
                SaveOptions {
                    dtype,
                    ..Default::default()
                },
            )
            .unwrap();
        // Same bytes after a second save, and the same outputs as the original.
        assert_eq!(files(&first), files(&second), "{name}");
        assert_eq!(weights_of(&original), weights_of(&reloaded), "{name}");
        assert_eq!(
            reloaded.config.rope().unwrap(),
            original.config.rope().unwrap()
        );
    }
}

#[test]
fn sharded_save_writes_an_index_and_loads_back() {
    let original = load(&fixture("llama3_tied")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sharded");
    original
        .save(
            &dir,
            SaveOptions {
                max_shard_bytes: 40_000,
                ..Default::default()
            },
        )
        .unwrap();
    let names = files(&dir);
    assert!(names.contains_key("model.safetensors.index.json"));
    assert!(!names.contains_key("model.safetensors"));
    assert!(names.keys().filter(|n| n.starts_with("model-")).count() > 2);
    assert_eq!(weights_of(&original), weights_of(&load(&dir).unwrap()));
    // Saving single-file into the same directory removes the stale index.
    original.save(&dir, SaveOptions::default()).unwrap();
    assert!(!dir.join("model.safetensors.index.json").exists());
    assert_eq!(weights_of(&original), weights_of(&load(&dir).unwrap()));
}

#[test]
fn missing_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let err = load(tmp.path()).unwrap_err();
    assert!(
        matches!(err, LlamaError::MissingFile { what: "config", .. }),
        "{err}"
    );

    std::fs::copy(
        fixture("bf16_linear/config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    let err = load(tmp.path()).unwrap_err();
    assert!(
        matches!(
            err,
            LlamaError::MissingFile {
                what: "weights",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("model.safetensors"));
}

#[test]
fn corrupt_and_truncated_safetensors_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture("bf16_linear"), tmp.path());
    let weights = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();

    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let err = load(tmp.path()).unwrap_err();
    assert!(
        matches!(err, LlamaError::Safetensors { .. }),
        "truncated: {err}"
    );

    std::fs::write(&weights, b"this is not a safetensors file at all").unwrap();
    let err = load(tmp.path()).unwrap_err();
    assert!(
        matches!(err, LlamaError::Safetensors { .. }),
        "garbage: {err}"
    );
    assert!(err.to_string().contains("model.safetensors"));
}

#[test]
fn shape_mismatches_name_every_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture("bf16_linear"), tmp.path());
    let path = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("\"intermediate_size\": 96", "\"intermediate_size\": 80"),
    )
    .unwrap();
    let err = load(tmp.path()).unwrap_err();
    let LlamaError::WeightsMismatch {
        shapes,
        missing,
        unexpected,
        ..
    } = &err
    else {
        panic!("expected a mismatch, got {err}");
    };
    // gate, up and down of both layers.
    assert_eq!(shapes.len(), 6, "{err}");
    assert!(missing.is_empty() && unexpected.is_empty());
    assert!(
        err.to_string().contains(
            "model.layers.1.mlp.down_proj.weight: expected shape [64, 80], found [64, 96]"
        ),
        "{err}"
    );
}

#[test]
fn missing_and_unexpected_tensors_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture("bf16_linear"), tmp.path());
    let path = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    // One layer fewer: layer 1's tensors are unexpected. Tied: lm_head is unexpected too.
    let text = text
        .replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3")
        .replace(
            "\"tie_word_embeddings\": false",
            "\"tie_word_embeddings\": true",
        );
    std::fs::write(&path, text).unwrap();
    let err = load(tmp.path()).unwrap_err();
    let LlamaError::WeightsMismatch {
        missing,
        unexpected,
        ..
    } = &err
    else {
        panic!("expected a mismatch, got {err}");
    };
    assert_eq!(missing.len(), 9, "{err}");
    assert!(missing.contains(&"model.layers.2.self_attn.q_proj.weight".to_string()));
    assert_eq!(unexpected, &vec!["lm_head.weight".to_string()]);
}

#[test]
fn unsupported_rope_type_names_the_field() {
    let text = std::fs::read_to_string(fixture("llama3_tied/config.json")).unwrap();
    let err = LlamaConfig::from_json(&text.replace("\"llama3\"", "\"yarn\"")).unwrap_err();
    assert!(
        matches!(
            err,
            LlamaError::Config {
                field: "rope_parameters",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("yarn"));
    let v4 = r#"{"vocab_size": 10, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 2, "rope_scaling": {"type": "dynamic", "factor": 2.0}}"#;
    let err = LlamaConfig::from_json(v4).unwrap_err();
    assert!(
        matches!(
            err,
            LlamaError::Config {
                field: "rope_scaling",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn inconsistent_sizes_name_the_field() {
    let base = r#"{"vocab_size": 10, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": HEADS, "num_key_value_heads": KV}"#;
    let cfg =
        |h: &str, kv: &str| LlamaConfig::from_json(&base.replace("HEADS", h).replace("KV", kv));
    assert!(cfg("2", "1").is_ok());
    assert!(matches!(
        cfg("2", "3").unwrap_err(),
        LlamaError::Config {
            field: "num_key_value_heads",
            ..
        }
    ));
    assert!(matches!(
        cfg("3", "1").unwrap_err(),
        LlamaError::Config {
            field: "hidden_size",
            ..
        }
    ));
    let v4_llama3 = r#"{"vocab_size": 10, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 2, "rope_theta": 500000.0, "eos_token_id": [3, 7],
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}"#;
    let config = LlamaConfig::from_json(v4_llama3).unwrap();
    assert_eq!(config.rope().unwrap().theta, 500000.0);
    assert_eq!(config.eos_token_ids(), vec![3, 7]);
    let bad_eos = v4_llama3.replace("[3, 7]", "[3, 70]");
    assert!(matches!(
        LlamaConfig::from_json(&bad_eos).unwrap_err(),
        LlamaError::Config {
            field: "eos_token_id",
            ..
        }
    ));
}

#[test]
fn a_tokenizer_larger_than_the_model_is_rejected() {
    let err = Tokenizer::from_file(fixture("tokenizer.json"), 100, Some(1)).unwrap_err();
    assert!(
        matches!(
            err,
            LlamaError::VocabMismatch {
                tokenizer: 120,
                model: 100,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_prompt_longer_than_the_context_is_an_error() {
    let dir = load(&fixture("gqa_sharded")).unwrap();
    let config = GenerationConfig {
        max_new_tokens: 10,
        ..Default::default()
    };
    let prompts = vec![vec![5u32; 3], vec![5u32; 120]];
    let err = generate(&dir.model, &prompts, &config, None, &Default::default()).unwrap_err();
    assert!(
        matches!(
            err,
            LlamaError::PromptTooLong {
                index: 1,
                prompt_len: 120,
                needed: 130,
                context: 128,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn f16_checkpoints_load_with_f16_rounding() {
    use safetensors::{serialize_to_file, tensor::TensorView, Dtype, SafeTensors};
    // Re-encode the f32 fixture to f16 (transformers writes the same layout with dtype=float16).
    let original = load(&fixture("llama3_tied")).unwrap();
    let bytes = std::fs::read(fixture("llama3_tied/model.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let converted: Vec<(String, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view
                .data()
                .chunks_exact(4)
                .flat_map(|b| {
                    half::f16::from_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]])).to_le_bytes()
                })
                .collect();
            (name, view.shape().to_vec(), data)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = converted
        .iter()
        .map(|(name, shape, data)| {
            (
                name.clone(),
                TensorView::new(Dtype::F16, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("llama3_tied/config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    serialize_to_file(views, None, &tmp.path().join("model.safetensors")).unwrap();
    let reloaded = load(tmp.path()).unwrap();
    let (a, b) = (weights_of(&original), weights_of(&reloaded));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    let scale = a.iter().map(|x| x.abs()).fold(0f32, f32::max);
    // f16 keeps 11 significant bits; logits move by well under 1% of their range, but do move.
    assert!(
        worst > 0.0 && worst < 0.01 * scale,
        "worst {worst}, scale {scale}"
    );
}
