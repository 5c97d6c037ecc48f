//! Parity with TRL 1.16 (see `fixtures/trl_fixtures.json` → `versions`): every expected number
//! below was produced by TRL's own functions in `fixtures/make_fixtures.py` (named per test), and
//! every gradient by PyTorch autograd through them. Tolerance: 1e-6 relative (f32), with a small
//! absolute floor for values near 0.

mod common;

use burn::tensor::Tensor;
use common::*;
use serde_json::Value;
use w2s_losses::{
    preference_loss, sequence_logprobs, sequence_logprobs_from_hidden, PreferenceInputs,
    PreferenceLossConfig, ReferenceLogprobs, SequenceLogprobs,
};

const REL: f64 = 1e-6;

/// `trl.trainer.utils.selective_log_softmax` on `hidden @ W.T`, masked sums, and autograd of
/// `Σ_i g_i·sum_i` (fixture `logprobs`).
#[test]
fn logprobs_match_selective_log_softmax_values_and_gradients() -> anyhow::Result<()> {
    let f = &fixtures()["logprobs"];
    let (b, s, d, v) = (
        usize_of(&f["b"]),
        usize_of(&f["s"]),
        usize_of(&f["d"]),
        usize_of(&f["v"]),
    );
    let labels = ints(&f["labels"]);
    let mask = bools(&f["mask"]);
    let upstream = float_tensor::<AD, 1>(&floats(&f["upstream"]), [b]);

    let logits = float_tensor::<AD, 3>(&floats(&f["logits"]), [b, s, v]).require_grad();
    let lp = sequence_logprobs(
        logits.clone(),
        int_tensor(&labels, [b, s]),
        bool_tensor(&mask, [b, s]),
    )?;
    assert_close(
        &host(lp.tokens.clone()),
        &floats(&f["token_logprobs"]),
        REL,
        1e-6,
        "tokens",
    );
    assert_close(&host(lp.sum.clone()), &floats(&f["sum"]), REL, 1e-6, "sum");
    assert_close(&host(lp.mean()), &floats(&f["mean"]), REL, 1e-6, "mean");
    assert_close(
        &host(lp.logits_mean_sum.clone()),
        &floats(&f["logits_mean_sum"]),
        REL,
        1e-6,
        "logits",
    );
    let grads = (lp.sum * upstream.clone()).sum().backward();
    let grad = logits.grad(&grads).map(host).unwrap_or_default();
    assert_close(&grad, &floats(&f["grad_logits"]), REL, 1e-6, "grad logits");

    for chunk in [1, 4, 64] {
        let hidden = float_tensor::<AD, 3>(&floats(&f["hidden"]), [b, s, d]).require_grad();
        let weight = float_tensor::<AD, 2>(&floats(&f["weight"]), [v, d]).require_grad();
        let lp = sequence_logprobs_from_hidden(
            hidden.clone(),
            weight.clone(),
            int_tensor(&labels, [b, s]),
            bool_tensor(&mask, [b, s]),
            chunk,
        )?;
        assert_close(
            &host(lp.sum.clone()),
            &floats(&f["sum"]),
            2e-6,
            2e-6,
            "chunked sum",
        );
        assert_close(
            &host(lp.logits_mean_sum.clone()),
            &floats(&f["logits_mean_sum"]),
            2e-6,
            2e-6,
            "chunked logits",
        );
        let grads = (lp.sum * upstream.clone()).sum().backward();
        let gh = hidden.grad(&grads).map(host).unwrap_or_default();
        let gw = weight.grad(&grads).map(host).unwrap_or_default();
        assert_close(
            &gh,
            &floats(&f["grad_hidden"]),
            2e-6,
            2e-6,
            "chunked grad hidden",
        );
        assert_close(
            &gw,
            &floats(&f["grad_weight"]),
            2e-6,
            2e-6,
            "chunked grad weight",
        );
    }
    Ok(())
}

/// One `DPOTrainer._compute_loss` batch: per-token policy log-probs of `[chosen; rejected]` rows,
/// the completion mask (shifted as TRL shifts it) and precomputed reference sums.
struct DpoBatch {
    tokens: Tensor<AD, 2>,
    chosen: SequenceLogprobs<AD>,
    rejected: SequenceLogprobs<AD>,
    reference: ReferenceLogprobs<AD>,
    first_completion: Vec<usize>,
}

