//! Benchmark loaders: GSM8K (`question`/`answer`), MATH (`problem`/`solution`/`answer`/`subject`/
//! `level`), and any JSONL file with a question field and a gold-answer field.
//!
//! Field names follow the benchmark files in data/ (data/README.md): GSM8K's `answer` is the worked
//! solution ending in `#### N`; MATH's `answer` is the content of the last `\boxed{}` of `solution`,
//! and `level` may be null (2 records of the PRM800K train split).

use std::path::Path;

use serde_json::Value;

use crate::answer::extract;
use crate::error::{EvalError, Result};
use crate::task::TaskKind;
use w2s_data::jsonl::{for_each_object, Object};

/// Which fields of a JSONL line hold the question, the gold answer and the worked solution.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fields {
    /// The question text.
    pub question: String,
    /// The gold final answer, or a worked solution it can be extracted from (GSM8K's `#### N`).
    pub answer: String,
    /// The worked gold solution, if the file has one.
    pub solution: Option<String>,
}

impl Fields {
    /// The field names of the benchmark files: GSM8K and arithmetic `question`/`answer`, MATH
    /// `problem`/`answer`/`solution`.
    pub fn for_task(task: TaskKind) -> Fields {
        let (question, answer, solution) = match task {
            TaskKind::Gsm8k | TaskKind::Arithmetic => ("question", "answer", "answer"),
            TaskKind::Math => ("problem", "answer", "solution"),
        };
        Fields {
            question: question.into(),
            answer: answer.into(),
            solution: Some(solution.into()),
        }
    }
}

/// One benchmark question with its gold answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// `id` or `unique_id` of the line, else its line number.
    pub id: String,
    /// The question text.
    pub question: String,
    /// The raw gold final answer (not normalized).
    pub answer: String,
    /// The worked gold solution, when the file has one.
    pub solution: Option<String>,
    /// MATH subject (`Algebra`, ...), when present.
    pub subject: Option<String>,
    /// MATH difficulty level 1–5, when present and not null.
    pub level: Option<u32>,
    /// The whole line as read, so that writing it back keeps every field.
    pub record: Object,
}

/// Load a GSM8K file (`question`, `answer` with a final `#### N`).
pub fn load_gsm8k(path: &Path) -> Result<Vec<Problem>> {
    load(TaskKind::Gsm8k, path, &Fields::for_task(TaskKind::Gsm8k))
}

/// Load a MATH file (`problem`, `solution`, `answer`, `subject`, `level`).
pub fn load_math(path: &Path) -> Result<Vec<Problem>> {
    load(TaskKind::Math, path, &Fields::for_task(TaskKind::Math))
}

/// Load any JSONL file of questions with gold answers.
///
/// The gold answer is extracted from the `answer` field by the task's rule when it holds a worked
/// solution (`#### N`, `\boxed{}`), and taken as it is otherwise. When the `answer` field is
/// missing, the solution field's final answer is used instead.
pub fn load(task: TaskKind, path: &Path, fields: &Fields) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();
    for_each_object::<EvalError>(path, |line, record| {
        let field = |name: &str| text_field(&record, name);
        let missing = |name: &str| EvalError::line(path, line, format!("missing field {name:?}"));
        let question = field(&fields.question).ok_or_else(|| missing(&fields.question))?;
        let solution = fields.solution.as_deref().and_then(field);
        let answer_text = field(&fields.answer)
            .or_else(|| solution.clone())
            .ok_or_else(|| missing(&fields.answer))?;
        let answer = extract(task, &answer_text).unwrap_or_else(|| answer_text.trim().to_string());
        let id = field("id")
            .or_else(|| field("unique_id"))
            .unwrap_or_else(|| line.to_string());
        let level = match record.get("level") {
            None | Some(Value::Null) => None,
            Some(v) => Some(parse_level(v).ok_or_else(|| {
                EvalError::line(path, line, format!("level {v} is not a level 1-5"))
            })?),
        };
        problems.push(Problem {
            id,
            question,
            answer,
            solution,
            subject: field("subject"),
            level,
            record,
        });
        Ok(())
    })?;
    Ok(problems)
}

/// A field as text: strings as they are, numbers written out (`72`), anything else absent.
pub(crate) fn text_field(record: &Object, name: &str) -> Option<String> {
    match record.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `3`, `"3"` or `"Level 3"`.
pub(crate) fn parse_level(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().trim_start_matches("Level").trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(lines: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, lines).unwrap_or_else(|e| panic!("write: {e}"));
        (dir, path)
    }

    #[test]
    fn gsm8k_gold_comes_from_the_hash_line() -> Result<()> {
        let (_dir, path) =
            write("{\"question\": \"q\", \"answer\": \"a <<1+1=2>>2\\n#### 1,080\"}\n");
        let p = load_gsm8k(&path)?;
        assert_eq!(p[0].answer, "1080");
        assert_eq!(p[0].id, "1");
        assert_eq!(p[0].solution.as_deref(), Some("a <<1+1=2>>2\n#### 1,080"));
        Ok(())
    }

    #[test]
    fn math_keeps_subject_and_optional_level() -> Result<()> {
        let (_dir, path) = write(concat!(
            "{\"problem\": \"p\", \"solution\": \"s \\\\boxed{3}\", \"answer\": \"3\", ",
            "\"subject\": \"Algebra\", \"level\": 2, \"unique_id\": \"test/a/1.json\"}\n",
            "{\"problem\": \"p\", \"solution\": \"\\\\boxed{\\\\frac12}\", \"level\": null}\n",
        ));
        let p = load_math(&path)?;
        assert_eq!(
            (p[0].subject.as_deref(), p[0].level),
            (Some("Algebra"), Some(2))
        );
        assert_eq!(p[0].id, "test/a/1.json");
        assert_eq!((p[1].level, p[1].answer.as_str()), (None, "\\frac12"));
        Ok(())
    }

    #[test]
    fn custom_fields_and_errors_with_line_numbers() {
        let (_dir, path) = write("{\"q\": \"x\", \"gold\": 7}\n{\"q\": \"y\"}\n");
        let fields = Fields {
            question: "q".into(),
            answer: "gold".into(),
            solution: None,
        };
        let err = load(TaskKind::Gsm8k, &path, &fields)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err,
            Some(format!("{}:2: missing field \"gold\"", path.display()))
        );
        let level = write("{\"problem\": \"p\", \"answer\": \"1\", \"level\": \"hard\"}\n");
        assert!(load_math(&level.1).is_err());
    }
}
