//! Preference optimization of a HF Llama checkpoint on `{"prompt", "chosen", "rejected"}` JSONL:
//! DPO, IPO, hinge, robust DPO, ORPO or SimPO. The three fields are strings, or lists of messages
//! `{"role", "content"}` (TRL's conversational form: the prompt's turns, then each response's
//! assistant turns), which the model's chat template renders. Losses with a reference use the
//! starting model as reference; by default its log-probs are computed once before training (and
//! cached in `OUTPUT/reference_logps.json`), so only one model is held in memory.
//!
//! ```text
//! cargo run --release --example preference -- --model mplus/ --train pairs.jsonl \
//!     --output runs/orpo --loss orpo --beta 0.1
//! ```
//! A `[loss]` table in the TOML config takes any `w2s_losses::PreferenceLossConfig`
//! (e.g. `type = "dpo"`, `beta = 0.1`, `label_smoothing = 0.1`) and wins over --loss/--beta.
//! Defaults are TRL's `DPOConfig` ones (learning rate 1e-6, β 0.1, sigmoid loss), which its
//! ORPO and CPO (SimPO) configs share.
//!
//! Before the first step the run prints its memory plan (`w2s_train::memory_plan`; a reference
//! model held with `--reference model` is a line of its own) and is refused, with what to
//! change, when the plan exceeds `--memory-budget GIB` (by default this machine's memory on CPU
//! backends).

use anyhow::{bail, Context, Result};
use burn::module::AutodiffModule;
use clap::{Parser, ValueEnum};
use w2s::backend;
use w2s::curation::record::PreferenceRecord;
use w2s::losses::PreferenceLossConfig;
use w2s::train::{
    load_reference_cache, precompute_reference, save_reference_cache, tokenize_pairs,
    train_preference, Reference,
};
use w2s::train_args::{
    config_table, parse_with_defaults, reference_mode, trl_preference_defaults, ReferenceMode,
    Start, TrainArgs,
};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Loss {
    /// DPO (cDPO with --label-smoothing); TRL's default `loss_type`, `sigmoid`.
    Dpo,
    /// IPO on per-token mean log-ratios (TRL's `ipo`).
    Ipo,
    /// Hinge (SLiC).
    Hinge,
    /// Robust DPO (needs --label-smoothing).
    Robust,
    /// ORPO (reference-free; the paper's released models use it).
    Orpo,
    /// SimPO with absolute margin --gamma (reference-free): TRL's CPO with `loss_type="simpo"`
    /// and `cpo_alpha=0`, its pure-SimPO setting.
    Simpo,
}

/// Train a HF Llama on preference pairs.
#[derive(Parser)]
#[command(version, long_about = None)]
struct Args {
    #[command(flatten)]
    run: TrainArgs,
    /// The preference loss.
    #[arg(long, value_enum, default_value_t = Loss::Dpo)]
    loss: Loss,
    /// β: temperature of DPO/IPO/hinge/robust/SimPO, weight λ of ORPO's odds-ratio term. 0.1 is
    /// TRL's default for DPO, ORPO and CPO alike; the SimPO paper uses 2-10.
    #[arg(long, default_value_t = 0.1)]
    beta: f64,
    /// Label smoothing ε of DPO (cDPO), robust DPO and SimPO, in [0, 0.5) (TRL default 0).
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f64,
    /// SimPO's absolute target margin γ (TRL `simpo_gamma`).
    #[arg(long, default_value_t = 0.5)]
    gamma: f64,
    /// Where the reference log-probs come from [default: precomputed for losses with a
    /// reference, none for the reference-free ORPO and SimPO].
    #[arg(long, value_enum)]
    reference: Option<ReferenceMode>,
}

fn loss_config(args: &Args) -> Result<PreferenceLossConfig> {
    if let Some(loss) = config_table(args.run.config.as_deref(), "loss")? {
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
    let defaults = trl_preference_defaults();
    let args: Args = parse_with_defaults(&defaults);
    let loss = loss_config(&args)?;
    loss.validate()?;
    let run = &args.run;
    let config = run.train_config(&defaults)?;
    let mode = reference_mode(&loss, args.reference, config.lora.is_some())?;
    let Start {
        dir,
        tokenizer,
        eos,
    } = run.start(&config)?;
    let (train, eval) =
        run.datasets(|pairs: &[PreferenceRecord]| tokenize_pairs(pairs, &tokenizer, eos))?;
    let reference = match mode {
        ReferenceMode::None => Reference::None,
        ReferenceMode::Model => Reference::Model(Box::new(dir.model.valid())),
        ReferenceMode::AdaptersOff => Reference::AdaptersOff,
        ReferenceMode::Precomputed => {
            std::fs::create_dir_all(&run.output)
                .with_context(|| format!("creating --output {}", run.output.display()))?;
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
