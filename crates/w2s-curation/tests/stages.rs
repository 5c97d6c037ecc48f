//! Stage I and Stage II on small hand-made cases that hit every rule of docs/method.md: empty
//! answers on either side, missing records, ties in the majority, A- empty, confidence exactly at
//! 0.6 and 0.8 (6 and 8 of 10), a weak answer that is empty, and MATH's up to 3 distinct pairs.

use serde_json::json;
use w2s_curation::record::Sample;
use w2s_curation::stage1::{select_consistent, MatchMode, Stage1Stats};
use w2s_curation::stage2::{mine_pairs, MiningConfig, MiningStats};
use w2s_curation::CurationError;
use w2s_eval::TaskKind;

fn sample(id: &str, response: &str) -> Sample {
    Sample {
        id: id.into(),
        prompt: format!("Question: {id}?\nAnswer:"),
        response: response.into(),
        extra: json!({"gold": "5"}).as_object().unwrap().clone(),
    }
}

/// Ten samples of question `id` with GSM8K answers `answers` (`""` = a response without answer).
fn samples(id: &str, answers: &[&str]) -> Vec<Sample> {
    answers
        .iter()
        .enumerate()
        .map(|(seed, a)| {
            let text = if a.is_empty() {
                format!("I am not sure (try {})", "?".repeat(seed))
            } else {
                format!("Sample {seed}: so it is {a}.\n#### {a}")
            };
            sample(id, &text)
        })
        .collect()
}

fn gsm(answer: &str) -> String {
    format!("Weak reasoning.\n#### {answer}")
}

