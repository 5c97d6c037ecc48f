//! LoRA training: only the adapters learn, the run saves PEFT's files, a killed run resumes
//! exactly, and DPO's adapters-off reference equals an explicit frozen copy of the base.

mod common;

use burn::module::AutodiffModule;
use common::*;
use w2s_llama::{load_adapter, LoraConfig, LoraTarget, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE};
use w2s_losses::PreferenceLossConfig;
use w2s_train::{train_preference, train_sft, Reference, TrainConfig, TrainError, TrainOptions};

fn lora() -> LoraConfig {
    LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        rslora: false,
        targets: LoraTarget::ALL.to_vec(),
    }
}

fn lora_config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        learning_rate: 1e-1,
        lora: Some(lora()),
        ..quick_config()
    }
}

/// The tiny model with weights of std 0.3 instead of 0.02: a frozen random output layer of
/// std 0.02 cannot produce logits far from uniform, whatever the adapters learn, while one of
/// std 0.3 can, as a pretrained model's does.
fn lora_base(seed: u64) -> (w2s_llama::Llama<B>, w2s_llama::LlamaConfig) {
    let mut config = tiny_config(64);
    config.initializer_range = 0.3;
    seeded_model(config, seed)
}

/// The base parameters of a model (every parameter outside the adapters), flattened.
fn base_weights(model: &w2s_llama::Llama<B>) -> Vec<f32> {
    weights::<B, _>(&model.without_adapters())
}

#[test]
fn lora_sft_learns_with_the_base_frozen_and_saves_a_peft_adapter() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = sft_data(8);
    let (model, config) = lora_base(21);
    let before = weights::<B, _>(&model);
    let opts = TrainOptions {
        base_model: Some("tiny-base".into()),
        ..options(dir.path())
    };
    let out = train_sft(model, &config, &data, &data, &lora_config(60), &opts)?;
    let lines = step_lines(dir.path());
    let first = lines[0]["loss"].as_f64().unwrap_or(f64::NAN);
    let last = out.last_step["loss"];
    assert!(last < first / 3.0, "loss {first} -> {last}");
    assert!(greedy_accuracy(&out.model, &data) >= 0.75);
    // The base never moved.
    assert!(base_weights(&out.model) == before);
    // Trained adapters merged into the base compute what the adapted model does.
    let logits = |m: &w2s_llama::Llama<B>| {
        let rows: Vec<i64> = data
            .iter()
            .flat_map(|e| e.ids.iter().map(|&t| t as i64))
            .collect();
        let input = burn::tensor::Tensor::<B, 2, burn::tensor::Int>::from_data(
            burn::tensor::TensorData::new(rows, [data.len(), data[0].ids.len()]),
            &Default::default(),
        );
        m.forward(input, None)
            .unwrap()
            .into_data()
            .into_vec::<f32>()
            .unwrap()
    };
    let merged = out.model.clone().merge_adapters();
    assert!(max_abs_diff(&logits(&merged), &logits(&out.model)) < 1e-4);

    let final_dir = out.final_dir.expect("final adapter");
    assert!(final_dir.join(ADAPTER_CONFIG_FILE).is_file());
    assert!(final_dir.join(ADAPTER_WEIGHTS_FILE).is_file());
    assert!(!final_dir.join("model.safetensors").exists());
    let peft: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        final_dir.join(ADAPTER_CONFIG_FILE),
    )?)?;
    assert_eq!(peft["base_model_name_or_path"], "tiny-base");
    assert_eq!(peft["r"], 4);
    // The saved adapter on a fresh copy of the base is the trained model.
    let (fresh, _) = lora_base(21);
    let loaded = load_adapter(fresh, &final_dir, &Default::default())?;
    assert!(weights::<B, _>(&loaded) == weights::<B, _>(&out.model));
    Ok(())
}

#[test]
fn a_killed_lora_run_resumes_to_the_same_adapters() -> anyhow::Result<()> {
    let data = sft_data(8);
    let train = TrainConfig {
        checkpoint_every: Some(2),
        ..lora_config(6)
    };
    let full_dir = tempfile::tempdir()?;
    let (model, config) = lora_base(22);
    let full = train_sft(
        model,
        &config,
        &data,
        &[],
        &train,
        &options(full_dir.path()),
    )?;

    let dir = tempfile::tempdir()?;
    let (model, _) = lora_base(22);
    let halted = TrainOptions {
        halt_after: Some(3),
        ..options(dir.path())
    };
    train_sft(model, &config, &data, &[], &train, &halted)?;
    // A LoRA checkpoint holds the adapters and the optimizer, not the base.
    let ckpt = dir.path().join("ckpt-2");
    assert!(ckpt.join(ADAPTER_WEIGHTS_FILE).is_file());
    assert!(!ckpt.join("model.safetensors").exists());
    let (model, _) = lora_base(22);
    let resumed = train_sft(model, &config, &data, &[], &train, &options(dir.path()))?;
    assert_eq!(resumed.resumed_from, Some(2));
    assert!(weights::<B, _>(&resumed.model) == weights::<B, _>(&full.model));
    Ok(())
}

fn dpo() -> PreferenceLossConfig {
    PreferenceLossConfig::Dpo {
        beta: 0.1,
        label_smoothing: 0.0,
        nll_alpha: 0.0,
        reference_free: false,
    }
}

#[test]
fn dpo_with_adapters_off_equals_dpo_with_a_frozen_copy_of_the_base() -> anyhow::Result<()> {
    let data = pairs(8);
    let train = lora_config(3);
    let run = |reference: fn(&w2s_llama::Llama<B>) -> Reference<_>| -> anyhow::Result<_> {
        let dir = tempfile::tempdir()?;
        let (model, config) = lora_base(23);
        let reference = reference(&model);
        let out = train_preference(
            model,
            &config,
            &data,
            &data,
            &dpo(),
            reference,
            &train,
            &options(dir.path()),
        )?;
        Ok((weights::<B, _>(&out.model), out.last_eval))
    };
    let (copy_weights, copy_eval) = run(|m| Reference::Model(Box::new(m.valid())))?;
    let (off_weights, off_eval) = run(|_| Reference::AdaptersOff)?;
    assert!(off_weights == copy_weights);
    assert_eq!(off_eval, copy_eval);
    // And it learned.
    assert!(off_eval["rewards/margins"] > 0.05, "{off_eval:?}");
    Ok(())
}

#[test]
fn adapters_off_without_adapters_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (model, config) = lora_base(24);
    let full = TrainConfig {
        lora: None,
        ..lora_config(1)
    };
    let result = train_preference(
        model,
        &config,
        &pairs(4),
        &[],
        &dpo(),
        Reference::AdaptersOff,
        &full,
        &options(dir.path()),
    );
    let Err(TrainError::Config { field, reason }) = result else {
        panic!("expected a config error");
    };
    assert_eq!(field, "reference");
    assert!(reason.contains("lora"), "{reason}");
}
