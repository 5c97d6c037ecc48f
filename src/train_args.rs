//! Command-line options shared by the `sft` and `preference` examples: where the model and data
//! are, where the run writes, and the training options that override the `[train]` table of a
//! TOML config file, which in turn overrides the example's defaults.
//!
//! The defaults are TRL's ([`trl_sft_defaults`], [`trl_preference_defaults`]), so a recipe
//! written for TRL means the same here; `--help` shows each example's default beside its flag.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, ValueEnum};
use serde::de::DeserializeOwned;
use serde::Serialize;
use w2s_data::jsonl::{read_jsonl, BadLines};
use w2s_llama::{LoraConfig, LoraTarget};
use w2s_losses::PreferenceLossConfig;
use w2s_train::{LrSchedule, MemoryBudget, TrainConfig};

/// Options of a training run.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Model directory to start from (HF layout: config.json, weights, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Training data, JSONL.
    #[arg(long)]
    pub train: PathBuf,
    /// Evaluation data, JSONL (same format), evaluated every --eval-every steps and at the end.
    #[arg(long)]
    pub eval: Option<PathBuf>,
    /// Output directory: checkpoints ckpt-N/, metrics.jsonl, and the trained model in final/.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// TOML config file; its [train] table holds any field of w2s_train::TrainConfig and
    /// replaces the defaults shown here. Options given on the command line override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Peak learning rate (TRL `learning_rate`).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Schedule after warmup: constant, linear or cosine (TRL `lr_scheduler_type`).
    #[arg(long)]
    pub schedule: Option<String>,
    /// Optimizer steps of linear warmup (TRL `warmup_steps`; its `warmup_ratio` is 0 too).
    #[arg(long)]
    pub warmup_steps: Option<usize>,
    /// AdamW decoupled weight decay (TRL `weight_decay`).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Clip gradients to this global L2 norm, 0 disables clipping (TRL `max_grad_norm`).
    #[arg(long)]
    pub max_grad_norm: Option<f64>,
    /// Passes over the training data (TRL `num_train_epochs`).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Stop after this many optimizer steps.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Padded tokens per micro-batch (rows x longest row). TRL counts rows instead
    /// (`per_device_train_batch_size`, 8); w2s budgets tokens because a budget bounds memory
    /// whatever the sequence lengths, which a row count does not.
    #[arg(long)]
    pub batch_tokens: Option<usize>,
    /// Micro-batches per optimizer step (TRL `gradient_accumulation_steps`).
    #[arg(long)]
    pub grad_accum: Option<usize>,
    /// Longest sequence trained on (default: the model's context). TRL truncates at
    /// `max_length`, 1024; w2s never truncates (a cut completion loses its final answer), so a
    /// longer sequence is an error, or left out with --skip-overlong.
    #[arg(long)]
    pub max_seq_len: Option<usize>,
    /// Leave out sequences over --max-seq-len instead of failing.
    #[arg(long)]
    pub skip_overlong: bool,
    /// Seed of the data order (TRL `seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Evaluate every this many steps.
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// Save a checkpoint every this many steps (the last step is always saved).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Start from scratch even if --output holds a checkpoint of this run.
    #[arg(long)]
    pub no_resume: bool,
    /// Do not append the EOS token to completions.
    #[arg(long)]
    pub no_eos: bool,
    /// No progress bar and no printed memory plan.
    #[arg(long)]
    pub quiet: bool,
    /// Memory the run may use, in GiB: training is refused up front when its memory plan (printed
    /// before the first step) is larger. Default: this machine's memory on CPU backends; GPU
    /// backends have no memory query in burn 0.21, so there the plan is checked only with this.
    #[arg(long, value_name = "GIB", value_parser = parse_gib)]
    pub memory_budget: Option<f64>,
    /// Train LoRA adapters of this rank on a frozen base instead of every weight (PEFT `r`); the
    /// run saves them in PEFT's layout in final/. A [train.lora] table in --config does the same.
    #[arg(long, value_name = "R")]
    pub lora_r: Option<usize>,
    /// LoRA scaling numerator (PEFT `lora_alpha`; default twice the rank).
    #[arg(long, value_name = "ALPHA")]
    pub lora_alpha: Option<f64>,
    /// Dropout on the adapters' input (PEFT `lora_dropout`; default 0).
    #[arg(long, value_name = "P")]
    pub lora_dropout: Option<f64>,
    /// Scale the adapters by alpha/sqrt(r) instead of alpha/r (PEFT `use_rslora`).
    #[arg(long)]
    pub lora_rslora: bool,
    /// Projections to adapt, comma-separated (PEFT `target_modules`; default all seven:
    /// q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj).
    #[arg(long, value_name = "NAMES", value_delimiter = ',', value_parser = parse_target)]
    pub lora_targets: Option<Vec<LoraTarget>>,
    /// Hold the frozen base of a LoRA run in this dtype (auto: bf16 on GPU backends, f32 on CPU);
    /// adapters and their optimizer state stay f32. Full fine-tuning always keeps f32 weights.
    #[arg(long, value_enum, default_value_t = crate::backend::BaseDtype::Auto)]
    pub base_dtype: crate::backend::BaseDtype,
}

