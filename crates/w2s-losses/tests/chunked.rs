//! The memory-efficient path equals the plain path: values and gradients, for random shapes,
//! masks and chunk sizes (proptest), and for bf16 inputs; so does the SFT loss taken with its
//! gradient in one pass.

mod common;

use burn::tensor::{DType, FloatDType, Tensor};
use common::*;
use proptest::prelude::*;
use w2s_losses::{
    sequence_logprobs, sequence_logprobs_from_hidden, sequence_logprobs_from_hidden_no_grad,
    sft_loss, sft_loss_from_hidden, SftReduction,
};

#[derive(Debug)]
struct Case {
    b: usize,
    s: usize,
    d: usize,
    v: usize,
    chunk: usize,
    hidden: Vec<f64>,
    weight: Vec<f64>,
    labels: Vec<i64>,
    mask: Vec<bool>,
    upstream: Vec<f64>,
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..4, 1usize..7, 1usize..7, 2usize..24, 1usize..12).prop_flat_map(
        |(b, s, d, v, chunk)| {
            (
                prop::collection::vec(-3.0f64..3.0, b * s * d),
                prop::collection::vec(-2.0f64..2.0, v * d),
                prop::collection::vec(0i64..v as i64, b * s),
                // Each row keeps at least its last token so no row is empty; a quarter of the
                // cases mark every token (the path that skips the gather).
                prop::collection::vec(any::<bool>(), b * s),
                prop::collection::vec(-2.0f64..2.0, b),
                prop::bool::weighted(0.25),
            )
                .prop_map(move |(hidden, weight, labels, mut mask, upstream, full)| {
                    for row in 0..b {
                        mask[row * s + s - 1] = true;
                    }
                    if full {
                        mask.fill(true);
                    }
                    Case {
                        b,
                        s,
                        d,
                        v,
                        chunk,
                        hidden,
                        weight,
                        labels,
                        mask,
                        upstream,
                    }
                })
        },
    )
}

/// (sum, mean, tokens, grad hidden, grad weight) of `Σ_i g_i·sum_i`.
fn run(c: &Case, chunked: bool) -> Result<[Vec<f64>; 5], TestCaseError> {
    let hidden = float_tensor::<AD, 3>(&c.hidden, [c.b, c.s, c.d]).require_grad();
    let weight = float_tensor::<AD, 2>(&c.weight, [c.v, c.d]).require_grad();
    let labels = int_tensor(&c.labels, [c.b, c.s]);
    let mask = bool_tensor(&c.mask, [c.b, c.s]);
    let lp = if chunked {
        sequence_logprobs_from_hidden(hidden.clone(), weight.clone(), labels, mask, c.chunk)
    } else {
        let logits = hidden
            .clone()
            .matmul(weight.clone().transpose().unsqueeze::<3>());
        sequence_logprobs(logits, labels, mask)
    }
    .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let upstream = float_tensor::<AD, 1>(&c.upstream, [c.b]);
    let (sum, mean, tokens) = (
        host(lp.sum.clone()),
        host(lp.mean()),
        host(lp.tokens.clone()),
    );
    let grads = (lp.sum * upstream).sum().backward();
    let gh = hidden.grad(&grads).map(host).unwrap_or_default();
    let gw = weight.grad(&grads).map(host).unwrap_or_default();
    Ok([sum, mean, tokens, gh, gw])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn chunked_equals_plain(c in case()) {
        let plain = run(&c, false)?;
        let chunked = run(&c, true)?;
        for (what, (p, q)) in ["sum", "mean", "tokens", "grad hidden", "grad weight"].iter().zip(plain.iter().zip(&chunked)) {
            prop_assert_eq!(p.len(), q.len());
            for (x, y) in p.iter().zip(q) {
                prop_assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0), "{}: {} vs {}", what, x, y);
            }
        }
        let no_grad = sequence_logprobs_from_hidden_no_grad(
            float_tensor::<B, 3>(&c.hidden, [c.b, c.s, c.d]),
            float_tensor::<B, 2>(&c.weight, [c.v, c.d]),
            int_tensor(&c.labels, [c.b, c.s]),
            bool_tensor(&c.mask, [c.b, c.s]),
            c.chunk,
        ).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (x, y) in host(no_grad.sum).iter().zip(&plain[0]) {
            prop_assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0));
        }
    }
}

/// The three SFT reductions, the token sum's normaliser from the case.
fn reduction(which: usize, c: &Case) -> SftReduction {
    match which {
        0 => SftReduction::TokenMean,
        1 => SftReduction::SequenceMean,
        _ => SftReduction::TokenSum {
            num_tokens: 1.0 + c.upstream[0].abs() * 10.0,
        },
    }
}

