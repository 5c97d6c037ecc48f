//! Curates weak supervision: Stage I consistency selection, Stage II contrastive pair mining, and
//! the quality (outcome and step-wise error rates) of any SFT or preference set.
//!
//! Input lines are model samples `{"id", "prompt", "response", ...}`, as the `generate` example
//! writes them; extra fields (a gold answer, say) are carried into the sets. Malformed lines stop the run with file and line,
//! unless `--skip-bad-lines` is given (then they are counted). Every set is written atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde::de::DeserializeOwned;
use w2s::curation::quality::{pair_quality, sft_quality, Gold, GoldFormat, StepCheck};
use w2s::curation::record::{PreferencePair, Sample, SftExample};
use w2s::curation::stage1::{select_consistent, MatchMode};
use w2s::curation::stage2::{mine_pairs, MiningConfig};
use w2s::data::jsonl::{read_jsonl, write_jsonl, BadLines};
use w2s::data::write_atomic;
use w2s::eval::TaskKind;

/// Curate weak-to-strong training data.
#[derive(Parser)]
#[command(version, long_about = None)]
struct Args {
    /// Skip (and count) malformed JSONL lines instead of stopping at the first.
    #[arg(long, global = true)]
    skip_bad_lines: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Stage I: keep questions where the weak and the ICL answers agree; write weak.jsonl,
    /// icl.jsonl, hybrid.jsonl and stats.json to the --output directory.
    Stage1 {
        /// Task whose answer rules apply: gsm8k, math or arithmetic.
        #[arg(long)]
        task: TaskKind,
        /// Weak (zero-shot) samples, one per question.
        #[arg(long)]
        weak: PathBuf,
        /// ICL (k-shot) samples, one per question, same ids.
        #[arg(long)]
        icl: PathBuf,
        /// Output directory (created if missing).
        #[arg(long, short = 'o', alias = "out")]
        output: PathBuf,
        /// How answers are compared: exact (normalized strings, the paper's code) or equivalent.
        #[arg(long, default_value = "exact")]
        r#match: MatchMode,
    },
    /// Stage II: mine preference pairs {"prompt", "chosen", "rejected"} from n samples per
    /// question and the weak samples.
    Stage2 {
        /// Task whose answer rules apply: gsm8k, math or arithmetic.
        #[arg(long)]
        task: TaskKind,
        /// M_plus samples, n lines per question id (in seed order).
        #[arg(long)]
        samples: PathBuf,
        /// Weak samples, one per question.
        #[arg(long)]
        weak: PathBuf,
        /// Where to write the pairs (JSONL).
        #[arg(long, short = 'o', alias = "out")]
        output: PathBuf,
        /// Skip questions whose confidence is below this.
        #[arg(long, default_value_t = 0.6)]
        tau_low: f64,
        /// The weak response becomes the rejected side only from this confidence on.
        #[arg(long, default_value_t = 0.8)]
        tau_high: f64,
        /// Pairs per question (the paper: 1 for GSM8K, 3 for MATH); default by task.
        #[arg(long)]
        pairs_per_question: Option<usize>,
        /// Seed of the draws from A+ and A-.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Also write the statistics as JSON here.
        #[arg(long)]
        stats: Option<PathBuf>,
    },
    /// Report size, outcome error rate and step-wise error rate of an SFT set (or, with
    /// --pairs, the correctness of chosen and rejected responses of a preference set).
    Quality {
        /// Task whose answer rules apply: gsm8k, math or arithmetic.
        #[arg(long)]
        task: TaskKind,
        /// SFT ({"prompt", "completion"}) or, with --pairs, preference JSONL.
        #[arg(long)]
        input: PathBuf,
        /// Field holding the gold answer: `gold` in the sets the pipeline writes; for sets curated
        /// from `generate` on a benchmark file, GSM8K's `answer` with --gold-format solution, or
        /// MATH's `answer`.
        #[arg(long, default_value = "gold")]
        gold_field: String,
        /// What the gold field holds: answer (the final answer) or solution (a full solution).
        #[arg(long, default_value = "answer")]
        gold_format: GoldFormat,
        /// The input holds preference pairs.
        #[arg(long)]
        pairs: bool,
    },
}

