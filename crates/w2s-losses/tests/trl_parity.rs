//! Parity with TRL 1.16 (see `fixtures/trl_fixtures.json` → `versions`): every expected number
//! below was produced by TRL's own functions in `fixtures/make_fixtures.py` (named per test), and
//! every gradient by PyTorch autograd through them. Tolerance: 1e-6 relative (f32), with a small
//! absolute floor for values near 0.

mod common;

use burn::tensor::Tensor;
use common::*;
use w2s_losses::{
    preference_loss, sequence_logprobs, sequence_logprobs_from_hidden, PreferenceInputs,
    PreferenceLossConfig, ReferenceLogprobs, SequenceLogprobs,
};

const REL: f64 = 1e-6;

/// `trl.trainer.utils.selective_log_softmax` on `hidden @ W.T`, masked sums, and autograd of
/// `Σ_i g_i·sum_i` (fixture `logprobs`).
#[test]
fn logprobs_match_selective_log_softmax_values_and_gradients() -> anyhow::Result<()> {
    let f = fixtures()?.get("logprobs")?;
    let (b, s, d, v) = (f.usize("b")?, f.usize("s")?, f.usize("d")?, f.usize("v")?);
    let labels = f.ints("labels")?;
    let mask = f.bools("mask")?;
    let upstream = float_tensor::<AD, 1>(&f.floats("upstream")?, [b]);

    let logits = float_tensor::<AD, 3>(&f.floats("logits")?, [b, s, v]).require_grad();
    let lp = sequence_logprobs(
        logits.clone(),
        int_tensor(&labels, [b, s]),
        bool_tensor(&mask, [b, s]),
    )?;
    assert_close(
        &host(lp.tokens.clone()),
        &f.floats("token_logprobs")?,
        REL,
        1e-6,
        "tokens",
    );
    assert_close(&host(lp.sum.clone()), &f.floats("sum")?, REL, 1e-6, "sum");
    assert_close(&host(lp.mean()), &f.floats("mean")?, REL, 1e-6, "mean");
    assert_close(
        &host(lp.logits_mean_sum.clone()),
        &f.floats("logits_mean_sum")?,
        REL,
        1e-6,
        "logits",
    );
    let grads = (lp.sum * upstream.clone()).sum().backward();
    let grad = logits
        .grad(&grads)
        .map(host)
        .expect("the gradient reaches this input");
    assert_close(&grad, &f.floats("grad_logits")?, REL, 1e-6, "grad logits");

    for chunk in [1, 4, 64] {
        let hidden = float_tensor::<AD, 3>(&f.floats("hidden")?, [b, s, d]).require_grad();
        let weight = float_tensor::<AD, 2>(&f.floats("weight")?, [v, d]).require_grad();
        let lp = sequence_logprobs_from_hidden(
            hidden.clone(),
            weight.clone(),
            int_tensor(&labels, [b, s]),
            bool_tensor(&mask, [b, s]),
            chunk,
        )?;
        assert_close(
            &host(lp.sum.clone()),
            &f.floats("sum")?,
            2e-6,
            2e-6,
            "chunked sum",
        );
        assert_close(
            &host(lp.logits_mean_sum.clone()),
            &f.floats("logits_mean_sum")?,
            2e-6,
            2e-6,
            "chunked logits",
        );
        let grads = (lp.sum * upstream.clone()).sum().backward();
        let gh = hidden
            .grad(&grads)
            .map(host)
            .expect("the gradient reaches this input");
        let gw = weight
            .grad(&grads)
            .map(host)
            .expect("the gradient reaches this input");
        assert_close(
            &gh,
            &f.floats("grad_hidden")?,
            2e-6,
            2e-6,
            "chunked grad hidden",
        );
        assert_close(
            &gw,
            &f.floats("grad_weight")?,
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

fn dpo_batch(f: &Fixture) -> anyhow::Result<DpoBatch> {
    let s = f.usize("s")?;
    let mask = f.bools("mask")?;
    let rows = mask.len() / s;
    let n = rows / 2;
    // TRL: mask = completion_mask[:, 1:]
    let shifted: Vec<bool> = mask.chunks(s).flat_map(|r| r[1..].to_vec()).collect();
    let first_completion = shifted
        .chunks(s - 1)
        .map(|r| {
            r.iter()
                .position(|&m| m)
                .expect("every fixture row has a completion token")
        })
        .collect();
    let tokens = float_tensor::<AD, 2>(&f.floats("tokens")?, [rows, s - 1]).require_grad();
    let mean_logits = float_tensor::<AD, 2>(&f.floats("mean_logits")?, [rows, s - 1]);
    let shifted = bool_tensor::<AD, 2>(&shifted, [rows, s - 1]);
    let half = |t: Tensor<AD, 2>, i: usize| t.slice_dim(0, i * n..(i + 1) * n);
    let side = |i| {
        SequenceLogprobs::from_tokens(
            half(tokens.clone(), i),
            half(mean_logits.clone(), i),
            shifted.clone().slice_dim(0, i * n..(i + 1) * n),
        )
    };
    let reference = f.floats("ref")?;
    Ok(DpoBatch {
        chosen: side(0),
        rejected: side(1),
        reference: ReferenceLogprobs::new(
            float_tensor(&reference[..n], [n]),
            float_tensor(&reference[n..], [n]),
        ),
        tokens,
        first_completion,
    })
}

fn check_dpo_case(inputs: &Fixture, case: &Fixture, name: &str) -> anyhow::Result<()> {
    let batch = dpo_batch(inputs)?;
    let config: PreferenceLossConfig = case.parse("config")?;
    let out = preference_loss(
        &config,
        PreferenceInputs::new(batch.chosen, batch.rejected).with_reference(batch.reference),
    )?;
    let want_loss = case.float("loss")?;
    assert_close(
        &host(out.loss.clone()),
        &[want_loss],
        REL,
        1e-7,
        &format!("{name} loss"),
    );

    let metrics = out.metrics()?.to_map();
    let want = case.get("metrics")?;
    let keys = case.keys("metrics")?;
    assert!(!keys.is_empty(), "{name}: fixture has no metrics");
    for key in keys {
        let got = metrics.get(&key).copied().unwrap_or(f64::NAN);
        assert_close(
            &[got],
            &[want.float(&key)?],
            REL,
            1e-7,
            &format!("{name} {key}"),
        );
    }

    let grads = out.loss.backward();
    let grad = batch
        .tokens
        .grad(&grads)
        .map(host)
        .expect("the gradient reaches this input");
    let width = grad.len() / batch.first_completion.len();
    let grad_sum: Vec<f64> = batch
        .first_completion
        .iter()
        .enumerate()
        .map(|(row, &t)| grad[row * width + t])
        .collect();
    assert_close(
        &grad_sum,
        &case.floats("grad_sum")?,
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
    let f = fixtures()?.get("dpo")?;
    let (inputs, cases) = (f.get("inputs")?, f.get("cases")?);
    let names = f.keys("cases")?;
    assert!(names.len() >= 8);
    for name in &names {
        check_dpo_case(&inputs, &cases.get(name)?, name)?;
    }
    Ok(())
}

/// βh = +100, −100 and 0 through `DPOTrainer._compute_loss`: per-pair losses 0, 100, ln 2.
#[test]
fn dpo_trainer_extreme_margins() -> anyhow::Result<()> {
    let f = fixtures()?.get("dpo_extreme")?;
    let batch = dpo_batch(&f)?;
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
        &f.floats("per_pair_torch")?,
        REL,
        1e-6,
        "per pair",
    );
    assert_close(
        &host(out.loss.clone()),
        &[f.float("loss")?],
        REL,
        0.0,
        "loss",
    );
    let grads = out.loss.backward();
    let grad = batch
        .tokens
        .grad(&grads)
        .map(host)
        .expect("the gradient reaches this input");
    let width = grad.len() / batch.first_completion.len();
    let grad_sum: Vec<f64> = batch
        .first_completion
        .iter()
        .enumerate()
        .map(|(row, &t)| grad[row * width + t])
        .collect();
    assert!(grad_sum.iter().all(|g| g.is_finite()));
    assert_close(&grad_sum, &f.floats("grad_sum")?, REL, 1e-9, "grad");
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
    case: &Fixture,
    name: &str,
) -> anyhow::Result<()> {
    let (lc, chosen) = single_token(c);
    let (lr, rejected) = single_token(r);
    let out = preference_loss(&config, PreferenceInputs::new(chosen, rejected))?;
    assert_close(
        &host(out.losses.clone()),
        &case.floats("losses")?,
        REL,
        1e-7,
        &format!("{name} losses"),
    );
    let m = out.metrics()?;
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
    assert_close(
        &[m.rewards_chosen],
        &[mean(case.floats("chosen_rewards")?)],
        REL,
        1e-7,
        name,
    );
    assert_close(
        &[m.rewards_rejected],
        &[mean(case.floats("rejected_rewards")?)],
        REL,
        1e-7,
        name,
    );
    let grads = out.loss.backward();
    let gc = lc
        .grad(&grads)
        .map(host)
        .expect("the gradient reaches this input");
    let gr = lr
        .grad(&grads)
        .map(host)
        .expect("the gradient reaches this input");
    assert_close(
        &gc,
        &case.floats("grad_chosen")?,
        REL,
        1e-8,
        &format!("{name} grad chosen"),
    );
    assert_close(
        &gr,
        &case.floats("grad_rejected")?,
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
    let f = fixtures()?.get("cpo")?;
    let case = &f.get("cdpo_eps0.1")?;
    let cdpo = PreferenceLossConfig::Dpo {
        beta: 0.1,
        label_smoothing: 0.1,
        nll_alpha: 0.0,
        reference_free: true,
    };
    check_pair_case(cdpo, &case.floats("u")?, &case.floats("v")?, case, "cdpo")?;

    let case = &f.get("ipo_sum_beta0.1")?;
    let ipo = PreferenceLossConfig::IpoSum {
        beta: 0.1,
        nll_alpha: 0.0,
        reference_free: true,
    };
    check_pair_case(ipo, &case.floats("u")?, &case.floats("v")?, case, "ipo_sum")?;

    for (name, gamma, eps) in [
        ("simpo_gamma0.5_beta2", 0.5, 0.0),
        ("simpo_gamma1.4_beta2_eps0.1", 1.4, 0.1),
    ] {
        let case = &f.get(name)?;
        let (c, r) = (case.floats("chosen_mean")?, case.floats("rejected_mean")?);
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
    let f = fixtures()?.get("orpo")?;
    let (lc, chosen) = single_token(&f.floats("chosen_mean")?);
    let (lr, rejected) = single_token(&f.floats("rejected_mean")?);
    let nll_mask = f.bools("nll_mask")?;
    let rows = chosen.sum.dims()[0];
    let width = nll_mask.len() / rows;
    let nll_tokens = float_tensor::<AD, 2>(&f.floats("nll_tokens")?, [rows, width]).require_grad();
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
    let trl_losses: Vec<f64> = f.floats("losses_trl")?.iter().map(|x| -x).collect();
    assert_close(
        &host(out.losses.clone()),
        &trl_losses,
        REL,
        1e-8,
        "per pair",
    );
    assert_close(
        &host(out.loss.clone()),
        &[f.float("loss")?],
        REL,
        1e-7,
        "loss",
    );
    let m = out.metrics()?;
    assert_close(
        &[m.nll_loss.unwrap_or(f64::NAN)],
        &[f.float("nll_loss")?],
        REL,
        1e-7,
        "nll_loss",
    );
    assert_close(
        &[m.log_odds_ratio.unwrap_or(f64::NAN)],
        &[f.float("log_odds_ratio")?],
        REL,
        1e-7,
        "log_odds_ratio",
    );
    assert_close(
        &[m.log_odds_chosen.unwrap_or(f64::NAN)],
        &[f.float("log_odds_chosen")?],
        2e-6,
        1e-7,
        "log_odds_chosen",
    );
    let grads = out.loss.backward();
    assert_close(
        &lc.grad(&grads)
            .map(host)
            .expect("the gradient reaches this input"),
        &f.floats("grad_chosen")?,
        2e-6,
        1e-8,
        "grad c",
    );
    assert_close(
        &lr.grad(&grads)
            .map(host)
            .expect("the gradient reaches this input"),
        &f.floats("grad_rejected")?,
        2e-6,
        1e-8,
        "grad r",
    );
    let gn = nll_tokens
        .grad(&grads)
        .map(host)
        .expect("the gradient reaches this input");
    let gn: Vec<f64> = gn
        .iter()
        .zip(&nll_mask)
        .map(|(g, &m)| if m { *g } else { 0.0 })
        .collect();
    assert_close(
        &gn,
        &f.floats("grad_nll_tokens")?,
        REL,
        1e-9,
        "grad nll tokens",
    );
    Ok(())
}

/// Each fixture accessor is an error naming the file and the key path when the key is missing or
/// holds another type, so a renamed fixture field fails the test that reads it.
#[test]
fn fixture_accessors_fail_on_a_missing_key_or_a_wrong_type() -> anyhow::Result<()> {
    let f = fixtures()?.get("logprobs")?;
    let missing = [
        f.get("absent").err(),
        f.keys("absent").err(),
        f.float("absent").err(),
        f.usize("absent").err(),
        f.floats("absent").err(),
        f.ints("absent").err(),
        f.bools("absent").err(),
        f.parse::<PreferenceLossConfig>("absent").err(),
    ];
    for error in missing {
        assert_names(error, "`logprobs.absent` is missing");
    }
    let mistyped = [
        (f.keys("b").err(), "`logprobs.b` is not an object"),
        (f.float("mask").err(), "`logprobs.mask` is not a number"),
        (f.usize("sum").err(), "`logprobs.sum` is not a size"),
        (f.floats("b").err(), "`logprobs.b` is not an array"),
        (f.floats("mask").err(), "`logprobs.mask`[0] is not a number"),
        (f.ints("sum").err(), "`logprobs.sum`[0] is not an integer"),
        (
            f.bools("labels").err(),
            "`logprobs.labels`[0] is not a boolean",
        ),
        (
            f.parse::<PreferenceLossConfig>("b").err(),
            "`logprobs.b` does not parse",
        ),
        (Fixture::parse_file("{").err(), "not JSON"),
    ];
    for (error, want) in mistyped {
        assert_names(error, want);
    }
    Ok(())
}

/// `error` is there, and its message starts with the fixture file and contains `want`.
fn assert_names(error: Option<anyhow::Error>, want: &str) {
    let message = format!(
        "{:#}",
        error.unwrap_or_else(|| panic!("no error for {want}"))
    );
    assert!(
        message.starts_with(FIXTURE_FILE) && message.contains(want),
        "{message}"
    );
}