/// (loss, grad hidden, grad weight) of `scale · loss`, the loss from [`sft_loss_from_hidden`]
/// (`fused`) or from [`sft_loss`] over the plain log-probs; the weight frozen if asked.
fn sft(
    c: &Case,
    reduction: SftReduction,
    scale: f64,
    frozen_weight: bool,
    fused: bool,
) -> Result<[Vec<f64>; 3], TestCaseError> {
    let hidden = float_tensor::<AD, 3>(&c.hidden, [c.b, c.s, c.d]).require_grad();
    let weight = float_tensor::<AD, 2>(&c.weight, [c.v, c.d]);
    let weight = if frozen_weight {
        weight
    } else {
        weight.require_grad()
    };
    let labels = int_tensor(&c.labels, [c.b, c.s]);
    let mask = bool_tensor(&c.mask, [c.b, c.s]);
    let loss = if fused {
        sft_loss_from_hidden(
            hidden.clone(),
            weight.clone(),
            labels,
            mask,
            reduction,
            c.chunk,
        )
        .map(|out| out.loss)
    } else {
        let logits = hidden
            .clone()
            .matmul(weight.clone().transpose().unsqueeze::<3>());
        sequence_logprobs(logits, labels, mask).and_then(|lp| sft_loss(&lp, reduction))
    }
    .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let value = host(loss.clone());
    let grads = loss.mul_scalar(scale).backward();
    let gh = hidden.grad(&grads).map(host).unwrap_or_default();
    let gw = weight.grad(&grads).map(host).unwrap_or_default();
    Ok([value, gh, gw])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Every reduction, an upstream gradient of 1 (the loss itself, whose backward skips the
    /// scaling) or not, with the lm_head trained or frozen.
    #[test]
    fn sft_loss_in_one_pass_equals_sft_loss_of_plain_logprobs(
        c in case(), which in 0usize..3, unit in any::<bool>(), frozen_weight in any::<bool>(),
    ) {
        let reduction = reduction(which, &c);
        let scale = if unit { 1.0 } else { c.upstream[0] };
        let plain = sft(&c, reduction, scale, frozen_weight, false)?;
        let fused = sft(&c, reduction, scale, frozen_weight, true)?;
        for (what, (p, q)) in ["loss", "grad hidden", "grad weight"].iter().zip(plain.iter().zip(&fused)) {
            prop_assert_eq!(p.len(), q.len(), "{}", what);
            for (x, y) in p.iter().zip(q) {
                prop_assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0), "{}: {} vs {}", what, x, y);
            }
        }
    }
}

/// `(surely right, unsure)`: completion tokens whose label's logit (f64, on the host) beats every
/// other logit by more than f32 rounding could undo, and those within that margin of the best.
fn argmax_bounds(c: &Case) -> (usize, usize) {
    let (mut right, mut unsure) = (0, 0);
    let f32_value = |x: f64| f64::from(x as f32);
    for t in (0..c.b * c.s).filter(|&t| c.mask[t]) {
        let logit = |k: usize| -> f64 {
            (0..c.d)
                .map(|j| f32_value(c.hidden[t * c.d + j]) * f32_value(c.weight[k * c.d + j]))
                .sum()
        };
        let label = c.labels[t] as usize;
        let rival = (0..c.v)
            .filter(|&k| k != label)
            .map(logit)
            .fold(f64::NEG_INFINITY, f64::max);
        let gap = logit(label) - rival;
        if gap > 1e-3 {
            right += 1;
        } else if gap > -1e-3 {
            unsure += 1;
        }
    }
    (right, unsure)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The one-pass loss counts the completion tokens whose largest logit is at their label.
    #[test]
    fn sft_loss_in_one_pass_counts_the_tokens_whose_argmax_is_the_label(c in case()) {
        let out = sft_loss_from_hidden(
            float_tensor::<AD, 3>(&c.hidden, [c.b, c.s, c.d]),
            float_tensor::<AD, 2>(&c.weight, [c.v, c.d]).require_grad(),
            int_tensor(&c.labels, [c.b, c.s]),
            bool_tensor(&c.mask, [c.b, c.s]),
            SftReduction::TokenMean,
            c.chunk,
        )
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(out.num_tokens, c.mask.iter().filter(|&&m| m).count());
        let correct = host(out.correct_tokens.float())[0] as usize;
        let (right, unsure) = argmax_bounds(&c);
        prop_assert!(
            (right..=right + unsure).contains(&correct),
            "{} correct, expected {} (+ up to {} within rounding)", correct, right, unsure
        );
    }
}

/// Labels the logits get right and wrong, across a chunk boundary, counted exactly.
#[test]
fn correct_tokens_count_argmax_hits_exactly() -> anyhow::Result<()> {
    // Logits are the hidden states themselves (identity lm_head, v = d = 3).
    let hidden = [
        [0.0, 2.0, 1.0], // argmax 1
        [3.0, 0.0, 1.0], // argmax 0
        [0.0, 1.0, 5.0], // argmax 2
        [1.0, 4.0, 0.0], // argmax 1 (prompt position: not counted)
    ];
    let identity = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
    let out = sft_loss_from_hidden(
        float_tensor::<AD, 3>(hidden.as_flattened(), [1, 4, 3]),
        float_tensor::<AD, 2>(&identity, [3, 3]).require_grad(),
        int_tensor::<AD, 2>(&[1, 2, 2, 1], [1, 4]),
        bool_tensor::<AD, 2>(&[true, true, true, false], [1, 4]),
        SftReduction::TokenMean,
        2,
    )?;
    assert_eq!(out.num_tokens, 3);
    assert_eq!(host(out.correct_tokens.float()), [2.0]);
    Ok(())
}

