//! SFT: learning, gradient accumulation, exact resume, crash safety, divergence and bad input.

mod common;

use common::*;
use w2s_train::{
    latest_checkpoint, load_checkpoint, optimizer::adamw, train_sft, Overlong, TokenizedSft,
    TrainConfig, TrainError,
};

#[test]
fn sft_drives_the_loss_down_and_the_accuracy_up() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = sft_data(8);
    let (model, config) = tiny_model(1);
    let before = greedy_accuracy(&model, &data);
    let train = TrainConfig {
        epochs: 30,
        ..quick_config()
    };
    let out = train_sft(model, &config, &data, &data, &train, &options(dir.path()))?;
    let after = greedy_accuracy(&out.model, &data);
    let lines = step_lines(dir.path());
    let first = lines[0]["loss"].as_f64().unwrap_or(f64::NAN);
    let last = out.last_step["loss"];
    assert!(last < first / 4.0, "loss {first} -> {last}");
    assert!(out.last_eval["loss"] < first / 4.0);
    assert!(
        before <= 0.25 && after >= 0.75,
        "accuracy {before} -> {after}"
    );
    for key in ["lr", "grad_norm", "tokens_per_s", "epoch"] {
        assert!(lines[0].get(key).is_some(), "metric {key} logged");
    }
    let final_dir = out.final_dir.expect("final model");
    assert!(final_dir.join("model.safetensors").is_file());
    assert!(final_dir.join("train_config.json").is_file());
    Ok(())
}

#[test]
fn four_micro_batches_equal_one_batch_four_times_the_size() -> anyhow::Result<()> {
    // Same total length (5 tokens) for every record, different completion lengths, so the
    // token normalisation across micro-batches matters.
    let data: Vec<TokenizedSft> = (0..8u32)
        .map(|i| {
            let split = 1 + (i as usize % 3);
            let row: Vec<u32> = (0..5).map(|t| 3 + (i * 5 + t) % 50).collect();
            TokenizedSft {
                prompt: row[..split].to_vec(),
                completion: row[split..].to_vec(),
            }
        })
        .collect();
    let run = |batch_tokens, grad_accum_steps| -> anyhow::Result<(Vec<f32>, f64, f64)> {
        let dir = tempfile::tempdir()?;
        let (model, config) = tiny_model(5);
        // A large epsilon makes the first AdamW update linear in the gradient, so weights
        // differ by f32 rounding only (with ε ≈ 0 it is sign(g), unstable where g ≈ 0).
        let train = TrainConfig {
            batch_tokens,
            grad_accum_steps,
            shuffle: false,
            max_grad_norm: None,
            warmup_steps: 0,
            adam_epsilon: 1.0,
            ..quick_config()
        };
        let out = train_sft(model, &config, &data, &[], &train, &options(dir.path()))?;
        assert_eq!(out.steps, 1);
        Ok((
            weights(&out.model),
            out.last_step["loss"],
            out.last_step["grad_norm"],
        ))
    };
    let (w4, loss4, norm4) = run(10, 4)?;
    let (w1, loss1, norm1) = run(40, 1)?;
    assert!((loss4 - loss1).abs() < 1e-5 * loss1, "{loss4} vs {loss1}");
    assert!((norm4 - norm1).abs() < 1e-4 * norm1, "{norm4} vs {norm1}");
    assert!(max_abs_diff(&w4, &w1) < 1e-6);
    Ok(())
}

fn resumable_config() -> TrainConfig {
    TrainConfig {
        epochs: 2,
        batch_tokens: 10,
        checkpoint_every: Some(2),
        ..quick_config()
    }
}

