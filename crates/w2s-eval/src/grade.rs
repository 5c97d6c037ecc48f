//! Grading a JSONL file of responses: each line gets `"pred"` (the normalized answer, `""` when
//! there is none) and `"correct"`, every other field kept; the result is a [`Report`] with the
//! undecided comparisons counted. This is what the `grade` example runs.

use std::path::Path;

use serde_json::Value;

use crate::answer::{equivalent, extract_normalized, gold_answer};
use crate::dataset::{parse_level, text_field, Fields};
use crate::error::{EvalError, Result};
use crate::report::{Report, ReportBuilder};
use crate::task::TaskKind;
use w2s_data::jsonl::{for_each_object, write_jsonl, Object};

/// Which fields hold the response and the gold answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GradeFields {
    /// The model's response.
    pub response: String,
    /// The gold answer or a gold solution it can be extracted from (`... #### 72`).
    pub gold: String,
    /// A worked solution whose final answer (MATH's last `\boxed{}`) is the gold answer of a line
    /// without the `gold` field.
    #[serde(default)]
    pub solution: Option<String>,
}

impl Default for GradeFields {
    /// The fields of w2s's own response files (`response`, `gold`), as evaluation runs write them.
    fn default() -> GradeFields {
        GradeFields {
            response: "response".into(),
            gold: "gold".into(),
            solution: None,
        }
    }
}

impl GradeFields {
    /// The benchmark's own gold fields ([`Fields::for_task`]), so a benchmark file that went
    /// through generation grades as it is: GSM8K's and arithmetic's `answer` (a worked solution
    /// ending in `#### N`), MATH's `answer` or else the boxed answer of its `solution`. The
    /// response is read from `response`.
    pub fn for_task(task: TaskKind) -> GradeFields {
        let Fields {
            answer, solution, ..
        } = Fields::for_task(task);
        GradeFields {
            response: "response".into(),
            solution: solution.filter(|solution| *solution != answer),
            gold: answer,
        }
    }

    /// The gold text of a line: its `gold` field, else its `solution` field.
    fn gold_text(&self, record: &Object) -> Option<String> {
        let solution = || {
            self.solution
                .as_deref()
                .and_then(|name| text_field(record, name))
        };
        text_field(record, &self.gold).or_else(solution)
    }

    /// What a line without a gold answer lacks, for the error.
    fn gold_description(&self) -> String {
        match &self.solution {
            Some(solution) => format!("{:?} (or {solution:?})", self.gold),
            None => format!("{:?}", self.gold),
        }
    }
}

/// Grade every line of `input` and write the graded lines to `output` (atomically).
///
/// Lines with a `level` or `subject` field also count towards the report's breakdowns. A line
/// without the response or a gold field is an error naming the file and line.
pub fn grade_file(
    task: TaskKind,
    input: &Path,
    output: &Path,
    fields: &GradeFields,
) -> Result<Report> {
    let mut report = ReportBuilder::new(task, input.display().to_string());
    let mut graded = Vec::new();
    for_each_object::<EvalError>(input, |line, mut record| {
        let missing =
            |what: String| EvalError::line(input, line, format!("missing text field {what}"));
        let response = text_field(&record, &fields.response)
            .ok_or_else(|| missing(format!("{:?}", fields.response)))?;
        let gold_text = fields
            .gold_text(&record)
            .ok_or_else(|| missing(fields.gold_description()))?;
        let gold = gold_answer(task, &gold_text);
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

    #[test]
    fn benchmark_fields_read_gsm8k_answer_and_math_solution() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (input, output) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
        std::fs::write(
            &input,
            concat!(
                "{\"question\": \"q\", \"answer\": \"3 + 4 = 7\\n#### 7\", \"response\": \"#### 7\"}\n",
                "{\"question\": \"q\", \"answer\": \"#### 8\", \"response\": \"#### 9\"}\n",
            ),
        )?;
        let gsm8k = GradeFields::for_task(TaskKind::Gsm8k);
        assert_eq!(
            (gsm8k.gold.as_str(), gsm8k.solution.as_deref()),
            ("answer", None)
        );
        let report = grade_file(TaskKind::Gsm8k, &input, &output, &gsm8k)?;
        assert_eq!((report.overall.total, report.overall.correct), (2, 1));

        std::fs::write(
            &input,
            concat!(
                "{\"problem\": \"p\", \"answer\": \"\\\\frac12\", \"response\": \"\\\\boxed{0.5}\"}\n",
                "{\"problem\": \"p\", \"solution\": \"so \\\\boxed{3}\", \"response\": \"\\\\boxed{3}\"}\n",
            ),
        )?;
        let report = grade_file(
            TaskKind::Math,
            &input,
            &output,
            &GradeFields::for_task(TaskKind::Math),
        )?;
        assert_eq!((report.overall.total, report.overall.correct), (2, 2));
        Ok(())
    }

    #[test]
    fn a_line_without_answer_or_solution_names_both() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (input, output) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
        std::fs::write(
            &input,
            "{\"response\": \"\\\\boxed{1}\", \"gold\": \"1\"}\n",
        )?;
        let err = grade_file(
            TaskKind::Math,
            &input,
            &output,
            &GradeFields::for_task(TaskKind::Math),
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            err,
            Some(format!(
                "{}:1: missing text field \"answer\" (or \"solution\")",
                input.display()
            ))
        );
        Ok(())
    }
}
