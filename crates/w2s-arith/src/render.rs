//! Text of a problem: the question in its surface, the GSM8K-style gold solution, and the
//! [`Problem`] record written to the task's JSONL files.

use serde_json::Value;

use super::corrupt::render;
use super::family::{ArithmeticProblem, Op, Step, Surface};
use w2s_eval::Problem;

/// People of the stories.
pub(crate) const NAMES: [&str; 10] = [
    "Mia", "Tom", "Ana", "Ben", "Lily", "Sam", "Zoe", "Max", "Eva", "Leo",
];

/// Things they count.
pub(crate) const OBJECTS: [&str; 10] = [
    "apples", "shells", "coins", "cards", "marbles", "stickers", "pens", "books", "stamps", "beads",
];

/// Every word the question and solution templates use (names and objects aside), for the
/// tokenizer's vocabulary.
pub(crate) const TEMPLATE_WORDS: &str = "has buys more finds gives away loses gets times as many \
    ends up with bags each boxes of splits them into equal piles and keeps one shares equally in groups group \
    the How does have now Start Add Subtract Multiply by Divide What is result Question Answer";

impl ArithmeticProblem {
    /// The question text.
    pub fn question(&self) -> String {
        let mut x = self.start;
        let mut parts = Vec::with_capacity(self.steps.len() + 2);
        match self.surface {
            Surface::Story => {
                let (who, what) = (NAMES[self.name], OBJECTS[self.object]);
                parts.push(format!("{who} has {x} {what}."));
                for (i, step) in self.steps.iter().enumerate() {
                    parts.push(story_sentence(
                        step,
                        who,
                        what,
                        (x as usize + i).is_multiple_of(2),
                    ));
                    x = next(step, x);
                }
                parts.push(format!("How many {what} does {who} have now?"));
            }
            Surface::Instructions => {
                parts.push(format!("Start with {x}."));
                for step in &self.steps {
                    parts.push(instruction(step));
                }
                parts.push("What is the result?".into());
            }
        }
        parts.join(" ")
    }

    /// The gold solution: one line per equation with its calculator annotation, then `#### N`.
    /// A hand-built problem whose division is inexact or whose values overflow (never one from
    /// [`generate`](super::generate)) has no valid working and renders as `#### 0`.
    pub fn solution(&self) -> String {
        let (equations, answer) = self.trace(&[]).unwrap_or_default();
        render(&equations, answer)
    }

    /// The problem as a GSM8K-shaped record: `{"id", "question", "answer": solution}`.
    pub fn to_problem(&self, id: impl Into<String>) -> Problem {
        let id = id.into();
        let (question, solution) = (self.question(), self.solution());
        let mut record = serde_json::Map::new();
        record.insert("id".into(), Value::String(id.clone()));
        record.insert("question".into(), Value::String(question.clone()));
        record.insert("answer".into(), Value::String(solution.clone()));
        record.insert("steps".into(), Value::from(self.steps.len()));
        Problem {
            id,
            question,
            answer: self.answer().to_string(),
            solution: Some(solution),
            subject: None,
            level: Some(self.steps.len() as u32),
            record,
        }
    }
}

fn next(step: &Step, x: u32) -> u32 {
    match step.op {
        Op::Add => x + step.a,
        Op::Sub => x - step.a,
        Op::Mul => x * step.a,
        Op::Div => x / step.a,
        Op::GroupAdd => x + step.a * step.b,
    }
}

fn story_sentence(step: &Step, who: &str, what: &str, first: bool) -> String {
    let (a, b) = (step.a, step.b);
    match (step.op, first) {
        (Op::Add, true) => format!("{who} buys {a} more."),
        (Op::Add, false) => format!("{who} finds {a} more {what}."),
        (Op::Sub, true) => format!("{who} gives away {a}."),
        (Op::Sub, false) => format!("{who} loses {a} {what}."),
        (Op::Mul, true) => format!("{who} gets {a} times as many."),
        (Op::Mul, false) => format!("{who} ends up with {a} times as many."),
        (Op::Div, true) => format!("{who} splits them into {a} equal piles and keeps one."),
        (Op::Div, false) => format!("{who} shares them equally in {a} groups and keeps one group."),
        (Op::GroupAdd, true) => format!("{who} buys {a} bags of {b}."),
        (Op::GroupAdd, false) => format!("{who} gets {a} boxes with {b} each."),
    }
}

fn instruction(step: &Step) -> String {
    let (a, b) = (step.a, step.b);
    match step.op {
        Op::Add => format!("Add {a}."),
        Op::Sub => format!("Subtract {a}."),
        Op::Mul => format!("Multiply by {a}."),
        Op::Div => format!("Divide by {a}."),
        Op::GroupAdd => format!("Add {a} groups of {b}."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{generate, Family};
    use w2s_eval::extract_normalized;
    use w2s_eval::prompt::sft_target;
    use w2s_eval::TaskKind;

    #[test]
    fn a_problem_reads_and_solves_as_written() {
        let p = ArithmeticProblem {
            surface: Surface::Story,
            name: 0,
            object: 1,
            start: 10,
            steps: vec![
                Step {
                    op: Op::Mul,
                    a: 3,
                    b: 0,
                },
                Step {
                    op: Op::GroupAdd,
                    a: 2,
                    b: 4,
                },
                Step {
                    op: Op::Div,
                    a: 2,
                    b: 0,
                },
            ],
        };
        assert_eq!(
            p.question(),
            "Mia has 10 shells. Mia gets 3 times as many. Mia gets 2 boxes with 4 each. \
             Mia splits them into 2 equal piles and keeps one. How many shells does Mia have now?"
        );
        assert_eq!(
            p.solution(),
            "10 * 3 = <<10*3=30>>30\n2 * 4 = <<2*4=8>>8\n30 + 8 = <<30+8=38>>38\n38 / 2 = <<38/2=19>>19\n#### 19"
        );
        let chain = ArithmeticProblem {
            surface: Surface::Instructions,
            ..p.clone()
        };
        assert_eq!(
            chain.question(),
            "Start with 10. Multiply by 3. Add 2 groups of 4. Divide by 2. What is the result?"
        );
        assert_eq!(chain.solution(), p.solution());
    }

    #[test]
    fn records_grade_like_gsm8k() -> anyhow::Result<()> {
        for (i, p) in generate(&Family::target(3), 200, 11)?.iter().enumerate() {
            let problem = p.to_problem(format!("t{i}"));
            let target = sft_target(TaskKind::Arithmetic, &problem)?;
            assert!(!target.contains("<<"));
            assert_eq!(
                extract_normalized(TaskKind::Arithmetic, &target),
                problem.answer
            );
        }
        Ok(())
    }
}
