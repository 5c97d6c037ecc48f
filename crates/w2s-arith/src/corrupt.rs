//! Realistic wrong solutions of a problem, for supervision sets with a chosen outcome and
//! step-wise error rate (He et al. 2024; docs/method.md "Supervision quality").
//!
//! A corrupted solution is the gold solution worked through with a few [`Slip`]s, each at its own
//! step, and carried forward the way a solver who made the slip would go on:
//! - [`Mistake::WrongResult`]: a calculation slip, `28 * 3 = 86`; later steps start from 86.
//! - [`Mistake::MisreadNumber`]: an operand of the question read wrong, `28 * 5 = 140` where the
//!   question says 3; the equation itself is right.
//! - [`Mistake::DroppedStep`]: one sentence of the question ignored; its equation is missing.
//!
//! Each slip is one wrong step, so a solution with `k` slips has `k` wrong steps out of the gold
//! solution's equation count, and its final answer differs from the gold answer. The slips are
//! recorded with the solution so a caller can check what a step checker measures back.

use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::family::{ArithmeticProblem, Op};

/// Attempts at a set of slips whose values stay valid (non-negative, exact division) before
/// [`ArithmeticProblem::corrupt`] gives up.
const ATTEMPTS: usize = 400;

/// Offsets of a slip, small as real slips are.
const DELTAS: [i64; 12] = [-10, -3, -2, -1, 1, 2, 3, 4, 5, 6, 9, 10];

/// The kind of mistake a slip is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mistake {
    /// The result of the step's (last) equation is off by `delta`.
    WrongResult,
    /// The step's operand (a group add's number of groups) is off by `delta` and not a number of
    /// the question.
    MisreadNumber,
    /// The step is left out.
    DroppedStep,
}

/// One mistake at one step of a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slip {
    /// Index of the problem step.
    pub step: usize,
    /// What went wrong.
    pub mistake: Mistake,
    /// The offset of a wrong result or a misread operand; 0 for a dropped step.
    pub delta: i64,
}

/// A wrong solution and what was done to make it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorruptSolution {
    /// The solution in the gold format (equations with calculator annotations, then `#### N`).
    pub solution: String,
    /// Its final answer, never the gold answer.
    pub answer: u32,
    /// The slips, in step order; each is one wrong step.
    pub slips: Vec<Slip>,
}

/// One line of a solution: `x symbol operand = y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Equation {
    pub x: u32,
    pub symbol: char,
    pub operand: u32,
    pub y: u32,
}

impl ArithmeticProblem {
    /// A wrong solution with exactly `wrong_steps` slips at distinct steps, drawn from `rng`;
    /// `None` when `wrong_steps` is 0 or more than the steps, or when no draw kept every value a
    /// non-negative integer and changed the answer.
    pub fn corrupt<R: Rng>(&self, wrong_steps: usize, rng: &mut R) -> Option<CorruptSolution> {
        if wrong_steps == 0 || wrong_steps > self.steps.len() {
            return None;
        }
        let gold = self.answer();
        let mut order: Vec<usize> = (0..self.steps.len()).collect();
        for _ in 0..ATTEMPTS {
            order.shuffle(rng);
            let mut at = order[..wrong_steps].to_vec();
            at.sort_unstable();
            let mut dropped = false;
            let slips: Vec<Slip> = at
                .into_iter()
                .map(|step| {
                    // At most one dropped step, never a two-equation group add, never all steps.
                    let droppable =
                        !dropped && self.steps[step].op != Op::GroupAdd && self.steps.len() > 1;
                    let kinds: &[Mistake] = if droppable {
                        &[
                            Mistake::WrongResult,
                            Mistake::MisreadNumber,
                            Mistake::DroppedStep,
                        ]
                    } else {
                        &[Mistake::WrongResult, Mistake::MisreadNumber]
                    };
                    let mistake = *kinds.choose(rng).unwrap_or(&Mistake::WrongResult);
                    dropped |= mistake == Mistake::DroppedStep;
                    let delta = match mistake {
                        Mistake::DroppedStep => 0,
                        _ => *DELTAS.choose(rng).unwrap_or(&1),
                    };
                    Slip {
                        step,
                        mistake,
                        delta,
                    }
                })
                .collect();
            if let Some((equations, answer)) = self.trace(&slips) {
                if answer != gold {
                    return Some(CorruptSolution {
                        solution: render(&equations, answer),
                        answer,
                        slips,
                    });
                }
            }
        }
        None
    }