#[test]
fn stage1_keeps_only_non_empty_agreeing_answers() {
    let weak = vec![
        sample("kept", &gsm("5")),
        sample("weak-empty", "no idea"),
        sample("icl-empty", &gsm("4")),
        sample("disagree", &gsm("4")),
        sample("thousands", &gsm("1,000")),
        sample("no-icl", &gsm("9")),
    ];
    let mut icl = vec![
        sample("kept", "ICL says 2+3 = 5.\n#### 5"),
        sample("weak-empty", &gsm("3")),
        sample("icl-empty", "no idea"),
        sample("disagree", &gsm("6")),
        sample("thousands", &gsm("1000")),
        sample("orphan", &gsm("1")),
    ];
    icl[0].prompt = "Question: demo\nAnswer: ...\n\nQuestion: kept?\nAnswer:".into();
    icl[0].extra.insert("icl_only".into(), json!(true));
    let sets = select_consistent(TaskKind::Gsm8k, &weak, &icl, MatchMode::Exact).unwrap();
    assert_eq!(
        sets.stats,
        Stage1Stats {
            questions: 6,
            kept: 2,
            missing_icl: 1,
            icl_without_weak: 1,
            weak_empty: 1,
            icl_empty: 1,
            disagree: 1,
            undecided: 0,
        }
    );
    let ids = |set: &[w2s_curation::record::SftExample]| -> Vec<String> {
        set.iter()
            .map(|e| e.extra["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&sets.weak), ["kept", "thousands"]);
    assert_eq!(
        ids(&sets.hybrid),
        ["kept", "thousands", "kept", "thousands"]
    );
    assert_eq!(sets.hybrid[..2], sets.weak[..]);
    assert_eq!(sets.hybrid[2..], sets.icl[..]);
    // The ICL copy trains on the zero-shot prompt, not on the k-shot one it was generated from.
    assert_eq!(sets.icl[0].prompt, weak[0].prompt);
    assert_eq!(sets.icl[0].completion, icl[0].response);
    assert_eq!(sets.icl[0].extra["source"], "icl");
    assert_eq!(sets.icl[0].extra["icl_only"], true);
    assert_eq!(sets.weak[0].extra["gold"], "5");
    assert_eq!(sets.weak[0].extra["pred"], "5");
    assert!(sets.weak[0].extra.get("icl_only").is_none());
}

#[test]
fn stage1_equivalence_mode_accepts_equal_values_written_differently() {
    let math = |a: &str| format!("Work. The answer is: {a}");
    let weak = vec![sample("a", &math("1.5")), sample("b", &math("2"))];
    let icl = vec![
        sample("a", &math("\\frac{3}{2}")),
        sample("b", &math("2.0")),
    ];
    let exact = select_consistent(TaskKind::Math, &weak, &icl, MatchMode::Exact).unwrap();
    let equivalent = select_consistent(TaskKind::Math, &weak, &icl, MatchMode::Equivalent).unwrap();
    assert!(
        exact.stats.kept < equivalent.stats.kept,
        "{:?} vs {:?}",
        exact.stats,
        equivalent.stats
    );
}

#[test]
fn stage1_rejects_duplicate_ids() {
    let weak = vec![sample("a", &gsm("1")), sample("a", &gsm("2"))];
    let err = select_consistent(TaskKind::Gsm8k, &weak, &[], MatchMode::Exact).unwrap_err();
    assert!(
        matches!(
            err,
            CurationError::DuplicateId {
                source_name: "weak",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn stage2_applies_every_rule_in_order() {
    let cases: Vec<(&str, &str, Vec<&str>)> = vec![
        // weak = a+ at exactly 6/10: chosen; A- holds an empty answer, which is a valid rejected.
        (
            "chosen-at-0.6",
            "3",
            vec!["3", "3", "", "3", "4", "3", "4", "3", "", "3"],
        ),
        // 5/10 < 0.6.
        (
            "low",
            "3",
            vec!["3", "3", "3", "3", "3", "1", "2", "4", "6", "7"],
        ),
        // The empty answer is the majority (7/10).
        (
            "empty-majority",
            "3",
            vec!["", "", "", "3", "", "", "3", "", "", "3"],
        ),
        // weak = a+ and all ten agree: nothing to reject.
        ("no-negatives", "3", vec!["3"; 10]),
        // weak != a+ at exactly 8/10: weak rejected.
        (
            "rejected-at-0.8",
            "9",
            vec!["3", "3", "3", "3", "9", "3", "3", "3", "3", "9"],
        ),
        // weak != a+ at 7/10: middle band.
        (
            "middle",
            "9",
            vec!["3", "3", "3", "9", "3", "3", "3", "9", "9", "3"],
        ),
        // An empty weak answer is rejected when the majority is confident.
        (
            "weak-empty",
            "",
            vec!["3"; 9].into_iter().chain([""]).collect(),
        ),
        ("no-samples", "3", vec![]),
    ];
    let mut all_samples = Vec::new();
    let mut weak = Vec::new();
    for (id, weak_answer, answers) in &cases {
        weak.push(sample(
            id,
            &if weak_answer.is_empty() {
                "no idea".into()
            } else {
                gsm(weak_answer)
            },
        ));
        all_samples.extend(samples(id, answers));
    }
    all_samples.extend(samples("orphan", &["1", "1"]));
    let config = MiningConfig::default();
    let mined = mine_pairs(TaskKind::Gsm8k, &all_samples, &weak, &config).unwrap();
    assert_eq!(
        mined.stats,
        MiningStats {
            questions: 8,
            mined_questions: 3,
            pairs: 3,
            weak_chosen: 1,
            weak_rejected: 2,
            no_samples: 1,
            low_confidence: 1,
            empty_majority: 1,
            no_negatives: 1,
            middle_band: 1,
            samples_without_weak: 2,
        }
    );
    let by_id = |id: &str| mined.pairs.iter().find(|p| p.extra["id"] == id).unwrap();
    let chosen = by_id("chosen-at-0.6");
    assert_eq!(chosen.chosen, weak[0].response);
    assert_ne!(chosen.extra["rejected_pred"], "3");
    assert_eq!(chosen.extra["weak_role"], "chosen");
    assert_eq!(chosen.extra["confidence"], 0.6);
    let rejected = by_id("rejected-at-0.8");
    assert_eq!(rejected.rejected, weak[4].response);
    assert_eq!(rejected.extra["chosen_pred"], "3");
    assert_eq!(rejected.extra["confidence"], 0.8);
    let empty = by_id("weak-empty");
    assert_eq!(
        (empty.rejected.as_str(), &empty.extra["rejected_pred"]),
        ("no idea", &json!(""))
    );
    assert_eq!(empty.extra["gold"], "5", "weak record fields are carried");
    assert!(mined
        .pairs
        .iter()
        .all(|p| p.prompt.starts_with("Question: ")));
}

#[test]
fn stage2_ties_go_to_the_first_seen_answer() {
    // "2" and "1" both 5/10; "2" comes first (seed 0). Thresholds lowered so 0.5 qualifies.
    let answers = ["2", "1", "1", "2", "1", "2", "2", "1", "1", "2"];
    let config = MiningConfig {
        tau_low: 0.5,
        tau_high: 0.5,
        ..MiningConfig::default()
    };
    let mut all = samples("agrees", &answers);
    all.extend(samples("disagrees", &answers));
    let weak = vec![sample("agrees", &gsm("2")), sample("disagrees", &gsm("1"))];
    let mined = mine_pairs(TaskKind::Gsm8k, &all, &weak, &config).unwrap();
    assert_eq!(mined.pairs.len(), 2);
    assert_eq!(mined.pairs[0].extra["weak_role"], "chosen");
    assert_eq!(mined.pairs[0].extra["majority"], "2");
    assert_eq!(mined.pairs[1].extra["weak_role"], "rejected");
    assert_eq!(mined.pairs[1].extra["chosen_pred"], "2");
}

#[test]
fn stage2_math_mines_up_to_three_distinct_pairs_seeded() {
    let math = |a: &str| format!("Work. The answer is: {a}");
    let mut all = Vec::new();
    // Six distinct wrong answers in A-: three pairs, all different.
    for (i, a) in ["7", "7", "7", "7", "7", "7", "1", "2", "3", "4"]
        .iter()
        .enumerate()
    {
        all.push(sample("many", &format!("Sample {i}. {}", math(a))));
    }
    // A- has four samples but only two distinct texts: two pairs.
    for a in ["7", "7", "7", "7", "7", "7", "1", "1", "2", "2"] {
        all.push(sample("few", &math(a)));
    }
    let weak = vec![sample("many", &math("7")), sample("few", &math("7"))];
    let config = MiningConfig::for_task(TaskKind::Math);
    assert_eq!(config.pairs_per_question, 3);
    let mined = mine_pairs(TaskKind::Math, &all, &weak, &config).unwrap();
    let rejected = |id: &str| -> Vec<String> {
        mined
            .pairs
            .iter()
            .filter(|p| p.extra["id"] == id)
            .map(|p| p.rejected.clone())
            .collect()
    };
    let many = rejected("many");
    assert_eq!(many.len(), 3);
    assert!(many[0] != many[1] && many[1] != many[2] && many[0] != many[2]);
    assert_eq!(rejected("few").len(), 2);
    assert_eq!(mined.stats.pairs, 5);
    assert!(mined
        .pairs
        .iter()
        .all(|p| p.extra["chosen_pred"] != p.extra["rejected_pred"]));

    let again = mine_pairs(TaskKind::Math, &all, &weak, &config).unwrap();
    assert_eq!(again, mined, "same seed, same pairs");
    let differs = (1..20).any(|seed| {
        let other = mine_pairs(
            TaskKind::Math,
            &all,
            &weak,
            &MiningConfig { seed, ..config },
        )
        .unwrap();
        other.pairs != mined.pairs
    });
    assert!(differs, "the seed decides which samples are drawn");
}

#[test]
fn stage2_rejects_bad_thresholds() {
    let bad = MiningConfig {
        tau_low: 0.9,
        tau_high: 0.8,
        ..MiningConfig::default()
    };
    assert!(matches!(
        mine_pairs(TaskKind::Gsm8k, &[], &[], &bad),
        Err(CurationError::Config(_))
    ));
}
