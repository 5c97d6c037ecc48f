//! Step-level verification of arithmetic reasoning and the step-wise error rate (docs/method.md
//! "Supervision quality"; He et al. 2024 measure it by hand on 50 problems, w2s measures the
//! arithmetic steps exactly, on every solution).
//!
//! What counts as a step:
//! - **Calculator annotations** `<<48/2=24>>` (GSM8K's gold format): each annotation whose content
//!   holds a `=` is one step, the expression left of the first `=` against the value right of it.
//!   A solution with at least one annotation is judged by its annotations only, because its prose
//!   repeats them (`48/2 = <<48/2=24>>24`).
//! - Otherwise, **inline equations** in the prose: every `=` (not part of `==`, `<=`, `>=`, `!=`)
//!   with an arithmetic expression of at least one binary operator on its left and a number on its
//!   right. The left expression is the longest well-formed tail of the run of arithmetic
//!   characters before the `=` (digits, spaces, `+ - * / × ÷ ^ ( ) % $`, `x` between numbers, `.`
//!   before a digit, `,` before a three-digit group); the run stops at a line break, a letter or
//!   the previous `=`. So `so 5 * 4 = 20 + 3 = 23` gives the steps `5 * 4 = 20` and `20 + 3 = 23`,
//!   reading a chain as a running total. The right side is one number (`$`, sign, thousands
//!   separators, decimals, `%`), or a fraction `a/b` written without spaces that does not start a
//!   further chained step.
//!
//! The finder prefers missing a step to inventing one. It skips an equation when the expression
//! would have to be cut out of a longer run of digits (`16,0000/10`, `8 x 1 1/2` read as `1/2`),
//! when an operator stands before it (`60 students x 2/3 = 40` means 2/3 of 60), when a letter
//! is glued to the claimed number (`100/5 = 5A/5`), and when a space-separated thousands group
//! follows the claim (`= 18 000`).
//!
//! A step is [`Verdict::Correct`] when the claim equals the exact value, or when the claim is a
//! decimal that is the value rounded to the places it shows (`10/3 = 3.33`). A claim with `%` is
//! read both ways prose uses it: `1/3 = 33.33%` and `(75/100)*100 = 75%` are both correct.
//! [`Verdict::Wrong`]
//! otherwise, including a division by zero; [`Verdict::Undecidable`] when exact `i128` arithmetic
//! overflows or the claim does not parse. The step-wise error rate is wrong / (correct + wrong):
//! undecidable steps are counted apart, not guessed.

use std::ops::Range;

use serde::{Deserialize, Serialize};
use w2s_eval::rational::Ratio;

use crate::expr::{evaluate, literal_prefix, ExprError, Literal};

/// Longest run of arithmetic characters considered left of an inline `=`, in bytes; longer runs
/// are cut, which keeps the search linear in the solution length.
const MAX_LEFT_RUN: usize = 160;

/// Where a step was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// A `<<expr=value>>` calculator annotation.
    Annotation,
    /// An `expr = value` equation in the prose.
    Inline,
}

/// The judgement of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The claimed value is the exact value (or its rounding to the places shown).
    Correct,
    /// The claimed value is not the value of the expression.
    Wrong,
    /// Exact arithmetic overflowed or the claim is not a number.
    Undecidable,
}

/// One arithmetic step of a solution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Annotation or inline equation.
    pub kind: StepKind,
    /// Byte range of the step in the solution text.
    pub span: Range<usize>,
    /// The expression, as written.
    pub expression: String,
    /// The claimed value, as written.
    pub claim: String,
    /// Whether the claim is right.
    pub verdict: Verdict,
}

/// Judge `expression = claim` (`claim` may itself be an expression; then only exact equality
/// counts).
pub fn verify(expression: &str, claim: &str) -> Verdict {
    let value = match evaluate(expression) {
        Ok(evaluation) => evaluation.value,
        Err(ExprError::DivisionByZero) => return Verdict::Wrong,
        Err(ExprError::Overflow | ExprError::Syntax) => return Verdict::Undecidable,
    };
    match literal_prefix(claim) {
        Some((literal, len)) if claim[len..].trim().is_empty() => judge(value, literal),
        _ => match evaluate(claim) {
            Ok(evaluation) if evaluation.value == value => Verdict::Correct,
            Ok(_) => Verdict::Wrong,
            Err(_) => Verdict::Undecidable,
        },
    }
}

