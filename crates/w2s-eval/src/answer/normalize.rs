//! Minerva-style normalization of a final answer (Lewkowycz et al. 2022, appendix D; the W2SR
//! reference `src/eval/math_normalization.py` adds the trailing `.0`, `%` and answer-letter rules).
//!
//! Steps, in order (docs/method.md, "Answer extraction and grading"):
//! 1. Drop `\$`, `$`, spacing commands (`\!`, `\,`, `\;`, `\:`, `\ `), `\left`/`\right`,
//!    `\displaystyle`, `\ldots`/`\dots`, degree marks (`^\circ`); read `\dfrac`/`\tfrac` as `\frac`
//!    and `\mbox`/`\textrm`/`\mathrm` as `\text`; unwrap `\boxed{}`, `\fbox{}`, `\textbf{}`.
//! 2. Keep what follows the last `=` (`x = 5` gives `5`).
//! 3. Remove unit words (`cm`, `inches`, `dollars`, ...) and the articles `a`/`an`, and unwrap
//!    `\text{}`; a text group that was only a unit vanishes together with its `^2`/`^3`.
//! 4. Remove all whitespace and LaTeX thousands spacing `{,}`; expand `\frac12` to `\frac{1}{2}`
//!    and `\sqrt2` to `\sqrt{2}`.
//! 5. Numbers: thousands separators go (`1,000` gives `1000`; for GSM8K and arithmetic every comma
//!    in a number goes, as in the reference: `74,39` gives `7439`); a trailing `%` goes; decimals
//!    are written canonically (`2.50` gives `2.5`, `5.0` gives `5`, `.5` gives `0.5`).
//! 6. A lone answer letter A–G, optionally in parentheses, becomes lowercase (`\text{(A)}` gives `a`).
//!
//! Deliberate differences from the reference: unit words are removed only as whole words, never
//! inside a command name (the reference turns `\left(` into `\le(` by removing "ft"), and
//! `\overline{}` is kept (unwrapping it would make `0.\overline{3}` equal `0.3`). Thousands
//! separators need groups of exactly three digits for MATH, where `17,44` is a list of two answers.

use super::latex::{
    attach_arguments, bytes_to_string, command_at, matching_braces, replace_commands,
    unwrap_commands,
};
use crate::task::TaskKind;

/// Words removed as units (Minerva's list, with singular forms added).
const UNIT_WORDS: &[&str] = &[
    "square",
    "sq",
    "ways",
    "integers",
    "dollars",
    "dollar",
    "mph",
    "inches",
    "inch",
    "ft",
    "feet",
    "foot",
    "hours",
    "hour",
    "km",
    "units",
    "unit",
    "points",
    "minutes",
    "minute",
    "seconds",
    "digits",
    "cents",
    "cent",
    "degrees",
    "degree",
    "cm",
    "mm",
    "gm",
    "pounds",
    "pound",
    "meters",
    "meter",
    "meals",
    "edges",
    "students",
    "multiples",
    "sue",
];

/// What a `\text{}` group may hold and still count as a bare unit mark (`\text{ m}`, `\text{s}`).
const UNIT_MARKS: &[&str] = &["", "m", "s", "."];

/// Commands rewritten before anything else.
const COMMAND_REWRITES: &[(&str, &str)] = &[
    ("dfrac", "\\frac"),
    ("tfrac", "\\frac"),
    ("mbox", "\\text"),
    ("textrm", "\\text"),
    ("textnormal", "\\text"),
    ("mathrm", "\\text"),
    ("left", ""),
    ("right", ""),
    ("displaystyle", ""),
    ("ldots", ""),
    ("dots", ""),
    ("degree", ""),
];

/// Deepest nesting the recursive passes descend into; deeper input is left as it is.
const MAX_DEPTH: usize = 16;

