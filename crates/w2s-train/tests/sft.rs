//! SFT: learning, its metrics and chart, gradient accumulation, exact resume, crash safety,
//! damaged checkpoints, resuming onto other data, divergence and bad input.

mod common;

use common::*;
use w2s_train::{
    latest_checkpoint, load_checkpoint, optimizer::adamw, train_sft, Overlong, TokenizedSft,
    TrainConfig, TrainError, TrainOutcome,
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
    // Tokens seen so far: 8 rows of 5 tokens per epoch, 30 epochs.
    let keys = [
        "learning_rate",
        "grad_norm",
        "num_tokens",
        "tokens_per_s",
        "epoch",
        "mean_token_accuracy",
    ];
    assert_logged(&lines, &keys, 5.0 * 8.0 * 30.0);
    // The token accuracy follows the greedy accuracy: its first token is the learned answer.
    let accuracy = |l: &serde_json::Value| l["mean_token_accuracy"].as_f64().unwrap_or(f64::NAN);
    let (first, last) = (accuracy(&lines[0]), out.last_step["mean_token_accuracy"]);
    assert!(
        (0.0..=0.5).contains(&first) && last >= 0.9,
        "accuracy {first} -> {last}"
    );
    let chart = std::fs::read_to_string(dir.path().join("metrics.svg"))?;
    assert_eq!(
        chart.matches("<polyline").count(),
        3,
        "loss, learning rate, grad norm"
    );
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
            TokenizedSft::prompt_completion(row[..split].to_vec(), row[split..].to_vec())
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
    // The metrics read as one run: steps 1..=n, once each, counting tokens on from the resume.
    let steps: Vec<u64> = step_lines(cut_dir.path())
        .iter()
        .filter_map(|l| l["step"].as_u64())
        .collect();
    assert_eq!(steps, (1..=full.steps as u64).collect::<Vec<_>>());
    let seen = |d: &std::path::Path| -> Vec<f64> {
        step_lines(d)
            .iter()
            .filter_map(|l| l["num_tokens"].as_f64())
            .collect()
    };
    assert_eq!(seen(cut_dir.path()), seen(full_dir.path()));
    Ok(())
}

/// A run of [`resumable_config`] on `data` in `dir`, stopped after `halt_after` steps if given.
fn resumable_run(
    dir: &std::path::Path,
    data: &[TokenizedSft],
    halt_after: Option<usize>,
) -> Result<TrainOutcome<B>, TrainError> {
    let (model, config) = tiny_model(2);
    let opts = w2s_train::TrainOptions {
        halt_after,
        ..options(dir)
    };
    train_sft(model, &config, data, &[], &resumable_config(), &opts)
}

/// Damage done to a checkpoint directory after it was written.
type Damage = fn(&std::path::Path) -> std::io::Result<()>;

fn truncate_weights(ckpt: &std::path::Path) -> std::io::Result<()> {
    let weights = ckpt.join("model.safetensors");
    let bytes = std::fs::read(&weights)?;
    std::fs::write(&weights, &bytes[..bytes.len() / 2])
}

fn garble_state(ckpt: &std::path::Path) -> std::io::Result<()> {
    std::fs::write(ckpt.join("trainer_state.json"), b"{\"step\": 4, ")
}

#[test]
fn a_damaged_checkpoint_falls_back_to_the_one_before_it() -> anyhow::Result<()> {
    let data = sft_data(8);
    let full_dir = tempfile::tempdir()?;
    let full = resumable_run(full_dir.path(), &data, None)?;
    let damages: [Damage; 2] = [truncate_weights, garble_state];
    for damage in damages {
        let dir = tempfile::tempdir()?;
        let halted = resumable_run(dir.path(), &data, Some(4))?;
        assert_eq!(halted.steps, 4);
        let (newest, ckpt) = latest_checkpoint(dir.path())?.expect("a checkpoint");
        assert_eq!(newest, 4);
        damage(&ckpt)?;
        let resumed = resumable_run(dir.path(), &data, None)?;
        assert_eq!(
            resumed.resumed_from,
            Some(2),
            "the older checkpoint is taken"
        );
        assert!(weights(&resumed.model) == weights(&full.model));
        // The damaged checkpoint was replaced by a good one on the way.
        load_checkpoint(
            &ckpt,
            adamw::<B>(&resumable_config()),
            &tiny_model(0).0,
            &Default::default(),
        )?;
    }
    // When no checkpoint loads, the run starts over (and still ends where a fresh one does).
    let dir = tempfile::tempdir()?;
    resumable_run(dir.path(), &data, Some(4))?;
    for step in [2, 4] {
        truncate_weights(&dir.path().join(format!("ckpt-{step}")))?;
    }
    let fresh = resumable_run(dir.path(), &data, None)?;
    assert_eq!(fresh.resumed_from, None);
    assert!(weights(&fresh.model) == weights(&full.model));
    Ok(())
}

#[test]
fn resuming_onto_other_tokens_of_the_same_lengths_is_refused() -> anyhow::Result<()> {
    let data = sft_data(8);
    let dir = tempfile::tempdir()?;
    resumable_run(dir.path(), &data, Some(3))?;
    // A killed run still has its chart, drawn at its last checkpoint.
    assert!(dir.path().join("metrics.svg").is_file());
    let mut other = data.clone();
    let first = other[5].targets[0].start;
    other[5].ids[first] = (other[5].ids[first] + 1) % 64;
    let result = resumable_run(dir.path(), &other, None);
    let Err(TrainError::Resume { path, reason }) = result else {
        panic!(
            "expected a refused resume, got {:?}",
            result.map(|o| o.steps)
        );
    };
    assert!(path.ends_with("ckpt-2"), "{}", path.display());
    assert!(reason.contains("token ids"), "{reason}");
    // The same tokens resume.
    assert_eq!(
        resumable_run(dir.path(), &data, None)?.resumed_from,
        Some(2)
    );
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
    let loaded = load_checkpoint(
        &ckpt,
        adamw::<B>(&resumable_config()),
        &tiny_model(0).0,
        &Default::default(),
    )?;
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
    load_checkpoint(
        &ckpt,
        adamw::<B>(&train),
        &tiny_model(0).0,
        &Default::default(),
    )?;
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
    data[1] = TokenizedSft::prompt_completion(vec![1, 2, 3], Vec::new());
    assert!(matches!(
        run(&data, &quick),
        Err(TrainError::Record { index: 1, .. })
    ));
    // Over the context (32 positions): an error by default, left out with `skip`.
    let mut data = sft_data(3);
    data[2] = TokenizedSft::prompt_completion(vec![1, 2, 3], vec![5; 40]);
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
