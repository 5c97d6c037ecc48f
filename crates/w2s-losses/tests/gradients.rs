//! Gradients against central finite differences in f64 (burn's Flex backend computes f64
//! natively): every preference loss, ORPO across the log1mexp branch, and the log-probs.

mod common;

use burn::tensor::{backend::Backend, DType, Tensor, TensorData};
use common::*;
use w2s_losses::{
    preference_loss, sequence_logprobs, NllScope, PreferenceInputs, PreferenceLossConfig,
    ReferenceLogprobs, SequenceLogprobs,
};

fn f64_tensor<Bk: Backend, const D: usize>(values: &[f64], shape: [usize; D]) -> Tensor<Bk, D> {
    let data = TensorData::new(values.to_vec(), shape);
    Tensor::from_data(data, (&Default::default(), DType::F64))
}

fn set(values: &[f64], i: usize, x: f64) -> Vec<f64> {
    let mut v = values.to_vec();
    v[i] = x;
    v
}

/// Loss of a config on `[chosen sums..., rejected sums...]` with 2 tokens per sequence.
fn loss<Bk: Backend>(config: &PreferenceLossConfig, x: Tensor<Bk, 1>, n: usize) -> Tensor<Bk, 1> {
    let side = |i: usize| {
        let t = x.clone().slice_dim(0, i * n..(i + 1) * n).reshape([n, 1]);
        // Two tokens per sequence (the second a constant) so mean = sum / 2.
        let t = Tensor::cat(vec![t.clone(), t.zeros_like().sub_scalar(0.25)], 1);
        let mask = t.clone().equal(t.clone()); // all true
        SequenceLogprobs::from_tokens(t.clone(), t.zeros_like(), mask)
    };
    let dev = x.device();
    let reference = ReferenceLogprobs::new(
        f64_tensor::<Bk, 1>(&[-1.0, -2.5, -0.5], [n]).to_device(&dev),
        f64_tensor::<Bk, 1>(&[-1.5, -0.7, -3.0], [n]).to_device(&dev),
    );
    let inputs = PreferenceInputs::new(side(0), side(1)).with_reference(reference);
    let inputs = if config.nll_covers_prompt() {
        inputs.with_nll_chosen(side(0))
    } else {
        inputs
    };
    preference_loss(config, inputs)
        .map(|o| o.loss)
        .unwrap_or_else(|_| x.sum().mul_scalar(f64::NAN))
}

#[test]
fn preference_losses_match_finite_differences() {
    let n = 3;
    let configs = [
        PreferenceLossConfig::Dpo {
            beta: 0.3,
            label_smoothing: 0.0,
            nll_alpha: 0.7,
            reference_free: false,
        },
        PreferenceLossConfig::Dpo {
            beta: 0.3,
            label_smoothing: 0.2,
            nll_alpha: 0.0,
            reference_free: false,
        },
        PreferenceLossConfig::Robust {
            beta: 0.5,
            label_smoothing: 0.1,
            nll_alpha: 0.0,
            reference_free: false,
        },
        PreferenceLossConfig::Hinge {
            beta: 0.2,
            nll_alpha: 0.0,
            reference_free: true,
        },
        PreferenceLossConfig::IpoMean {
            beta: 0.1,
            nll_alpha: 0.0,
            reference_free: false,
        },
        PreferenceLossConfig::IpoSum {
            beta: 0.1,
            nll_alpha: 0.0,
            reference_free: false,
        },
        PreferenceLossConfig::SimpoGamma {
            beta: 2.0,
            gamma: 0.5,
            label_smoothing: 0.1,
            nll_alpha: 1.0,
        },
        PreferenceLossConfig::SimpoGammaBetaRatio {
            beta: 2.5,
            gamma_beta_ratio: 0.55,
            label_smoothing: 0.0,
            nll_alpha: 0.0,
        },
        PreferenceLossConfig::Orpo {
            beta: 0.1,
            nll_scope: NllScope::PromptAndCompletion,
        },
        PreferenceLossConfig::Orpo {
            beta: 0.5,
            nll_scope: NllScope::Completion,
        },
    ];
    // Chosen/rejected sums; with the constant −0.25 token the means span both log1mexp branches
    // (c̄ = −0.13 > −ln 2, r̄ = −1.9 < −ln 2) and a hinge margin away from its kink.
    let x = [-0.01, -1.2, -3.0, -3.55, -0.4, -2.2];
    for config in &configs {
        let leaf = f64_tensor::<AD, 1>(&x, [2 * n]).require_grad();
        let grads = loss(config, leaf.clone(), n).backward();
        let analytic = leaf.grad(&grads).map(host).unwrap_or_default();
        let h = 1e-6;
        let f = |v: Vec<f64>| host(loss(config, f64_tensor::<B, 1>(&v, [2 * n]), n))[0];
        let numeric: Vec<f64> = (0..2 * n)
            .map(|i| (f(set(&x, i, x[i] + h)) - f(set(&x, i, x[i] - h))) / (2.0 * h))
            .collect();
        assert_close(&analytic, &numeric, 1e-6, 1e-8, config.name());
    }
}

#[test]
fn logprob_gradients_match_finite_differences() -> anyhow::Result<()> {
    let (b, s, v) = (2, 3, 5);
    let logits: Vec<f64> = (0..b * s * v)
        .map(|i| ((i * 7 % 11) as f64 - 5.0) * 0.6)
        .collect();
    let labels = [4, 0, 2, 1, 3, 3];
    let mask = [false, true, true, true, false, true];
    let weights = [0.7, -1.3];
    let value = |l: &[f64]| -> f64 {
        sequence_logprobs(
            f64_tensor::<B, 3>(l, [b, s, v]),
            int_tensor(&labels, [b, s]),
            bool_tensor(&mask, [b, s]),
        )
        .map(|lp| {
            host(lp.mean())
                .iter()
                .zip(weights)
                .map(|(m, w)| m * w)
                .sum()
        })
        .unwrap_or(f64::NAN)
    };
    let leaf = f64_tensor::<AD, 3>(&logits, [b, s, v]).require_grad();
    let lp = sequence_logprobs(
        leaf.clone(),
        int_tensor(&labels, [b, s]),
        bool_tensor(&mask, [b, s]),
    )?;
    let grads = (lp.mean() * f64_tensor::<AD, 1>(&weights, [b]))
        .sum()
        .backward();
    let analytic = leaf.grad(&grads).map(host).unwrap_or_default();
    let h = 1e-6;
    let numeric: Vec<f64> = (0..logits.len())
        .map(|i| {
            (value(&set(&logits, i, logits[i] + h)) - value(&set(&logits, i, logits[i] - h)))
                / (2.0 * h)
        })
        .collect();
    assert_close(&analytic, &numeric, 1e-6, 1e-8, "d mean logp / d logits");
    Ok(())
}