/// The normalized form of a raw answer (see the module doc for the rules).
///
/// If removing unit words would leave nothing (the answer is the word "square"), the word stays.
pub fn normalize(task: TaskKind, raw: &str) -> String {
    let normalized = normalize_with(task, raw, true);
    if normalized.is_empty() && !raw.trim().is_empty() {
        normalize_with(task, raw, false)
    } else {
        normalized
    }
}

fn normalize_with(task: TaskKind, raw: &str, remove_units: bool) -> String {
    let mut s = attach_arguments(raw.trim());
    for (from, to) in [
        ("\\$", ""),
        ("\\%", "%"),
        ("\\!", ""),
        ("\\,", ""),
        ("\\;", ""),
        ("\\:", ""),
        ("\\ ", " "),
        ("~", " "),
        ("^{\\circ}", ""),
        ("^\\circ", ""),
    ] {
        if s.contains(from) {
            s = s.replace(from, to);
        }
    }
    s = replace_commands(&s, COMMAND_REWRITES);
    s = unwrap_commands(&s, &["boxed", "fbox", "textbf", "mathbf"]);
    s.retain(|c| c != '$');
    if let Some(i) = s.rfind('=') {
        s.drain(..=i);
    }
    s = unwrap_text_groups(&s, remove_units, 0);
    if remove_units {
        s = remove_unit_words(&s);
    }
    s.retain(|c| !c.is_whitespace());
    s = s.replace("{,}", "");
    s = expand_shorthand(&s, 0);
    let s = s.trim_end_matches('.');
    let s = canonical_number(task, s).unwrap_or_else(|| s.to_string());
    answer_letter(&s).unwrap_or(s)
}

/// Unwrap `\text{...}` groups. With `remove_units`, unit words inside a group are removed, and a
/// group left holding only a unit mark is dropped with the power that follows it.
fn unwrap_text_groups(s: &str, remove_units: bool, depth: usize) -> String {
    if depth > MAX_DEPTH {
        return s.to_string();
    }
    let b = s.as_bytes();
    let partner = matching_braces(b);
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        let open = i + "\\text".len();
        let close = partner.get(open).copied().flatten();
        let (true, Some(close)) = (command_at(b, i, "text"), close) else {
            i += 1;
            continue;
        };
        out.push_str(&s[copied..i]);
        let inner = unwrap_text_groups(&s[open + 1..close], remove_units, depth + 1);
        let inner = if remove_units {
            remove_unit_words(&inner)
        } else {
            inner
        };
        i = close + 1;
        if remove_units && UNIT_MARKS.contains(&inner.trim()) {
            i += power_suffix_len(&b[i..]);
        } else {
            out.push_str(&inner);
        }
        copied = i;
    }
    out.push_str(&s[copied..]);
    out
}

/// Length of a `^2`, `^3`, `^{2}` or `^{3}` at the start of `b` (a squared or cubed unit), else 0.
fn power_suffix_len(b: &[u8]) -> usize {
    for suffix in ["^2", "^3", "^{2}", "^{3}"] {
        if b.starts_with(suffix.as_bytes()) {
            return suffix.len();
        }
    }
    0
}

/// Remove unit words and the articles `a`/`an` (before a space). A word is a maximal run of ASCII
/// letters; one right after `\` is a command name and is never touched.
fn remove_unit_words(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_alphabetic() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let word = &s[start..i];
        let after_command = start > 0 && b[start - 1] == b'\\';
        let lower = word.to_ascii_lowercase();
        let starts_phrase = start == 0 || matches!(b[start - 1], b' ' | b'{');
        if !after_command && UNIT_WORDS.contains(&lower.as_str()) {
            i += power_suffix_len(&b[i..]);
        } else if !after_command
            && starts_phrase
            && matches!(lower.as_str(), "a" | "an")
            && b.get(i) == Some(&b' ')
        {
            i += 1;
        } else {
            out.extend_from_slice(word.as_bytes());
        }
    }
    bytes_to_string(out)
}

