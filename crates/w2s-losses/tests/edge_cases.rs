//! Edge cases named in the issue: policy == reference (DPO = ln 2), margins of ±100, empty
//! completions, empty batches, and the reference requirements.

mod common;

use common::*;
use w2s_losses::{
    preference_loss, sequence_logprobs, sequence_logprobs_from_hidden,
    sequence_logprobs_from_hidden_no_grad, sft_loss_from_hidden, Error, PreferenceInputs,
    PreferenceLossConfig, ReferenceLogprobs, SequenceLogprobs, SftReduction,
};

fn seq(values: &[f64]) -> SequenceLogprobs<B> {
    let n = values.len();
    let t = float_tensor::<B, 2>(values, [n, 1]);
    SequenceLogprobs::from_tokens(
        t.clone(),
        t.zeros_like(),
        bool_tensor(&vec![true; n], [n, 1]),
    )
}

fn dpo(beta: f64) -> PreferenceLossConfig {
    PreferenceLossConfig::Dpo {
        beta,
        label_smoothing: 0.0,
        nll_alpha: 0.0,
        reference_free: false,
    }
}

#[test]
fn policy_equal_to_reference_gives_ln2_and_zero_rewards() -> anyhow::Result<()> {
    // huggingface/trl#1627: loss stuck at 0.6931 when policy ≡ reference.
    let (c, r) = (seq(&[-12.0, -3.5, -40.0]), seq(&[-18.0, -2.0, -41.0]));
    let reference = ReferenceLogprobs::from_sequences(&c, &r);
    let out = preference_loss(
        &dpo(0.1),
        PreferenceInputs::new(c, r).with_reference(reference),
    )?;
    assert_close(
        &host(out.losses.clone()),
        &[std::f64::consts::LN_2; 3],
        1e-7,
        0.0,
        "ln 2",
    );
    let m = out.metrics()?;
    // Strict `>`: identical models score 0 accuracy, not 0.5 (TRL compares chosen > rejected).
    assert_eq!(
        (m.rewards_chosen, m.rewards_accuracies, m.rewards_margins),
        (0.0, 0.0, 0.0)
    );
    Ok(())
}

#[test]
fn margins_of_plus_minus_100_stay_finite_and_exact() -> anyhow::Result<()> {
    // βh = ±100 and −120: −logσ(100) ≈ 3.7e-44, −logσ(−100) = 100.
    let c = seq(&[0.0, 0.0, 0.0]);
    let r = seq(&[-1000.0, 1000.0, 1200.0]);
    let zero = float_tensor::<B, 1>(&[0.0; 3], [3]);
    let reference = ReferenceLogprobs::new(zero.clone(), zero);
    let out = preference_loss(
        &dpo(0.1),
        PreferenceInputs::new(c, r).with_reference(reference),
    )?;
    let losses = host(out.losses);
    assert!(losses[0] >= 0.0 && losses[0] < 1e-40, "{}", losses[0]);
    assert_eq!(&losses[1..], &[100.0, 120.0]);
    Ok(())
}

#[test]
fn empty_completion_is_an_error_not_nan() {
    let mask = bool_tensor::<B, 2>(&[true, true, false, false], [2, 2]);
    let result = sequence_logprobs(
        float_tensor::<B, 3>(&[0.0; 12], [2, 2, 3]),
        int_tensor(&[0, 1, 2, 0], [2, 2]),
        mask,
    );
    assert!(matches!(result, Err(Error::EmptyCompletion { row: 1 })));
}

/// A batch without rows, or rows without tokens, is refused by the paths through the lm_head
/// (they have no token to put into a chunk) with an error naming the shape.
#[test]
fn empty_batches_through_the_lm_head_are_errors() {
    for [b, s] in [[0, 3], [2, 0]] {
        let inputs = || {
            (
                float_tensor::<AD, 3>(&[], [b, s, 4]),
                float_tensor::<AD, 2>(&[0.5; 20], [5, 4]),
                int_tensor::<AD, 2>(&[], [b, s]),
                bool_tensor::<AD, 2>(&[], [b, s]),
            )
        };
        let shape_error = |e: Error| matches!(e, Error::Shape { arg: "hidden", .. });
        let (h, w, y, m) = inputs();
        let chunked = sequence_logprobs_from_hidden(h, w, y, m, 2);
        assert!(chunked.is_err_and(shape_error), "[{b}, {s}] chunked");
        let (h, w, y, m) = inputs();
        let no_grad = sequence_logprobs_from_hidden_no_grad(h, w, y, m, 2);
        assert!(no_grad.is_err_and(shape_error), "[{b}, {s}] no grad");
        let (h, w, y, m) = inputs();
        let sft = sft_loss_from_hidden(h, w, y, m, SftReduction::TokenMean, 2);
        assert!(sft.is_err_and(shape_error), "[{b}, {s}] one-pass SFT");
    }
}

#[test]
fn missing_reference_and_invalid_beta_are_errors() {
    let inputs = || PreferenceInputs::new(seq(&[-1.0]), seq(&[-2.0]));
    assert!(matches!(
        preference_loss(&dpo(0.1), inputs()),
        Err(Error::MissingReference { loss: "dpo" })
    ));
    assert!(matches!(
        preference_loss(&dpo(0.0), inputs()),
        Err(Error::InvalidParameter { .. })
    ));
    let orpo = PreferenceLossConfig::Orpo {
        beta: 0.1,
        nll_scope: Default::default(),
    };
    assert!(matches!(
        preference_loss(&orpo, inputs()),
        Err(Error::MissingInput { .. })
    ));
    let mismatched = PreferenceInputs::new(seq(&[-1.0, -2.0]), seq(&[-2.0]));
    let simpo = PreferenceLossConfig::SimpoGamma {
        beta: 2.0,
        gamma: 0.5,
        label_smoothing: 0.0,
        nll_alpha: 0.0,
    };
    assert!(matches!(
        preference_loss(&simpo, mismatched),
        Err(Error::Shape { .. })
    ));
}