#[test]
fn interrupted_and_resumed_equals_uninterrupted_bit_for_bit() -> anyhow::Result<()> {
    let data = sft_data(8);
    let (full_dir, cut_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (model, config) = tiny_model(2);
    let full = train_sft(
        model,
        &config,
        &data,
        &[],
        &resumable_config(),
        &options(full_dir.path()),
    )?;
    assert!(full.steps >= 5, "the run has {} steps", full.steps);

    let (model, _) = tiny_model(2);
    let halted = train_sft(
        model,
        &config,
        &data,
        &[],
        &resumable_config(),
        &w2s_train::TrainOptions {
            halt_after: Some(3),
            ..options(cut_dir.path())
        },
    )?;
    assert_eq!((halted.steps, halted.final_dir.is_none()), (3, true));
    // A fresh process: another random init, which the checkpoint overrides.
    let (model, _) = tiny_model(99);
    let resumed = train_sft(
        model,
        &config,
        &data,
        &[],
        &resumable_config(),
        &options(cut_dir.path()),
    )?;
    assert_eq!(resumed.resumed_from, Some(2));
    // Exact equality, not a tolerance (`assert!` keeps a failure from printing every weight).
    assert!(weights(&resumed.model) == weights(&full.model));
    let read = |d: &std::path::Path| std::fs::read(d.join("final/model.safetensors"));
    assert_eq!(read(full_dir.path())?, read(cut_dir.path())?);
    // The metrics read as one run: steps 1..=n, once each.
    let steps: Vec<u64> = step_lines(cut_dir.path())
        .iter()
        .filter_map(|l| l["step"].as_u64())
        .collect();
    assert_eq!(steps, (1..=full.steps as u64).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn a_crash_mid_checkpoint_leaves_the_previous_one_loadable() -> anyhow::Result<()> {
    let data = sft_data(8);
    let dir = tempfile::tempdir()?;
    let (model, config) = tiny_model(4);
    let opts = w2s_train::TrainOptions {
        halt_after: Some(3),
        ..options(dir.path())
    };
    train_sft(model, &config, &data, &[], &resumable_config(), &opts)?;
    // What a crash while writing ckpt-4 leaves: its temporary directory, half written.
    let tmp = dir.path().join("ckpt-4.tmp");
    std::fs::create_dir_all(&tmp)?;
    std::fs::copy(
        dir.path().join("ckpt-2/config.json"),
        tmp.join("config.json"),
    )?;
    std::fs::write(
        tmp.join("model.safetensors"),
        b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a",
    )?;
    std::fs::write(tmp.join("trainer_state.json"), b"{\"step\": 4")?;

    let (step, ckpt) = latest_checkpoint(dir.path())?.expect("a checkpoint");
    assert_eq!(step, 2);
    let loaded = load_checkpoint(&ckpt, adamw::<B>(&resumable_config()), &Default::default())?;
    assert_eq!(loaded.state.step, 2);
    // Resuming ignores the debris, replaces it, and finishes.
    let (model, _) = tiny_model(4);
    let out = train_sft(
        model,
        &config,
        &data,
        &[],
        &resumable_config(),
        &options(dir.path()),
    )?;
    assert_eq!(out.resumed_from, Some(2));
    assert!(!tmp.exists() && dir.path().join("ckpt-4/trainer_state.json").is_file());
    Ok(())
}

#[test]
fn a_diverging_run_names_the_step_and_keeps_the_last_good_checkpoint() -> anyhow::Result<()> {
    let data = sft_data(8);
    let dir = tempfile::tempdir()?;
    let (model, config) = tiny_model(6);
    let train = TrainConfig {
        learning_rate: 1e30,
        warmup_steps: 0,
        max_grad_norm: None,
        epochs: 5,
        checkpoint_every: Some(1),
        ..quick_config()
    };
    let result = train_sft(model, &config, &data, &[], &train, &options(dir.path()));
    let Err(TrainError::NonFinite { step, .. }) = result else {
        panic!(
            "expected a non-finite error, got {:?}",
            result.map(|o| o.steps)
        );
    };
    assert!(step >= 2, "step {step}");
    let (last, ckpt) = latest_checkpoint(dir.path())?.expect("a good checkpoint");
    assert_eq!(last, step - 1);
    load_checkpoint(&ckpt, adamw::<B>(&train), &Default::default())?;
    Ok(())
}

#[test]
fn bad_input_is_rejected_before_training() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (model, config) = tiny_model(7);
    let opts = options(dir.path());
    let run = |data: &[TokenizedSft], train: &TrainConfig| {
        train_sft(model.clone(), &config, data, &[], train, &opts)
    };
    let quick = quick_config();
    assert!(matches!(
        run(&[], &quick),
        Err(TrainError::EmptyDataset { .. })
    ));
    let mut data = sft_data(3);
    data[1].completion.clear();
    assert!(matches!(
        run(&data, &quick),
        Err(TrainError::Record { index: 1, .. })
    ));
    // Over the context (32 positions): an error by default, left out with `skip`.
    let mut data = sft_data(3);
    data[2].completion = vec![5; 40];
    assert!(matches!(
        run(&data, &quick),
        Err(TrainError::Record { index: 2, .. })
    ));
    let skip = TrainConfig {
        overlong: Overlong::Skip,
        max_steps: Some(1),
        ..quick_config()
    };
    assert_eq!(run(&data, &skip)?.skipped_records, 1);
    let bad = TrainConfig {
        learning_rate: -1.0,
        ..quick_config()
    };
    assert!(matches!(run(&data, &bad), Err(TrainError::Config { .. })));
    Ok(())
}