/// Exact match, or `claim` is `value` rounded to `claim.decimals` places:
/// `|value - claim| * 2 * 10^decimals <= 1`. A percentage may also state the value itself.
fn judge(value: Ratio, claim: Literal) -> Verdict {
    let as_written = claim.percent.then(|| {
        claim
            .value
            .checked_mul(Ratio::integer(100))
            .map(|v| Literal {
                value: v,
                decimals: claim.decimals.saturating_sub(2),
                percent: false,
            })
    });
    match (judge_literal(value, claim), as_written) {
        (Verdict::Correct, _) => Verdict::Correct,
        (verdict, Some(Ok(number))) => match judge_literal(value, number) {
            Verdict::Correct => Verdict::Correct,
            _ => verdict,
        },
        (verdict, _) => verdict,
    }
}

fn judge_literal(value: Ratio, claim: Literal) -> Verdict {
    if value == claim.value {
        return Verdict::Correct;
    }
    if claim.decimals == 0 {
        return Verdict::Wrong;
    }
    let scaled = value
        .checked_sub(claim.value)
        .and_then(Ratio::abs)
        .and_then(|d| d.checked_mul(Ratio::integer(2)))
        .and_then(|d| {
            Ratio::integer(10)
                .pow(i128::from(claim.decimals))
                .and_then(|s| d.checked_mul(s))
        });
    match scaled {
        Ok(error) if error <= Ratio::integer(1) => Verdict::Correct,
        Ok(_) => Verdict::Wrong,
        Err(_) => Verdict::Undecidable,
    }
}

/// Every step of `solution`, in text order (annotations if it has any, else inline equations).
pub fn find_steps(solution: &str) -> Vec<Step> {
    let annotations = annotation_steps(solution);
    if annotations.is_empty() {
        inline_steps(solution)
    } else {
        annotations
    }
}

fn annotation_steps(text: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find("<<").map(|i| from + i) {
        let Some(close) = text[open + 2..].find(">>").map(|i| open + 2 + i) else {
            break;
        };
        let content = &text[open + 2..close];
        if let Some((expression, claim)) = content.split_once('=') {
            steps.push(Step {
                kind: StepKind::Annotation,
                span: open..close + 2,
                expression: expression.to_string(),
                claim: claim.to_string(),
                verdict: verify(expression, claim),
            });
        }
        from = close + 2;
    }
    steps
}

fn inline_steps(text: &str) -> Vec<Step> {
    let bytes = text.as_bytes();
    let mut steps = Vec::new();
    for (eq, _) in text.match_indices('=') {
        let before = eq.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(eq + 1).copied();
        if matches!(before, Some(b'=' | b'<' | b'>' | b'!')) || after == Some(b'=') {
            continue;
        }
        let Some(expression) = left_expression(text, eq) else {
            continue;
        };
        let Some((claim, claim_end)) = right_claim(text, eq + 1) else {
            continue;
        };
        let start = eq - (text[..eq].len() - text[..eq].trim_end().len()) - expression.len();
        let mut step = Step {
            kind: StepKind::Inline,
            span: start..claim_end,
            expression: expression.to_string(),
            claim: claim.to_string(),
            verdict: verify(expression, claim),
        };
        if step.verdict != Verdict::Correct {
            // `8*2 + 4*5 = 16 + 20 = 36` expands instead of keeping a running total.
            if let Some((expanded, end)) = right_expression(text, eq + 1, claim_end) {
                if verify(expression, expanded) == Verdict::Correct {
                    step.claim = expanded.to_string();
                    step.span.end = end;
                    step.verdict = Verdict::Correct;
                }
            }
        }
        steps.push(step);
    }
    steps
}

