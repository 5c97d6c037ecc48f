//! Extraction of the raw final answer from a response or a gold solution.
//!
//! docs/method.md, "Answer extraction and grading":
//! - GSM8K and the arithmetic task: the number after the last `####` (commas removed); else the
//!   first number after the last `The answer is`; else the last number of the response.
//! - MATH: the text after the last `The answer is:` (to the end of its line); else the content of
//!   the last `\boxed{...}` (nested braces respected).
//!
//! Like the W2SR reference (`src/eval/evaluation.py`), a response is first cut where the model
//! starts a new `Question:` block, so an answer it invents for a question of its own is not taken
//! for the answer to the one asked. Unlike the reference, the `####` key need not be on the last
//! line (`"#### 18\ntrailing"` gives 18, where the reference gives nothing).

use crate::task::TaskKind;

/// The key after which GSM8K-style answers stand.
const HASH_KEY: &str = "####";
/// The MATH key of the W2SR SFT targets (`{solution} The answer is: {answer}`).
const MATH_KEY: &str = "The answer is:";
/// The softer key of the GSM8K fallback (`answer_cleansing` in the reference).
const SOFT_KEY: &str = "the answer is";

/// The raw final answer of `response`, or `None` when it states none.
///
/// The result is not normalized; pass it to [`normalize`](super::normalize).
pub fn extract(task: TaskKind, response: &str) -> Option<String> {
    let text = cut_at_next_question(response);
    match task {
        TaskKind::Gsm8k | TaskKind::Arithmetic => extract_number_answer(text),
        TaskKind::Math => extract_math_answer(text),
    }
}

/// The content of the last `\boxed{...}` (or `\fbox{...}`) in `text`, braces balanced.
///
/// `\boxed 5` (no braces) gives the token after the space. `None` when there is no box or the last
/// one is not closed.
pub fn last_boxed(text: &str) -> Option<String> {
    let start = ["\\boxed", "\\fbox"]
        .iter()
        .filter_map(|key| text.rfind(key).map(|i| i + key.len()))
        .max()?;
    let rest = &text[start..];
    if let Some(inner) = rest.strip_prefix('{') {
        return balanced_prefix(inner).map(|content| content.trim().to_string());
    }
    // `\boxed 5`: the argument is the next whitespace- or `$`-delimited token.
    let token = rest
        .strip_prefix(' ')?
        .trim_start()
        .split(|c: char| c.is_whitespace() || c == '$')
        .next()?;
    (!token.is_empty()).then(|| token.to_string())
}

/// The text of `s` up to (not including) the `}` that closes an already opened `{`.
fn balanced_prefix(s: &str) -> Option<&str> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(&s[..i]),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn cut_at_next_question(response: &str) -> &str {
    match response.find("\nQuestion:") {
        Some(i) => &response[..i],
        None => response,
    }
}

fn extract_number_answer(text: &str) -> Option<String> {
    if let Some(i) = text.rfind(HASH_KEY) {
        if let Some(n) = first_number(first_line(&text[i + HASH_KEY.len()..])) {
            return Some(n);
        }
    }
    if let Some(i) = rfind_ascii_ci(text, SOFT_KEY) {
        if let Some(n) = first_number(first_line(&text[i + SOFT_KEY.len()..])) {
            return Some(n);
        }
    }
    last_number(text)
}

fn extract_math_answer(text: &str) -> Option<String> {
    if let Some(i) = text.rfind(MATH_KEY) {
        let answer = line_with_open_braces(&text[i + MATH_KEY.len()..])
            .trim()
            .trim_end_matches('.')
            .trim_end();
        if !answer.is_empty() {
            return Some(answer.to_string());
        }
    }
    last_boxed(text)
}

/// The first line of `s`, continued over line breaks inside an open `{` group (an answer such as
/// `90\text{ square\nunits}` spans two lines).
fn line_with_open_braces(s: &str) -> &str {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            '\n' if depth == 0 => return &s[..i],
            _ => {}
        }
    }
    s
}

fn first_line(s: &str) -> &str {
    s.split('\n').next().unwrap_or("")
}