    /// The equations of the solution worked with `slips` (none: the gold solution) and its final
    /// value; `None` when a value turns negative or a division inexact, when a misread operand
    /// is a number of the question or a result, or when the number it replaces, a dropped
    /// step's operand or a value worked out after the first slip is also another number of the
    /// question or another result: a checker could not then tell where the number came from.
    pub(crate) fn trace(&self, slips: &[Slip]) -> Option<(Vec<Equation>, u32)> {
        let mut x = self.start;
        let mut equations = Vec::with_capacity(self.steps.len() + 1);
        let (mut touched, mut misread, mut slipped) = (Vec::new(), Vec::new(), false);
        for (i, step) in self.steps.iter().enumerate() {
            let slip = slips.iter().find(|s| s.step == i);
            let (mut a, b) = (step.a, step.b);
            slipped |= slip.is_some();
            match slip.map(|s| s.mistake) {
                Some(Mistake::DroppedStep) => {
                    touched.push(a);
                    continue;
                }
                Some(Mistake::MisreadNumber) => {
                    touched.push(a);
                    a = u32::try_from(i64::from(a) + slip.map_or(0, |s| s.delta)).ok()?;
                    if a < if step.op == Op::Div { 2 } else { 1 } {
                        return None;
                    }
                    misread.push(a);
                }
                _ => {}
            }
            let (symbol, operand) = match step.op {
                Op::Add => ('+', a),
                Op::Sub => ('-', a),
                Op::Mul => ('*', a),
                Op::Div => ('/', a),
                Op::GroupAdd => {
                    let c = a.checked_mul(b)?;
                    equations.push(Equation {
                        x: a,
                        symbol: '*',
                        operand: b,
                        y: c,
                    });
                    if slipped {
                        touched.push(c);
                    }
                    ('+', c)
                }
            };
            let mut y = match symbol {
                '+' => x.checked_add(operand)?,
                '-' => x.checked_sub(operand)?,
                '*' => x.checked_mul(operand)?,
                _ => (operand != 0 && x.is_multiple_of(operand)).then(|| x / operand)?,
            };
            if let Some(s) = slip.filter(|s| s.mistake == Mistake::WrongResult) {
                y = u32::try_from(i64::from(y) + s.delta).ok()?;
            }
            equations.push(Equation {
                x,
                symbol,
                operand,
                y,
            });
            if slipped {
                touched.push(y);
            }
            x = y;
        }
        // The sources a reader can take a number from: the question, and each result.
        let mut sources = self.numbers();
        sources.extend(equations.iter().map(|e| e.y));
        let count = |v: u32| sources.iter().filter(|&&w| w == v).count();
        let unique =
            misread.iter().all(|&v| count(v) == 0) && touched.iter().all(|&v| count(v) <= 1);
        unique.then_some((equations, x))
    }

    /// Every number the question states, in order: the start, then each step's operands.
    pub fn numbers(&self) -> Vec<u32> {
        let mut numbers = vec![self.start];
        for step in &self.steps {
            numbers.push(step.a);
            if step.op == Op::GroupAdd {
                numbers.push(step.b);
            }
        }
        numbers
    }
}

/// Equations with calculator annotations, one per line, then `#### answer`.
pub(crate) fn render(equations: &[Equation], answer: u32) -> String {
    let mut lines: Vec<String> = equations
        .iter()
        .map(|e| {
            let (x, s, o, y) = (e.x, e.symbol, e.operand, e.y);
            format!("{x} {s} {o} = <<{x}{s}{o}={y}>>{y}")
        })
        .collect();
    lines.push(format!("#### {answer}"));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use rand::rngs::ChaCha12Rng;
    use rand::SeedableRng;

    use super::*;
    use crate::{generate, Family, Step, Surface};

    fn problem() -> ArithmeticProblem {
        let step = |op, a, b| Step { op, a, b };
        ArithmeticProblem {
            surface: Surface::Story,
            name: 0,
            object: 0,
            start: 10,
            steps: vec![
                step(Op::Mul, 3, 0),
                step(Op::GroupAdd, 2, 4),
                step(Op::Div, 2, 0),
            ],
        }
    }

    #[test]
    fn each_mistake_changes_what_it_says() {
        let p = problem();
        let slip = |step, mistake, delta| Slip {
            step,
            mistake,
            delta,
        };
        let text = |slips: &[Slip]| p.trace(slips).map(|(e, a)| render(&e, a));
        assert_eq!(text(&[]).as_deref(), Some(p.solution().as_str()));
        assert_eq!(
            text(&[slip(0, Mistake::WrongResult, 2)]).as_deref(),
            Some("10 * 3 = <<10*3=32>>32\n2 * 4 = <<2*4=8>>8\n32 + 8 = <<32+8=40>>40\n40 / 2 = <<40/2=20>>20\n#### 20")
        );
        assert_eq!(
            text(&[slip(0, Mistake::MisreadNumber, 3)]).as_deref(),
            Some("10 * 6 = <<10*6=60>>60\n2 * 4 = <<2*4=8>>8\n60 + 8 = <<60+8=68>>68\n68 / 2 = <<68/2=34>>34\n#### 34")
        );
        assert_eq!(
            text(&[slip(0, Mistake::DroppedStep, 0)]).as_deref(),
            Some("2 * 4 = <<2*4=8>>8\n10 + 8 = <<10+8=18>>18\n18 / 2 = <<18/2=9>>9\n#### 9")
        );
        // 31 / 2 is not exact; 4 is a number of the question; the 2 of "2 boxes" could be read
        // as the 2 of "2 piles", so misreading it cannot be told from skipping the division.
        assert_eq!(text(&[slip(0, Mistake::WrongResult, 1)]), None);
        assert_eq!(text(&[slip(0, Mistake::MisreadNumber, 1)]), None);
        assert_eq!(text(&[slip(1, Mistake::MisreadNumber, 3)]), None);
    }

    #[test]
    fn corrupted_solutions_have_the_slips_asked_for_and_a_wrong_answer() {
        let mut rng = ChaCha12Rng::seed_from_u64(3);
        let problems = generate(&Family::target(3), 300, 5).unwrap();
        let mut made = 0;
        for p in &problems {
            for wrong in 1..=3 {
                if let Some(c) = p.corrupt(wrong, &mut rng) {
                    made += 1;
                    assert_eq!(c.slips.len(), wrong);
                    assert_ne!(c.answer, p.answer());
                    assert!(c.solution.ends_with(&format!("#### {}", c.answer)));
                    let drops = c
                        .slips
                        .iter()
                        .filter(|s| s.mistake == Mistake::DroppedStep)
                        .count();
                    assert!(drops <= 1);
                }
            }
        }
        // Nearly every problem can be corrupted at every count.
        assert!(made >= 850, "{made} of 900");
        assert!(problem().corrupt(0, &mut rng).is_none());
        assert!(problem().corrupt(4, &mut rng).is_none());
    }
}
