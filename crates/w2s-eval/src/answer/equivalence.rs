//! Equivalence of two normalized answers.
//!
//! docs/method.md: exact match of the normalized strings first, then numeric equality of values that
//! parse (see [`value`](super::value)), with tuples and intervals compared element-wise. Unlike the
//! reference (`check_sympy_equivalence`), nothing degrades silently: a comparison that cannot be
//! decided is [`Equivalence::Undecided`], which counts as wrong and is counted in reports.
//!
//! Shapes an answer can take, after normalization:
//! - a number (`\frac{\sqrt{2}}{2}`, `0.5`, `2\pi`), or `\infty`/`-\infty`;
//! - a bracketed sequence: tuple `(1,2)`, interval `[0,\infty)`, compared in order with the same
//!   brackets; a union of intervals `A\cupB`, compared part by part;
//! - a set `\{1,2\}` or a bare list `1,2` (the "enter all solutions" answers), compared as
//!   multisets;
//! - a word (`Tuesday`, `even`, an answer letter), compared ignoring ASCII case;
//! - anything else (expressions with variables, matrices): equal only as identical strings, else
//!   undecided.

use super::value::{parse_value, Value};
use crate::task::TaskKind;

/// Lists longer than this are not matched element-wise (the matching is quadratic).
const MAX_LIST_LEN: usize = 64;

/// The outcome of comparing two normalized answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Equivalence {
    /// The answers are the same.
    Equal,
    /// The answers differ.
    NotEqual,
    /// The grader cannot tell (for example two different algebraic expressions); counted as wrong.
    Undecided,
}

impl Equivalence {
    /// Whether the comparison counts as correct; `Undecided` counts as not equal.
    pub fn is_equal(self) -> bool {
        self == Equivalence::Equal
    }

    /// Combine element-wise outcomes: any `NotEqual` wins, then any `Undecided`.
    fn all(outcomes: impl IntoIterator<Item = Equivalence>) -> Equivalence {
        let mut result = Equivalence::Equal;
        for o in outcomes {
            match o {
                Equivalence::NotEqual => return Equivalence::NotEqual,
                Equivalence::Undecided => result = Equivalence::Undecided,
                Equivalence::Equal => {}
            }
        }
        result
    }
}

/// Compare two normalized answers (outputs of [`normalize`](super::normalize)).
///
/// An empty answer (no answer) is never equal to anything, not even another empty answer.
pub fn equivalent(task: TaskKind, a: &str, b: &str) -> Equivalence {
    if a.is_empty() || b.is_empty() {
        return Equivalence::NotEqual;
    }
    if a == b {
        return Equivalence::Equal;
    }
    match task {
        // GSM8K-style answers are numbers; anything else compares as a string.
        TaskKind::Gsm8k | TaskKind::Arithmetic => match (parse_value(a), parse_value(b)) {
            (Some(x), Some(y)) => numbers(x, y),
            _ => Equivalence::NotEqual,
        },
        TaskKind::Math => compare(&Shape::of(a, 0), &Shape::of(b, 0)),
    }
}

fn numbers(x: Value, y: Value) -> Equivalence {
    match x.equals(y) {
        Some(true) => Equivalence::Equal,
        Some(false) => Equivalence::NotEqual,
        None => Equivalence::Undecided,
    }
}

