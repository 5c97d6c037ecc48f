//! Grades a JSONL file of model responses against gold answers (GSM8K, MATH or the arithmetic task).
//!
//! By default the gold answer is the benchmark's own field, so `generate`'s output on a benchmark
//! file grades as it is: GSM8K's `answer` (the worked solution; the number after `####`), MATH's
//! `answer` (or the last `\boxed{}` of `solution` when a line has no `answer`), the arithmetic
//! task's `answer`. Each output line is the input line plus `"pred"` (the normalized answer, ""
//! when the response has none) and `"correct"`. Prints the accuracy, the undecided comparisons
//! (counted as wrong) and, for lines with `level`/`subject`, a Markdown breakdown.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use w2s::eval::{grade_file, GradeFields, TaskKind};

/// Grade model responses against gold answers.
#[derive(Parser)]
#[command(version, long_about = None)]
struct Args {
    /// Task whose answer rules apply: gsm8k, math or arithmetic.
    #[arg(long)]
    task: TaskKind,
    /// JSONL file with one response and one gold answer per line (`generate`'s output, say).
    #[arg(long)]
    input: PathBuf,
    /// Field holding the model's response.
    #[arg(long, default_value = "response")]
    response_field: String,
    /// Field holding the gold answer, or a gold solution ending in `#### N` / `\boxed{}`
    /// [default: the benchmark's own, answer; for MATH, solution when a line has no answer]
    #[arg(long)]
    gold_field: Option<String>,
    /// Where to write the graded lines (replaced atomically when complete).
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// Also write the report as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,
}

impl Args {
    /// The task's benchmark fields, with `--response-field` and `--gold-field` applied; a gold
    /// field given by name is read alone, without the benchmark's fallback.
    fn fields(&self) -> GradeFields {
        let benchmark = GradeFields::for_task(self.task);
        let (gold, solution) = match &self.gold_field {
            Some(field) => (field.clone(), None),
            None => (benchmark.gold, benchmark.solution),
        };
        GradeFields {
            response: self.response_field.clone(),
            gold,
            solution,
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let report = grade_file(args.task, &args.input, &args.output, &args.fields())?;
    let s = &report.overall;
    println!(
        "accuracy {:.4} ({} / {}); undecided {}; no answer {}",
        s.accuracy, s.correct, s.total, s.undecided, s.no_answer
    );
    if !report.by_level.is_empty() || !report.by_subject.is_empty() {
        print!("{}", report.to_markdown());
    }
    if let Some(path) = &args.report {
        report.write_json(path)?;
    }
    Ok(())
}