/// One projection name of `--lora-targets`.
fn parse_target(name: &str) -> std::result::Result<LoraTarget, String> {
    LoraTarget::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = LoraTarget::ALL.iter().map(|t| t.name()).collect();
        format!(
            "unknown projection {name:?}; expected one of {}",
            names.join(", ")
        )
    })
}

/// TRL's `SFTConfig` defaults for the options w2s has: learning rate 2e-5, linear decay, no
/// warmup, 3 epochs, clipping at global norm 1.0, no weight decay, AdamW β = (0.9, 0.999),
/// ε = 1e-8, seed 42. The batch is a token budget (see `--batch-tokens`).
pub fn trl_sft_defaults() -> TrainConfig {
    TrainConfig {
        learning_rate: 2e-5,
        schedule: LrSchedule::Linear,
        epochs: 3,
        ..TrainConfig::default()
    }
}

/// TRL's `DPOConfig` defaults, which its `ORPOConfig` and `CPOConfig` (SimPO) share: as
/// [`trl_sft_defaults`] with learning rate 1e-6.
pub fn trl_preference_defaults() -> TrainConfig {
    TrainConfig {
        learning_rate: 1e-6,
        ..trl_sft_defaults()
    }
}

/// The `--schedule` value of `schedule`.
fn schedule_name(schedule: LrSchedule) -> &'static str {
    match schedule {
        LrSchedule::Constant => "constant",
        LrSchedule::Linear => "linear",
        LrSchedule::Cosine => "cosine",
    }
}

fn parse_schedule(name: &str) -> Result<LrSchedule> {
    let schedules = [LrSchedule::Constant, LrSchedule::Linear, LrSchedule::Cosine];
    match schedules.into_iter().find(|&s| schedule_name(s) == name) {
        Some(schedule) => Ok(schedule),
        None => bail!("--schedule {name}: expected constant, linear or cosine"),
    }
}

/// Parses the command line of `A`, whose flattened [`TrainArgs`] take their defaults from
/// `defaults`; `--help` shows them as `[default: ...]`. Exits with clap's message on a bad
/// command line, as `A::parse()` does.
pub fn parse_with_defaults<A: Parser>(defaults: &TrainConfig) -> A {
    let matches = show_defaults(A::command(), defaults).get_matches();
    A::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// `command` with `[default: ...]` appended to the help of every training flag that `defaults`
/// decides.
fn show_defaults(command: clap::Command, defaults: &TrainConfig) -> clap::Command {
    let shown = [
        ("lr", format!("{:e}", defaults.learning_rate)),
        ("schedule", schedule_name(defaults.schedule).to_string()),
        ("warmup_steps", defaults.warmup_steps.to_string()),
        ("weight_decay", defaults.weight_decay.to_string()),
        (
            "max_grad_norm",
            defaults.max_grad_norm.unwrap_or(0.0).to_string(),
        ),
        ("epochs", defaults.epochs.to_string()),
        ("batch_tokens", defaults.batch_tokens.to_string()),
        ("grad_accum", defaults.grad_accum_steps.to_string()),
        ("seed", defaults.seed.to_string()),
    ];
    shown.into_iter().fold(command, |command, (id, value)| {
        command.mut_arg(id, |arg| {
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            arg.help(format!("{help} [default: {value}]"))
        })
    })
}

/// Reads `[table]` of a TOML config file; `None` when no file is given or it has no such table.
pub fn config_table<T: DeserializeOwned>(file: Option<&Path>, table: &str) -> Result<Option<T>> {
    let Some(path) = file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let mut doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    doc.remove(table)
        .map(|value| value.try_into())
        .transpose()
        .with_context(|| format!("{}: table [{table}]", path.display()))
}

/// `base` with the keys of `[table]` of a TOML config file put over it: a key the table sets
/// replaces base's value, every other key keeps it (unknown keys are still rejected by `T`).
pub fn config_table_over<T: Serialize + DeserializeOwned>(
    file: Option<&Path>,
    table: &str,
    base: &T,
) -> Result<T> {
    let mut merged = serde_json::to_value(base)?;
    let overrides: Option<serde_json::Map<String, serde_json::Value>> = config_table(file, table)?;
    if let (Some(fields), Some(overrides)) = (merged.as_object_mut(), overrides) {
        fields.extend(overrides);
    }
    serde_json::from_value(merged).with_context(|| {
        let file = file.map_or(String::new(), |path| path.display().to_string());
        format!("{file}: table [{table}]")
    })
}

/// Reads every record of a JSONL file.
pub fn read_records<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    Ok(read_jsonl(path, BadLines::Fail)?.records)
}

