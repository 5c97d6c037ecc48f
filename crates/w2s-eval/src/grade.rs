//! Grading a JSONL file of responses: each line gets `"pred"` (the normalized answer, `""` when
//! there is none) and `"correct"`, every other field kept; the result is a [`Report`] with the
//! undecided comparisons counted. This is what the `grade` example runs.

use std::path::Path;

use serde_json::Value;

use crate::answer::{equivalent, extract_normalized, gold_answer};
use crate::dataset::{parse_level, text_field};
use crate::error::{EvalError, Result};
use crate::jsonl::{for_each_object, write_jsonl};
use crate::report::{Report, ReportBuilder};
use crate::task::TaskKind;

/// Which fields hold the response and the gold answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GradeFields {
    /// The model's response (default `response`).
    pub response: String,
    /// The gold answer or a gold solution it can be extracted from (default `gold`).
    pub gold: String,
}

impl Default for GradeFields {
    fn default() -> GradeFields {
        GradeFields {
            response: "response".into(),
            gold: "gold".into(),
        }
    }
}

/// Grade every line of `input` and write the graded lines to `output` (atomically).
///
/// Lines with a `level` or `subject` field also count towards the report's breakdowns. A line
/// without the response or gold field is an error naming the file and line.
pub fn grade_file(
    task: TaskKind,
    input: &Path,
    output: &Path,
    fields: &GradeFields,
) -> Result<Report> {
    let mut report = ReportBuilder::new(task, input.display().to_string());
    let mut graded = Vec::new();
    for_each_object(input, |line, mut record| {
        let field = |name: &str| {
            text_field(&record, name)
                .ok_or_else(|| EvalError::line(input, line, format!("missing text field {name:?}")))
        };
        let response = field(&fields.response)?;
        let gold = gold_answer(task, &field(&fields.gold)?);
        let pred = extract_normalized(task, &response);
        let outcome = equivalent(task, &pred, &gold);
        let level = record.get("level").map(parse_level);
        let subject = record.get("subject").and_then(Value::as_str);
        report.record(&pred, outcome, level, subject);
        record.insert("pred".into(), Value::String(pred));
        record.insert("correct".into(), Value::Bool(outcome.is_equal()));
        graded.push(record);
        Ok(())
    })?;
    write_jsonl(output, &graded)?;
    Ok(report.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_get_pred_and_correct_and_keep_their_fields() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (input, output) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
        std::fs::write(
            &input,
            concat!(
                "{\"id\": 1, \"response\": \"so #### 1,000\", \"gold\": \"x\\n#### 1000\"}\n",
                "{\"id\": 2, \"response\": \"no idea\", \"gold\": 5}\n",
            ),
        )?;
        let report = grade_file(TaskKind::Gsm8k, &input, &output, &GradeFields::default())?;
        assert_eq!(
            (
                report.overall.total,
                report.overall.correct,
                report.overall.no_answer
            ),
            (2, 1, 1)
        );
        let text = std::fs::read_to_string(&output)?;
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                r##"{"id":1,"response":"so #### 1,000","gold":"x\n#### 1000","pred":"1000","correct":true}"##,
                r#"{"id":2,"response":"no idea","gold":5,"pred":"","correct":false}"#,
            ]
        );
        Ok(())
    }

    #[test]
    fn math_lines_count_undecided_and_break_down_by_level() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (input, output) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
        std::fs::write(
            &input,
            concat!(
                "{\"response\": \"The answer is: x^2+1\", \"gold\": \"1+x^2\", \"level\": 3}\n",
                "{\"response\": \"$\\\\boxed{\\\\frac12}$\", \"gold\": \"0.5\", \"level\": 3, \"subject\": \"Algebra\"}\n",
            ),
        )?;
        let report = grade_file(TaskKind::Math, &input, &output, &GradeFields::default())?;
        assert_eq!((report.overall.correct, report.overall.undecided), (1, 1));
        assert_eq!(report.by_level["3"].total, 2);
        assert_eq!(report.by_subject["Algebra"].correct, 1);
        Ok(())
    }

    #[test]
    fn a_missing_field_names_file_and_line() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (input, output) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
        std::fs::write(
            &input,
            "{\"response\": \"1\", \"gold\": \"1\"}\n{\"answer\": \"1\"}\n",
        )?;
        let fields = GradeFields::default();
        let err = grade_file(TaskKind::Gsm8k, &input, &output, &fields)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err,
            Some(format!(
                "{}:2: missing text field \"response\"",
                input.display()
            ))
        );
        assert!(!output.exists(), "nothing is written on error");
        Ok(())
    }
}