/// Give `\frac` two braced arguments and `\sqrt` one: `\frac12` gives `\frac{1}{2}`,
/// `\frac1{x}` gives `\frac{1}{x}`, `\sqrt2` gives `\sqrt{2}`, `\frac\pi2` gives `\frac{\pi}{2}`.
fn expand_shorthand(s: &str, depth: usize) -> String {
    if depth > MAX_DEPTH {
        return s.to_string();
    }
    let b = s.as_bytes();
    let partner = matching_braces(b);
    let mut out = String::with_capacity(s.len() + 8);
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        let arity = if command_at(b, i, "frac") {
            2
        } else if command_at(b, i, "sqrt") {
            1
        } else {
            i += 1;
            continue;
        };
        let mut j = i + 5;
        out.push_str(&s[copied..j]);
        if arity == 1 && b.get(j) == Some(&b'[') {
            if let Some(k) = b[j..].iter().position(|&c| c == b']') {
                out.push_str(&s[j..=j + k]);
                j += k + 1;
            }
        }
        for _ in 0..arity {
            let Some(&c) = b.get(j) else { break };
            let end = match c {
                b'{' => match partner[j] {
                    Some(close) => {
                        out.push('{');
                        out.push_str(&expand_shorthand(&s[j + 1..close], depth + 1));
                        out.push('}');
                        j = close + 1;
                        continue;
                    }
                    None => break,
                },
                b'\\' => {
                    let letters = b[j + 1..]
                        .iter()
                        .take_while(|c| c.is_ascii_alphabetic())
                        .count();
                    if letters == 0 {
                        break;
                    }
                    j + 1 + letters
                }
                _ if c.is_ascii() && c != b'}' => j + 1,
                _ => break,
            };
            out.push('{');
            out.push_str(&s[j..end]);
            out.push('}');
            j = end;
        }
        i = j;
        copied = j;
    }
    out.push_str(&s[copied..]);
    out
}

