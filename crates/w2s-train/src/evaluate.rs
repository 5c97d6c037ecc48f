//! An evaluation run: greedy answers to every question of a split, graded by w2s-eval.
//!
//! Each question is asked with the zero-shot prompt of docs/method.md (`Question: {q}\nAnswer:`),
//! which the model reads in its [`PromptFormat`], answered greedily, and the responses are written
//! to `OUT/responses.jsonl` (`{"id", "prompt", "response", "gold", "level"?, "subject"?}`, the
//! prompt as its text). They are then graded by
//! [`w2s_eval::grade_file`], the same code as the `grade` example, into `OUT/graded.jsonl` and the
//! report `OUT/report.json`.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde_json::{Map, Value};
use w2s_data::jsonl::write_jsonl;
use w2s_eval::prompt::zero_shot;
use w2s_eval::report::Report;
use w2s_eval::{grade_file, GradeFields, Problem, TaskKind};
use w2s_llama::{generate, GenerationConfig, Llama, Tokenizer};

use crate::error::{Result, TrainError};
use crate::metrics_log::progress_bar;
use crate::prompt_format::PromptFormat;

/// The files and report of an evaluation run.
#[derive(Debug, Clone)]
pub struct EvalRun {
    /// Accuracy overall and by level / subject.
    pub report: Report,
    /// `responses.jsonl`.
    pub responses: PathBuf,
    /// `graded.jsonl` (responses with `pred` and `correct`).
    pub graded: PathBuf,
}

/// Answers `problems` with `model`, which reads them in `format`, and grades the answers for `task`
/// (see module docs).
///
/// `generation` should be greedy (`Sampling::greedy()`) with one sample for the usual accuracy;
/// its stop strings and token budget are used as given.
///
/// # Errors
/// An empty split, generation and tokenizer errors, and I/O errors naming the file.
#[allow(clippy::too_many_arguments)]
pub fn evaluate<B: Backend>(
    model: &Llama<B>,
    tokenizer: &Tokenizer,
    format: PromptFormat,
    task: TaskKind,
    problems: &[Problem],
    generation: &GenerationConfig,
    prompts_per_batch: usize,
    output_dir: &Path,
    quiet: bool,
) -> Result<EvalRun> {
    if problems.is_empty() {
        return Err(TrainError::EmptyDataset { what: "evaluation" });
    }
    if prompts_per_batch == 0 {
        return Err(TrainError::config(
            "prompts_per_batch",
            "must be at least 1",
        ));
    }
    std::fs::create_dir_all(output_dir).map_err(|e| TrainError::io(output_dir, e))?;
    let device = crate::scoring::model_device(model);
    let bar = progress_bar(problems.len(), 0, "questions", quiet);
    let mut lines = Vec::with_capacity(problems.len() * generation.num_samples);
    for chunk in problems.chunks(prompts_per_batch) {
        let prompts: Vec<String> = chunk.iter().map(|p| zero_shot(&p.question)).collect();
        let ids = prompts
            .iter()
            .map(|p| format.encode(tokenizer, p))
            .collect::<Result<Vec<_>>>()?;
        for g in generate(model, &ids, generation, Some(tokenizer), &device)? {
            let problem = &chunk[g.prompt_index];
            let mut line = Map::new();
            line.insert("id".into(), problem.id.clone().into());
            line.insert("prompt".into(), prompts[g.prompt_index].clone().into());
            line.insert("response".into(), g.text.unwrap_or_default().into());
            line.insert("gold".into(), problem.answer.clone().into());
            if let Some(level) = problem.level {
                line.insert("level".into(), level.into());
            }
            if let Some(subject) = &problem.subject {
                line.insert("subject".into(), Value::String(subject.clone()));
            }
            lines.push(line);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    let responses = output_dir.join("responses.jsonl");
    write_jsonl(&responses, lines)?;
    grade_responses(task, &responses)
}

/// Grades the responses in `responses` (`OUT/responses.jsonl`: lines with `response` and `gold`,
/// and `level` and `subject` where known) for `task` into `OUT/graded.jsonl` and the report
/// `OUT/report.json`.
///
/// # Errors
/// A malformed line (naming file and line), and I/O errors naming the file.
pub fn grade_responses(task: TaskKind, responses: &Path) -> Result<EvalRun> {
    let dir = responses.parent().unwrap_or(Path::new("."));
    let graded = dir.join("graded.jsonl");
    let mut report = grade_file(task, responses, &graded, &GradeFields::default())?;
    report.source = responses
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    report.write_json(&dir.join("report.json"))?;
    Ok(EvalRun {
        report,
        responses: responses.to_path_buf(),
        graded,
    })
}
