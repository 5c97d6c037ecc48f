//! Inputs a user hands us (config files, weight files) never panic, whatever their bytes.

use std::path::Path;

use burn::backend::Flex;
use proptest::prelude::*;
use w2s_llama::{LlamaConfig, ModelDir};

const CONFIG: &str = r#"{"vocab_size": 128, "hidden_size": 64, "intermediate_size": 96,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
  "rope_parameters": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0},
  "max_position_embeddings": 128, "bos_token_id": 1, "eos_token_id": 2}"#;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any edit of a valid config either parses and validates or returns an error.
    #[test]
    fn mutated_configs_never_panic(cut in 0usize..400, insert in "[0-9a-z\\[\\]{}\",:. -]{0,12}") {
        let cut = cut.min(CONFIG.len());
        let mut text = CONFIG[..cut].to_string();
        text.push_str(&insert);
        text.push_str(&CONFIG[cut..]);
        if let Ok(config) = LlamaConfig::from_json(&text) {
            // Whatever validated must describe a model we can build the pieces of.
            prop_assert!(config.head_dim() > 0);
            prop_assert!(config.rope().is_ok());
        }
    }

    /// Numbers at the edges (zero, huge, negative as floats) are errors, not panics.
    #[test]
    fn extreme_sizes_never_panic(heads in 0usize..9, kv in 0usize..9, hidden in 0usize..130, eps in -1.0f64..1.0) {
        let text = format!(r#"{{"vocab_size": 16, "hidden_size": {hidden}, "intermediate_size": 8,
            "num_hidden_layers": 1, "num_attention_heads": {heads}, "num_key_value_heads": {kv},
            "rms_norm_eps": {eps}}}"#);
        let _ = LlamaConfig::from_json(&text);
    }

    /// A weights file of arbitrary bytes (or a real one with bytes flipped) is an error.
    #[test]
    fn corrupted_weights_never_panic(offset in 0usize..4096, byte in any::<u8>(), truncate in 0usize..3000) {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bf16_linear");
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(fixture.join("config.json"), dir.path().join("config.json")).unwrap();
        let mut bytes = std::fs::read(fixture.join("model.safetensors")).unwrap();
        let offset = offset % bytes.len();
        bytes[offset] = byte;
        bytes.truncate(bytes.len() - truncate);
        std::fs::write(dir.path().join("model.safetensors"), &bytes).unwrap();
        // Flipping a data byte can still give a loadable model; everything else must be an error.
        let _ = ModelDir::<Flex>::load(dir.path(), &Default::default());
    }
}
