//! Metrics: accuracy tallies, maj@k, unbiased pass@k, PGR, and the mean and spread of a result
//! over seeds.
//!
//! - pass@k is the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models
//!   Trained on Code", eq. 1): `1 - C(n-c, k) / C(n, k)`, computed as the stable product
//!   `1 - prod_{i=n-c+1..=n} (1 - k/i)` as in their reference code.
//! - maj@k: the most frequent non-empty normalized answer among k samples (exact string match, as
//!   the W2SR consistency rule), graded against the gold answer.
//! - PGR (Burns et al. 2023): `(w2s - floor) / (ceiling - floor)`, defined only when the ceiling is
//!   above the floor (openai/weak-to-strong drops the other pairs).
//! - Spread over seeds: the sample standard deviation (n − 1 in the denominator).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::answer::{equivalent, Equivalence};
use crate::error::{EvalError, Result};
use crate::task::TaskKind;

/// Counts of graded answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Answers graded.
    pub total: usize,
    /// Answers equal to the gold answer.
    pub correct: usize,
    /// Comparisons the grader could not decide (counted as wrong).
    pub undecided: usize,
    /// Responses with no extractable answer (counted as wrong).
    pub no_answer: usize,
}

impl Tally {
    /// Count one graded answer; `pred` is the normalized prediction.
    pub fn record(&mut self, pred: &str, outcome: Equivalence) {
        self.total += 1;
        if pred.is_empty() {
            self.no_answer += 1;
        }
        match outcome {
            Equivalence::Equal => self.correct += 1,
            Equivalence::Undecided => self.undecided += 1,
            Equivalence::NotEqual => {}
        }
    }

    /// Fraction correct; 0 for an empty tally.
    pub fn accuracy(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }
}

/// The most frequent non-empty answer; ties go to the answer seen first. `None` when all are empty.
pub fn majority<S: AsRef<str>>(answers: &[S]) -> Option<&str> {
    let mut counts: HashMap<&str, (usize, usize)> = HashMap::new();
    for (i, a) in answers.iter().enumerate() {
        let a = a.as_ref();
        if !a.is_empty() {
            counts.entry(a).or_insert((0, i)).0 += 1;
        }
    }
    counts
        .into_iter()
        .max_by(|(_, (c1, i1)), (_, (c2, i2))| c1.cmp(c2).then(i2.cmp(i1)))
        .map(|(a, _)| a)
}

/// maj@k: grade the majority of `answers` (normalized) against `gold` (normalized).
pub fn majority_correct<S: AsRef<str>>(task: TaskKind, answers: &[S], gold: &str) -> Equivalence {
    match majority(answers) {
        Some(m) => equivalent(task, m, gold),
        None => Equivalence::NotEqual,
    }
}

/// Unbiased pass@k from `n` samples of which `c` are correct.
///
/// Errors when `k` is 0 or larger than `n`, or `c > n`.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> Result<f64> {
    if k == 0 || k > n || c > n {
        return Err(EvalError::Invalid(format!(
            "pass@k needs 0 < k <= n and c <= n (n={n}, c={c}, k={k})"
        )));
    }
    if n - c < k {
        return Ok(1.0);
    }
    let miss: f64 = (n - c + 1..=n).map(|i| 1.0 - k as f64 / i as f64).product();
    Ok(1.0 - miss)
}

/// Performance gap recovered; `None` unless `ceiling > floor`.
pub fn pgr(floor: f64, weak_to_strong: f64, ceiling: f64) -> Option<f64> {
    (ceiling > floor).then(|| (weak_to_strong - floor) / (ceiling - floor))
}

/// Mean and sample standard deviation of `values` (0 for a single value); `None` for none.
pub fn mean_and_std(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = if values.len() > 1 {
        values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Some((mean, variance.sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn pass_at_k_matches_hand_computed_values() -> Result<()> {
        // n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10.
        assert!(close(pass_at_k(5, 2, 2)?, 0.7));
        // n=10, c=1, k=1: plain accuracy 1/10.
        assert!(close(pass_at_k(10, 1, 1)?, 0.1));
        // n=10, c=3, k=5: 1 - C(7,5)/C(10,5) = 1 - 21/252.
        assert!(close(pass_at_k(10, 3, 5)?, 1.0 - 21.0 / 252.0));
        assert!(close(pass_at_k(4, 0, 2)?, 0.0));
        assert!(close(pass_at_k(4, 3, 2)?, 1.0));
        // Large n stays finite where the binomials overflow: 1 - C(100,10)/C(200,10).
        let exact = 1.0
            - (0..10)
                .map(|i| (100 - i) as f64 / (200 - i) as f64)
                .product::<f64>();
        assert!(close(pass_at_k(200, 100, 10)?, exact));
        assert!(pass_at_k(3, 1, 4).is_err());
        assert!(pass_at_k(3, 4, 1).is_err());
        assert!(pass_at_k(3, 1, 0).is_err());
        Ok(())
    }

    #[test]
    fn majority_skips_empty_answers_and_breaks_ties_by_first_seen() {
        assert_eq!(majority(&["1", "2", "2", ""]), Some("2"));
        assert_eq!(majority(&["3", "", "4", "4", "3"]), Some("3"));
        assert_eq!(majority(&["", ""]), None);
        assert_eq!(majority::<&str>(&[]), None);
        assert!(majority_correct(TaskKind::Gsm8k, &["5", "7", "5.0"], "5").is_equal());
        assert!(!majority_correct(TaskKind::Gsm8k, &["7", "7", "5"], "5").is_equal());
    }

    #[test]
    fn pgr_only_where_the_ceiling_is_above_the_floor() {
        assert!(pgr(0.2, 0.5, 0.6).is_some_and(|p| close(p, 0.75)));
        assert_eq!(pgr(0.2, 0.1, 0.6).map(|p| p < 0.0), Some(true));
        assert_eq!(pgr(0.6, 0.7, 0.6), None);
        assert_eq!(pgr(0.6, 0.7, 0.5), None);
    }

    #[test]
    fn spread_is_the_sample_standard_deviation() {
        // Deviations from the mean 5: -3, -1, -1, -1, 0, 0, 2, 4; squares sum to 32; n - 1 = 7.
        let values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert!(mean_and_std(&values)
            .is_some_and(|(mean, std)| close(mean, 5.0) && close(std, (32.0f64 / 7.0).sqrt())));
        assert_eq!(mean_and_std(&[0.25]), Some((0.25, 0.0)));
        assert_eq!(mean_and_std(&[]), None);
    }

    #[test]
    fn tally_counts_undecided_and_missing_answers() {
        let mut t = Tally::default();
        t.record("5", Equivalence::Equal);
        t.record("", Equivalence::NotEqual);
        t.record("x", Equivalence::Undecided);
        assert_eq!(
            t,
            Tally {
                total: 3,
                correct: 1,
                undecided: 1,
                no_answer: 1
            }
        );
        assert!(close(t.accuracy(), 1.0 / 3.0));
        assert_eq!(Tally::default().accuracy(), 0.0);
    }
}