/// Without gradients (nothing requires one) the one-pass loss is still the loss, and a bad
/// reduction is refused before any work.
#[test]
fn sft_loss_in_one_pass_without_gradients_and_with_a_bad_normaliser() -> anyhow::Result<()> {
    let (b, s, d, v) = (2, 4, 3, 7);
    let hidden: Vec<f64> = (0..b * s * d).map(|i| (i % 5) as f64 / 3.0 - 0.6).collect();
    let weight: Vec<f64> = (0..v * d).map(|i| (i % 4) as f64 / 2.0 - 0.7).collect();
    let labels: Vec<i64> = (0..b * s).map(|i| (i * 3 % v) as i64).collect();
    let mask = vec![false, true, true, true, false, false, true, true];
    let inputs = || {
        (
            float_tensor::<AD, 3>(&hidden, [b, s, d]),
            float_tensor::<AD, 2>(&weight, [v, d]),
            int_tensor::<AD, 2>(&labels, [b, s]),
            bool_tensor::<AD, 2>(&mask, [b, s]),
        )
    };
    let (h, w, y, m) = inputs();
    let fused = sft_loss_from_hidden(h, w, y, m, SftReduction::TokenMean, 2)?.loss;
    let (h, w, y, m) = inputs();
    let plain = sft_loss(
        &sequence_logprobs_from_hidden(h, w, y, m, 2)?,
        SftReduction::TokenMean,
    )?;
    assert_close(
        &host(fused),
        &host(plain),
        1e-6,
        1e-6,
        "untracked one-pass loss",
    );
    let (h, w, y, m) = inputs();
    let bad = SftReduction::TokenSum { num_tokens: 0.0 };
    assert!(sft_loss_from_hidden(h, w, y, m, bad, 2).is_err());
    Ok(())
}

/// bf16 hidden states and lm_head: computed in f32, gradients returned in bf16, and equal to the
/// f32 computation on the bf16-rounded values.
#[test]
fn bf16_inputs_are_upcast_and_match_f32() -> anyhow::Result<()> {
    let (b, s, d, v) = (2, 5, 4, 9);
    let hidden: Vec<f64> = (0..b * s * d)
        .map(|i| ((i * 37 % 17) as f64 - 8.0) / 4.0)
        .collect();
    let weight: Vec<f64> = (0..v * d)
        .map(|i| ((i * 11 % 13) as f64 - 6.0) / 5.0)
        .collect();
    let labels: Vec<i64> = (0..b * s).map(|i| (i * 5 % v) as i64).collect();
    let mask = vec![
        false, true, true, true, true, false, false, true, true, false,
    ];
    let bf16 = |t: Tensor<AD, 3>| t.cast(FloatDType::BF16);
    let h16 = bf16(float_tensor::<AD, 3>(&hidden, [b, s, d])).require_grad();
    let w16 = float_tensor::<AD, 2>(&weight, [v, d])
        .cast(FloatDType::BF16)
        .require_grad();
    let lp16 = sequence_logprobs_from_hidden(
        h16.clone(),
        w16.clone(),
        int_tensor(&labels, [b, s]),
        bool_tensor(&mask, [b, s]),
        3,
    )?;
    assert_eq!(lp16.sum.dtype(), DType::F32);
    let logits16 = h16.clone().matmul(w16.clone().transpose().unsqueeze::<3>());
    let plain16 = sequence_logprobs(
        logits16.clone(),
        int_tensor(&labels, [b, s]),
        bool_tensor(&mask, [b, s]),
    )?;
    assert_eq!(plain16.sum.dtype(), DType::F32);

    // Reference: f32 on the bf16-rounded inputs.
    let h32 = host(h16.clone().cast(FloatDType::F32));
    let w32 = host(w16.clone().cast(FloatDType::F32));
    let lp32 = sequence_logprobs_from_hidden(
        float_tensor::<AD, 3>(&h32, [b, s, d]),
        float_tensor::<AD, 2>(&w32, [v, d]),
        int_tensor(&labels, [b, s]),
        bool_tensor(&mask, [b, s]),
        3,
    )?;
    assert_close(
        &host(lp16.sum.clone()),
        &host(lp32.sum),
        1e-6,
        1e-6,
        "bf16 chunked sum",
    );
    let grads = lp16.sum.sum().backward();
    let gh = h16.grad(&grads).ok_or_else(|| anyhow::anyhow!("no grad"))?;
    assert_eq!(gh.dtype(), DType::BF16);
    assert!(host(gh).iter().all(|g| g.is_finite()));
    Ok(())
}