fn dpo_batch(f: &Value) -> DpoBatch {
    let s = usize_of(&f["s"]);
    let mask = bools(&f["mask"]);
    let rows = mask.len() / s;
    let n = rows / 2;
    // TRL: mask = completion_mask[:, 1:]
    let shifted: Vec<bool> = mask.chunks(s).flat_map(|r| r[1..].to_vec()).collect();
    let first_completion = shifted
        .chunks(s - 1)
        .map(|r| r.iter().position(|&m| m).unwrap_or(0))
        .collect();
    let tokens = float_tensor::<AD, 2>(&floats(&f["tokens"]), [rows, s - 1]).require_grad();
    let mean_logits = float_tensor::<AD, 2>(&floats(&f["mean_logits"]), [rows, s - 1]);
    let shifted = bool_tensor::<AD, 2>(&shifted, [rows, s - 1]);
    let half = |t: Tensor<AD, 2>, i: usize| t.slice_dim(0, i * n..(i + 1) * n);
    let side = |i| {
        SequenceLogprobs::from_tokens(
            half(tokens.clone(), i),
            half(mean_logits.clone(), i),
            shifted.clone().slice_dim(0, i * n..(i + 1) * n),
        )
    };
    let reference = floats(&f["ref"]);
    DpoBatch {
        chosen: side(0),
        rejected: side(1),
        reference: ReferenceLogprobs::new(
            float_tensor(&reference[..n], [n]),
            float_tensor(&reference[n..], [n]),
        ),
        tokens,
        first_completion,
    }
}

fn check_dpo_case(inputs: &Value, case: &Value, name: &str) -> anyhow::Result<()> {
    let batch = dpo_batch(inputs);
    let config: PreferenceLossConfig = serde_json::from_value(case["config"].clone())?;
    let out = preference_loss(
        &config,
        PreferenceInputs::new(batch.chosen, batch.rejected).with_reference(batch.reference),
    )?;
    let want_loss = case["loss"].as_f64().unwrap_or(f64::NAN);
    assert_close(
        &host(out.loss.clone()),
        &[want_loss],
        REL,
        1e-7,
        &format!("{name} loss"),
    );

    let metrics = out.metrics()?.to_map();
    let want = case["metrics"].as_object().cloned().unwrap_or_default();
    assert!(!want.is_empty(), "{name}: fixture has no metrics");
    for (key, value) in want {
        let got = metrics.get(&key).copied().unwrap_or(f64::NAN);
        assert_close(
            &[got],
            &[value.as_f64().unwrap_or(f64::NAN)],
            REL,
            1e-7,
            &format!("{name} {key}"),
        );
    }

    let grads = out.loss.backward();
    let grad = batch.tokens.grad(&grads).map(host).unwrap_or_default();
    let width = grad.len() / batch.first_completion.len();
    let grad_sum: Vec<f64> = batch
        .first_completion
        .iter()
        .enumerate()
        .map(|(row, &t)| grad[row * width + t])
        .collect();
    assert_close(
        &grad_sum,
        &floats(&case["grad_sum"]),
        REL,
        1e-9,
        &format!("{name} grad"),
    );
    Ok(())
}

/// `DPOTrainer._compute_loss` with loss types sigmoid (β 0.1, 0.5), hinge (β 0.1, 2), ipo,
/// robust (ε 0.1), ["sigmoid", "sft"] weights [1, 0.5] (RPO), and sigmoid on zero reference
/// log-probs (reference-free).
#[test]
fn dpo_trainer_losses_metrics_and_gradients() -> anyhow::Result<()> {
    let f = fixtures();
    let cases = f["dpo"]["cases"].as_object().cloned().unwrap_or_default();
    assert!(cases.len() >= 8);
    for (name, case) in &cases {
        check_dpo_case(&f["dpo"]["inputs"], case, name)?;
    }
    Ok(())
}

