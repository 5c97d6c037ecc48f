//! Every fused operation equals its composition from burn's operations, in value and in gradient,
//! on flex (the kernels) and on flex under autodiff (the custom backward), for random shapes.

#![cfg(feature = "flex")]

use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::{Distribution, Int};
use proptest::prelude::*;
use w2s_kernels::{
    attention_probs, grouped_matmul, logsumexp_and_pick, matmul, rms_norm, rope, swiglu,
    token_logprobs, token_logprobs_grad, Order,
};

type Ad = Autodiff<Flex>;

fn random<B: Backend, const D: usize>(shape: [usize; D], scale: f64, seed: u64) -> Tensor<B, D> {
    B::seed(&Default::default(), seed);
    Tensor::random(shape, Distribution::Normal(0.0, scale), &Default::default())
}

/// Largest `|a - b| / (tol_abs + |b|)`-style excess: fails when an element differs by more than
/// `1e-5 · (1 + |b|)`.
fn assert_close<const D: usize>(what: &str, a: Tensor<Flex, D>, b: Tensor<Flex, D>) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let (a, b) = (
        a.into_data().to_vec::<f32>().unwrap(),
        b.into_data().to_vec::<f32>().unwrap(),
    );
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
            "{what}: element {i} is {x}, composed gives {y}"
        );
    }
}

/// Value and the gradients of `Σ out ⊙ w` with respect to `inputs`, for `op` on [`Ad`].
fn value_and_grads<const D: usize, const N: usize>(
    inputs: [Tensor<Flex, D>; N],
    weights: Tensor<Flex, D>,
    op: impl FnOnce([Tensor<Ad, D>; N]) -> Tensor<Ad, D>,
) -> (Tensor<Flex, D>, Vec<Tensor<Flex, D>>) {
    let tracked = inputs.map(|t| Tensor::<Ad, D>::from_inner(t).require_grad());
    let out = op(tracked.clone());
    let grads = (out.clone() * Tensor::from_inner(weights)).sum().backward();
    let grads = tracked
        .iter()
        .map(|t| t.grad(&grads).expect("every input gets a gradient"))
        .collect();
    (out.inner(), grads)
}