/// The longest well-formed expression with a binary operator that ends just before `eq`
/// (trailing spaces excluded).
fn left_expression(text: &str, eq: usize) -> Option<&str> {
    let head = text[..eq].trim_end();
    let start = left_run_start(head);
    let run = &head[start..];
    // Candidate starts: each position where a token may begin after a non-token character.
    let candidate = run
        .char_indices()
        .filter(|&(i, c)| {
            let prev = run[..i].chars().next_back();
            (c.is_ascii_digit() || matches!(c, '(' | '$' | '-' | '.'))
                && !prev.is_some_and(|p| p.is_ascii_digit() || matches!(p, '.' | ',' | '$'))
        })
        .map(|(i, _)| &run[i..])
        .find(|candidate| match evaluate(candidate) {
            Ok(evaluation) => evaluation.operators > 0,
            Err(ExprError::Syntax) => false,
            // Well formed but without an exact value: still a step (wrong or undecidable), as
            // long as it applies an operator, which anything that divides or overflows does
            // unless it is one huge literal.
            Err(_) => candidate.contains(|c: char| "+-*/×÷^x%".contains(c)),
        })?;
    let cut = &head[..head.len() - candidate.len()];
    let cut_off_digits = cut[start..].contains(|c: char| c.is_ascii_digit());
    let before = cut.trim_end();
    let operator_before = before.ends_with(['+', '-', '*', '/', '×', '÷', '^'])
        || ((before.ends_with('x') || before.ends_with('X'))
            && before[..before.len() - 1].ends_with(char::is_whitespace));
    let number_cut = before.len() == cut.len() && before.ends_with(['.', ',']);
    (!cut_off_digits && !operator_before && !number_cut).then_some(candidate)
}

/// Byte index where the run of arithmetic characters ending at `head`'s end begins.
fn left_run_start(head: &str) -> usize {
    let bytes = head.as_bytes();
    let mut start = head.len();
    for (i, c) in head.char_indices().rev() {
        if head.len() - i > MAX_LEFT_RUN || c == '\n' {
            break;
        }
        let next = bytes.get(i + c.len_utf8()).copied();
        let allowed = match c {
            '0'..='9' | '+' | '-' | '*' | '/' | '^' | '(' | ')' | '%' | '$' | '×' | '÷' => true,
            ' ' | '\t' => true,
            '.' => next.is_some_and(|b| b.is_ascii_digit()),
            ',' => {
                let rest = &bytes[i + 1..];
                i > 0
                    && bytes[i - 1].is_ascii_digit()
                    && rest.len() >= 3
                    && rest[..3].iter().all(u8::is_ascii_digit)
                    && !rest.get(3).is_some_and(u8::is_ascii_digit)
            }
            'x' | 'X' => {
                let left = head[..i].trim_end().chars().next_back();
                let right = head[i + 1..].trim_start().chars().next();
                left.is_some_and(|l| l.is_ascii_digit() || l == ')' || l == '%')
                    && right.is_some_and(|r| r.is_ascii_digit() || r == '(' || r == '$')
            }
            _ => false,
        };
        if !allowed {
            break;
        }
        start = i;
    }
    start
}

/// The claimed value right of the `=` at `from - 1`, and the byte index where it ends.
fn right_claim(text: &str, from: usize) -> Option<(&str, usize)> {
    let rest = &text[from..];
    let (_, len) = literal_prefix(rest)?;
    let mut end = from + len;
    // `= 1/2` is a fraction claim unless it is the start of a chained step (`= 20/2 = 10`).
    let tail = &text[end..];
    if let Some(denominator) = tail.strip_prefix('/') {
        let digits = denominator.bytes().take_while(u8::is_ascii_digit).count();
        let after = denominator[digits..].trim_start_matches([' ', '\t']);
        if digits > 0 && !after.starts_with('=') {
            end += 1 + digits;
        }
    }
    let after = &text[end..];
    let glued = after.chars().next().is_some_and(char::is_alphanumeric);
    let group = after.strip_prefix(' ').is_some_and(|g| {
        g.len() >= 3
            && g.as_bytes()[..3].iter().all(u8::is_ascii_digit)
            && !g.as_bytes().get(3).is_some_and(u8::is_ascii_digit)
    });
    if glued || group {
        return None;
    }
    let claim = text[from..end].trim();
    Some((claim, end))
}

