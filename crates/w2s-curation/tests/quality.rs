//! The outcome-error-rate builder measured back by the quality report gives the requested rate
//! (exactly `round(epsilon * n) / n`), and the step-wise error rate sees the planted step errors.
//!
//! Tasks: the 1,319 GSM8K test items. Correct solution = the gold solution. Incorrect solution =
//! the gold solution with its last calculator annotation's result and its `#### N` both changed
//! to N + 1, so each incorrect solution has a wrong final answer and exactly one wrong step.

use serde::Deserialize;
use serde_json::json;
use w2s_curation::controlled::{controlled_set, ControlledSpec, ControlledTask, StepTarget};
use w2s_curation::jsonl::{read_jsonl, BadLines};
use w2s_curation::quality::{sft_quality, Gold, GoldFormat, StepCheck};
use w2s_curation::steps::StepStats;
use w2s_eval::TaskKind;

#[derive(Deserialize)]
struct Item {
    question: String,
    answer: String,
}

fn corrupt(solution: &str) -> Option<String> {
    let (body, final_answer) = solution.rsplit_once("#### ")?;
    let wrong: i64 = final_answer.trim().replace(',', "").parse::<i64>().ok()? + 1;
    let close = body.rfind(">>")?;
    let eq = body[..close].rfind('=')?;
    Some(format!(
        "{}={}{}#### {wrong}",
        &body[..eq],
        wrong,
        &body[close..]
    ))
}

#[test]
fn epsilon_builder_measured_back() {
    let path = format!("{}/../../data/gsm8k/test.jsonl", env!("CARGO_MANIFEST_DIR"));
    let items = read_jsonl::<Item>(&path, BadLines::Fail).unwrap().records;
    let tasks: Vec<ControlledTask> = items
        .iter()
        .map(|item| ControlledTask {
            prompt: format!("Question: {}\nAnswer:", item.question),
            correct: item.answer.clone(),
            incorrect: corrupt(&item.answer).into_iter().collect(),
            extra: json!({ "gold": item.answer }).as_object().unwrap().clone(),
        })
        .collect();
    let eligible = tasks.iter().filter(|t| !t.incorrect.is_empty()).count();
    assert!(eligible > 1_250, "{eligible} tasks could be corrupted");
    let gold = Gold {
        task: TaskKind::Gsm8k,
        field: "gold".into(),
        format: GoldFormat::Solution,
    };
    let clean_steps = StepStats::of_set(tasks.iter().map(|t| &t.correct));
    assert_eq!(clean_steps.wrong, 0);
    let n = tasks.len();
    for epsilon in [0.0, 0.1, 0.25, 0.5, 0.9] {
        let spec = ControlledSpec {
            epsilon,
            steps: StepTarget::Random,
            seed: 42,
        };
        let set = controlled_set(&tasks, &spec, StepCheck::Calculator).unwrap();
        let report = sft_quality(&set, &gold, StepCheck::Calculator).unwrap();
        let flipped = (epsilon * n as f64).round() as usize;
        assert_eq!(report.size, n);
        assert_eq!(report.correct, n - flipped, "epsilon {epsilon}");
        assert_eq!(report.outcome_error_rate, Some(flipped as f64 / n as f64));
        assert!((report.outcome_error_rate.unwrap() - epsilon).abs() <= 0.5 / n as f64 + 1e-12);
        // One planted wrong step per incorrect solution, nothing else wrong.
        assert_eq!(report.steps.wrong, flipped, "epsilon {epsilon}");
        assert_eq!(report.steps.steps, clean_steps.steps);
        assert_eq!(
            report.step_error_rate,
            Some(flipped as f64 / clean_steps.steps as f64)
        );
    }
}