/// What a run starts from: the model (on the training backend), its tokenizer, and the EOS id
/// appended to completions (none with `--no-eos` or when the config names none).
#[derive(Debug)]
pub struct Start {
    /// The model directory given with `--model`.
    pub dir: w2s_llama::ModelDir<crate::backend::Training>,
    /// Its tokenizer.
    pub tokenizer: w2s_llama::Tokenizer,
    /// EOS id appended to every completion.
    pub eos: Option<u32>,
}

impl TrainArgs {
    /// Loads `--model` with its tokenizer, its base in `--base-dtype` when `config` trains LoRA
    /// adapters.
    pub fn start(&self, config: &TrainConfig) -> Result<Start> {
        let mut dir = w2s_llama::ModelDir::load(&self.model, &crate::backend::device())
            .with_context(|| format!("loading {}", self.model.display()))?;
        let dtype = self.base_dtype.resolve();
        match (config.lora.is_some(), self.base_dtype) {
            (true, _) => dir.model = dir.model.cast_base(dtype),
            (false, crate::backend::BaseDtype::Bf16) => bail!(
                "--base-dtype bf16 holds a frozen base: give --lora-r to train adapters on it \
                 (full fine-tuning keeps f32 weights, as bf16 ones lose small updates)"
            ),
            (false, _) => {}
        }
        let tokenizer = dir.tokenizer()?.clone();
        let eos = (!self.no_eos)
            .then(|| dir.config.eos_token_ids().first().copied())
            .flatten();
        Ok(Start {
            dir,
            tokenizer,
            eos,
        })
    }

    /// Reads `--train` and `--eval` (empty when absent) as records `T` and tokenizes them.
    pub fn datasets<T: DeserializeOwned, U>(
        &self,
        tokenize: impl Fn(&[T]) -> w2s_train::Result<Vec<U>>,
    ) -> Result<(Vec<U>, Vec<U>)> {
        let read = |path: &Path| -> Result<Vec<U>> {
            let records: Vec<T> = read_records(path)?;
            tokenize(&records).with_context(|| format!("{}", path.display()))
        };
        let eval = match &self.eval {
            Some(path) => read(path)?,
            None => Vec::new(),
        };
        Ok((read(&self.train)?, eval))
    }

    /// `defaults`, then the config file's `[train]` table over them, then the command-line
    /// options over both; validated.
    pub fn train_config(&self, defaults: &TrainConfig) -> Result<TrainConfig> {
        let mut c = config_table_over(self.config.as_deref(), "train", defaults)?;
        let set = |slot: &mut usize, v: Option<usize>| v.into_iter().for_each(|v| *slot = v);
        if let Some(v) = self.lr {
            c.learning_rate = v;
        }
        if let Some(s) = &self.schedule {
            c.schedule = parse_schedule(s)?;
        }
        set(&mut c.warmup_steps, self.warmup_steps);
        if let Some(v) = self.weight_decay {
            c.weight_decay = v;
        }
        if let Some(v) = self.max_grad_norm {
            c.max_grad_norm = (v > 0.0).then_some(v);
        }
        set(&mut c.epochs, self.epochs);
        set(&mut c.batch_tokens, self.batch_tokens);
        set(&mut c.grad_accum_steps, self.grad_accum);
        c.max_steps = self.max_steps.or(c.max_steps);
        c.max_seq_len = self.max_seq_len.or(c.max_seq_len);
        if self.skip_overlong {
            c.overlong = w2s_train::Overlong::Skip;
        }
        if let Some(v) = self.seed {
            c.seed = v;
        }
        c.eval_every = self.eval_every.or(c.eval_every);
        c.checkpoint_every = self.checkpoint_every.or(c.checkpoint_every);
        self.apply_lora(&mut c)?;
        c.validate()?;
        Ok(c)
    }

