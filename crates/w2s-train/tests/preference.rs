//! Preference training: DPO learns held-in pairs; precomputed reference log-probs train exactly
//! like a live reference model; bad loss configs and pairs are rejected.

mod common;

use burn::module::AutodiffModule;
use common::*;
use w2s_losses::PreferenceLossConfig;
use w2s_train::{
    load_reference_cache, precompute_reference, save_reference_cache, train_preference, Reference,
    TrainConfig, TrainError,
};

fn dpo() -> PreferenceLossConfig {
    PreferenceLossConfig::Dpo {
        beta: 0.1,
        label_smoothing: 0.0,
        nll_alpha: 0.0,
        reference_free: false,
    }
}

fn dpo_config() -> TrainConfig {
    TrainConfig {
        epochs: 6,
        learning_rate: 5e-3,
        ..quick_config()
    }
}

#[test]
fn dpo_raises_margins_and_accuracy_on_held_in_pairs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = pairs(8);
    let (model, config) = tiny_model(11);
    let reference = Reference::Model(Box::new(model.valid()));
    let out = train_preference(
        model,
        &config,
        &data,
        &data,
        &dpo(),
        reference,
        &dpo_config(),
        &options(dir.path()),
    )?;
    // At step 0 policy = reference: every reward is 0, so margins are 0 and accuracy
    // (strictly greater) is 0. Training must move both up.
    let eval = &out.last_eval;
    assert!(eval["rewards/margins"] > 0.1, "{eval:?}");
    assert!(eval["rewards/accuracies"] >= 0.99, "{eval:?}");
    assert!(eval["loss"] < std::f64::consts::LN_2 - 0.05, "{eval:?}");
    // Every pair is two rows of a 3-token prompt and a 2-token response: 10 tokens, 8 pairs,
    // 6 epochs.
    let keys = [
        "rewards/chosen",
        "rewards/rejected",
        "rewards/accuracies",
        "rewards/margins",
        "logps/chosen",
        "logps/rejected",
        "learning_rate",
        "num_tokens",
    ];
    assert_logged(&step_lines(dir.path()), &keys, 10.0 * 8.0 * 6.0);
    Ok(())
}

#[test]
fn precomputed_reference_logprobs_train_like_a_live_reference() -> anyhow::Result<()> {
    let data = pairs(8);
    let train = TrainConfig {
        epochs: 2,
        ..dpo_config()
    };
    let (live_dir, cached_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (model, config) = tiny_model(12);
    let reference = Reference::Model(Box::new(model.valid()));
    let live = train_preference(
        model,
        &config,
        &data,
        &[],
        &dpo(),
        reference,
        &train,
        &options(live_dir.path()),
    )?;

    let (model, _) = tiny_model(12);
    let logps = precompute_reference(&model.valid(), &data, &train)?;
    let cache = cached_dir.path().join("reference.json");
    save_reference_cache(&cache, &data, &logps)?;
    let logps = load_reference_cache(&cache, &data)?;
    assert!(load_reference_cache(&cache, &data[1..]).is_err());
    let reference = Reference::Precomputed {
        train: logps,
        eval: Vec::new(),
    };
    let cached = train_preference(
        model,
        &config,
        &data,
        &[],
        &dpo(),
        reference,
        &train,
        &options(cached_dir.path()),
    )?;
    // Same values up to f32 rounding of differently padded batches.
    let diff = max_abs_diff(&weights(&live.model), &weights(&cached.model));
    assert!(diff < 1e-5, "max weight difference {diff}");
    Ok(())
}

#[test]
fn reference_free_losses_train_without_a_reference() -> anyhow::Result<()> {
    let data = pairs(4);
    for loss in [
        PreferenceLossConfig::SimpoGamma {
            beta: 2.0,
            gamma: 0.5,
            label_smoothing: 0.0,
            nll_alpha: 0.0,
        },
        serde_json::from_str(r#"{"type": "orpo", "beta": 0.1}"#)?,
    ] {
        let dir = tempfile::tempdir()?;
        let (model, config) = tiny_model(13);
        let train = TrainConfig {
            max_steps: Some(2),
            ..dpo_config()
        };
        let out = train_preference(
            model,
            &config,
            &data,
            &data,
            &loss,
            Reference::None,
            &train,
            &options(dir.path()),
        )?;
        assert_eq!(out.steps, 2);
        assert!(out.last_step["loss"].is_finite());
        if loss.name() == "orpo" {
            assert!(out.last_step.contains_key("log_odds_ratio"));
            assert!(out.last_step.contains_key("nll_loss"));
        }
    }
    Ok(())
}

#[test]
fn bad_loss_configs_and_pairs_are_rejected() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (model, config) = tiny_model(14);
    let opts = options(dir.path());
    let data = pairs(4);
    let run = |data: &[w2s_train::TokenizedPair], loss: &PreferenceLossConfig, reference| {
        train_preference(
            model.clone(),
            &config,
            data,
            &[],
            loss,
            reference,
            &dpo_config(),
            &opts,
        )
    };
    let bad_beta = PreferenceLossConfig::Dpo {
        beta: 0.0,
        label_smoothing: 0.0,
        nll_alpha: 0.0,
        reference_free: false,
    };
    assert!(matches!(
        run(&data, &bad_beta, Reference::Model(Box::new(model.valid()))),
        Err(TrainError::Loss(_))
    ));
    assert!(matches!(
        run(&data, &dpo(), Reference::None),
        Err(TrainError::Config {
            field: "reference",
            ..
        })
    ));
    let mut empty = data.clone();
    empty[2].rejected.clear();
    assert!(matches!(
        run(&empty, &dpo(), Reference::Model(Box::new(model.valid()))),
        Err(TrainError::Record { index: 2, .. })
    ));
    assert!(matches!(
        run(&[], &dpo(), Reference::Model(Box::new(model.valid()))),
        Err(TrainError::EmptyDataset { .. })
    ));
    Ok(())
}