/// βh = +100, −100 and 0 through `DPOTrainer._compute_loss`: per-pair losses 0, 100, ln 2.
#[test]
fn dpo_trainer_extreme_margins() -> anyhow::Result<()> {
    let f = &fixtures()["dpo_extreme"];
    let batch = dpo_batch(f);
    let config = PreferenceLossConfig::Dpo {
        beta: 0.1,
        label_smoothing: 0.0,
        nll_alpha: 0.0,
        reference_free: false,
    };
    let out = preference_loss(
        &config,
        PreferenceInputs::new(batch.chosen, batch.rejected).with_reference(batch.reference),
    )?;
    assert_close(
        &host(out.losses.clone()),
        &floats(&f["per_pair_torch"]),
        REL,
        1e-6,
        "per pair",
    );
    assert_close(
        &host(out.loss.clone()),
        &[f["loss"].as_f64().unwrap_or(f64::NAN)],
        REL,
        0.0,
        "loss",
    );
    let grads = out.loss.backward();
    let grad = batch.tokens.grad(&grads).map(host).unwrap_or_default();
    let width = grad.len() / batch.first_completion.len();
    let grad_sum: Vec<f64> = batch
        .first_completion
        .iter()
        .enumerate()
        .map(|(row, &t)| grad[row * width + t])
        .collect();
    assert!(grad_sum.iter().all(|g| g.is_finite()));
    assert_close(&grad_sum, &floats(&f["grad_sum"]), REL, 1e-9, "grad");
    Ok(())
}

/// Sequence log-probs with one token each, so `sum == mean == value` (for the `[b]` fixtures).
fn single_token(values: &[f64]) -> (Tensor<AD, 2>, SequenceLogprobs<AD>) {
    let n = values.len();
    let leaf = float_tensor::<AD, 2>(values, [n, 1]).require_grad();
    let lp = SequenceLogprobs::from_tokens(
        leaf.clone(),
        leaf.zeros_like(),
        bool_tensor(&vec![true; n], [n, 1]),
    );
    (leaf, lp)
}

fn check_pair_case(
    config: PreferenceLossConfig,
    c: &[f64],
    r: &[f64],
    case: &Value,
    name: &str,
) -> anyhow::Result<()> {
    let (lc, chosen) = single_token(c);
    let (lr, rejected) = single_token(r);
    let out = preference_loss(&config, PreferenceInputs::new(chosen, rejected))?;
    assert_close(
        &host(out.losses.clone()),
        &floats(&case["losses"]),
        REL,
        1e-7,
        &format!("{name} losses"),
    );
    let m = out.metrics()?;
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
    assert_close(
        &[m.rewards_chosen],
        &[mean(floats(&case["chosen_rewards"]))],
        REL,
        1e-7,
        name,
    );
    assert_close(
        &[m.rewards_rejected],
        &[mean(floats(&case["rejected_rewards"]))],
        REL,
        1e-7,
        name,
    );
    let grads = out.loss.backward();
    let gc = lc.grad(&grads).map(host).unwrap_or_default();
    let gr = lr.grad(&grads).map(host).unwrap_or_default();
    assert_close(
        &gc,
        &floats(&case["grad_chosen"]),
        REL,
        1e-8,
        &format!("{name} grad chosen"),
    );
    assert_close(
        &gr,
        &floats(&case["grad_rejected"]),
        REL,
        1e-8,
        &format!("{name} grad rejected"),
    );
    Ok(())
}

/// `CPOTrainer.cpo_loss`: smoothed sigmoid (= cDPO, TRL ≤ 0.28 `sigmoid`), `ipo` on sums (the
/// paper's form) and `simpo` with absolute `simpo_gamma`; the official γ/β spelling must agree.
#[test]
fn cpo_trainer_cdpo_ipo_sum_and_simpo() -> anyhow::Result<()> {
    let f = &fixtures()["cpo"];
    let case = &f["cdpo_eps0.1"];
    let cdpo = PreferenceLossConfig::Dpo {
        beta: 0.1,
        label_smoothing: 0.1,
        nll_alpha: 0.0,
        reference_free: true,
    };
    check_pair_case(cdpo, &floats(&case["u"]), &floats(&case["v"]), case, "cdpo")?;

    let case = &f["ipo_sum_beta0.1"];
    let ipo = PreferenceLossConfig::IpoSum {
        beta: 0.1,
        nll_alpha: 0.0,
        reference_free: true,
    };
    check_pair_case(
        ipo,
        &floats(&case["u"]),
        &floats(&case["v"]),
        case,
        "ipo_sum",
    )?;

    for (name, gamma, eps) in [
        ("simpo_gamma0.5_beta2", 0.5, 0.0),
        ("simpo_gamma1.4_beta2_eps0.1", 1.4, 0.1),
    ] {
        let case = &f[name];
        let (c, r) = (floats(&case["chosen_mean"]), floats(&case["rejected_mean"]));
        let absolute = PreferenceLossConfig::SimpoGamma {
            beta: 2.0,
            gamma,
            label_smoothing: eps,
            nll_alpha: 0.0,
        };
        check_pair_case(absolute, &c, &r, case, name)?;
        let ratio = PreferenceLossConfig::SimpoGammaBetaRatio {
            beta: 2.0,
            gamma_beta_ratio: gamma / 2.0,
            label_smoothing: eps,
            nll_alpha: 0.0,
        };
        check_pair_case(ratio, &c, &r, case, name)?;
    }
    Ok(())
}