/// The canonical spelling of a plain number, or `None` when `s` is not one.
fn canonical_number(task: TaskKind, s: &str) -> Option<String> {
    let s = s.strip_suffix('%').filter(|r| !r.is_empty()).unwrap_or(s);
    let (sign, body) = match s.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", s),
    };
    let body = match task {
        TaskKind::Gsm8k | TaskKind::Arithmetic => body.replace(',', ""),
        TaskKind::Math if has_thousands_separators(body) => body.replace(',', ""),
        TaskKind::Math => body.to_string(),
    };
    let (int, frac) = body.split_once('.').unwrap_or((&body, ""));
    let digits = |t: &str| t.bytes().all(|c| c.is_ascii_digit());
    if !digits(int) || !digits(frac) || (int.is_empty() && frac.is_empty()) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let sign = if int == "0" && frac.is_empty() {
        ""
    } else {
        sign
    };
    Some(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

/// `D{1,3}(,DDD)+` with an optional decimal part: commas that really are thousands separators.
fn has_thousands_separators(s: &str) -> bool {
    let int = s.split_once('.').map_or(s, |(int, _)| int);
    let mut groups = int.split(',');
    let first_ok = groups
        .next()
        .is_some_and(|g| (1..=3).contains(&g.len()) && g.bytes().all(|c| c.is_ascii_digit()));
    let rest: Vec<&str> = groups.collect();
    first_ok
        && !rest.is_empty()
        && rest
            .iter()
            .all(|g| g.len() == 3 && g.bytes().all(|c| c.is_ascii_digit()))
}

/// `A`..`G`, alone or in parentheses, as a lowercase letter: a multiple-choice answer.
fn answer_letter(s: &str) -> Option<String> {
    let inner = s
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(s);
    let mut chars = inner.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if matches!(c.to_ascii_lowercase(), 'a'..='g') => {
            Some(c.to_ascii_lowercase().to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn math(s: &str) -> String {
        normalize(TaskKind::Math, s)
    }

    #[test]
    fn fractions_take_braces_and_dfrac_is_frac() {
        assert_eq!(math("\\frac12"), "\\frac{1}{2}");
        assert_eq!(math("\\dfrac{1}{2}"), "\\frac{1}{2}");
        assert_eq!(math("\\tfrac1{x}"), "\\frac{1}{x}");
        assert_eq!(math("\\frac{1}2"), "\\frac{1}{2}");
        assert_eq!(math("\\frac\\pi2"), "\\frac{\\pi}{2}");
        assert_eq!(math("\\frac{\\frac12}{3}"), "\\frac{\\frac{1}{2}}{3}");
        assert_eq!(math("-\\frac{\\sqrt3}{2}"), "-\\frac{\\sqrt{3}}{2}");
        assert_eq!(math("\\sqrt2/2"), "\\sqrt{2}/2");
        assert_eq!(math("\\sqrt[3]2"), "\\sqrt[3]{2}");
        assert_eq!(math("\\frac"), "\\frac");
    }

    #[test]
    fn dollars_boxes_spacing_and_sides_go() {
        assert_eq!(math("$\\boxed{5}$"), "5");
        assert_eq!(math("\\$180"), "180");
        assert_eq!(math("x = 5"), "5");
        assert_eq!(math("\\boxed{x=5}"), "5");
        assert_eq!(
            math("\\left( 3, \\frac{\\pi}{2} \\right)"),
            "(3,\\frac{\\pi}{2})"
        );
        assert_eq!(math("\\left[ 0, \\infty \\right)"), "[0,\\infty)");
        assert_eq!(math("1\\!000"), "1000");
        assert_eq!(math("\\displaystyle\\frac{1}{2}"), "\\frac{1}{2}");
        assert_eq!(math("\\textbf{7}"), "7");
    }

    #[test]
    fn left_survives_unit_removal() {
        // The reference removes "ft" inside `\left(` and leaves `\le(`.
        assert_eq!(math("\\left(1,2\\right)"), "(1,2)");
        assert_eq!(math("\\leftarrow"), "\\leftarrow");
        assert_eq!(math("x \\le 5"), "x\\le5");
    }

    #[test]
    fn units_and_text_go() {
        assert_eq!(math("5 \\text{ cm}"), "5");
        assert_eq!(math("15\\mbox{ cm}^2"), "15");
        assert_eq!(math("12 \\text{ inches}"), "12");
        assert_eq!(math("10\\text{ m}^3"), "10");
        assert_eq!(math("4^\\circ, 20^\\circ"), "4,20");
        assert_eq!(math("90^{\\circ}"), "90");
        assert_eq!(math("30 degrees"), "30");
        assert_eq!(math("5 feet"), "5");
        assert_eq!(math("\\text{Tuesday}"), "Tuesday");
        assert_eq!(math("\\text{an even number}"), "evennumber");
        assert_eq!(math("\\text{square}"), "square");
        assert_eq!(math("6\\text{ ways}"), "6");
    }

    #[test]
    fn numbers_are_written_canonically() {
        assert_eq!(math("1,000"), "1000");
        assert_eq!(math("1,234,567.50"), "1234567.5");
        assert_eq!(math("17,44"), "17,44");
        assert_eq!(normalize(TaskKind::Gsm8k, "74,39"), "7439");
        assert_eq!(math("5.0"), "5");
        assert_eq!(math("5.00"), "5");
        assert_eq!(math(".5"), "0.5");
        assert_eq!(math("007"), "7");
        assert_eq!(math("-0.0"), "0");
        assert_eq!(math("50\\%"), "50");
        assert_eq!(math("50%"), "50");
        assert_eq!(math("3."), "3");
        assert_eq!(math("1{,}000"), "1000");
    }

    #[test]
    fn answer_letters_are_lowercased() {
        assert_eq!(math("\\text{(A)}"), "a");
        assert_eq!(math("(C)"), "c");
        assert_eq!(math("E"), "e");
        assert_eq!(math("H"), "H");
        assert_eq!(math("(x)"), "(x)");
    }

    #[test]
    fn overline_is_kept() {
        assert_eq!(math("0.\\overline{3}"), "0.\\overline{3}");
    }
}
