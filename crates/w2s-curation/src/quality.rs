//! Supervision quality of a curated set, measured with gold answers that training never sees
//! (docs/method.md "Supervision quality" and the reporting paragraph of "Stage II").
//!
//! - Outcome error rate (He et al. 2024): share of examples whose final answer is not the gold
//!   answer. An example without an answer is wrong; a comparison the grader cannot decide counts
//!   as wrong too and is reported apart, never silently dropped.
//! - Step-wise error rate: wrong (and missing) / decided steps over the whole set, by the
//!   calculator check of [`crate::steps`] or the [grounded](crate::grounded) check ([`StepCheck`]);
//!   the paper measures it by hand on 50 problems, w2s exactly on every arithmetic step.
//! - For preference pairs: the share whose chosen, and whose rejected, answer is correct (the
//!   figures the W2SR paper reports: GSM8K chosen 80.0%, rejected 6.0%).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use w2s_eval::answer::{equivalent, extract_normalized, normalize, Equivalence};
use w2s_eval::TaskKind;

use crate::error::{CurationError, Result};
use crate::grounded::grounded_stats;
use crate::record::{field_text, Extra, PreferencePair, SftExample};
use crate::steps::StepStats;

/// How the steps of a solution are checked for the step-wise error rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepCheck {
    /// The arithmetic of each step ([`crate::steps`]); right for any task.
    #[default]
    Calculator,
    /// The arithmetic and where each number comes from ([`crate::grounded`]), which also sees
    /// misread numbers and skipped steps; only for tasks whose solutions use nothing but the
    /// question's numbers.
    Grounded,
}

impl StepCheck {
    /// The check a task's solutions allow: grounded for the built-in arithmetic task, the
    /// calculator for the rest.
    pub fn for_task(task: TaskKind) -> Self {
        match task {
            TaskKind::Arithmetic => StepCheck::Grounded,
            _ => StepCheck::Calculator,
        }
    }

    /// The step statistics of `solution` to `prompt`. The grounded check reads the question
    /// from the prompt's last `Question:` on, so a few-shot prompt's demonstrations do not count
    /// as numbers the solution should have used.
    pub fn stats(self, prompt: &str, solution: &str) -> StepStats {
        match self {
            StepCheck::Calculator => StepStats::of_solution(solution),
            StepCheck::Grounded => {
                let question = prompt.rfind("Question:").map_or(prompt, |i| &prompt[i..]);
                grounded_stats(question, solution)
            }
        }
    }
}

/// What the gold field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GoldFormat {
    /// The final answer itself (`"72"`, `"\\frac{1}{2}"`).
    #[default]
    Answer,
    /// A full gold solution (GSM8K's `answer` field), whose final answer is extracted.
    Solution,
}

impl fmt::Display for GoldFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GoldFormat::Answer => "answer",
            GoldFormat::Solution => "solution",
        })
    }
}

impl FromStr for GoldFormat {
    type Err = CurationError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "answer" => Ok(GoldFormat::Answer),
            "solution" => Ok(GoldFormat::Solution),
            _ => Err(CurationError::Config(format!(
                "gold format {s:?} (expected answer or solution)"
            ))),
        }
    }
}

/// Where the gold answer of a record is and how to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gold {
    /// Task, for extraction and equivalence.
    pub task: TaskKind,
    /// Name of the field holding the gold answer or solution.
    pub field: String,
    /// What the field holds.
    pub format: GoldFormat,
}

impl Gold {
    /// The normalized gold answer of a record.
    ///
    /// # Errors
    /// [`CurationError::MissingField`] when the field is absent, not text or a number, or yields
    /// no answer.
    fn answer(&self, extra: &Extra, index: usize) -> Result<String> {
        let missing = || CurationError::MissingField {
            id: field_text(extra, "id").unwrap_or_else(|| format!("#{index}")),
            field: self.field.clone(),
        };
        let raw = field_text(extra, &self.field).ok_or_else(missing)?;
        let answer = match self.format {
            GoldFormat::Answer => normalize(self.task, &raw),
            GoldFormat::Solution => extract_normalized(self.task, &raw),
        };
        if answer.is_empty() {
            return Err(missing());
        }
        Ok(answer)
    }

    /// Grade a response against a normalized gold answer; no answer is `NotEqual`.
    fn grade(&self, response: &str, gold: &str) -> Equivalence {
        let pred = extract_normalized(self.task, response);
        if pred.is_empty() {
            Equivalence::NotEqual
        } else {
            equivalent(self.task, &pred, gold)
        }
    }
}