    /// The `--lora-*` options over the config's `lora` table; `--lora-r` turns LoRA on.
    fn apply_lora(&self, c: &mut TrainConfig) -> Result<()> {
        let given = self.lora_alpha.is_some()
            || self.lora_dropout.is_some()
            || self.lora_rslora
            || self.lora_targets.is_some();
        let mut lora = match (self.lora_r, c.lora.take()) {
            (Some(r), table) => LoraConfig {
                r,
                alpha: 2.0 * r as f64,
                ..table.unwrap_or_default()
            },
            (None, Some(table)) => table,
            (None, None) if given => bail!(
                "--lora-alpha, --lora-dropout, --lora-rslora and --lora-targets shape LoRA \
                 adapters: give --lora-r (or a [train.lora] table in --config) to train them"
            ),
            (None, None) => return Ok(()),
        };
        if let Some(v) = self.lora_alpha {
            lora.alpha = v;
        }
        if let Some(v) = self.lora_dropout {
            lora.dropout = v;
        }
        lora.rslora |= self.lora_rslora;
        if let Some(targets) = &self.lora_targets {
            lora.targets = targets.clone();
        }
        c.lora = Some(lora);
        Ok(())
    }

    /// Where and how the run writes.
    pub fn options(&self, tokenizer: Option<w2s_llama::Tokenizer>) -> w2s_train::TrainOptions {
        w2s_train::TrainOptions {
            resume: !self.no_resume,
            quiet: self.quiet,
            tokenizer,
            memory_budget: memory_budget(self.memory_budget),
            base_model: Some(self.model.display().to_string()),
            ..w2s_train::TrainOptions::new(&self.output)
        }
    }
}

/// The memory budget of a run (the `sft`, `preference` and `generate` examples): `--memory-budget
/// GIB` when given, else this machine's memory on a CPU backend. On a GPU backend without the flag
/// there is none (burn 0.21 cannot query a GPU's memory), and a note says so.
pub fn memory_budget(gib: Option<f64>) -> Option<MemoryBudget> {
    if let Some(gib) = gib {
        return Some(MemoryBudget {
            bytes: (gib * (1u64 << 30) as f64) as u64,
            source: "--memory-budget",
        });
    }
    if matches!(crate::backend::name(), "flex" | "ndarray") {
        return MemoryBudget::host();
    }
    eprintln!(
        "note: burn 0.21 cannot query the memory of the {} backend's device; give \
         --memory-budget GIB to check the memory plan against it",
        crate::backend::name()
    );
    None
}

/// A `--memory-budget` value: a finite number of GiB above 0.
pub fn parse_gib(text: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(gib) if gib.is_finite() && gib > 0.0 => Ok(gib),
        _ => Err(format!("`{text}` is not a number of GiB above 0")),
    }
}

/// Where a preference loss gets the reference model's log-probs (`--reference`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReferenceMode {
    /// Score the starting model once before training and keep only the values (the default for
    /// losses with a reference; one model in memory).
    Precomputed,
    /// Keep a frozen copy of the starting model and score every batch.
    Model,
    /// Score every batch with the model being trained, its LoRA adapters switched off: the
    /// starting model, with no second copy in memory (needs --lora-r).
    AdaptersOff,
    /// No reference: the reference-free losses ORPO and SimPO (their default), or a DPO-family
    /// loss with `reference_free = true` in the config's [loss] table.
    None,
}

