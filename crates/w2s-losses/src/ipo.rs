//! IPO: squared regression of the log-ratio margin onto `1/(2β)`.
//!
//! ```text
//! ℓ = (h − 1/(2β))²
//! ```
//!
//! Two forms differ only in `h`, and are selected by two distinct config names:
//! - `ipo_mean` (TRL's `loss_type="ipo"`): `h = u/Lc − v/Lr`, the log-ratios averaged over each
//!   completion's tokens. TRL normalises since huggingface/trl#1265 (confirmed with the IPO authors,
//!   huggingface/trl#1677).
//! - `ipo_sum` (Azar et al. 2023, arXiv:2310.12036, eq. 17): `h = u − v` on summed log-probs.
//!
//! Reference implementation: TRL `DPOTrainer` (`trl/trainer/dpo_trainer.py`), `loss_type="ipo"`.

use burn::tensor::{backend::Backend, Tensor};

/// `(h − 1/(2β))²` per pair.
///
/// # Shapes
/// `h`: `[b]` → `[b]`
pub fn ipo_loss<B: Backend>(h: Tensor<B, 1>, beta: f64) -> Tensor<B, 1> {
    h.sub_scalar(1.0 / (2.0 * beta)).powi_scalar(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    #[test]
    fn mean_and_sum_forms_by_hand() {
        // u = 2, v = −2, Lc = 4, Lr = 6, β = 0.1, by hand:
        // mean form (0.5 + 1/3 − 5)² = 17.361111, sum form (4 − 5)² = 1.
        let h = Tensor::<Flex, 1>::from_data(
            TensorData::from([2.0 / 4.0 + 2.0 / 6.0, 4.0]),
            &Default::default(),
        );
        let got = ipo_loss(h, 0.1)
            .into_data()
            .convert::<f64>()
            .to_vec::<f64>()
            .unwrap_or_default();
        assert!(
            (got[0] - 17.361111).abs() < 1e-4 && (got[1] - 1.0).abs() < 1e-5,
            "{got:?}"
        );
    }
}