/// When an operator follows the claimed number, the longest expression right of the `=` (up to
/// the next `=` or line break) and the byte index where it ends.
fn right_expression(text: &str, from: usize, claim_end: usize) -> Option<(&str, usize)> {
    let after_claim = text[claim_end..].trim_start_matches([' ', '\t']);
    if !after_claim.starts_with(['+', '-', '*', '/', 'x', '×', '÷', '^']) {
        return None;
    }
    let limit = text[from..]
        .find(['=', '\n'])
        .map_or(text.len(), |i| from + i)
        .min(from + MAX_LEFT_RUN);
    let segment = text.get(from..limit)?;
    segment
        .char_indices()
        .rev()
        .filter(|&(_, c)| c.is_ascii_digit() || c == ')' || c == '%')
        .map(|(i, c)| (i + c.len_utf8(), &segment[..i + c.len_utf8()]))
        .find(|(_, candidate)| evaluate(candidate).is_ok_and(|e| e.operators > 0))
        .map(|(end, candidate)| (candidate.trim(), from + end))
}

/// Step counts of one solution or a set, and the step-wise error rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepStats {
    /// Solutions counted.
    pub solutions: usize,
    /// Solutions with at least one step.
    pub solutions_with_steps: usize,
    /// Steps found.
    pub steps: usize,
    /// Steps judged correct.
    pub correct: usize,
    /// Steps judged wrong.
    pub wrong: usize,
    /// Steps that exact arithmetic could not decide.
    pub undecidable: usize,
    /// Steps a solution left out (only the [grounded](crate::grounded) check finds them; the
    /// calculator check leaves this 0).
    #[serde(default)]
    pub missing: usize,
    /// Solutions with at least one wrong or missing step.
    pub solutions_with_wrong_step: usize,
}

impl StepStats {
    /// The statistics of one solution.
    pub fn of_solution(solution: &str) -> Self {
        let steps = find_steps(solution);
        let count = |v: Verdict| steps.iter().filter(|s| s.verdict == v).count();
        let wrong = count(Verdict::Wrong);
        Self {
            solutions: 1,
            solutions_with_steps: usize::from(!steps.is_empty()),
            steps: steps.len(),
            correct: count(Verdict::Correct),
            wrong,
            undecidable: count(Verdict::Undecidable),
            missing: 0,
            solutions_with_wrong_step: usize::from(wrong > 0),
        }
    }

    /// The statistics of a set of solutions.
    pub fn of_set<S: AsRef<str>>(solutions: impl IntoIterator<Item = S>) -> Self {
        solutions.into_iter().fold(Self::default(), |mut total, s| {
            total.merge(&Self::of_solution(s.as_ref()));
            total
        })
    }

    /// Add another solution's or set's counts.
    pub fn merge(&mut self, other: &Self) {
        self.solutions += other.solutions;
        self.solutions_with_steps += other.solutions_with_steps;
        self.steps += other.steps;
        self.correct += other.correct;
        self.wrong += other.wrong;
        self.undecidable += other.undecidable;
        self.missing += other.missing;
        self.solutions_with_wrong_step += other.solutions_with_wrong_step;
    }

