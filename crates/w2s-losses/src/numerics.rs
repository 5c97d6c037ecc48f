//! Numerically stable element-wise forms used by every loss.
//!
//! - `softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^{-|x|})`
//! - `log_sigmoid(x) = -softplus(-x)`
//! - `log1mexp(x) = log(1 - e^x)` for `x < 0`: `log1p(-e^x)` below `-ln 2`, `log(-expm1(x))` above
//!   (Mächler 2012; the branch TRL's ORPO uses since huggingface/trl#4763).
//!
//! burn's own `softplus` is `log(1 + e^x)` and overflows at `x > 88` in f32, and `log(sigmoid(x))`
//! is `-inf` at `x < -104`; these forms stay finite and exact for any finite input (a DPO logit of
//! -120 gives a loss of exactly 120). Branches are selected with `mask_fill`, and each branch only
//! ever sees inputs on which it is finite, so no `0 * inf = NaN` reaches the gradient.

use burn::tensor::{backend::Backend, Tensor};

/// `log(1 + e^x)`, stable for any finite `x`; gradient `sigmoid(x)` everywhere (0.5 at 0).
pub fn softplus<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let positive = x.clone().greater_elem(0.0);
    // x = pos + neg with exactly one of them non-zero, each carrying the gradient on its side.
    let pos = x.clone().mask_fill(positive.clone().bool_not(), 0.0);
    let neg = x.mask_fill(positive, 0.0);
    pos.clone() + (neg - pos).exp().log1p()
}

/// `log(sigmoid(x)) = -softplus(-x)`, stable for any finite `x`.
pub fn log_sigmoid<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    softplus(x.neg()).neg()
}

/// `log(1 - e^x)` for `x < 0`.
///
/// At `x = 0` the result is `-inf` (the caller decides how to keep away from the pole).
/// `-expm1(x)` is computed as `-2 e^{x/2} sinh(x/2)`, which keeps full relative precision
/// near 0 where `1 - e^x` would cancel (in f32, `e^{-1e-8}` rounds to exactly 1).
pub fn log1mexp<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let far = x.clone().lower_elem(-std::f64::consts::LN_2);
    // Each branch gets a harmless stand-in value where the other branch is selected.
    let x_far = x.clone().mask_fill(far.clone().bool_not(), -1.0);
    let x_near = x.mask_fill(far.clone(), -0.5);
    let far_branch = x_far.exp().neg().log1p();
    let half = x_near.div_scalar(2.0);
    let near_branch = half.clone() + half.sinh().mul_scalar(-2.0).log();
    near_branch.mask_where(far, far_branch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    fn eval(f: fn(Tensor<Flex, 1>) -> Tensor<Flex, 1>, xs: &[f64]) -> Vec<f64> {
        let x = Tensor::<Flex, 1>::from_data(TensorData::from(xs), &Default::default());
        f(x).into_data()
            .convert::<f64>()
            .to_vec::<f64>()
            .unwrap_or_default()
    }

    fn close(a: &[f64], b: &[f64], rel: f64) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= rel * y.abs().max(1e-30), "{x} vs {y}");
        }
    }

    #[test]
    fn softplus_is_finite_and_exact_at_extremes() {
        // Reference: python math, max(x,0) + log1p(exp(-|x|)).
        let got = eval(softplus, &[-120.0, -1.0, 0.0, 1.0, 120.0]);
        close(
            &got,
            &[
                7.667648e-53,
                0.313261687,
                std::f64::consts::LN_2,
                1.313261687,
                120.0,
            ],
            1e-6,
        );
    }

    #[test]
    fn log_sigmoid_of_minus_120_is_minus_120() {
        // Naive -log(sigmoid(-120)) is inf in f32; the true value is 120.
        let got = eval(log_sigmoid, &[-120.0, 0.0, 120.0]);
        close(&got[..2], &[-120.0, -std::f64::consts::LN_2], 1e-6);
        assert!(got[2] <= 0.0 && got[2] > -1e-30);
    }

    #[test]
    fn log1mexp_matches_both_branches() {
        // Reference values from python: log1p(-exp(x)) if x < -ln2 else log(-expm1(x)).
        let got = eval(log1mexp, &[-1e-8, -1e-6, -0.5, -1.2, -2.0, -30.0]);
        let want = [
            -18.420680748952364,
            -13.815511057964233,
            -0.932752129567,
            -0.358382417860434,
            -0.145413457868,
            -9.357622968840e-14,
        ];
        close(&got, &want, 2e-6);
    }
}
