//! Small linear-time scanners over LaTeX answer strings: command matching and brace pairing.
//!
//! Hand-written instead of regular expressions so that every pass is one left-to-right scan and no
//! input can make normalization slow (the fuzz target and property tests check this).

/// For each byte of `b`, the index of the `}` that closes it when it is a `{` with a partner.
pub(crate) fn matching_braces(b: &[u8]) -> Vec<Option<usize>> {
    let mut partner = vec![None; b.len()];
    let mut open = Vec::new();
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'{' => open.push(i),
            b'}' => {
                if let Some(o) = open.pop() {
                    partner[o] = Some(i);
                }
            }
            _ => {}
        }
    }
    partner
}

/// Whether `b[i..]` starts with the command `\name`, not followed by another ASCII letter
/// (so `\left` does not match inside `\leftarrow`).
pub(crate) fn command_at(b: &[u8], i: usize, name: &str) -> bool {
    let end = i + 1 + name.len();
    b.get(i) == Some(&b'\\')
        && b.get(i + 1..end) == Some(name.as_bytes())
        && !b.get(end).is_some_and(|c| c.is_ascii_alphabetic())
}

/// Replace every command `\name` (for each `(name, with)` pair) by `with`.
pub(crate) fn replace_commands(s: &str, pairs: &[(&str, &str)]) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if let Some((name, with)) = pairs.iter().find(|(name, _)| command_at(b, i, name)) {
                out.extend_from_slice(with.as_bytes());
                i += 1 + name.len();
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    bytes_to_string(out)
}

/// Remove the wrappers `\name{...}` of the given commands, keeping what they enclose
/// (`\boxed{\frac{1}{2}}` gives `\frac{1}{2}`).
pub(crate) fn unwrap_commands(s: &str, names: &[&str]) -> String {
    let b = s.as_bytes();
    let partner = matching_braces(b);
    let mut dropped_close = vec![false; b.len()];
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let group = names
                .iter()
                .filter(|name| command_at(b, i, name))
                .map(|name| i + 1 + name.len())
                .find_map(|open| Some((open, partner.get(open).copied().flatten()?)));
            if let Some((open, close)) = group {
                dropped_close[close] = true;
                i = open + 1;
                continue;
            }
        }
        if !dropped_close[i] {
            out.push(b[i]);
        }
        i += 1;
    }
    bytes_to_string(out)
}

/// Drop whitespace between a command name and its `{` argument (`\text {cm}` gives `\text{cm}`).
pub(crate) fn attach_arguments(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        out.push(b[i]);
        i += 1;
        if b[i - 1] == b'\\' && b.get(i).is_some_and(u8::is_ascii_alphabetic) {
            while i < b.len() && b[i].is_ascii_alphabetic() {
                out.push(b[i]);
                i += 1;
            }
            let spaces = b[i..].iter().take_while(|c| **c == b' ').count();
            if b.get(i + spaces) == Some(&b'{') {
                i += spaces;
            }
        }
    }
    bytes_to_string(out)
}

/// Bytes that were cut only at ASCII positions of a `str` are valid UTF-8; the lossy conversion
/// only guards that invariant without a panic path.
pub(crate) fn bytes_to_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn braces_pair_up_and_unmatched_ones_have_no_partner() {
        let p = matching_braces(b"{a{b}}}{");
        assert_eq!(p[0], Some(5));
        assert_eq!(p[2], Some(4));
        assert_eq!(p[7], None);
    }

    #[test]
    fn commands_match_whole_names_only() {
        assert!(command_at(b"\\left(", 0, "left"));
        assert!(!command_at(b"\\leftarrow", 0, "left"));
        assert!(!command_at(b"left", 0, "left"));
        assert_eq!(
            replace_commands("\\dfrac12\\dfracx", &[("dfrac", "\\frac")]),
            "\\frac12\\dfracx"
        );
    }

    #[test]
    fn arguments_attach_to_their_command() {
        assert_eq!(
            attach_arguments("\\text { cm} \\pi {x} a {b}"),
            "\\text{ cm} \\pi{x} a {b}"
        );
        assert_eq!(attach_arguments("\\\\ {x}\\"), "\\\\ {x}\\");
    }

    #[test]
    fn unwrapping_keeps_the_content_and_nested_groups() {
        assert_eq!(
            unwrap_commands("\\boxed{\\frac{1}{2}}", &["boxed"]),
            "\\frac{1}{2}"
        );
        assert_eq!(unwrap_commands("\\textbf{\\textbf{x}}y", &["textbf"]), "xy");
        assert_eq!(unwrap_commands("\\boxed{open", &["boxed"]), "\\boxed{open");
    }
}
