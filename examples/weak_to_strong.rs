//! The main job: the whole weak-to-strong pipeline of docs/method.md, end to end.
//!
//! With no config it runs the embedded default: the built-in arithmetic task, with a weak and a
//! strong Llama that ship pretrained inside w2s, fine-tuned on CPU; `--from-scratch` pretrains
//! them first, as was done to make them. It prints the report (also written as
//! `report.json`, `report.md` and `report.svg` in the run directory).
//!
//! ```text
//! cargo run --release --example weak_to_strong
//! cargo run --release --example weak_to_strong -- --seed 1 --output runs/seed1
//! cargo run --release --features cuda --example weak_to_strong -- --config configs/gsm8k.toml
//! ```
//! A rerun with the same `--output` skips every stage whose inputs did not change.

use std::path::PathBuf;

use std::io::Write;

use anyhow::{Context, Result};
use clap::Parser;
use w2s::backend;
use w2s::data::write_atomic;
use w2s::train::pipeline::{
    run_pipeline, summarize, summary_markdown, PipelineConfig, PipelineOptions, PipelineReport,
};

/// Run weak-to-strong reasoning: weak SFT, naive and ceiling baselines, Stage I (final-answer
/// consistency) and Stage II (preference optimization on mined pairs), then report test
/// accuracy and PGR of every model.
#[derive(Parser)]
#[command(version, long_about = None)]
struct Args {
    /// Pipeline config (TOML); without it, the embedded arithmetic default
    /// (`--print-config` shows it). configs/ holds GSM8K and MATH recipes.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run the embedded default from scratch: pretrain the weak and strong models on the
    /// related corpus instead of starting from the built-in bases (that run made them; it adds
    /// about an hour on two cores).
    #[arg(long, conflicts_with = "config")]
    from_scratch: bool,
    /// Run directory: every stage's data, samples, models and the report.
    #[arg(
        long,
        short = 'o',
        alias = "out",
        default_value = "runs/weak_to_strong"
    )]
    output: PathBuf,
    /// Recompute every stage (otherwise stages with unchanged inputs are reused).
    #[arg(long)]
    fresh: bool,
    /// Override the config's seed (splits, initialisation, sampling).
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run once per seed, each into OUTPUT/seed-N/, then print the mean and standard deviation of
    /// every row (also OUTPUT/summary.json and OUTPUT/summary.md). Example: --seeds 0,1,2
    #[arg(long, value_delimiter = ',')]
    seeds: Vec<u64>,
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
        Some(path) => PipelineConfig::from_toml_file(path)?,
        None if args.from_scratch => PipelineConfig::embedded_from_scratch(),
        None => PipelineConfig::embedded(),
    };
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    if args.print_config {
        print!("{}", config.to_toml()?);
        return Ok(());
    }
    if let Some(wanted) = &config.backend {
        anyhow::ensure!(
            wanted == backend::name(),
            "the config asks for backend {wanted:?}, this binary runs {:?}: rebuild with \
             `--features {wanted}` (e.g. cargo run --release --features {wanted} --example weak_to_strong)",
            backend::name()
        );
    }
    if args.seeds.is_empty() {
        let report = run(&config, &args, args.output.clone())?;
        println!("{}", report.to_markdown());
        println!("report: {}", args.output.join("report.json").display());
        return Ok(());
    }
    let mut reports = Vec::new();
    for &seed in &args.seeds {
        config.seed = seed;
        let report = run(&config, &args, args.output.join(format!("seed-{seed}")))?;
        println!("{}", report.to_markdown());
        reports.push(report);
    }
    let rows = summarize(&reports);
    let markdown = summary_markdown(&args.seeds, &rows);
    let write = |name: &str, text: &str| {
        write_atomic(args.output.join(name), |w| w.write_all(text.as_bytes()))
    };
    write("summary.json", &serde_json::to_string_pretty(&rows)?)?;
    write("summary.md", &markdown)?;
    println!("{markdown}");
    Ok(())
}

fn run(config: &PipelineConfig, args: &Args, out: PathBuf) -> Result<PipelineReport> {
    let options = PipelineOptions {
        out: out.clone(),
        fresh: args.fresh,
        quiet: args.quiet,
        backend: backend::name().to_string(),
    };
    run_pipeline::<backend::Training>(config, &options, &backend::device())
        .with_context(|| format!("pipeline run in {}", out.display()))
}
