//! ORPO: odds-ratio preference term added to the chosen NLL.
//!
//! With mean log-probs `c̄`, `r̄` over the completions (odds `p / (1 − p)` of `p = e^{c̄}`):
//!
//! ```text
//! log_odds = (c̄ − r̄) − (log1mexp(c̄) − log1mexp(r̄))
//! ratio    = logσ(log_odds)
//! loss     = NLL_chosen − β·mean(ratio)          (β is the paper's λ)
//! ```
//!
//! `log1mexp(x) = log(1 − eˣ)` uses the stable two-branch form of huggingface/trl#4763; the naive
//! `log1p(−exp(x))` is `−inf` in f32 once `c̄ > −6e-8` (huggingface/trl#2564). The one remaining
//! pole, `c̄ = 0` exactly, is kept away by clamping the mean log-probs to at most
//! [`MAX_MEAN_LOGPROB`].
//!
//! TRL's NLL scope: `nn.CrossEntropyLoss` over every non-padding token of the chosen rows,
//! **prompt included** (as the original ORPO code; huggingface/trl#2527 reverted masking it). Pass
//! those log-probs as [`crate::PreferenceInputs::nll_chosen`].
//!
//! Source: Hong et al. 2024, ORPO (arXiv:2403.07691); reference implementation TRL
//! `ORPOTrainer.odds_ratio_loss` (`trl/experimental/orpo/orpo_trainer.py`).

use burn::tensor::{backend::Backend, Tensor};

use crate::numerics::{log1mexp, log_sigmoid};

/// Upper clamp on mean log-probs before `log1mexp`, whose value at 0 is `−inf`. Any `c̄` below it
/// is untouched (f32 represents 1e-12 exactly enough), so only a sequence predicted with
/// probability exactly 1 is affected.
pub const MAX_MEAN_LOGPROB: f64 = -1e-12;

/// `log(odds(c̄) / odds(r̄))` per pair.
///
/// # Shapes
/// `chosen_mean`, `rejected_mean`: `[b]` → `[b]`
pub fn orpo_log_odds<B: Backend>(
    chosen_mean: Tensor<B, 1>,
    rejected_mean: Tensor<B, 1>,
) -> Tensor<B, 1> {
    let c = chosen_mean.clamp_max(MAX_MEAN_LOGPROB);
    let r = rejected_mean.clamp_max(MAX_MEAN_LOGPROB);
    (c.clone() - r.clone()) - (log1mexp(c) - log1mexp(r))
}

/// The odds-ratio term per pair, `−β·logσ(log_odds)`; add the chosen NLL for ORPO's loss.
///
/// # Shapes
/// `log_odds`: `[b]` → `[b]`
pub fn orpo_ratio_loss<B: Backend>(log_odds: Tensor<B, 1>, beta: f64) -> Tensor<B, 1> {
    log_sigmoid(log_odds).mul_scalar(-beta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    fn log_odds(c: f64, r: f64) -> f64 {
        let dev = Default::default();
        let c = Tensor::<Flex, 1>::from_data(TensorData::from([c]), &dev);
        let r = Tensor::<Flex, 1>::from_data(TensorData::from([r]), &dev);
        f64::from(orpo_log_odds(c, r).into_scalar())
    }

    #[test]
    fn odds_ratio_by_hand() {
        // c̄ = −0.5, r̄ = −1.2, β = 0.1, NLL 0.9: log_odds 1.274370, logσ −0.246553, loss 0.924655.
        let lo = log_odds(-0.5, -1.2);
        assert!((lo - 1.274370).abs() < 1e-5, "{lo}");
        let dev = Default::default();
        let t = Tensor::<Flex, 1>::from_data(TensorData::from([lo]), &dev);
        let term = f64::from(orpo_ratio_loss(t, 0.1).into_scalar());
        assert!((0.9 + term - 0.924655).abs() < 1e-6, "{term}");
    }

    #[test]
    fn near_certain_chosen_stays_finite() {
        // c̄ = −1e-6, r̄ = −2: log1mexp(−1e-6) = −13.815511, log_odds = 15.670097.
        let lo = log_odds(-1e-6, -2.0);
        assert!((lo - 15.670097).abs() < 1e-4, "{lo}");
        // Exactly 0 (p = 1) would be a pole; the clamp keeps it finite.
        assert!(log_odds(0.0, -2.0).is_finite());
    }
}