/// The structure of an answer.
#[derive(Debug)]
enum Shape<'a> {
    Number(Value),
    Infinity {
        negative: bool,
    },
    Sequence {
        open: u8,
        close: u8,
        items: Vec<Shape<'a>>,
    },
    Union(Vec<Shape<'a>>),
    Multiset(Vec<Shape<'a>>),
    Word(&'a str),
    Other(&'a str),
}

/// Nesting of sequences followed before giving up (`Other`).
const MAX_NESTING: usize = 8;

impl<'a> Shape<'a> {
    fn of(s: &'a str, depth: usize) -> Shape<'a> {
        if depth > MAX_NESTING {
            return Shape::Other(s);
        }
        let parts = split_top_level(s, "\\cup");
        if parts.len() > 1 {
            return Shape::Union(parts.into_iter().map(|p| Shape::of(p, depth + 1)).collect());
        }
        if let Some(inner) = s.strip_prefix("\\{").and_then(|r| r.strip_suffix("\\}")) {
            return Shape::Multiset(Self::items(inner, depth));
        }
        let b = s.as_bytes();
        if let (Some(&open @ (b'(' | b'[')), Some(&close @ (b')' | b']'))) = (b.first(), b.last()) {
            let inner = &s[1..s.len() - 1];
            if closing_of_first(b) == Some(b.len() - 1) && split_top_level(inner, ",").len() > 1 {
                return Shape::Sequence {
                    open,
                    close,
                    items: Self::items(inner, depth),
                };
            }
        }
        if split_top_level(s, ",").len() > 1 {
            return Shape::Multiset(Self::items(s, depth));
        }
        match s {
            "\\infty" | "+\\infty" => return Shape::Infinity { negative: false },
            "-\\infty" => return Shape::Infinity { negative: true },
            _ => {}
        }
        if let Some(v) = parse_value(s) {
            return Shape::Number(v);
        }
        if !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphabetic()) {
            return Shape::Word(s);
        }
        Shape::Other(s)
    }

    fn items(s: &'a str, depth: usize) -> Vec<Shape<'a>> {
        split_top_level(s, ",")
            .into_iter()
            .map(|p| Shape::of(p, depth + 1))
            .collect()
    }
}

fn compare(a: &Shape, b: &Shape) -> Equivalence {
    use Shape::*;
    match (a, b) {
        (Other(x), Other(y)) | (Other(x), Word(y)) | (Word(x), Other(y)) if x == y => {
            Equivalence::Equal
        }
        (Other(_), _) | (_, Other(_)) => Equivalence::Undecided,
        (Number(x), Number(y)) => numbers(*x, *y),
        (Infinity { negative: x }, Infinity { negative: y }) => same(x == y),
        (Word(x), Word(y)) => same(x.eq_ignore_ascii_case(y)),
        (
            Sequence {
                open: o1,
                close: c1,
                items: x,
            },
            Sequence {
                open: o2,
                close: c2,
                items: y,
            },
        ) => {
            if o1 != o2 || c1 != c2 || x.len() != y.len() {
                return Equivalence::NotEqual;
            }
            Equivalence::all(x.iter().zip(y).map(|(p, q)| compare(p, q)))
        }
        (Union(x), Union(y)) => {
            if x.len() != y.len() {
                return Equivalence::NotEqual;
            }
            Equivalence::all(x.iter().zip(y).map(|(p, q)| compare(p, q)))
        }
        (Multiset(x), Multiset(y)) => multisets(x, y),
        _ => Equivalence::NotEqual,
    }
}

fn same(equal: bool) -> Equivalence {
    if equal {
        Equivalence::Equal
    } else {
        Equivalence::NotEqual
    }
}

/// Multiset equality: every item of `x` is matched with a distinct equal item of `y`.
fn multisets(x: &[Shape], y: &[Shape]) -> Equivalence {
    if x.len() != y.len() {
        return Equivalence::NotEqual;
    }
    if x.len() > MAX_LIST_LEN {
        return Equivalence::Undecided;
    }
    let mut used = vec![false; y.len()];
    let mut undecided = false;
    for p in x {
        let mut matched = false;
        for (j, q) in y.iter().enumerate() {
            if used[j] {
                continue;
            }
            match compare(p, q) {
                Equivalence::Equal => {
                    used[j] = true;
                    matched = true;
                    break;
                }
                Equivalence::Undecided => undecided = true,
                Equivalence::NotEqual => {}
            }
        }
        if !matched {
            return if undecided {
                Equivalence::Undecided
            } else {
                Equivalence::NotEqual
            };
        }
    }
    Equivalence::Equal
}

/// Split `s` at occurrences of `sep` that are outside every bracket `() [] {}`. Brackets are not
/// required to pair by kind, since half-open intervals `[0,1)` are answers.
fn split_top_level<'a>(s: &'a str, sep: &str) -> Vec<&'a str> {
    let b = s.as_bytes();
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ if depth == 0 && b[i..].starts_with(sep.as_bytes()) => {
                parts.push(&s[start..i]);
                i += sep.len();
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&s[start..]);
    parts
}

/// Index of the bracket that closes the opening bracket at position 0.
fn closing_of_first(b: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::normalize;
    use Equivalence::*;

    /// Normalize both raw answers, then compare them as MATH answers.
    fn math(a: &str, b: &str) -> Equivalence {
        equivalent(
            TaskKind::Math,
            &normalize(TaskKind::Math, a),
            &normalize(TaskKind::Math, b),
        )
    }

    fn gsm(a: &str, b: &str) -> Equivalence {
        equivalent(
            TaskKind::Gsm8k,
            &normalize(TaskKind::Gsm8k, a),
            &normalize(TaskKind::Gsm8k, b),
        )
    }

    #[test]
    fn fractions_decimals_and_separators() {
        assert_eq!(math("\\frac12", "0.5"), Equal);
        assert_eq!(math("\\dfrac{1}{2}", "0.5"), Equal);
        assert_eq!(math("\\frac{3}{2}", "1.5"), Equal);
        assert_eq!(math("1,000", "1000"), Equal);
        assert_eq!(math("0.1+0.2", "0.3"), Equal);
        assert_eq!(math("\\frac{1}{3}", "0.333"), NotEqual);
        assert_eq!(math("2", "3"), NotEqual);
        assert_eq!(gsm("1,080", "1080"), Equal);
        assert_eq!(gsm("18.00", "18"), Equal);
        assert_eq!(gsm("3/4", "0.75"), Equal);
        assert_eq!(gsm("17", "18"), NotEqual);
    }

    #[test]
    fn percentages_lose_their_sign() {
        assert_eq!(math("50\\%", "50"), Equal);
        assert_eq!(math("50%", "50"), Equal);
        assert_eq!(math("50\\%", "0.5"), NotEqual);
    }

    #[test]
    fn roots_and_pi_compare_numerically() {
        assert_eq!(math("\\sqrt{2}/2", "\\frac{\\sqrt2}{2}"), Equal);
        assert_eq!(math("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}"), Equal);
        assert_eq!(math("2", "\\sqrt{4}"), Equal);
        assert_eq!(math("2\\sqrt{3}", "\\sqrt{12}"), Equal);
        assert_eq!(math("\\frac{\\pi}{2}", "0.5\\pi"), Equal);
        assert_eq!(math("8-2\\pi", "-2\\pi+8"), Equal);
        assert_eq!(math("\\pi", "3.14"), NotEqual);
        assert_eq!(math("\\sqrt{2}", "\\sqrt{3}"), NotEqual);
    }

    #[test]
    fn tuples_and_intervals_compare_element_wise() {
        assert_eq!(math("(1, 2)", "(1,2)"), Equal);
        assert_eq!(
            math("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
            Equal
        );
        assert_eq!(math("(0.5, 2)", "(\\frac12, 2)"), Equal);
        assert_eq!(math("(1,2)", "(2,1)"), NotEqual);
        assert_eq!(math("(1,2)", "(1,2,3)"), NotEqual);
        assert_eq!(math("[0, \\infty)", "[0,\\infty)"), Equal);
        assert_eq!(math("[0, \\infty)", "(0,\\infty)"), NotEqual);
        assert_eq!(
            math(
                "(-\\infty, 1] \\cup [2, \\infty)",
                "(-\\infty,1]\\cup[2,\\infty)"
            ),
            Equal
        );
        assert_eq!(math("(-\\infty, 0.5)", "(-\\infty,\\frac{1}{2})"), Equal);
        assert_eq!(math("(1,x)", "(1,y)"), NotEqual);
        assert_eq!(
            math("(2,x+1)", "(1,1+x)"),
            NotEqual,
            "a differing number decides"
        );
        assert_eq!(math("(1,x+1)", "(1,1+x)"), Undecided);
    }

    #[test]
    fn lists_and_sets_ignore_order() {
        assert_eq!(math("1, 2", "2,1"), Equal);
        assert_eq!(math("17,44", "44, 17"), Equal);
        assert_eq!(math("\\{1, 2\\}", "\\{2,1\\}"), Equal);
        assert_eq!(math("1,2", "1,3"), NotEqual);
        assert_eq!(math("1,1,2", "1,2,2"), NotEqual);
        assert_eq!(math("1,2", "(1,2)"), NotEqual);
    }

    #[test]
    fn words_letters_and_units() {
        assert_eq!(math("\\text{(A)}", "A"), Equal);
        assert_eq!(math("\\text{(B)}", "(C)"), NotEqual);
        assert_eq!(math("\\text{Tuesday}", "tuesday"), Equal);
        assert_eq!(math("\\text{even}", "\\text{odd}"), NotEqual);
        assert_eq!(math("5 \\text{ cm}", "5"), Equal);
        assert_eq!(math("5", "\\text{five}"), NotEqual);
        assert_eq!(math("x=5", "5"), Equal);
    }

    #[test]
    fn what_cannot_be_decided_is_undecided_and_not_equal() {
        assert_eq!(math("x^2+1", "1+x^2"), Undecided);
        assert_eq!(math("2\\frac{1}{2}", "2.5"), Undecided);
        assert_eq!(math("\\frac{1}{0}", "1"), Undecided);
        assert!(!Undecided.is_equal());
        assert_eq!(math("x^2+1", "x^2+1"), Equal);
    }

    #[test]
    fn empty_answers_are_never_right() {
        assert_eq!(equivalent(TaskKind::Math, "", ""), NotEqual);
        assert_eq!(equivalent(TaskKind::Gsm8k, "", "5"), NotEqual);
        assert_eq!(gsm("5", "five"), NotEqual);
    }
}
