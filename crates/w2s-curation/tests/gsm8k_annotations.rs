//! The calculator annotations of all GSM8K gold solutions (train 7,473 + test 1,319 items,
//! 27,998 annotations) verify as correct steps, except the ones that really are wrong.
//!
//! That exception list is **empty**: every annotation holds exactly, with no rounding needed
//! (cross-checked with Python's `fractions.Fraction` over the same files). Two annotations use
//! Python's floor division, `<<560//10=56>>` (train line 395) and `<<180//3=60>>` (train line
//! 4170); both are right, and a verifier without `//` would call them undecidable. The test
//! asserts the exact (empty) set, so a verifier that starts rejecting a right step fails here; the
//! unit tests in `steps.rs` cover rejecting wrong ones.
//!
//! The prose around the annotations is a harder test of the inline-equation finder, which must
//! read `48/2 = 24` without the annotation's help. With annotations removed, it finds 23,571
//! equations and flags 64 as wrong (0.27%). Those are slips in the gold prose
//! (`6*2.5 = $18.00`) or prose shorthand that is not arithmetic (`1/4 = 15` for "a quarter of
//! 60 is 15", `$2.50 - $2.24 = 26` in cents). The test pins both counts, so a change in what the
//! finder reads or flags shows up here.

use std::collections::BTreeSet;

use serde::Deserialize;
use w2s_curation::expr::literal_prefix;
use w2s_curation::jsonl::{read_jsonl, BadLines};
use w2s_curation::rational::Ratio;
use w2s_curation::steps::{find_steps, StepKind, StepStats, Verdict};

#[derive(Deserialize)]
struct Item {
    answer: String,
}

fn gold_solutions() -> Vec<(&'static str, usize, String)> {
    let mut out = Vec::new();
    for split in ["train", "test"] {
        let path = format!(
            "{}/../../data/gsm8k/{split}.jsonl",
            env!("CARGO_MANIFEST_DIR")
        );
        let items = read_jsonl::<Item>(&path, BadLines::Fail).unwrap().records;
        out.extend(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| (split, i + 1, item.answer)),
        );
    }
    out
}

/// Remove every `<<...>>` annotation, leaving the prose.
fn strip_annotations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("<<") {
        out.push_str(&rest[..open]);
        rest = rest[open..]
            .find(">>")
            .map_or("", |close| &rest[open + close + 2..]);
    }
    out.push_str(rest);
    out
}

#[test]
fn gsm8k_gold_annotations_verify() {
    // (split, 1-based line, annotation): annotations that really are wrong. None are.
    let expected_wrong: BTreeSet<(&str, usize, String)> = BTreeSet::new();
    let mut not_correct = BTreeSet::new();
    let mut annotations = 0;
    for (split, line, answer) in gold_solutions() {
        for step in find_steps(&answer)
            .into_iter()
            .filter(|s| s.kind == StepKind::Annotation)
        {
            annotations += 1;
            if step.verdict != Verdict::Correct {
                not_correct.insert((split, line, answer[step.span.clone()].to_string()));
            }
            // The number the prose shows after the annotation is the annotation's result
            // (`<<(75/100)*100=75>>75%` shows it as a percentage).
            if let Some((shown, _)) = literal_prefix(&answer[step.span.end..]) {
                let (claimed, _) = literal_prefix(&step.claim).unwrap();
                let hundred = Ratio::integer(100);
                let as_written = if shown.percent {
                    shown.value.checked_mul(hundred).unwrap()
                } else {
                    shown.value
                };
                assert_eq!(
                    as_written, claimed.value,
                    "{split}:{line}: {}",
                    &answer[step.span]
                );
            }
        }
    }
    assert_eq!(annotations, 27_998);
    assert_eq!(not_correct, expected_wrong);
}

#[test]
fn inline_equations_of_gold_prose_rarely_flagged() {
    let prose: Vec<String> = gold_solutions()
        .iter()
        .map(|(_, _, answer)| strip_annotations(answer))
        .collect();
    let stats = StepStats::of_set(&prose);
    assert_eq!(stats.steps, 23_571);
    assert_eq!(stats.undecidable, 0);
    assert_eq!(
        stats.wrong, 64,
        "flagged wrong of {} equations",
        stats.steps
    );
}
