//! Step checking against the question as well as the arithmetic: the step-wise error rate of a
//! task whose solutions use only the question's numbers and their own earlier results (the
//! built-in arithmetic task; not GSM8K, whose solutions bring in constants such as 60 minutes).
//!
//! The calculator check of [`crate::steps`] sees a calculation slip (`28 * 3 = 86`) but not a
//! misread number (`28 * 5 = 140` where the question says 3) nor a skipped sentence. This check
//! walks the equations in order and gives every number a source:
//! - an equation's first operand is the running value, so it is matched first against the
//!   earlier results not yet used, then against the question's numbers not yet used; its other
//!   operands the other way round;
//! - an operand with no unused source is *ungrounded*, and its equation is wrong even when the
//!   arithmetic is right;
//! - each claimed result becomes a source for later equations;
//! - a question number that no equation used is a *missing* step, except that each ungrounded
//!   operand accounts for one unused number (a misread replaces a number, it does not skip one).
//!
//! So a solution with `k` slips of the arithmetic task's `Mistake` kinds (w2s-arith) has `k`
//! wrong or missing steps, over the gold solution's equation count.

use w2s_eval::rational::Ratio;

use crate::expr::literal_prefix;
use crate::steps::{find_steps, StepStats, Verdict};

/// The statistics of one solution to `question` under the grounded check (see the module docs).
pub fn grounded_stats(question: &str, solution: &str) -> StepStats {
    let mut unused_question = numbers(question);
    let mut unused_results: Vec<Ratio> = Vec::new();
    let mut stats = StepStats {
        solutions: 1,
        ..StepStats::default()
    };
    let mut ungrounded = 0;
    let steps = find_steps(solution);
    for step in &steps {
        let mut grounded = true;
        for (k, value) in numbers(&step.expression).into_iter().enumerate() {
            let (first, second) = if k == 0 {
                (&mut unused_results, &mut unused_question)
            } else {
                (&mut unused_question, &mut unused_results)
            };
            let found = take(first, value) || take(second, value);
            if !found {
                grounded = false;
                ungrounded += 1;
            }
        }
        match (step.verdict, grounded) {
            (Verdict::Correct, true) => stats.correct += 1,
            (Verdict::Undecidable, true) => stats.undecidable += 1,
            _ => stats.wrong += 1,
        }
        if let Some((claim, _)) = literal_prefix(&step.claim) {
            unused_results.push(claim.value);
        }
    }
    stats.steps = steps.len();
    stats.solutions_with_steps = usize::from(!steps.is_empty());
    stats.missing = unused_question.len().saturating_sub(ungrounded);
    stats.solutions_with_wrong_step = usize::from(stats.wrong + stats.missing > 0);
    stats
}

/// Removes one `value` from `pool`; whether there was one.
fn take(pool: &mut Vec<Ratio>, value: Ratio) -> bool {
    match pool.iter().position(|&v| v == value) {
        Some(i) => {
            pool.remove(i);
            true
        }
        None => false,
    }
}

/// The unsigned number literals of `text`, in order (a `-` is read as an operator).
fn numbers(text: &str) -> Vec<Ratio> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts = bytes[i].is_ascii_digit()
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'.'));
        if !starts {
            i += 1;
            continue;
        }
        match literal_prefix(&text[i..]) {
            Some((literal, len)) if len > 0 => {
                found.push(literal.value);
                i += len;
            }
            _ => i += 1,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUESTION: &str =
        "Question: Mia has 10 shells. Mia gets 3 times as many. Mia gets 2 boxes \
        with 4 each. Mia splits them into 2 equal piles and keeps one. How many shells does Mia \
        have now?\nAnswer:";

    fn rate(solution: &str) -> (usize, usize, usize, usize) {
        let s = grounded_stats(QUESTION, solution);
        (
            s.correct,
            s.wrong,
            s.missing,
            s.correct + s.wrong + s.missing,
        )
    }

    #[test]
    fn the_gold_solution_is_all_right() {
        assert_eq!(
            rate("10 * 3 = 30\n2 * 4 = 8\n30 + 8 = 38\n38 / 2 = 19\n#### 19"),
            (4, 0, 0, 4)
        );
    }

    #[test]
    fn each_kind_of_slip_is_one_wrong_step() {
        // A calculation slip, carried forward.
        assert_eq!(
            rate("10 * 3 = 32\n2 * 4 = 8\n32 + 8 = 40\n40 / 2 = 20\n#### 20"),
            (3, 1, 0, 4)
        );
        // A misread number: right arithmetic on a number the question does not have.
        assert_eq!(
            rate("10 * 3 = 30\n5 * 4 = 20\n30 + 20 = 50\n50 / 2 = 25\n#### 25"),
            (3, 1, 0, 4)
        );
        // A skipped sentence.
        assert_eq!(
            rate("2 * 4 = 8\n10 + 8 = 18\n18 / 2 = 9\n#### 9"),
            (3, 0, 1, 4)
        );
        // All three at once.
        assert_eq!(
            rate("2 * 5 = 10\n10 + 10 = 21\n21 / 7 = 3\n#### 3"),
            (0, 3, 1, 4)
        );
    }

    #[test]
    fn a_solution_without_steps_misses_every_number() {
        let s = grounded_stats(QUESTION, "#### 19");
        assert_eq!((s.steps, s.missing, s.solutions_with_wrong_step), (0, 5, 1));
    }
}
