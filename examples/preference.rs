//! Preference optimization of a HF Llama checkpoint on `{"prompt", "chosen", "rejected"}` JSONL:
//! DPO, IPO, hinge, robust DPO, ORPO or SimPO. Losses with a reference use the starting model as
//! reference; by default its log-probs are computed once before training (and cached in
//! `OUTPUT/reference_logps.json`), so only one model is held in memory.
//!
//! ```text
//! cargo run --release --example preference -- --model mplus/ --train pairs.jsonl \
//!     --output runs/orpo --loss orpo --beta 0.1
//! ```
//! A `[loss]` table in the TOML config takes any `w2s_losses::PreferenceLossConfig`
//! (e.g. `type = "dpo"`, `beta = 0.1`, `label_smoothing = 0.1`) and wins over --loss/--beta.

use anyhow::{bail, Result};
use burn::module::AutodiffModule;
use clap::{Parser, ValueEnum};
use w2s::backend;
use w2s::curation::record::PreferencePair;
use w2s::losses::PreferenceLossConfig;
use w2s::train::{
    load_reference_cache, precompute_reference, save_reference_cache, tokenize_pairs,
    train_preference, Reference,
};
use w2s::train_args::{config_table, Start, TrainArgs};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Loss {
    /// DPO (cDPO with --label-smoothing).
    Dpo,
    /// IPO on per-token mean log-ratios (TRL's `ipo`).
    Ipo,
    /// Hinge (SLiC).
    Hinge,
    /// Robust DPO (needs --label-smoothing).
    Robust,
    /// ORPO (reference-free; the paper's released models use it).
    Orpo,
    /// SimPO with absolute margin --gamma (reference-free).
    Simpo,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ReferenceMode {
    /// Score the reference once before training and keep only the values (default).
    Precomputed,
    /// Keep a frozen copy of the starting model and score every batch.
    Model,
}

/// Train a HF Llama on preference pairs.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    #[command(flatten)]
    run: TrainArgs,
    /// The preference loss.
    #[arg(long, value_enum, default_value_t = Loss::Dpo)]
    loss: Loss,
    /// β: temperature of DPO/IPO/hinge/robust/SimPO, weight λ of ORPO's odds-ratio term.
    #[arg(long, default_value_t = 0.1)]
    beta: f64,
    /// Label smoothing ε of DPO (cDPO) and robust DPO, in [0, 0.5).
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f64,
    /// SimPO's absolute target margin γ.
    #[arg(long, default_value_t = 0.5)]
    gamma: f64,
    /// How losses with a reference get its log-probs.
    #[arg(long, value_enum, default_value_t = ReferenceMode::Precomputed)]
    reference: ReferenceMode,
}

fn loss_config(args: &Args) -> Result<PreferenceLossConfig> {
    let from_file: Option<PreferenceLossConfig> =
        config_table::<Option<PreferenceLossConfig>>(args.run.config.as_deref(), "loss")?;
    if let Some(loss) = from_file {
        return Ok(loss);
    }
    let (beta, label_smoothing) = (args.beta, args.label_smoothing);
    Ok(match args.loss {
        Loss::Dpo => PreferenceLossConfig::Dpo {
            beta,
            label_smoothing,
            nll_alpha: 0.0,
            reference_free: false,
        },
        Loss::Ipo => PreferenceLossConfig::IpoMean {
            beta,
            nll_alpha: 0.0,
            reference_free: false,
        },
        Loss::Hinge => PreferenceLossConfig::Hinge {
            beta,
            nll_alpha: 0.0,
            reference_free: false,
        },
        Loss::Robust => PreferenceLossConfig::Robust {
            beta,
            label_smoothing,
            nll_alpha: 0.0,
            reference_free: false,
        },
        Loss::Orpo => PreferenceLossConfig::Orpo {
            beta,
            nll_scope: Default::default(),
        },
        Loss::Simpo => PreferenceLossConfig::SimpoGamma {
            beta,
            gamma: args.gamma,
            label_smoothing,
            nll_alpha: 0.0,
        },
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let loss = loss_config(&args)?;
    loss.validate()?;
    let run = &args.run;
    let config = run.train_config()?;
    let Start {
        dir,
        tokenizer,
        eos,
    } = run.start()?;
    let (train, eval) =
        run.datasets(|pairs: &[PreferencePair]| tokenize_pairs(pairs, &tokenizer, eos))?;
    let reference = match (loss.needs_reference(), args.reference) {
        (false, _) => Reference::None,
        (true, ReferenceMode::Model) => Reference::Model(Box::new(dir.model.valid())),
        (true, ReferenceMode::Precomputed) => {
            std::fs::create_dir_all(&run.output)?;
            let frozen = dir.model.valid();
            let cached = |name: &str, pairs: &[_]| -> Result<_> {
                let path = run.output.join(name);
                if path.is_file() {
                    return Ok(load_reference_cache(&path, pairs)?);
                }
                let logps = precompute_reference(&frozen, pairs, &config)?;
                save_reference_cache(&path, pairs, &logps)?;
                Ok(logps)
            };
            Reference::Precomputed {
                train: cached("reference_logps.json", &train)?,
                eval: cached("reference_logps_eval.json", &eval)?,
            }
        }
    };
    if train.is_empty() {
        bail!("{}: no pairs", run.train.display());
    }
    let out = train_preference(
        dir.model,
        &dir.config,
        &train,
        &eval,
        &loss,
        reference,
        &config,
        &run.options(Some(tokenizer.clone())),
    )?;
    let summary = serde_json::json!({
        "backend": backend::name(),
        "loss": loss,
        "steps": out.steps,
        "resumed_from": out.resumed_from,
        "skipped_records": out.skipped_records,
        "final_dir": out.final_dir,
        "last_step": out.last_step,
        "last_eval": out.last_eval,
    });
    println!("{summary:#}");
    Ok(())
}
