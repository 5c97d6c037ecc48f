//! Answer-consistency confidence over n sampled answers of one question (Stage II, step 2).
//!
//! The majority answer a+ is the most common normalized answer; confidence is the share of samples
//! that give it; A+ are those samples and A- all others, **empty answers included** (W2SR
//! `construct_majority_voting_data`, docs/method.md "Stage II", step 2). The empty answer can
//! itself be the majority; Stage II then skips the question.
//!
//! Tie rule: among equally common answers the one seen first wins, as Python's
//! `Counter.most_common(1)` does (insertion-ordered dict, first maximum). With samples in seed
//! order that is the answer of the lowest seed.

use std::collections::HashMap;

/// The majority vote over one question's sampled answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Consensus {
    /// Index (into the answers) of the first sample giving the majority answer a+.
    pub majority_index: usize,
    /// How many samples give a+.
    pub majority_count: usize,
    /// Number of samples voted over.
    pub total: usize,
    /// Indices of A+, the samples answering a+, in input order.
    pub positives: Vec<usize>,
    /// Indices of A-, every other sample (empty answers included), in input order.
    pub negatives: Vec<usize>,
}

impl Consensus {
    /// Vote over normalized answers (`""` for a sample without an answer). `None` when empty.
    pub fn of<S: AsRef<str>>(answers: &[S]) -> Option<Self> {
        // (count, first index) per distinct answer; small n, so a map per question is cheap.
        let mut tally: HashMap<&str, (usize, usize)> = HashMap::with_capacity(answers.len());
        let mut best: Option<(usize, usize)> = None;
        for (index, answer) in answers.iter().enumerate() {
            let entry = tally.entry(answer.as_ref()).or_insert((0, index));
            entry.0 += 1;
            let (count, first) = *entry;
            // A strictly larger count wins; an equal count wins only if seen earlier.
            let better = match best {
                None => true,
                Some((best_count, best_first)) => {
                    count > best_count || (count == best_count && first < best_first)
                }
            };
            if better {
                best = Some((count, first));
            }
        }
        let (majority_count, majority_index) = best?;
        let majority = answers[majority_index].as_ref();
        let (positives, negatives) =
            (0..answers.len()).partition(|&i| answers[i].as_ref() == majority);
        Some(Self {
            majority_index,
            majority_count,
            total: answers.len(),
            positives,
            negatives,
        })
    }

    /// Share of samples giving a+, computed as the reference does (`count / n` in floating point,
    /// so 6 of 10 is exactly the literal `0.6`).
    pub fn confidence(&self) -> f64 {
        self.majority_count as f64 / self.total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_share_and_partition() {
        let answers = ["3", "", "5", "3", "3", ""];
        let c = Consensus::of(&answers).unwrap();
        assert_eq!(answers[c.majority_index], "3");
        assert_eq!((c.majority_count, c.total), (3, 6));
        assert_eq!(c.confidence(), 0.5);
        assert_eq!(c.positives, [0, 3, 4]);
        assert_eq!(c.negatives, [1, 2, 5], "empty answers belong to A-");
    }

    #[test]
    fn ties_go_to_the_answer_seen_first() {
        // "7" and "9" both appear twice; "9" is seen first although "7" completes its count first.
        let c = Consensus::of(&["9", "7", "7", "9"]).unwrap();
        assert_eq!(c.majority_index, 0);
        let c = Consensus::of(&["", "4", "", "4"]).unwrap();
        assert_eq!(c.majority_index, 0, "the empty answer can win a tie too");
    }

    #[test]
    fn thresholds_are_exact_at_six_and_eight_of_ten() {
        let six = ["1", "1", "1", "1", "1", "1", "2", "3", "4", "5"];
        assert_eq!(Consensus::of(&six).unwrap().confidence(), 0.6);
        let eight = ["1", "1", "1", "1", "1", "1", "1", "1", "", ""];
        assert_eq!(Consensus::of(&eight).unwrap().confidence(), 0.8);
    }

    #[test]
    fn no_samples_no_consensus() {
        assert_eq!(Consensus::of::<&str>(&[]), None);
    }
}