    /// (wrong + missing) / (correct + wrong + missing); `None` when no step was decided.
    pub fn error_rate(&self) -> Option<f64> {
        let errors = self.wrong + self.missing;
        let decided = self.correct + errors;
        (decided > 0).then(|| errors as f64 / decided as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(text: &str) -> Vec<(String, String, Verdict)> {
        find_steps(text)
            .into_iter()
            .map(|s| {
                (
                    s.expression.trim().to_string(),
                    s.claim.trim().to_string(),
                    s.verdict,
                )
            })
            .collect()
    }

    fn step(e: &str, c: &str, v: Verdict) -> (String, String, Verdict) {
        (e.to_string(), c.to_string(), v)
    }

    #[test]
    fn annotations_take_precedence_over_the_prose_that_repeats_them() {
        let text =
            "Natalia sold 48/2 = <<48/2=24>>24 clips.\nThen 48+24 = <<48+24=73>>73.\n#### 72";
        let got = verdicts(text);
        assert_eq!(
            got,
            [
                step("48/2", "24", Verdict::Correct),
                step("48+24", "73", Verdict::Wrong)
            ]
        );
        assert_eq!(find_steps(text)[0].span, 20..31);
    }

    #[test]
    fn inline_equations_in_prose() {
        let text = "She earns 12/60 = $0.2 per minute, so 0.2 x 50 = $10.\n\
                    Then 5 * 4 = 20 + 3 = 24 apples, 8*2 + 4*5 = 16 + 20 = 36, and 1,200 * 15% = 180.\n\
                    Half is 2/4 = 1/2; x = 5 and 3 <= 4 == true. It costs 5. 3*3 = 9";
        assert_eq!(
            verdicts(text),
            [
                step("12/60", "$0.2", Verdict::Correct),
                step("0.2 x 50", "$10", Verdict::Correct),
                step("5 * 4", "20", Verdict::Correct),
                step("20 + 3", "24", Verdict::Wrong),
                step("8*2 + 4*5", "16 + 20", Verdict::Correct),
                step("16 + 20", "36", Verdict::Correct),
                step("1,200 * 15%", "180", Verdict::Correct),
                step("2/4", "1/2", Verdict::Correct),
                step("3*3", "9", Verdict::Correct),
            ]
        );
        let span = &find_steps(text)[0].span;
        assert_eq!(&text[span.clone()], "12/60 = $0.2");
    }

    #[test]
    fn rounding_to_the_places_shown_is_correct_and_nothing_looser() {
        assert_eq!(verify("10/3", "3.33"), Verdict::Correct);
        assert_eq!(verify("2/3", "0.67"), Verdict::Correct);
        assert_eq!(verify("2/3", "0.66"), Verdict::Wrong);
        assert_eq!(
            verify("1/8", "0.13"),
            Verdict::Correct,
            "half-way rounds either way"
        );
        assert_eq!(verify("1/8", "0.12"), Verdict::Correct);
        assert_eq!(
            verify("7/2", "3"),
            Verdict::Wrong,
            "an integer claim must be exact"
        );
        assert_eq!(verify("1/3", "33.33%"), Verdict::Correct);
        assert_eq!(verify("(75/100)*100", "75%"), Verdict::Correct);
        assert_eq!(verify("100-50", "40%"), Verdict::Wrong);
    }

    #[test]
    fn division_by_zero_is_wrong_and_overflow_undecidable() {
        assert_eq!(verify("5/0", "0"), Verdict::Wrong);
        assert_eq!(verify("10**40", "1"), Verdict::Undecidable);
        assert_eq!(verify("2*3", "six"), Verdict::Undecidable);
        assert_eq!(verify("2*3", "3+3"), Verdict::Correct);
    }

    #[test]
    fn no_steps_in_text_without_arithmetic() {
        assert!(find_steps("The answer is 5. Let x = 3; y = x + 2.").is_empty());
        assert!(
            find_steps("box = 5, a=b, 7 = 7").is_empty(),
            "a bare number is no step"
        );
        for ambiguous in [
            "He has 60 students x 2/3 = 40 students",
            "He can park 16,0000/10=16000 cars",
            "8 people eat 1 1/2 rolls, 8 x 1 1/2 = 13 rolls",
            "then 100/5 = 5A/5",
            "he uses 600 x 30 = 18 000 watts",
            "$80 000 x 20/100 = $16 000.",
        ] {
            let steps = find_steps(ambiguous);
            assert!(
                steps.iter().all(|s| s.expression.contains("1 1/2")),
                "{ambiguous}: {steps:?}"
            );
        }
        assert_eq!(
            find_steps("8 x 1 1/2 = 13 rolls")[0].verdict,
            Verdict::Wrong
        );
    }

    #[test]
    fn set_statistics_and_error_rate() {
        let stats = StepStats::of_set(["<<1+1=2>><<2*2=5>>", "3+3 = 6", "no steps", "<<9**99=1>>"]);
        assert_eq!(
            (stats.solutions, stats.solutions_with_steps, stats.steps),
            (4, 3, 4)
        );
        assert_eq!((stats.correct, stats.wrong, stats.undecidable), (2, 1, 1));
        assert_eq!(stats.solutions_with_wrong_step, 1);
        assert_eq!(stats.error_rate(), Some(1.0 / 3.0));
        assert_eq!(StepStats::default().error_rate(), None);
    }
}