fn check_op<const D: usize, const N: usize>(
    what: &str,
    inputs: [Tensor<Flex, D>; N],
    weights: Tensor<Flex, D>,
    fused: impl Fn([Tensor<Ad, D>; N]) -> Tensor<Ad, D>,
    composed: impl Fn([Tensor<Ad, D>; N]) -> Tensor<Ad, D>,
) {
    let (want, want_grads) = value_and_grads(inputs.clone(), weights.clone(), composed);
    let (got, got_grads) = value_and_grads(inputs, weights, fused);
    assert_close(&format!("{what} value"), got, want);
    for (i, (g, w)) in got_grads.into_iter().zip(want_grads).enumerate() {
        assert_close(&format!("{what} gradient {i}"), g, w);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn attention_probs_equal_softmax_of_scaled_scores_plus_bias(
        b in 1usize..3, h in 1usize..4, s in 1usize..20, t in 1usize..40, seed in 0u64..1000,
    ) {
        let scores = random::<Flex, 4>([b, h, s, t], 3.0, seed);
        // A mask: a third of the entries far below any score, as the model's bias.
        let bias = random::<Flex, 4>([b, h, s, t], 1.0, seed + 1)
            .greater_elem(0.5)
            .float()
            .mul_scalar(-1e9);
        let scale = 0.125;
        let weights = random::<Flex, 4>([b, h, s, t], 1.0, seed + 2);
        let plain = attention_probs(scores.clone(), bias.clone(), scale);
        assert_close(
            "flex",
            plain,
            w2s_kernels::attention_probs::composed(scores.clone(), bias.clone(), scale),
        );
        let bias_ad = Tensor::<Ad, 4>::from_inner(bias);
        check_op(
            "attention probs",
            [scores],
            weights,
            |[x]| attention_probs(x, bias_ad.clone(), scale),
            |[x]| w2s_kernels::attention_probs::composed(x, bias_ad.clone(), scale),
        );
    }

    #[test]
    fn rms_norm_equals_burns_rms_norm(
        rows in 1usize..70, d in 1usize..100, seed in 0u64..1000,
    ) {
        let x = random::<Flex, 3>([1, rows, d], 2.0, seed);
        let gamma = random::<Flex, 1>([d], 1.0, seed + 1).add_scalar(1.0);
        let weights = random::<Flex, 3>([1, rows, d], 1.0, seed + 2);
        assert_close(
            "flex",
            rms_norm(x.clone(), gamma.clone(), 1e-5),
            w2s_kernels::rms_norm::composed(x.clone(), gamma.clone(), 1e-5),
        );
        // γ's gradient too: it is a parameter.
        let gamma_ad = Tensor::<Ad, 1>::from_inner(gamma.clone()).require_grad();
        let run = |fused: bool| {
            let x = Tensor::<Ad, 3>::from_inner(x.clone()).require_grad();
            let y = if fused {
                rms_norm(x.clone(), gamma_ad.clone(), 1e-5)
            } else {
                w2s_kernels::rms_norm::composed(x.clone(), gamma_ad.clone(), 1e-5)
            };
            let grads = (y.clone() * Tensor::from_inner(weights.clone())).sum().backward();
            (y.inner(), x.grad(&grads).unwrap(), gamma_ad.grad(&grads).unwrap())
        };
        let ((y, dx, dg), (y0, dx0, dg0)) = (run(true), run(false));
        assert_close("rms value", y, y0);
        assert_close("rms ∂x", dx, dx0);
        assert_close("rms ∂γ", dg, dg0);
    }

    #[test]
    fn rope_equals_rotate_half_then_heads_forward(
        b in 1usize..3, s in 1usize..12, n in 1usize..5, half in 1usize..20, seed in 0u64..1000,
    ) {
        let shape = [b, s, n, 2 * half];
        let x = random::<Flex, 4>(shape, 1.0, seed);
        // Any tables: the kernel must follow the composition for every value, both halves.
        let cos = random::<Flex, 4>(shape, 1.0, seed + 1);
        let sin = random::<Flex, 4>(shape, 1.0, seed + 2);
        let weights = random::<Flex, 4>([b, n, s, 2 * half], 1.0, seed + 3);
        assert_close(
            "flex",
            rope(x.clone(), cos.clone(), sin.clone()),
            w2s_kernels::rope::composed(x.clone(), cos.clone(), sin.clone()),
        );
        let (cos, sin) = (Tensor::<Ad, 4>::from_inner(cos), Tensor::<Ad, 4>::from_inner(sin));
        check_op(
            "rope",
            [x],
            weights,
            |[x]| rope(x, cos.clone(), sin.clone()),
            |[x]| w2s_kernels::rope::composed(x, cos.clone(), sin.clone()),
        );
    }

    #[test]
    fn matmul_equals_burns_for_views_of_any_layout(
        m in 1usize..40, k in 0usize..30, n in 1usize..40, seed in 0u64..1000,
        transposed in any::<bool>(), sliced in any::<bool>(),
    ) {
        // The weight as stored `[k, n]`, as the transpose of a stored `[n, k]` (the tied lm_head),
        // or as a column slice of a wider matrix.
        let weight = |backend_seed| -> Tensor<Flex, 2> {
            match (transposed, sliced) {
                (true, _) => random::<Flex, 2>([n, k], 1.0, backend_seed).transpose(),
                (false, true) => random::<Flex, 2>([k, n + 3], 1.0, backend_seed)
                    .slice_dim(1, 2..n + 2),
                (false, false) => random::<Flex, 2>([k, n], 1.0, backend_seed),
            }
        };
        let x = random::<Flex, 2>([m, k], 1.0, seed);
        let w = weight(seed + 1);
        let weights = random::<Flex, 2>([m, n], 1.0, seed + 2);
        assert_close("flex", matmul(x.clone(), w.clone()), x.clone().matmul(w.clone()));
        check_op(
            "matmul",
            [x, w],
            weights,
            |[x, w]| matmul(x, w),
            |[x, w]| x.matmul(w),
        );
    }

    #[test]
    fn grouped_matmul_equals_burns_for_head_views_and_both_orders(
        b in 1usize..3, g in 1usize..4, rep in 1usize..4, m in 1usize..10, k in 0usize..12,
        n in 1usize..10, view in 0usize..3, rows_first in any::<bool>(), seed in 0u64..1000,
    ) {
        let h = g * rep;
        let order = if rows_first { Order::RowsFirst } else { Order::HeadsFirst };
        let lhs = random::<Flex, 4>([b, h, m, k], 1.0, seed);
        let rhs = random::<Flex, 4>(rhs_leaf(view, [b, g, k, n]), 1.0, seed + 1);
        let out = if rows_first { [b, m, h, n] } else { [b, h, m, n] };
        let weights = random::<Flex, 4>(out, 1.0, seed + 2);
        assert_close(
            "flex",
            grouped_matmul(lhs.clone(), as_rhs(view, rhs.clone()), order),
            w2s_kernels::grouped_matmul::composed(lhs.clone(), as_rhs(view, rhs.clone()), order),
        );
        check_op(
            "grouped matmul",
            [lhs, rhs],
            weights,
            |[l, r]| grouped_matmul(l, as_rhs(view, r), order),
            |[l, r]| w2s_kernels::grouped_matmul::composed(l, as_rhs(view, r), order),
        );
    }

    #[test]
    fn swiglu_equals_silu_times_up(
        rows in 1usize..50, n in 1usize..300, seed in 0u64..1000,
    ) {
        let gate = random::<Flex, 2>([rows, n], 4.0, seed);
        let up = random::<Flex, 2>([rows, n], 1.0, seed + 1);
        let weights = random::<Flex, 2>([rows, n], 1.0, seed + 2);
        assert_close(
            "flex",
            swiglu(gate.clone(), up.clone()),
            w2s_kernels::swiglu::composed(gate.clone(), up.clone()),
        );
        check_op(
            "swiglu",
            [gate, up],
            weights,
            |[g, u]| swiglu(g, u),
            |[g, u]| w2s_kernels::swiglu::composed(g, u),
        );
    }

    #[test]
    fn token_logprobs_equal_gathered_log_softmax(
        n in 1usize..40, v in 1usize..700, seed in 0u64..1000,
    ) {
        let logits = random::<Flex, 2>([n, v], 5.0, seed);
        let labels: Vec<i64> = (0..n as i64).map(|i| (i * 7919 + seed as i64) % v as i64).collect();
        let labels_of = |device| Tensor::<Flex, 1, Int>::from_data(labels.as_slice(), device);
        let dev = Default::default();
        let want = burn::tensor::activation::log_softmax(logits.clone(), 1)
            .gather(1, labels_of(&dev).unsqueeze_dim(1))
            .squeeze_dim::<1>(1);
        assert_close("flex", token_logprobs(logits.clone(), labels_of(&dev)), want.clone());
        let (logp, lse) = logsumexp_and_pick(logits.clone(), labels_of(&dev));
        assert_close("logsumexp_and_pick", logp, want);

        // Gradient: the tracked op, the no-autodiff gradient and autodiff through log_softmax.
        let g = random::<Flex, 1>([n], 1.0, seed + 3);
        let x = Tensor::<Ad, 2>::from_inner(logits.clone()).require_grad();
        let labels_ad = Tensor::<Ad, 1, Int>::from_inner(labels_of(&dev));
        let grads = (token_logprobs(x.clone(), labels_ad.clone()) * Tensor::from_inner(g.clone()))
            .sum()
            .backward();
        let tracked = x.grad(&grads).unwrap();
        let x0 = Tensor::<Ad, 2>::from_inner(logits.clone()).require_grad();
        let grads0 = (burn::tensor::activation::log_softmax(x0.clone(), 1)
            .gather(1, labels_ad.unsqueeze_dim(1))
            .squeeze_dim::<1>(1)
            * Tensor::from_inner(g.clone()))
        .sum()
        .backward();
        let want = x0.grad(&grads0).unwrap();
        assert_close("tracked gradient", tracked, want.clone());
        assert_close(
            "token_logprobs_grad",
            token_logprobs_grad(logits, lse, labels_of(&dev), g),
            want,
        );
    }
}

/// Large logits stay finite and exact where the composition would be: the maximum is subtracted.
#[test]
fn token_logprobs_of_huge_logits_are_finite() {
    let dev = Default::default();
    let logits = Tensor::<Flex, 2>::from_data([[1e4f32, 0.0, -1e4], [-1e30, 5.0, 5.0]], &dev);
    let labels = Tensor::<Flex, 1, Int>::from_data([1i64, 2], &dev);
    let logp = token_logprobs(logits, labels)
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(logp[0], -1e4);
    assert!(
        (logp[1] - -std::f32::consts::LN_2).abs() < 1e-6,
        "{}",
        logp[1]
    );
}

/// A gradient flows through the fused ops alongside other uses of the same input (a residual),
/// and repeated calls give identical results (the kernels' reductions do not depend on timing).
#[test]
fn rms_norm_gradients_add_to_other_uses_and_repeat_exactly() {
    let x = random::<Flex, 2>([300, 64], 1.0, 7);
    let gamma = random::<Flex, 1>([64], 1.0, 8);
    let run = |fused: bool| {
        let x = Tensor::<Ad, 2>::from_inner(x.clone()).require_grad();
        let gamma = Tensor::<Ad, 1>::from_inner(gamma.clone()).require_grad();
        let y = if fused {
            rms_norm(x.clone(), gamma.clone(), 1e-6)
        } else {
            w2s_kernels::rms_norm::composed(x.clone(), gamma.clone(), 1e-6)
        };
        let grads = (x.clone() + y).powf_scalar(2.0).sum().backward();
        (x.grad(&grads).unwrap(), gamma.grad(&grads).unwrap())
    };
    let (dx, dg) = run(true);
    let (dx0, dg0) = run(false);
    assert_close("∂x", dx.clone(), dx0);
    assert_close("∂γ", dg.clone(), dg0);
    let (dx1, dg1) = run(true);
    assert_eq!(dx.into_data(), dx1.into_data());
    assert_eq!(dg.into_data(), dg1.into_data());
}

/// A product large enough for gemm to split across threads, with a transposed operand.
#[test]
fn threaded_matmul_equals_burns() {
    let x = random::<Flex, 2>([256, 200], 1.0, 11);
    let w = random::<Flex, 2>([160, 200], 1.0, 12).transpose();
    let weights = random::<Flex, 2>([256, 160], 1.0, 13);
    check_op(
        "threaded matmul",
        [x, w],
        weights,
        |[x, w]| matmul(x, w),
        |[x, w]| x.matmul(w),
    );
}

/// Accumulating products equals adding them, and an accumulator held elsewhere is left alone.
#[test]
fn matmul_accumulate_adds_without_touching_shared_accumulators() {
    let acc = random::<Flex, 2>([64, 48], 1.0, 21);
    let kept = acc.clone();
    let before = kept.to_data();
    let (x, w) = (
        random::<Flex, 2>([64, 30], 1.0, 22),
        random::<Flex, 2>([48, 30], 1.0, 23),
    );
    let want = acc.clone() + x.clone().matmul(w.clone().transpose());
    let got = w2s_kernels::matmul_accumulate(acc, x.clone(), w.clone().transpose());
    assert_close("shared accumulator", got, want.clone());
    assert_eq!(kept.to_data(), before.clone());
    // Owned (a fresh copy of the same values): added in place, same result.
    let acc = Tensor::<Flex, 2>::from_data(before, &Default::default());
    let got = w2s_kernels::matmul_accumulate(acc, x, w.transpose());
    assert_close("owned accumulator", got, want);
}

/// A product written over a buffer: the same values as a fresh product, whether the buffer is
/// reused (owned, right shape), held elsewhere (left alone) or the wrong shape.
#[test]
fn matmul_into_equals_a_fresh_product_and_leaves_shared_buffers_alone() {
    let (x, w) = (
        random::<Flex, 2>([64, 30], 1.0, 31),
        random::<Flex, 2>([48, 30], 1.0, 32),
    );
    let want = x.clone().matmul(w.clone().transpose());
    let product = |out| w2s_kernels::matmul_into(out, x.clone(), w.clone().transpose());
    let owned = random::<Flex, 2>([64, 48], 1.0, 33);
    assert_close("owned buffer", product(owned), want.clone());
    let shared = random::<Flex, 2>([64, 48], 1.0, 34);
    let before = shared.to_data();
    assert_close("shared buffer", product(shared.clone()), want.clone());
    assert_eq!(shared.to_data(), before);
    assert_close("other shape", product(random([8, 8], 1.0, 35)), want);
}

/// A product tall enough to run as row blocks (a transposed left operand, as the chunked
/// lm_head's weight gradient; 9,000 rows at depth 512 make nine blocks), plain and
/// accumulated.
#[test]
fn tall_products_cut_into_row_blocks_equal_burns() {
    let (g, h) = (
        random::<Flex, 2>([512, 9_000], 1.0, 41).transpose(),
        random::<Flex, 2>([512, 24], 1.0, 42),
    );
    let acc = random::<Flex, 2>([9_000, 24], 1.0, 43);
    let want = g.clone().matmul(h.clone());
    assert_close("tall product", matmul(g.clone(), h.clone()), want.clone());
    let got = w2s_kernels::matmul_accumulate(acc.clone(), g, h);
    assert_close("tall accumulation", got, acc + want);
}

/// The stored shape behind [`as_rhs`]'s view `view` of a `[b, g, k, n]` operand: as stored (0),
/// the keys' transpose (1: stored `[b, g, n, k]`) or the values' heads moved forward (2: stored
/// `[b, k, g, n]`).
fn rhs_leaf(view: usize, [b, g, k, n]: [usize; 4]) -> [usize; 4] {
    match view {
        0 => [b, g, k, n],
        1 => [b, g, n, k],
        _ => [b, k, g, n],
    }
}

/// The `[b, g, k, n]` operand as the model takes it from a tensor stored as [`rhs_leaf`] says.
fn as_rhs<B: Backend>(view: usize, stored: Tensor<B, 4>) -> Tensor<B, 4> {
    match view {
        0 => stored,
        1 => stored.swap_dims(2, 3),
        _ => stored.swap_dims(1, 2),
    }
}

/// Per-head products large enough to be threaded: many heads spread over the threads, and a
/// single head threaded inside gemm; grouped, rows first.
#[test]
fn threaded_grouped_matmul_equals_burns() {
    for ([b, g, rep, m, k, n], view) in
        [([2, 2, 2, 128, 64, 128], 1), ([1, 1, 1, 200, 200, 200], 2)]
    {
        let lhs = random::<Flex, 4>([b, g * rep, m, k], 1.0, 51);
        let rhs = random::<Flex, 4>(rhs_leaf(view, [b, g, k, n]), 1.0, 52);
        let weights = random::<Flex, 4>([b, m, g * rep, n], 1.0, 53);
        check_op(
            "threaded grouped matmul",
            [lhs, rhs],
            weights,
            |[l, r]| grouped_matmul(l, as_rhs(view, r), Order::RowsFirst),
            |[l, r]| w2s_kernels::grouped_matmul::composed(l, as_rhs(view, r), Order::RowsFirst),
        );
    }
}

/// The gradient of each operand comes back laid out like the operand, so through the views the
/// model takes (keys transposed, values' heads moved forward) it reaches the stored tensor
/// contiguous, with no copy left for the views' backward to make.
#[test]
fn grouped_matmul_gradients_reach_stored_views_contiguous() {
    let [b, g, rep, m, k, n] = [2, 2, 3, 5, 4, 6];
    for view in 1..3 {
        let lhs = Tensor::<Ad, 4>::from_inner(random([b, g * rep, m, k], 1.0, 61)).require_grad();
        let stored = Tensor::<Ad, 4>::from_inner(random(rhs_leaf(view, [b, g, k, n]), 1.0, 62))
            .require_grad();
        let out = grouped_matmul(lhs.clone(), as_rhs(view, stored.clone()), Order::RowsFirst);
        let grads = out.sum().backward();
        for (what, grad) in [
            ("lhs", lhs.grad(&grads)),
            ("stored rhs", stored.grad(&grads)),
        ] {
            let primitive: burn_flex::FlexTensor =
                grad.expect("a gradient").into_primitive().tensor();
            assert!(
                primitive.layout().is_contiguous(),
                "view {view}: the gradient of {what} is strided: {:?}",
                primitive.layout().strides()
            );
        }
    }
}