/// The reference mode of a run with `loss`: `asked` (the `--reference` flag) when it fits the
/// loss, else the loss's default: `adapters-off` when training LoRA adapters (`lora`; TRL's
/// choice with a PEFT model), `precomputed` otherwise.
///
/// # Errors
/// `none` for a loss that compares against a reference, `adapters-off` without LoRA, and
/// `precomputed`, `model` or `adapters-off` for a reference-free loss, where the flag would do
/// nothing.
pub fn reference_mode(
    loss: &PreferenceLossConfig,
    asked: Option<ReferenceMode>,
    lora: bool,
) -> Result<ReferenceMode> {
    let name = loss.name();
    match (loss.needs_reference(), asked) {
        (true, None) if lora => Ok(ReferenceMode::AdaptersOff),
        (true, None) => Ok(ReferenceMode::Precomputed),
        (true, Some(ReferenceMode::AdaptersOff)) if !lora => bail!(
            "--reference adapters-off switches off LoRA adapters: give --lora-r (or a \
             [train.lora] table) to train adapters, or --reference precomputed or model"
        ),
        (true, Some(ReferenceMode::None)) => bail!(
            "--reference none: the {name} loss compares the model against a reference; give \
             --reference precomputed or model, choose a reference-free loss (--loss orpo or \
             simpo), or set reference_free = true in the config's [loss] table"
        ),
        (true, Some(mode)) => Ok(mode),
        (false, None | Some(ReferenceMode::None)) => Ok(ReferenceMode::None),
        (false, Some(mode)) => bail!(
            "--reference {}: the {name} loss is reference-free and reads no reference; leave \
             --reference out or give none",
            mode.to_possible_value()
                .map(|value| value.get_name().to_owned())
                .unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// A command line with only the shared training options.
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: TrainArgs,
    }

    fn cli(extra: &[&str]) -> Result<Cli> {
        let base = ["train", "--model", "m", "--train", "t.jsonl", "-o", "out"];
        Ok(Cli::try_parse_from(base.iter().chain(extra))?)
    }

    #[test]
    fn defaults_are_trl_ones() {
        let sft = trl_sft_defaults();
        assert_eq!(
            (
                sft.learning_rate,
                sft.schedule,
                sft.warmup_steps,
                sft.epochs
            ),
            (2e-5, LrSchedule::Linear, 0, 3)
        );
        assert_eq!(
            (sft.weight_decay, sft.max_grad_norm, sft.seed),
            (0.0, Some(1.0), 42)
        );
        assert_eq!(
            (sft.adam_beta1, sft.adam_beta2, sft.adam_epsilon),
            (0.9, 0.999, 1e-8)
        );
        let preference = trl_preference_defaults();
        assert_eq!(preference.learning_rate, 1e-6);
        assert_eq!(
            TrainConfig {
                learning_rate: sft.learning_rate,
                ..preference
            },
            sft
        );
    }

    #[test]
    fn command_line_beats_config_file_beats_defaults() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("run.toml");
        std::fs::write(&config, "[train]\nepochs = 5\nlearning_rate = 3e-4\n")?;
        let config = config.to_string_lossy().into_owned();
        let args = cli(&["--config", &config, "--lr", "1e-3"])?.run;
        assert_eq!(args.output, PathBuf::from("out"));
        let c = args.train_config(&trl_preference_defaults())?;
        assert_eq!((c.learning_rate, c.epochs), (1e-3, 5));
        assert_eq!(
            (c.schedule, c.max_grad_norm),
            (LrSchedule::Linear, Some(1.0))
        );
        Ok(())
    }

    #[test]
    fn a_misspelt_config_key_names_file_and_table() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("run.toml");
        std::fs::write(&config, "[train]\nlearning_rat = 1e-4\n")?;
        let err = config_table_over(Some(&config), "train", &trl_sft_defaults())
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(
            err.starts_with(&format!("{}: table [train]", config.display())),
            "{err}"
        );
        assert!(err.contains("learning_rat"), "{err}");
        Ok(())
    }

    #[test]
    fn a_bad_schedule_is_named() -> Result<()> {
        let err = cli(&["--schedule", "step"])?
            .run
            .train_config(&trl_sft_defaults())
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("--schedule step: expected constant, linear or cosine")
        );
        Ok(())
    }

    #[test]
    fn help_shows_the_example_defaults() {
        let mut command = show_defaults(Cli::command(), &trl_preference_defaults());
        command.build();
        command.clone().debug_assert();
        let help = command.render_help().to_string();
        for shown in [
            "[default: 1e-6]",
            "[default: linear]",
            "[default: 3]",
            "[default: 42]",
        ] {
            assert!(help.contains(shown), "{shown} missing from:\n{help}");
        }
    }

    #[test]
    fn memory_budget_is_given_in_gib_above_zero() -> Result<()> {
        let args = cli(&["--memory-budget", "1.5"])?.run;
        let budget = memory_budget(args.memory_budget);
        assert_eq!(budget.map(|b| b.bytes), Some(3 << 29));
        for bad in ["0", "-2", "NaN", "lots"] {
            assert!(cli(&["--memory-budget", bad]).is_err(), "{bad}");
        }
        Ok(())
    }

    fn dpo(reference_free: bool) -> PreferenceLossConfig {
        PreferenceLossConfig::Dpo {
            beta: 0.1,
            label_smoothing: 0.0,
            nll_alpha: 0.0,
            reference_free,
        }
    }

    #[test]
    fn reference_none_works_only_without_a_reference() -> Result<()> {
        let orpo = PreferenceLossConfig::Orpo {
            beta: 0.1,
            nll_scope: Default::default(),
        };
        let none = Some(ReferenceMode::None);
        assert_eq!(
            reference_mode(&dpo(false), None, false)?,
            ReferenceMode::Precomputed
        );
        assert_eq!(
            reference_mode(&dpo(false), None, true)?,
            ReferenceMode::AdaptersOff
        );
        assert_eq!(
            reference_mode(&dpo(false), Some(ReferenceMode::Model), true)?,
            ReferenceMode::Model
        );
        assert_eq!(reference_mode(&orpo, None, false)?, ReferenceMode::None);
        assert_eq!(reference_mode(&orpo, None, true)?, ReferenceMode::None);
        assert_eq!(reference_mode(&orpo, none, false)?, ReferenceMode::None);
        assert_eq!(
            reference_mode(&dpo(true), none, false)?,
            ReferenceMode::None
        );
        let err = |loss: &PreferenceLossConfig, mode| {
            reference_mode(loss, mode, false)
                .err()
                .map(|e| e.to_string())
        };
        let off = err(&dpo(false), Some(ReferenceMode::AdaptersOff)).unwrap_or_default();
        assert!(
            off.starts_with("--reference adapters-off switches off"),
            "{off}"
        );
        let dpo_none = err(&dpo(false), none).unwrap_or_default();
        assert!(
            dpo_none.starts_with("--reference none: the dpo loss"),
            "{dpo_none}"
        );
        let orpo_model = err(&orpo, Some(ReferenceMode::Model)).unwrap_or_default();
        assert!(
            orpo_model.starts_with("--reference model: the orpo loss is reference-free"),
            "{orpo_model}"
        );
        Ok(())
    }

    #[test]
    fn lora_flags_make_the_lora_table() -> Result<()> {
        let defaults = TrainConfig::default();
        assert_eq!(cli(&[])?.run.train_config(&defaults)?.lora, None);
        let lora = cli(&["--lora-r", "8"])?.run.train_config(&defaults)?.lora;
        assert_eq!(
            lora,
            Some(LoraConfig {
                r: 8,
                alpha: 16.0,
                ..LoraConfig::default()
            })
        );
        let args = cli(&[
            "--lora-r",
            "4",
            "--lora-alpha",
            "6",
            "--lora-rslora",
            "--lora-dropout",
            "0.1",
            "--lora-targets",
            "q_proj,v_proj",
        ])?;
        let lora = args.run.train_config(&defaults)?.lora.unwrap_or_default();
        assert_eq!(
            (lora.r, lora.alpha, lora.dropout, lora.rslora),
            (4, 6.0, 0.1, true)
        );
        assert_eq!(lora.targets, vec![LoraTarget::QProj, LoraTarget::VProj]);
        let unknown = cli(&["--lora-r", "4", "--lora-targets", "qproj"]).err();
        let unknown = unknown.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            unknown.contains("unknown projection \"qproj\""),
            "{unknown}"
        );
        let without_r = cli(&["--lora-alpha", "4"])?
            .run
            .train_config(&defaults)
            .err();
        let without_r = without_r.map(|e| e.to_string()).unwrap_or_default();
        assert!(without_r.contains("give --lora-r"), "{without_r}");
        let zero = cli(&["--lora-r", "0"])?.run.train_config(&defaults).err();
        let zero = zero.map(|e| e.to_string()).unwrap_or_default();
        assert!(zero.contains("lora") && zero.contains("`r`"), "{zero}");
        Ok(())
    }
}
