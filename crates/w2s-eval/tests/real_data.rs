//! Grading rules checked against the real benchmark files in data/ (data/README.md says where each
//! file comes from).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;
use w2s_data::jsonl::for_each_object;
use w2s_eval::answer::{equivalent, extract, extract_normalized, last_boxed, normalize};
use w2s_eval::{load_gsm8k, load_math, TaskKind};

fn data(rel: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data")).join(rel)
}

/// The value of the final `#### N` line, read independently of the extractor.
fn hash_line_value(solution: &str) -> Option<String> {
    let last = solution.lines().last()?;
    Some(last.strip_prefix("#### ")?.replace(',', ""))
}

#[test]
fn gsm8k_gold_answers_are_the_hash_line_values() -> anyhow::Result<()> {
    for (file, expected_len) in [("gsm8k/train.jsonl", 7473), ("gsm8k/test.jsonl", 1319)] {
        let problems = load_gsm8k(&data(file))?;
        assert_eq!(problems.len(), expected_len, "{file}");
        for p in &problems {
            let solution = p
                .solution
                .as_deref()
                .with_context(|| format!("{file} {}: no solution", p.id))?;
            let expected = hash_line_value(solution);
            assert_eq!(Some(p.answer.clone()), expected, "{file} {}", p.id);
            assert_eq!(
                extract(TaskKind::Gsm8k, solution),
                expected,
                "{file} {}",
                p.id
            );
        }
    }
    Ok(())
}

#[test]
fn math_answers_are_the_last_box_of_the_solution() -> anyhow::Result<()> {
    let mut problems = load_math(&data("math/train.jsonl"))?;
    problems.extend(load_math(&data("math/test.jsonl"))?);
    assert_eq!(problems.len(), 12_500);
    let mut raw_differs = Vec::new();
    let mut unequal = Vec::new();
    for p in &problems {
        let solution = p
            .solution
            .as_deref()
            .with_context(|| format!("math {}: no solution", p.id))?;
        let boxed = last_boxed(solution).unwrap_or_default();
        if boxed != p.answer {
            raw_differs.push(p.id.clone());
        }
        let (a, b) = (
            normalize(TaskKind::Math, &boxed),
            normalize(TaskKind::Math, &p.answer),
        );
        if !equivalent(TaskKind::Math, &a, &b).is_equal() {
            unequal.push(format!("{}: {a:?} vs {b:?}", p.id));
        }
    }
    // The exceptions: MATH's own solutions end in an empty box ("there are $\\boxed{}$ primes"), so
    // their answer is empty, and an empty answer is never correct.
    assert_eq!(
        unequal,
        [
            "train/number_theory/7115.json: \"\" vs \"\"",
            "train/number_theory/7117.json: \"\" vs \"\"",
        ]
    );
    assert_eq!(raw_differs, Vec::<String>::new());
    Ok(())
}

/// The four models whose solutions OpenAI labelled.
const MODELS: [&str; 4] = [
    "6b_finetuning",
    "6b_verification",
    "175b_finetuning",
    "175b_verification",
];

/// The example solutions end with `A: N` instead of `#### N`; read the last `A:` as the key.
fn as_hash_answer(solution: &str) -> String {
    match solution.rfind("A:") {
        Some(i) => format!("{}####{}", &solution[..i], &solution[i + 2..]),
        None => solution.to_string(),
    }
}

/// `record[key]` as `read` takes it; an error naming `at` (file and line) and the key when the key
/// is missing or holds another type.
fn field<'a, T>(
    record: &'a Value,
    key: &str,
    at: &str,
    read: impl FnOnce(&'a Value) -> Option<T>,
) -> anyhow::Result<T> {
    record
        .get(key)
        .and_then(read)
        .with_context(|| format!("{at}: `{key}` is missing or of another type"))
}

/// OpenAI labelled the solutions of four models to each of the 1,319 test questions: 5,276
/// labels, and the grader agrees with every one.
#[test]
fn grader_agrees_with_openai_labels_on_example_model_solutions() -> anyhow::Result<()> {
    let file = "gsm8k/example_model_solutions.jsonl";
    let mut disagreements = BTreeSet::new();
    let (mut agreed, mut total) = (0usize, 0usize);
    for_each_object::<anyhow::Error>(&data(file), |line, record| {
        let record = Value::Object(record);
        let at = format!("data/{file}:{line}");
        let truth = field(&record, "ground_truth", &at, Value::as_str)?;
        let gold = extract_normalized(TaskKind::Gsm8k, &as_hash_answer(truth));
        assert!(!gold.is_empty(), "{at}: no gold answer");
        for model in MODELS {
            let sample = field(&record, model, &at, Some)?;
            let at = format!("{at} {model}");
            let solution = field(sample, "solution", &at, Value::as_str)?;
            let label = field(sample, "is_correct", &at, Value::as_bool)?;
            let pred = extract_normalized(TaskKind::Gsm8k, &as_hash_answer(solution));
            let ours = equivalent(TaskKind::Gsm8k, &pred, &gold).is_equal();
            total += 1;
            if ours == label {
                agreed += 1;
            } else {
                disagreements.insert((line, model));
            }
        }
        Ok(())
    })?;
    assert_eq!(
        disagreements,
        BTreeSet::new(),
        "(line, model) with another verdict"
    );
    assert_eq!((agreed, total), (5_276, 4 * 1319));
    Ok(())
}

#[test]
fn math_answers_survive_the_sft_format_and_normalize_idempotently() -> anyhow::Result<()> {
    let problems = load_math(&data("math/train.jsonl"))?;
    let mut not_idempotent = Vec::new();
    for p in problems.iter().filter(|p| !p.answer.is_empty()) {
        let once = normalize(TaskKind::Math, &p.answer);
        if normalize(TaskKind::Math, &once) != once {
            not_idempotent.push(format!("{}: {:?}", p.id, p.answer));
        }
        let response = format!("So $\\boxed{{{}}}$. The answer is: {}", p.answer, p.answer);
        assert_eq!(
            extract_normalized(TaskKind::Math, &response),
            once,
            "{}",
            p.id
        );
    }
    assert_eq!(not_idempotent, Vec::<String>::new());
    Ok(())
}
