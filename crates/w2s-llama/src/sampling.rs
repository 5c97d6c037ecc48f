//! Choosing the next token from a row of logits: greedy, or sampling after temperature, top-k and
//! top-p, in the order of transformers' logits processors (`TemperatureLogitsWarper`,
//! `TopKLogitsWarper`, `TopPLogitsWarper`).

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use crate::error::{LlamaError, Result};

/// How the next token is picked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Softmax temperature; 0 picks the most likely token (greedy).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (ties with the k-th are kept, as HF does).
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches `p`.
    pub top_p: Option<f32>,
}

impl Default for Sampling {
    fn default() -> Self {
        Self::greedy()
    }
}

impl Sampling {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            top_p: None,
        }
    }

    /// Whether this picks the argmax.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// Checks the ranges of the parameters.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(LlamaError::Input(format!(
                "temperature {} must be >= 0",
                self.temperature
            )));
        }
        if self.top_k == Some(0) {
            return Err(LlamaError::Input("top_k must be at least 1".into()));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(LlamaError::Input(format!("top_p {p} must be in (0, 1]")));
            }
        }
        Ok(())
    }

    /// Picks a token id from `logits` (one row, length `v`).
    pub fn pick(&self, logits: &[f32], rng: &mut impl Rng) -> u32 {
        if self.is_greedy() {
            return argmax(logits);
        }
        let mut scaled: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, l / self.temperature))
            .collect();
        // Most likely first; stable on ties so the order is the vocabulary order.
        scaled.sort_by(|a, b| b.1.total_cmp(&a.1));
        if let Some(k) = self.top_k {
            if k < scaled.len() {
                let kth = scaled[k - 1].1;
                scaled.retain(|&(_, l)| l >= kth);
            }
        }
        let max = scaled[0].1;
        let mut probs: Vec<f32> = scaled.iter().map(|&(_, l)| (l - max).exp()).collect();
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if let Some(top_p) = self.top_p {
            // HF drops a token when the mass of the tokens at most as likely stays <= 1 - top_p;
            // equivalently it keeps the shortest most-likely prefix whose mass reaches top_p.
            let mut mass = 0.0;
            let mut keep = probs.len();
            for (i, p) in probs.iter().enumerate() {
                mass += p;
                if mass >= top_p {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep);
            let total: f32 = probs.iter().sum();
            probs.iter_mut().for_each(|p| *p /= total);
        }
        let mut u: f32 = rng.random();
        for (i, p) in probs.iter().enumerate() {
            if u < *p {
                return scaled[i].0;
            }
            u -= p;
        }
        scaled[probs.len() - 1].0
    }
}

/// Index of the largest value; the first one on ties (as `torch.argmax`).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
    }

    #[test]
    fn top_k_one_is_greedy() {
        let sampling = Sampling {
            temperature: 1.0,
            top_k: Some(1),
            top_p: None,
        };
        let mut rng = rand::rngs::ChaCha12Rng::seed_from_u64(0);
        for _ in 0..50 {
            assert_eq!(sampling.pick(&[0.1, 2.0, 1.9, -3.0], &mut rng), 1);
        }
    }

    #[test]
    fn top_p_cuts_the_tail() {
        // Probabilities ~ [0.665, 0.245, 0.09]: top_p 0.8 keeps the first two only.
        let logits = [2.0, 1.0, 0.0];
        let sampling = Sampling {
            temperature: 1.0,
            top_k: None,
            top_p: Some(0.8),
        };
        let mut rng = rand::rngs::ChaCha12Rng::seed_from_u64(1);
        let picks: Vec<u32> = (0..500).map(|_| sampling.pick(&logits, &mut rng)).collect();
        assert!(!picks.contains(&2));
        assert!(picks.contains(&0) && picks.contains(&1));
    }

    #[test]
    fn sampling_follows_the_distribution() {
        let logits = [0.0, (3.0f32).ln()];
        let sampling = Sampling {
            temperature: 1.0,
            top_k: None,
            top_p: None,
        };
        let mut rng = rand::rngs::ChaCha12Rng::seed_from_u64(2);
        let ones = (0..4000)
            .filter(|_| sampling.pick(&logits, &mut rng) == 1)
            .count();
        // Expected 3000 of 4000; 5 standard deviations is about 140.
        assert!((ones as i64 - 3000).abs() < 140, "{ones}");
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        assert!(Sampling {
            temperature: -1.0,
            top_k: None,
            top_p: None
        }
        .validate()
        .is_err());
        assert!(Sampling {
            temperature: 1.0,
            top_k: Some(0),
            top_p: None
        }
        .validate()
        .is_err());
        assert!(Sampling {
            temperature: 1.0,
            top_k: None,
            top_p: Some(0.0)
        }
        .validate()
        .is_err());
    }
}