/// Last occurrence of an ASCII `needle` in `haystack`, ignoring ASCII case.
fn rfind_ascii_ci(haystack: &str, needle: &str) -> Option<usize> {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    if n.len() > h.len() {
        return None;
    }
    (0..=h.len() - n.len())
        .rev()
        .find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Scan `s` for number tokens `[-]D[,D]*[.D+][/D+]`, left to right. Commas between digits are thousands separators
/// (dropped, as the reference does: `74,39` gives `7439`); a `-` counts as a sign only when it does
/// not follow a digit, letter or closing bracket (so `5-3` gives `5` and `3`).
fn number_tokens(s: &str) -> impl Iterator<Item = String> + '_ {
    let b = s.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < b.len() {
            if !b[i].is_ascii_digit() {
                i += 1;
                continue;
            }
            let minus = i > 0 && b[i - 1] == b'-';
            let binary = i > 1 && (b[i - 2].is_ascii_alphanumeric() || b[i - 2] == b')');
            let mut text = String::from(if minus && !binary { "-" } else { "" });
            let mut j = i;
            loop {
                while j < b.len() && b[j].is_ascii_digit() {
                    text.push(b[j] as char);
                    j += 1;
                }
                if j + 1 < b.len() && b[j] == b',' && b[j + 1].is_ascii_digit() {
                    j += 1;
                } else {
                    break;
                }
            }
            for sep in [b'.', b'/'] {
                if j + 1 < b.len() && b[j] == sep && b[j + 1].is_ascii_digit() {
                    text.push(sep as char);
                    j += 1;
                    while j < b.len() && b[j].is_ascii_digit() {
                        text.push(b[j] as char);
                        j += 1;
                    }
                }
            }
            i = j;
            return Some(text);
        }
        None
    })
}

fn first_number(s: &str) -> Option<String> {
    number_tokens(s).next()
}

fn last_number(s: &str) -> Option<String> {
    number_tokens(s).last()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gsm(s: &str) -> Option<String> {
        extract(TaskKind::Gsm8k, s)
    }

    fn math(s: &str) -> Option<String> {
        extract(TaskKind::Math, s)
    }

    #[test]
    fn gsm8k_takes_the_number_after_the_last_hash_key() {
        assert_eq!(gsm("so 3+4=7\n#### 7").as_deref(), Some("7"));
        assert_eq!(gsm("#### 1\n#### $1,080.").as_deref(), Some("1080"));
        assert_eq!(gsm("#### 74,39").as_deref(), Some("7439"));
        assert_eq!(gsm("#### -12").as_deref(), Some("-12"));
        assert_eq!(gsm("#### 2.50").as_deref(), Some("2.50"));
        assert_eq!(gsm("#### 3/4").as_deref(), Some("3/4"));
        // Not only on the last line, unlike the reference.
        assert_eq!(gsm("#### 18\ntrailing").as_deref(), Some("18"));
    }

    #[test]
    fn gsm8k_falls_back_to_the_answer_is_then_the_last_number() {
        assert_eq!(
            gsm("I think The answer is 42 apples, not 7").as_deref(),
            Some("42")
        );
        assert_eq!(gsm("THE ANSWER IS: $5").as_deref(), Some("5"));
        assert_eq!(gsm("She has 5 - 3 = 2 left").as_deref(), Some("2"));
        assert_eq!(gsm("4 and then 5-3").as_deref(), Some("3"));
        assert_eq!(gsm("it is -3").as_deref(), Some("-3"));
        assert_eq!(gsm("#### none. Total 9").as_deref(), Some("9"));
        assert_eq!(gsm("no digits here"), None);
        assert_eq!(gsm(""), None);
    }

    #[test]
    fn a_new_question_block_is_cut_off() {
        assert_eq!(
            gsm("#### 5\nQuestion: x?\nAnswer: #### 6").as_deref(),
            Some("5")
        );
        assert_eq!(
            math("The answer is: 1\nQuestion: y\nAnswer: The answer is: 2").as_deref(),
            Some("1")
        );
    }

    #[test]
    fn math_prefers_the_answer_key_then_the_last_box() {
        assert_eq!(
            math("so $\\boxed{3}$. The answer is: 3.").as_deref(),
            Some("3")
        );
        assert_eq!(
            math("The answer is: \\frac{1}{2}\nmore").as_deref(),
            Some("\\frac{1}{2}")
        );
        assert_eq!(
            math("a $\\boxed{1}$ b $\\boxed{\\frac{\\sqrt{3}}{2}}$").as_deref(),
            Some("\\frac{\\sqrt{3}}{2}")
        );
        assert_eq!(math("so \\boxed 5$ done").as_deref(), Some("5"));
        assert_eq!(math("\\fbox{x+1}").as_deref(), Some("x+1"));
        assert_eq!(math("The answer is:   \n\\boxed{7}").as_deref(), Some("7"));
        assert_eq!(
            math("The answer is: 90\\text{ square\nunits}\nbye").as_deref(),
            Some("90\\text{ square\nunits}")
        );
        assert_eq!(math("unclosed \\boxed{1"), None);
        assert_eq!(math("just 42"), None);
    }

    #[test]
    fn number_tokens_handle_signs_and_separators() {
        let tokens: Vec<_> = number_tokens("a -1,000.5 b 2, 3 x-4 (5)-6").collect();
        assert_eq!(tokens, ["-1000.5", "2", "3", "4", "5", "6"]);
    }
}
