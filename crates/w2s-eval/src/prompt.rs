//! Prompts and SFT targets in the W2SR formats (docs/method.md, "Roles and data").
//!
//! - Zero-shot, used everywhere (weak inference, SFT data, Stage II sampling, test):
//!   `Question: {q}\nAnswer:`; the SFT target follows with no leading space.
//! - k-shot: each demonstration is `Question: {q}\nAnswer: {a}\n\n`, then the zero-shot prompt.
//! - SFT targets: GSM8K (and arithmetic) is the gold solution with calculator annotations `<<...>>`
//!   removed, ending in `#### N`; MATH is `{solution} The answer is: {answer}`.

use crate::dataset::Problem;
use crate::error::{EvalError, Result};
use crate::task::TaskKind;

/// A worked example shown before the question in a k-shot prompt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Demonstration {
    pub question: String,
    pub answer: String,
}

/// `Question: {question}\nAnswer:`
pub fn zero_shot(question: &str) -> String {
    format!("Question: {question}\nAnswer:")
}

/// The demonstrations, each as `Question: {q}\nAnswer: {a}\n\n`, followed by the zero-shot prompt.
pub fn few_shot(demonstrations: &[Demonstration], question: &str) -> String {
    let mut prompt = String::new();
    for d in demonstrations {
        prompt.push_str(&format!(
            "Question: {}\nAnswer: {}\n\n",
            d.question, d.answer
        ));
    }
    prompt.push_str(&zero_shot(question));
    prompt
}

/// Remove calculator annotations: `$<<9*2=18>>18` gives `$18`. An unclosed `<<` is kept as text.
pub fn strip_calculator_annotations(solution: &str) -> String {
    let mut out = String::with_capacity(solution.len());
    let mut rest = solution;
    while let Some(open) = rest.find("<<") {
        let Some(close) = rest[open..].find(">>") else {
            break;
        };
        out.push_str(&rest[..open]);
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    out
}

/// The SFT target of a gold problem in the paper's format for `task`.
///
/// Errors when the problem has no worked solution.
pub fn sft_target(task: TaskKind, problem: &Problem) -> Result<String> {
    let solution = problem.solution.as_deref().ok_or_else(|| {
        EvalError::Invalid(format!(
            "problem {} has no gold solution for an SFT target",
            problem.id
        ))
    })?;
    Ok(match task {
        TaskKind::Gsm8k | TaskKind::Arithmetic => strip_calculator_annotations(solution),
        TaskKind::Math => format!("{solution} The answer is: {}", problem.answer),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(solution: Option<&str>, answer: &str) -> Problem {
        Problem {
            id: "1".into(),
            question: "q".into(),
            answer: answer.into(),
            solution: solution.map(String::from),
            subject: None,
            level: None,
            record: Default::default(),
        }
    }

    #[test]
    fn prompts_have_the_paper_format() {
        assert_eq!(zero_shot("What is 2+2?"), "Question: What is 2+2?\nAnswer:");
        let demos = [
            Demonstration {
                question: "a".into(),
                answer: "x\n#### 1".into(),
            },
            Demonstration {
                question: "b".into(),
                answer: "y\n#### 2".into(),
            },
        ];
        assert_eq!(
            few_shot(&demos, "c"),
            "Question: a\nAnswer: x\n#### 1\n\nQuestion: b\nAnswer: y\n#### 2\n\nQuestion: c\nAnswer:"
        );
        assert_eq!(few_shot(&[], "c"), zero_shot("c"));
    }

    #[test]
    fn sft_targets_follow_the_paper() -> Result<()> {
        let gsm = problem(Some("She makes 9 * 2 = $<<9*2=18>>18.\n#### 18"), "18");
        assert_eq!(
            sft_target(TaskKind::Gsm8k, &gsm)?,
            "She makes 9 * 2 = $18.\n#### 18"
        );
        let math = problem(Some("So $\\boxed{3}$."), "3");
        assert_eq!(
            sft_target(TaskKind::Math, &math)?,
            "So $\\boxed{3}$. The answer is: 3"
        );
        assert!(sft_target(TaskKind::Math, &problem(None, "3")).is_err());
        assert_eq!(strip_calculator_annotations("a <<1+1=2>>2 <<b"), "a 2 <<b");
        Ok(())
    }
}
