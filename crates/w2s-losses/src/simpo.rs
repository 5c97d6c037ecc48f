//! SimPO: reference-free DPO on length-averaged log-probs with a target margin.
//!
//! ```text
//! z = β·(c̄ − r̄) − γ,   ℓ = −(1−ε)·logσ(z) − ε·logσ(−z)
//! ```
//!
//! `c̄`, `r̄` are the policy's mean log-probs over the chosen and rejected completions.
//!
//! The margin is the trap (docs/method.md, "Losses"). "γ = 0.5" is an **absolute** γ in TRL's CPOTrainer
//! (`simpo_gamma`, `trl/experimental/cpo/cpo_trainer.py`) and Liger, but a **ratio γ/β** in the
//! official code (`gamma_beta_ratio`, `princeton-nlp/SimPO:scripts/simpo_trainer.py`). At β = 2
//! they differ by a factor 2, so [`SimpoMargin`] names both and never guesses.
//!
//! Source: Meng et al. 2024, SimPO (arXiv:2405.14734).

use burn::tensor::{backend::Backend, Tensor};

/// How SimPO's target margin is given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SimpoMargin {
    /// Absolute γ, subtracted from `β·(c̄ − r̄)` (TRL `simpo_gamma`, Liger `gamma`).
    Gamma(f64),
    /// γ/β, subtracted from `c̄ − r̄` before scaling by β (official `gamma_beta_ratio`).
    GammaBetaRatio(f64),
}

impl SimpoMargin {
    /// The absolute margin γ for a given β.
    pub fn gamma(self, beta: f64) -> f64 {
        match self {
            Self::Gamma(gamma) => gamma,
            Self::GammaBetaRatio(ratio) => ratio * beta,
        }
    }
}

/// SimPO's logit `z = β·(c̄ − r̄) − γ`, fed to [`crate::dpo::sigmoid_loss`].
///
/// # Shapes
/// `chosen_mean`, `rejected_mean`: `[b]` → `[b]`
pub fn simpo_logits<B: Backend>(
    chosen_mean: Tensor<B, 1>,
    rejected_mean: Tensor<B, 1>,
    beta: f64,
    margin: SimpoMargin,
) -> Tensor<B, 1> {
    (chosen_mean - rejected_mean)
        .mul_scalar(beta)
        .sub_scalar(margin.gamma(beta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpo::sigmoid_loss;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    #[test]
    fn absolute_gamma_vs_gamma_beta_ratio() {
        // c̄ = −0.5, r̄ = −1.2, β = 2, by hand:
        // TRL simpo_gamma = 0.5 → −logσ(1.4 − 0.5) = 0.341154;
        // official gamma_beta_ratio = 0.5 → γ = 1 → −logσ(0.4) = 0.513015.
        let dev = Default::default();
        let c = Tensor::<Flex, 1>::from_data(TensorData::from([-0.5]), &dev);
        let r = Tensor::<Flex, 1>::from_data(TensorData::from([-1.2]), &dev);
        for (margin, want) in [
            (SimpoMargin::Gamma(0.5), 0.341154),
            (SimpoMargin::GammaBetaRatio(0.5), 0.513015),
        ] {
            let z = simpo_logits(c.clone(), r.clone(), 2.0, margin);
            let got = sigmoid_loss(z, 0.0).into_scalar();
            assert!((f64::from(got) - want).abs() < 1e-6, "{margin:?}: {got}");
        }
    }
}
