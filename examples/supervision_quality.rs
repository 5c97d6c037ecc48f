//! The supervision-quality study (He, Yin & Peng 2024): what makes weak supervision of hard
//! reasoning good. It trains the strong model once per supervision set and prints the table and
//! the paper's three questions answered by the measurements (also `study.json`, `study.md` and
//! `study.svg` in the run directory).
//!
//! ```text
//! cargo run --release --example supervision_quality
//! cargo run --release --example supervision_quality -- --config my-study.toml --output runs/mine
//! ```
//! A rerun with the same `--output` skips every set whose examples and training did not change.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use w2s::backend;
use w2s::train::pipeline::PipelineOptions;
use w2s::train::study::{run_study, StudyConfig};

/// Train the strong model on supervision sets that differ in one controlled way each and report
/// test accuracy: hard-task and subtask supervision at outcome error rates epsilon; hard-task
/// supervision at one epsilon with a low and a high step-wise error rate; hard-task supervision
/// plus subtasks against plus a rephrased copy. Each set's outcome and step-wise error rates are
/// measured back and printed beside the rates asked for.
#[derive(Parser)]
#[command(version, long_about = None)]
struct Args {
    /// Study config (TOML); without it, the built-in arithmetic task with the built-in strong
    /// model (`--print-config` shows it). For your own GSM8K or MATH supervision, set
    /// `data.source = "files"` with JSONL files of `{"id", "question", "answer", "correct",
    /// "incorrect": [...]}` lines (hard tasks, subtasks, optional rephrased copies), a test
    /// file, and `model = { kind = "dir", path = "..." }`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run directory: every set, model, evaluation and the report.
    #[arg(
        long,
        short = 'o',
        alias = "out",
        default_value = "runs/supervision_quality"
    )]
    output: PathBuf,
    /// Recompute every stage (otherwise stages with unchanged inputs are reused).
    #[arg(long)]
    fresh: bool,
    /// Override the config's seed (problems, corrupted solutions, every set's choices).
    #[arg(long)]
    seed: Option<u64>,
    /// No progress bars or stage lines.
    #[arg(long)]
    quiet: bool,
    /// Print the config as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut config = match &args.config {
        Some(path) => StudyConfig::from_toml_file(path)?,
        None => StudyConfig::embedded(),
    };
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    if args.print_config {
        print!("{}", config.to_toml()?);
        return Ok(());
    }
    let options = PipelineOptions {
        out: args.output.clone(),
        fresh: args.fresh,
        quiet: args.quiet,
        backend: backend::name().to_string(),
    };
    let report = run_study::<backend::Training>(&config, &options, &backend::device())
        .with_context(|| format!("study run in {}", args.output.display()))?;
    println!("{}", report.to_markdown());
    println!("report: {}", args.output.join("study.json").display());
    Ok(())
}