/// `ORPOTrainer.odds_ratio_loss` and its total `nll − mean(β·logσ(log_odds))`, with the NLL over
/// prompt + completion tokens; includes c̄ = −1e-6 (the log1mexp branch near 0).
#[test]
fn orpo_trainer_loss_metrics_and_gradients() -> anyhow::Result<()> {
    let f = &fixtures()["orpo"];
    let (lc, chosen) = single_token(&floats(&f["chosen_mean"]));
    let (lr, rejected) = single_token(&floats(&f["rejected_mean"]));
    let nll_mask = bools(&f["nll_mask"]);
    let rows = chosen.sum.dims()[0];
    let width = nll_mask.len() / rows;
    let nll_tokens = float_tensor::<AD, 2>(&floats(&f["nll_tokens"]), [rows, width]).require_grad();
    let nll_chosen = SequenceLogprobs::from_tokens(
        nll_tokens.clone(),
        nll_tokens.zeros_like(),
        bool_tensor(&nll_mask, [rows, width]),
    );
    let config: PreferenceLossConfig = serde_json::from_str(r#"{"type": "orpo", "beta": 0.1}"#)?;
    let out = preference_loss(
        &config,
        PreferenceInputs::new(chosen, rejected).with_nll_chosen(nll_chosen),
    )?;
    let trl_losses: Vec<f64> = floats(&f["losses_trl"]).iter().map(|x| -x).collect();
    assert_close(
        &host(out.losses.clone()),
        &trl_losses,
        REL,
        1e-8,
        "per pair",
    );
    assert_close(
        &host(out.loss.clone()),
        &[f["loss"].as_f64().unwrap_or(f64::NAN)],
        REL,
        1e-7,
        "loss",
    );
    let m = out.metrics()?;
    let want = |k: &str| f[k].as_f64().unwrap_or(f64::NAN);
    assert_close(
        &[m.nll_loss.unwrap_or(f64::NAN)],
        &[want("nll_loss")],
        REL,
        1e-7,
        "nll_loss",
    );
    assert_close(
        &[m.log_odds_ratio.unwrap_or(f64::NAN)],
        &[want("log_odds_ratio")],
        REL,
        1e-7,
        "log_odds_ratio",
    );
    assert_close(
        &[m.log_odds_chosen.unwrap_or(f64::NAN)],
        &[want("log_odds_chosen")],
        2e-6,
        1e-7,
        "log_odds_chosen",
    );
    let grads = out.loss.backward();
    assert_close(
        &lc.grad(&grads).map(host).unwrap_or_default(),
        &floats(&f["grad_chosen"]),
        2e-6,
        1e-8,
        "grad c",
    );
    assert_close(
        &lr.grad(&grads).map(host).unwrap_or_default(),
        &floats(&f["grad_rejected"]),
        2e-6,
        1e-8,
        "grad r",
    );
    let gn = nll_tokens.grad(&grads).map(host).unwrap_or_default();
    let gn: Vec<f64> = gn
        .iter()
        .zip(&nll_mask)
        .map(|(g, &m)| if m { *g } else { 0.0 })
        .collect();
    assert_close(
        &gn,
        &floats(&f["grad_nll_tokens"]),
        REL,
        1e-9,
        "grad nll tokens",
    );
    Ok(())
}