/// Size, outcome error rate and step-wise error rate of an SFT set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    /// Examples in the set.
    pub size: usize,
    /// Examples whose answer equals the gold answer.
    pub correct: usize,
    /// Examples without an extractable answer (counted as errors).
    pub no_answer: usize,
    /// Examples whose comparison with gold was undecidable (counted as errors).
    pub undecided: usize,
    /// (size - correct) / size; `None` for an empty set.
    pub outcome_error_rate: Option<f64>,
    /// Arithmetic steps over the whole set.
    pub steps: StepStats,
    /// Wrong / decided steps; `None` when no step was decided.
    pub step_error_rate: Option<f64>,
}

/// Measure an SFT set, its steps with `check`.
///
/// # Errors
/// [`CurationError::MissingField`] for the first example without a usable gold answer.
pub fn sft_quality(
    examples: &[SftExample],
    gold: &Gold,
    check: StepCheck,
) -> Result<QualityReport> {
    let mut report = QualityReport {
        size: examples.len(),
        ..QualityReport::default()
    };
    for (index, example) in examples.iter().enumerate() {
        let gold_answer = gold.answer(&example.extra, index)?;
        if extract_normalized(gold.task, &example.completion).is_empty() {
            report.no_answer += 1;
        }
        match gold.grade(&example.completion, &gold_answer) {
            Equivalence::Equal => report.correct += 1,
            Equivalence::NotEqual => {}
            Equivalence::Undecided => report.undecided += 1,
        }
        report
            .steps
            .merge(&check.stats(&example.prompt, &example.completion));
    }
    report.outcome_error_rate =
        (report.size > 0).then(|| (report.size - report.correct) as f64 / report.size as f64);
    report.step_error_rate = report.steps.error_rate();
    Ok(report)
}

/// How often each side of a set of preference pairs is correct.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PairQuality {
    /// Pairs in the set.
    pub pairs: usize,
    /// Pairs whose chosen answer is correct.
    pub chosen_correct: usize,
    /// Pairs whose rejected answer is correct.
    pub rejected_correct: usize,
    /// Comparisons with gold that were undecidable (both sides together; counted as incorrect).
    pub undecided: usize,
    /// Arithmetic steps of the chosen responses.
    pub chosen_steps: StepStats,
    /// Arithmetic steps of the rejected responses.
    pub rejected_steps: StepStats,
}

impl PairQuality {
    /// chosen_correct / pairs.
    pub fn chosen_accuracy(&self) -> Option<f64> {
        (self.pairs > 0).then(|| self.chosen_correct as f64 / self.pairs as f64)
    }

    /// rejected_correct / pairs.
    pub fn rejected_accuracy(&self) -> Option<f64> {
        (self.pairs > 0).then(|| self.rejected_correct as f64 / self.pairs as f64)
    }
}

/// Measure a set of preference pairs, their steps with `check`.
///
/// # Errors
/// [`CurationError::MissingField`] for the first pair without a usable gold answer.
pub fn pair_quality(
    pairs: &[PreferencePair],
    gold: &Gold,
    check: StepCheck,
) -> Result<PairQuality> {
    let mut quality = PairQuality {
        pairs: pairs.len(),
        ..PairQuality::default()
    };
    for (index, pair) in pairs.iter().enumerate() {
        let gold_answer = gold.answer(&pair.extra, index)?;
        for (response, correct, steps) in [
            (
                &pair.chosen,
                &mut quality.chosen_correct,
                &mut quality.chosen_steps,
            ),
            (
                &pair.rejected,
                &mut quality.rejected_correct,
                &mut quality.rejected_steps,
            ),
        ] {
            match gold.grade(response, &gold_answer) {
                Equivalence::Equal => *correct += 1,
                Equivalence::NotEqual => {}
                Equivalence::Undecided => quality.undecided += 1,
            }
            steps.merge(&check.stats(&pair.prompt, response));
        }
    }
    Ok(quality)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grounded_check_reads_only_the_last_question_of_a_few_shot_prompt() {
        let solution = "10 * 3 = 30\n#### 30";
        let zero_shot = "Question: Mia has 10 shells. Mia gets 3 times as many.\nAnswer:";
        let few_shot = format!("Question: Tom has 7 pens. Tom buys 5 more.\nAnswer: 7 + 5 = 12\n#### 12\n\n{zero_shot}");
        for prompt in [zero_shot, few_shot.as_str()] {
            let s = StepCheck::Grounded.stats(prompt, solution);
            assert_eq!((s.correct, s.wrong, s.missing), (1, 0, 0), "{prompt}");
        }
    }
}
