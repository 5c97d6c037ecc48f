//! The GPU check: whether the compiled-in GPU backend computes what flex computes, and how fast
//! it decodes and trains, as one Markdown table.
//!
//! - **parity**: a small random Llama (2 layers, hidden 256, GQA, vocabulary 1,000) moved from
//!   flex to the device through an HF checkpoint: f32 logits, bf16-base logits, a DPO loss and
//!   gradients, full and LoRA, each PASS or FAIL against its tolerance;
//! - **decode**: tokens/s of `generate` for a Llama-3.2-1B-shaped model with random weights,
//!   f32 and bf16 base, batch 1, 8 and 64;
//! - **training**: tokens/s of SFT and DPO steps of that model with LoRA on a bf16 base and with
//!   full f32 fine-tuning, and the model FLOPs utilisation of each.
//!
//! Each check runs on its own: an error or a panic (an autotune bug, an out-of-memory) is a FAIL
//! row and the next check runs. The table goes to stdout and to `OUT/table.md`, rewritten after
//! every check. `--cpu` runs every check on flex with tiny shapes, in seconds, so the code is
//! exercised without a GPU.
//!
//! `scripts/gpu-check.sh` checks the CUDA installation, builds this with
//! `--no-default-features --features cuda` and runs it under a time limit; by hand:
//! `cargo run --release --no-default-features --features cuda --example gpu_check`, or
//! `cargo run --release --example gpu_check -- --cpu`. It is an example rather than a bench
//! because it is one run with a pass/fail outcome and its own options, and
//! `.ci/run` compile-checks every example with the cuda backend.

mod decode;
mod parity;
mod report;
mod shapes;
mod training;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use burn::backend::Flex;
use burn::prelude::Backend;
use clap::Parser;
use w2s::backend::{self, Inference};

use report::{command_line, Report};
use shapes::Shapes;

/// Parity with flex, decode and training throughput of the compiled-in GPU backend.
#[derive(Parser)]
#[command(version, long_about = None)]
struct Args {
    /// Check the flex CPU backend with tiny shapes instead: every check, in seconds.
    #[arg(long)]
    cpu: bool,
    /// Directory of table.md [default: target/gpu-check, with --cpu target/gpu-check/cpu]
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let out = args.out.unwrap_or_else(|| {
        let out = PathBuf::from("target/gpu-check");
        if args.cpu {
            out.join("cpu")
        } else {
            out
        }
    });
    let report = if args.cpu {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let device = format!("CPU, {threads} threads");
        checks::<Flex>(&out, &device, "flex", &Shapes::tiny()?)?
    } else {
        if matches!(backend::name(), "flex" | "ndarray") {
            bail!(
                "this build has no GPU backend: build with `--no-default-features --features \
                 cuda`, or pass --cpu"
            );
        }
        let query = ["--query-gpu=name,memory.total", "--format=csv,noheader"];
        let device = command_line("nvidia-smi", &query).unwrap_or_else(|| "unknown GPU".into());
        checks::<Inference>(&out, &device, backend::name(), &Shapes::full()?)?
    };
    println!("\n{}", report.markdown());
    println!("written to {}", report.path().display());
    match report.failures() {
        0 => Ok(()),
        n => bail!("{n} rows FAIL"),
    }
}

/// Every check on backend `D`, flex being the reference.
fn checks<D: Backend>(out: &Path, device: &str, backend: &str, shapes: &Shapes) -> Result<Report> {
    let mut report = Report::new(out, device, backend, shapes.name)?;
    parity::run::<D>(shapes, &mut report);
    decode::run::<D>(shapes, &mut report);
    training::run::<D>(shapes, device, &mut report);
    Ok(report)
}