fn read<T: DeserializeOwned>(path: &Path, bad_lines: BadLines) -> Result<Vec<T>> {
    let contents = read_jsonl(path, bad_lines)?;
    if contents.skipped > 0 {
        eprintln!(
            "{}: skipped {} malformed lines",
            path.display(),
            contents.skipped
        );
    }
    Ok(contents.records)
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)? + "\n";
    Ok(write_atomic(path, |w| w.write_all(text.as_bytes()))?)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let bad_lines = if args.skip_bad_lines {
        BadLines::Skip
    } else {
        BadLines::Fail
    };
    match args.command {
        Command::Stage1 {
            task,
            weak,
            icl,
            output,
            r#match,
        } => {
            let weak: Vec<Sample> = read(&weak, bad_lines)?;
            let icl: Vec<Sample> = read(&icl, bad_lines)?;
            let sets = select_consistent(task, &weak, &icl, r#match)?;
            std::fs::create_dir_all(&output)
                .with_context(|| format!("creating --output {}", output.display()))?;
            for (name, set) in [
                ("weak", &sets.weak),
                ("icl", &sets.icl),
                ("hybrid", &sets.hybrid),
            ] {
                write_jsonl(output.join(format!("{name}.jsonl")), set.iter())?;
            }
            write_json(&output.join("stats.json"), &sets.stats)?;
            let s = &sets.stats;
            println!(
                "kept {} of {} questions ({match} match); dropped: weak empty {}, icl empty {}, \
                 disagree {}, undecided {}, no icl record {}; icl records without weak {}",
                s.kept,
                s.questions,
                s.weak_empty,
                s.icl_empty,
                s.disagree,
                s.undecided,
                s.missing_icl,
                s.icl_without_weak,
                r#match = r#match
            );
        }
        Command::Stage2 {
            task,
            samples,
            weak,
            output,
            tau_low,
            tau_high,
            pairs_per_question,
            seed,
            stats,
        } => {
            let config = MiningConfig {
                tau_low,
                tau_high,
                pairs_per_question: pairs_per_question
                    .unwrap_or(MiningConfig::for_task(task).pairs_per_question),
                seed,
            };
            let samples: Vec<Sample> = read(&samples, bad_lines)?;
            let weak: Vec<Sample> = read(&weak, bad_lines)?;
            let mined = mine_pairs(task, &samples, &weak, &config)?;
            write_jsonl(&output, mined.pairs.iter())?;
            let s = &mined.stats;
            println!(
                "{} pairs from {} of {} questions (weak chosen {}, weak rejected {}); skipped: \
                 low confidence {}, empty majority {}, no negatives {}, middle band {}, \
                 no samples {}; samples without weak {}",
                s.pairs,
                s.mined_questions,
                s.questions,
                s.weak_chosen,
                s.weak_rejected,
                s.low_confidence,
                s.empty_majority,
                s.no_negatives,
                s.middle_band,
                s.no_samples,
                s.samples_without_weak
            );
            if let Some(path) = stats {
                write_json(&path, &mined.stats)?;
            }
        }
        Command::Quality {
            task,
            input,
            gold_field,
            gold_format,
            pairs,
        } => {
            let gold = Gold {
                task,
                field: gold_field,
                format: gold_format,
            };
            let check = StepCheck::for_task(task);
            let percent =
                |rate: Option<f64>| rate.map_or("n/a".into(), |r| format!("{:.2}%", 100.0 * r));
            if pairs {
                let set: Vec<PreferencePair> = read(&input, bad_lines)?;
                let q = pair_quality(&set, &gold, check)?;
                println!(
                    "{} pairs; chosen correct {}; rejected correct {}; undecided {}; \
                     step-wise error rate chosen {}, rejected {}",
                    q.pairs,
                    percent(q.chosen_accuracy()),
                    percent(q.rejected_accuracy()),
                    q.undecided,
                    percent(q.chosen_steps.error_rate()),
                    percent(q.rejected_steps.error_rate())
                );
            } else {
                let set: Vec<SftExample> = read(&input, bad_lines)?;
                let q = sft_quality(&set, &gold, check)?;
                println!(
                    "{} examples; outcome error rate {} (no answer {}, undecided {}); \
                     step-wise error rate {} ({} wrong and {} missing of {} steps, {} undecidable)",
                    q.size,
                    percent(q.outcome_error_rate),
                    q.no_answer,
                    q.undecided,
                    percent(q.step_error_rate),
                    q.steps.wrong,
                    q.steps.missing,
                    q.steps.correct + q.steps.wrong + q.steps.missing,
                    q.steps.undecidable
                );
            }
        }
    }
    Ok(())
}
