//! Every repository path that a document, a comment, a config or a script cites exists.
//!
//! The docs and module comments point readers at files (`docs/method.md`, `configs/gsm8k.toml`,
//! `crates/w2s-arith/assets/README.md`, ...). A file that moves or goes away must take its
//! citations with it; this test finds the ones left behind.

use std::path::{Path, PathBuf};

/// The folders of the repository whose names start a citation.
const ROOTS: [&str; 8] = [
    "crates/",
    "docs/",
    "configs/",
    "examples/",
    "benches/",
    "scripts/",
    "data/",
    "fuzz/",
];

/// File kinds that cite paths: docs, code, configs and scripts.
const CITING: [&str; 6] = ["md", "rs", "toml", "py", "sh", "txt"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Files of the repository to scan, build outputs and VCS data left out.
fn citing_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !matches!(name, "target" | ".git" | "runs" | "corpus" | "artifacts") {
                citing_files(&path, out);
            }
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| CITING.contains(&e))
        {
            out.push(path);
        }
    }
}

/// The paths cited in `text`: a known root folder at a word start, then path characters, with
/// sentence punctuation trimmed. A citation with a placeholder (`*`, `{`, `<`, `$`) is checked up
/// to the last folder before it. A path qualified by another repository (`owner/repo:path`)
/// is not this repository's and is skipped.
fn citations(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for root in ROOTS {
        let mut from = 0;
        while let Some(at) = text[from..].find(root) {
            let start = from + at;
            from = start + root.len();
            let before = text[..start].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || "_-./:".contains(c)) {
                continue;
            }
            let cited: String = text[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "_-./".contains(*c))
                .collect();
            let next = text[start + cited.len()..].chars().next();
            let cited = if next.is_some_and(|c| "*{<$".contains(c)) {
                cited[..cited.rfind('/').map_or(0, |i| i + 1)].to_string()
            } else {
                cited.trim_end_matches(['.', '-']).to_string()
            };
            if cited.len() > root.len() {
                found.push(cited);
            }
        }
    }
    found
}

/// The targets of Markdown links `[text](target)` that are files of the repository: web
/// addresses and in-page anchors left out, a target's own `#anchor` dropped.
fn link_targets(text: &str) -> Vec<&str> {
    text.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &text[at + 2..];
            let target = &rest[..rest.find(')')?];
            let target = target.split('#').next().unwrap_or("");
            let web = target.contains("://") || target.starts_with("mailto:");
            (!web && !target.is_empty()).then_some(target)
        })
        .collect()
}

#[test]
fn every_cited_path_exists() {
    let root = repo();
    let mut files = Vec::new();
    citing_files(&root, &mut files);
    assert!(files.len() > 50, "found only {} files to scan", files.len());
    let mut missing = Vec::new();
    for file in &files {
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let dir = file.parent().unwrap_or(&root);
        let markdown = file.extension().is_some_and(|e| e == "md");
        for (number, line) in text.lines().enumerate() {
            let links = if markdown {
                link_targets(line)
            } else {
                Vec::new()
            };
            let cited = citations(line).into_iter().map(|c| root.join(c));
            for path in cited.chain(links.into_iter().map(|l| dir.join(l))) {
                if !path.exists() {
                    let file = file.strip_prefix(&root).unwrap_or(file);
                    let path = path.strip_prefix(&root).unwrap_or(&path).to_path_buf();
                    missing.push(format!(
                        "{}:{}: {}",
                        file.display(),
                        number + 1,
                        path.display()
                    ));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "cited paths that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn citations_are_found_and_trimmed() {
    assert_eq!(
        citations("see docs/method.md, and `configs/gsm8k.toml`."),
        ["docs/method.md", "configs/gsm8k.toml"]
    );
    assert_eq!(
        citations("crates/*/tests and runs/docs/x"),
        Vec::<String>::new()
    );
    assert_eq!(
        citations("crates/w2s-arith/assets/arithmetic-$m/"),
        ["crates/w2s-arith/assets/"]
    );
    assert_eq!(
        citations("`owner/repo:data/raw/x.jsonl`"),
        Vec::<String>::new()
    );
    assert_eq!(
        citations("(../../docs/architecture.md)"),
        Vec::<String>::new()
    );
    assert_eq!(
        link_targets("[a](../../docs/method.md#stage-i) [b](https://x.org) [c](#top)"),
        ["../../docs/method.md"]
    );
}

/// The documents describe the software as it is; the history of its development (numbered
/// working periods of its authors) belongs in version control.
#[test]
fn documents_do_not_narrate_development_history() {
    let root = repo();
    let mut files = Vec::new();
    citing_files(&root, &mut files);
    let mut narrated = Vec::new();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "md"))
    {
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for (number, line) in text.lines().enumerate() {
            let lower = line.to_lowercase();
            // Spelled in two parts so that this file does not speak of them itself.
            if lower.contains(&["ses", "sion"].concat()) {
                let file = file.strip_prefix(&root).unwrap_or(file);
                narrated.push(format!("{}:{}: {line}", file.display(), number + 1));
            }
        }
    }
    assert!(
        narrated.is_empty(),
        "history in the docs:\n{}",
        narrated.join("\n")
    );
}
