//! Grades a JSONL file of model responses against gold answers (GSM8K, MATH or the arithmetic task).
//!
//! Each output line is the input line plus `"pred"` (the normalized answer, "" when the response
//! has none) and `"correct"`. Prints the accuracy, the undecided comparisons (counted as wrong) and,
//! for lines with `level`/`subject`, a Markdown breakdown.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use w2s::eval::{grade_file, GradeFields, TaskKind};

/// Grade model responses against gold answers.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Task whose answer rules apply: gsm8k, math or arithmetic.
    #[arg(long)]
    task: TaskKind,
    /// JSONL file with one response and one gold answer per line.
    #[arg(long)]
    input: PathBuf,
    /// Field holding the model's response.
    #[arg(long, default_value = "response")]
    response_field: String,
    /// Field holding the gold answer (or a gold solution ending in `#### N` / `\boxed{}`).
    #[arg(long, default_value = "gold")]
    gold_field: String,
    /// Where to write the graded lines (replaced atomically when complete).
    #[arg(long)]
    output: PathBuf,
    /// Also write the report as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let fields = GradeFields {
        response: args.response_field,
        gold: args.gold_field,
    };
    let report = grade_file(args.task, &args.input, &args.output, &fields)?;
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
