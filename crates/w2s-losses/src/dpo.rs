//! The DPO family on the scaled logit `z = β·h`, per pair.
//!
//! With summed completion log-probs πc, πr (policy) and ρc, ρr (reference), the log-ratios are
//! `u = πc − ρc`, `v = πr − ρr` and the DPO logit is `h = u − v` (reference-free: ρ = 0).
//!
//! ```text
//! sigmoid (DPO, ε = 0; cDPO, ε > 0):  −(1−ε)·logσ(z) − ε·logσ(−z)
//! robust:                             [−(1−ε)·logσ(z) + ε·logσ(−z)] / (1 − 2ε)
//! hinge (SLiC / RSO):                 max(0, 1 − z)
//! ```
//!
//! Sources: Rafailov et al. 2023 (DPO, arXiv:2305.18290); Mitchell 2023 (cDPO note); Chowdhury et
//! al. 2024 (robust DPO, arXiv:2403.00409); Zhao et al. 2023 (SLiC-HF) / Liu et al. 2023 (RSO).
//! Reference implementation: TRL `DPOTrainer.dpo_loss` (`trl/trainer/dpo_trainer.py`); the
//! label-smoothed sigmoid is TRL ≤ 0.28's `sigmoid` (later versions dropped ε from it), and is
//! torchtune's `DPOLoss`.

use burn::tensor::{backend::Backend, Tensor};

use crate::numerics::log_sigmoid;

/// `−(1−ε)·logσ(z) − ε·logσ(−z)`: DPO at `ε = 0`, conservative DPO (cDPO) for `ε ∈ (0, 0.5)`.
///
/// # Shapes
/// `z`: `[b]` → `[b]`
pub fn sigmoid_loss<B: Backend>(z: Tensor<B, 1>, label_smoothing: f64) -> Tensor<B, 1> {
    let agree = log_sigmoid(z.clone()).mul_scalar(-(1.0 - label_smoothing));
    if label_smoothing == 0.0 {
        agree
    } else {
        agree - log_sigmoid(z.neg()).mul_scalar(label_smoothing)
    }
}

/// Robust DPO, `[−(1−ε)·logσ(z) + ε·logσ(−z)] / (1 − 2ε)`, `ε ∈ [0, 0.5)`.
///
/// # Shapes
/// `z`: `[b]` → `[b]`
pub fn robust_loss<B: Backend>(z: Tensor<B, 1>, label_smoothing: f64) -> Tensor<B, 1> {
    let eps = label_smoothing;
    (log_sigmoid(z.clone()).mul_scalar(-(1.0 - eps)) + log_sigmoid(z.neg()).mul_scalar(eps))
        .div_scalar(1.0 - 2.0 * eps)
}

/// Hinge loss `max(0, 1 − z)`; with `z = β·h`, β is the inverse margin.
///
/// # Shapes
/// `z`: `[b]` → `[b]`
pub fn hinge_loss<B: Backend>(z: Tensor<B, 1>) -> Tensor<B, 1> {
    z.neg().add_scalar(1.0).clamp_min(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    fn run(f: impl Fn(Tensor<Flex, 1>) -> Tensor<Flex, 1>, z: &[f64]) -> Vec<f64> {
        let z = Tensor::<Flex, 1>::from_data(TensorData::from(z), &Default::default());
        f(z).into_data()
            .convert::<f64>()
            .to_vec::<f64>()
            .unwrap_or_default()
    }

    #[test]
    fn margin_of_0_4_by_hand_with_and_without_smoothing() {
        // βh = 0.1 · 4 = 0.4, by hand: −logσ(0.4) = 0.513015; with ε = 0.1 add 0.1 · 0.4.
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        close(run(|z| sigmoid_loss(z, 0.0), &[0.4])[0], 0.513015);
        close(run(|z| sigmoid_loss(z, 0.1), &[0.4])[0], 0.553015);
        close(run(|z| robust_loss(z, 0.1), &[0.4])[0], 0.463015);
        close(run(hinge_loss, &[0.4])[0], 0.6);
    }

    #[test]
    fn extreme_margin_is_finite() {
        // βh = −120: −logσ(−120) = 120 exactly in f32 (naive log(sigmoid) gives inf); hinge 121.
        assert_eq!(run(|z| sigmoid_loss(z, 0.0), &[-120.0]), vec![120.0]);
        assert_eq!(run(hinge_loss, &[-120.0]), vec![121.0]);
        let big = run(|z| sigmoid_loss(z, 0.0), &[100.0, -100.0]);
        assert!(big[0] >= 0.0 && big[0] < 1e-40 && big[1] == 100.0);
    }

    #[test]
    fn robust_and_cdpo_reduce_to_dpo_at_zero_smoothing() {
        let z = [-3.0, -0.2, 0.0, 0.7, 5.0];
        let dpo = run(|z| sigmoid_loss(z, 0.0), &z);
        assert_eq!(run(|z| robust_loss(z, 0.0), &z), dpo);
        assert!((dpo[2] - std::f64::consts::LN_2).abs() < 1e-7);
    }
}
