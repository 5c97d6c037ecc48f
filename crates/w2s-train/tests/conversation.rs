//! SFT on rows with several targets (a conversation's assistant turns): the loss counts the
//! target tokens and nothing else.

mod common;

use common::*;
use w2s_train::{train_sft, TokenizedSft, TrainConfig};

/// A row of two user turns and two assistant turns (targets), then `tail`, which no target covers.
fn conversation(answer: u32, tail: u32) -> TokenizedSft {
    TokenizedSft {
        ids: vec![1, 3, 4, answer, 2, 5, 6, 30, 2, tail, tail],
        targets: vec![3..5, 7..9],
    }
}

/// The weights and the loss after one optimizer step on `data`.
fn one_step(data: &[TokenizedSft]) -> anyhow::Result<(Vec<f32>, f64)> {
    let dir = tempfile::tempdir()?;
    let (model, config) = tiny_model(9);
    let train = TrainConfig {
        max_steps: Some(1),
        warmup_steps: 0,
        shuffle: false,
        ..quick_config()
    };
    let out = train_sft(model, &config, data, &[], &train, &options(dir.path()))?;
    Ok((weights(&out.model), out.last_step["loss"]))
}

#[test]
fn only_target_tokens_carry_the_loss() -> anyhow::Result<()> {
    let (weights_a, loss_a) = one_step(&[conversation(31, 10)])?;
    // Other tokens after the last target: not predicted, not learned from.
    let (weights_b, loss_b) = one_step(&[conversation(31, 20)])?;
    assert_eq!(loss_a, loss_b);
    assert!(
        weights_a == weights_b,
        "tokens after the targets moved the weights"
    );
    // Another target token: another loss.
    let (weights_c, loss_c) = one_step(&[conversation(32, 10)])?;
    assert_ne!(loss_a, loss_c);
    assert!(weights_a != weights_c);
    Ok(())
}
