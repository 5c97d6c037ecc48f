//! [`PipelineConfig`]: everything a weak-to-strong run computes, as one TOML file.
//!
//! The embedded default ([`PipelineConfig::embedded`]) is the built-in arithmetic task with two
//! small Llamas shipped pretrained inside w2s ([`BaseModel`]), fine-tuned on CPU;
//! [`PipelineConfig::embedded_from_scratch`] is the same run with the pretraining that made them.
//! `configs/` holds both as TOML together with real-model recipes for GSM8K and MATH. Every
//! stage takes its part of the config into its fingerprint, so editing one table reruns that
//! stage and the stages after it, and nothing else.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use w2s_arith::{DivisionRule, Family, Op, Surface};
use w2s_curation::stage1::MatchMode;
use w2s_curation::stage2::MiningConfig;
use w2s_eval::TaskKind;
use w2s_losses::PreferenceLossConfig;

use super::role::Role;
use super::trainer::check_templates;
use crate::config::{LrSchedule, Overlong, TrainConfig};
use crate::error::{Result, TrainError};
use crate::prompt_format::PromptFormat;
use w2s_arith::BaseModel;

/// The whole pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Seed of the splits, of model initialisation and of every sampled draw.
    pub seed: u64,
    /// Grading rules of the task.
    pub task: TaskKind,
    /// The backend the run expects (`flex`, `ndarray`, `cuda`, `wgpu`); the binary refuses to
    /// run a config meant for another backend. Backends are chosen at build time (cargo
    /// features), so this only checks. Absent: any.
    #[serde(default)]
    pub backend: Option<String>,
    /// Where the questions come from.
    pub data: DataConfig,
    /// The weak model, and the engines that sample and train it ([`Role`]).
    pub weak: Role,
    /// The strong base model, and the engines that sample and train it.
    pub strong: Role,
    /// Pretraining of from-scratch models (arithmetic task only).
    #[serde(default)]
    pub pretrain: Option<PretrainConfig>,
    /// SFT of the weak model on D_gold,1.
    pub weak_sft: TrainConfig,
    /// Every SFT of the strong base (naive, ceiling, Stage I).
    pub strong_sft: TrainConfig,
    /// Stage I.
    pub stage1: Stage1Config,
    /// Stage II.
    pub stage2: Stage2Config,
    /// Decoding of every greedy pass (labels, ICL, evaluation).
    pub generation: DecodeConfig,
}

/// The questions: generated arithmetic problems, or a benchmark file split three ways.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataConfig {
    /// The built-in arithmetic task: D_gold,1, D_gold,2 and test drawn from `family`.
    Arithmetic {
        /// The target family.
        family: Family,
        /// Size of D_gold,1 (the weak model's gold data).
        gold1: usize,
        /// Size of D_gold,2 (questions the strong model learns from).
        gold2: usize,
        /// Size of the test split.
        test: usize,
    },
    /// A benchmark file (GSM8K `question`/`answer`, MATH `problem`/`solution`/`answer`).
    Files {
        /// The pool D_gold,1 and D_gold,2 are drawn from.
        train: PathBuf,
        /// The test file (taken whole, or its first `test` lines).
        test_file: PathBuf,
        /// Size of D_gold,1.
        gold1: usize,
        /// Size of D_gold,2.
        gold2: usize,
        /// Test questions used (0: all).
        #[serde(default)]
        test: usize,
    },
}

/// A model: an HF directory, or a Llama trained from scratch.
///
/// ```toml
/// [strong]
/// kind = "dir"
/// path = "models/SmolLM2-135M-Instruct"
/// chat_template = true   # an instruct model: prompts reach it as a user turn of its template
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelSpec {
    /// An HF model directory (config.json, weights, tokenizer.json).
    Dir {
        /// The directory.
        path: PathBuf,
        /// Show this model (and every model trained from it) the method's prompts through its
        /// chat template, as one user message with the generation prompt, and train it on
        /// user/assistant turns with the loss on the assistant turn ([`PromptFormat::Chat`]):
        /// for instruct models. The run refuses it for a directory without a chat template.
        /// Samples, sets and pairs keep the prompts' plain text either way. Default `false`:
        /// the prompts as plain text, with the special tokens the tokenizer adds.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        chat_template: bool,
    },
    /// A model compiled into w2s (for the arithmetic task).
    Builtin {
        /// Which one.
        name: BaseModel,
    },
    /// A fresh Llama for the arithmetic task's tokenizer.
    Scratch {
        /// Model width.
        hidden_size: usize,
        /// SwiGLU width.
        intermediate_size: usize,
        /// Decoder layers.
        layers: usize,
        /// Attention heads.
        heads: usize,
        /// Context length.
        max_positions: usize,
    },
}

impl ModelSpec {
    /// How this model reads the method's prompts: through its chat template when it is a
    /// directory with `chat_template = true`, else as text.
    pub fn prompt_format(&self) -> PromptFormat {
        match self {
            ModelSpec::Dir {
                chat_template: true,
                ..
            } => PromptFormat::Chat,
            _ => PromptFormat::Text,
        }
    }
}

/// Strong pretraining on related data: documents of several problems of one family each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    /// The families and their share of the documents.
    pub mix: Vec<WeightedFamily>,
    /// Documents in the corpus.
    pub documents: usize,
    /// Problems per document (the document must cover the k-shot prompt of Stage I).
    pub problems_per_document: usize,
    /// The training run.
    pub train: TrainConfig,
    /// Documents of the weak model's own corpus (drawn like the strong model's, from the same
    /// mix), on which a from-scratch weak model is pretrained before its SFT on D_gold,1: the
    /// paper's weak and strong models are both pretrained language models, the weak one on
    /// less. 0: the weak model is not pretrained.
    #[serde(default)]
    pub weak_documents: usize,
}

/// A family with a weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedFamily {
    /// Relative share.
    pub weight: f64,
    /// The family.
    pub family: Family,
}

/// Stage I: final-answer consistency between the weak model and the strong model's ICL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage1Config {
    /// Iterations (the paper: 2 on GSM8K, 1 on MATH).
    pub iterations: usize,
    /// Demonstrations of the ICL prompt (the paper: 4).
    pub k_shot: usize,
    /// Exact string equality of normalized answers (the paper), or semantic equivalence.
    pub match_mode: MatchMode,
    /// Fewest optimizer steps of each Stage I SFT (the strong SFT config's epochs are repeated
    /// until reached): a small curated set then gets the updates of a full one, instead of a
    /// handful that leave the model worse than its base. Absent: the SFT config as it is.
    #[serde(default)]
    pub min_steps: Option<usize>,
}

/// Stage II: sampling, pair mining and preference training on M_plus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage2Config {
    /// Samples per question (the paper: 10).
    pub num_samples: usize,
    /// Sampling temperature (the paper: 1.0).
    pub temperature: f32,
    /// Thresholds and pairs per question.
    pub mining: MiningConfig,
    /// One preference run per entry, each from M_plus.
    pub losses: Vec<NamedLoss>,
    /// The preference training run.
    pub train: TrainConfig,
}

/// A preference loss and the row name of its model in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedLoss {
    /// Report row (`stage2_dpo`, `stage2_orpo`).
    pub name: String,
    /// The loss.
    pub loss: PreferenceLossConfig,
}

/// Greedy decoding settings shared by every pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeConfig {
    /// Most new tokens of an answer.
    pub max_new_tokens: usize,
    /// Prompts decoded together.
    pub prompts_per_batch: usize,
    /// Strings that end an answer (the paper: `Question`, `Answer`).
    pub stop_strings: Vec<String>,
}

impl PipelineConfig {
    /// The embedded default: the arithmetic task, starting from the small weak and strong bases
    /// built into w2s, sized to finish on two CPU cores in minutes (README, "The main job").
    pub fn embedded() -> Self {
        Self {
            weak: ModelSpec::Builtin {
                name: BaseModel::ArithmeticWeak,
            }
            .into(),
            strong: ModelSpec::Builtin {
                name: BaseModel::ArithmeticStrong,
            }
            .into(),
            pretrain: None,
            ..Self::embedded_from_scratch()
        }
    }

    /// The embedded default as it was made: both models from scratch, pretrained on the related
    /// corpus first. Its `weak_base` and `strong_base` stages produced the built-in bases
    /// (`configs/embedded-pretrain.toml`).
    pub fn embedded_from_scratch() -> Self {
        let sft = |learning_rate, epochs| TrainConfig {
            learning_rate,
            schedule: LrSchedule::Cosine,
            warmup_steps: 10,
            min_lr_ratio: 0.1,
            adam_beta2: 0.98,
            epochs,
            batch_tokens: 2048,
            group_by_length: true,
            ..TrainConfig::default()
        };
        let story = |min_steps, max_steps, division| Family {
            surface: Surface::Story,
            min_steps,
            max_steps,
            ops: Op::ALL.to_vec(),
            division,
            max_value: 99,
        };
        let instructions = |min_steps, max_steps, division| Family {
            surface: Surface::Instructions,
            ..story(min_steps, max_steps, division)
        };
        Self {
            seed: 0,
            task: TaskKind::Arithmetic,
            backend: None,
            data: DataConfig::Arithmetic {
                family: Family::target(3),
                gold1: 1500,
                gold2: 1000,
                test: 400,
            },
            weak: ModelSpec::Scratch {
                hidden_size: 64,
                intermediate_size: 128,
                layers: 2,
                heads: 2,
                max_positions: 512,
            }
            .into(),
            strong: ModelSpec::Scratch {
                hidden_size: 128,
                intermediate_size: 256,
                layers: 4,
                heads: 2,
                max_positions: 768,
            }
            .into(),
            pretrain: Some(PretrainConfig {
                mix: vec![
                    WeightedFamily {
                        weight: 0.15,
                        family: instructions(1, 4, DivisionRule::Any),
                    },
                    WeightedFamily {
                        weight: 0.3,
                        family: instructions(3, 3, DivisionRule::ExactlyOnce),
                    },
                    WeightedFamily {
                        weight: 0.3,
                        family: story(1, 2, DivisionRule::Any),
                    },
                    WeightedFamily {
                        weight: 0.25,
                        family: story(3, 4, DivisionRule::Never),
                    },
                ],
                documents: 24_000,
                problems_per_document: 5,
                train: TrainConfig {
                    warmup_steps: 30,
                    overlong: Overlong::Skip,
                    ..sft(2e-3, 1)
                },
                weak_documents: 8000,
            }),
            weak_sft: TrainConfig {
                batch_tokens: 2048,
                ..sft(2e-3, 6)
            },
            strong_sft: sft(5e-4, 3),
            stage1: Stage1Config {
                iterations: 2,
                k_shot: 4,
                match_mode: MatchMode::Exact,
                min_steps: Some(100),
            },
            stage2: Stage2Config {
                num_samples: 10,
                temperature: 1.0,
                mining: MiningConfig::for_task(TaskKind::Arithmetic),
                losses: vec![
                    NamedLoss {
                        name: "stage2_dpo".into(),
                        loss: PreferenceLossConfig::Dpo {
                            beta: 0.1,
                            label_smoothing: 0.0,
                            nll_alpha: 1.0,
                            reference_free: false,
                        },
                    },
                    NamedLoss {
                        name: "stage2_orpo".into(),
                        loss: PreferenceLossConfig::Orpo {
                            beta: 0.1,
                            nll_scope: Default::default(),
                        },
                    },
                ],
                train: TrainConfig {
                    learning_rate: 2e-5,
                    schedule: LrSchedule::Constant,
                    warmup_steps: 5,
                    epochs: 1,
                    batch_tokens: 2048,
                    group_by_length: true,
                    ..TrainConfig::default()
                },
            },
            generation: DecodeConfig {
                max_new_tokens: 80,
                prompts_per_batch: 64,
                stop_strings: vec!["Question".into(), "Answer".into()],
            },
        }
    }

    /// Reads a TOML config.
    ///
    /// # Errors
    /// I/O errors naming the file, and TOML errors with their line.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self> {
        let config: Self = read_toml(path)?;
        config.validate()?;
        Ok(config)
    }

    /// The config as TOML (what `configs/embedded.toml` holds).
    ///
    /// # Errors
    /// A value TOML cannot represent.
    pub fn to_toml(&self) -> Result<String> {
        to_toml(self)
    }

    /// Checks every part.
    ///
    /// # Errors
    /// [`TrainError::Config`] naming the field.
    pub fn validate(&self) -> Result<()> {
        match &self.data {
            DataConfig::Arithmetic {
                family,
                gold1,
                gold2,
                test,
            } => {
                family
                    .validate()
                    .map_err(|e| TrainError::config("data.family", e.to_string()))?;
                if *gold1 == 0 || *gold2 == 0 || *test == 0 {
                    return Err(TrainError::config(
                        "data",
                        "gold1, gold2 and test must be > 0",
                    ));
                }
                if self.task != TaskKind::Arithmetic {
                    return Err(TrainError::config(
                        "task",
                        "generated data needs task = \"arithmetic\"",
                    ));
                }
            }
            DataConfig::Files { gold1, gold2, .. } => {
                if *gold1 == 0 || *gold2 == 0 {
                    return Err(TrainError::config("data", "gold1 and gold2 must be > 0"));
                }
            }
        }
        let scratch = |role: &Role| matches!(role.model, ModelSpec::Scratch { .. });
        let arithmetic_only = |role: &Role| !matches!(role.model, ModelSpec::Dir { .. });
        if (arithmetic_only(&self.weak) || arithmetic_only(&self.strong))
            && self.task != TaskKind::Arithmetic
        {
            return Err(TrainError::config(
                "weak/strong",
                "built-in and from-scratch models use the arithmetic tokenizer; give a model directory",
            ));
        }
        for (field, role) in [("weak.heads", &self.weak), ("strong.heads", &self.strong)] {
            if let ModelSpec::Scratch {
                hidden_size, heads, ..
            } = &role.model
            {
                if *heads == 0 || !hidden_size.is_multiple_of(*heads) {
                    return Err(TrainError::config(field, "must divide hidden_size"));
                }
            }
        }
        if let Some(p) = &self.pretrain {
            if p.mix.is_empty() || p.mix.iter().any(|m| m.weight.is_nan() || m.weight <= 0.0) {
                return Err(TrainError::config(
                    "pretrain.mix",
                    "needs families of positive weight",
                ));
            }
            for m in &p.mix {
                m.family
                    .validate()
                    .map_err(|e| TrainError::config("pretrain.mix", e.to_string()))?;
            }
            if p.documents == 0 || p.problems_per_document == 0 {
                return Err(TrainError::config(
                    "pretrain",
                    "documents and problems_per_document must be > 0",
                ));
            }
            p.train.validate()?;
            if !scratch(&self.strong) {
                return Err(TrainError::config(
                    "pretrain",
                    "only a strong model from scratch is pretrained",
                ));
            }
            if p.weak_documents > 0 && !scratch(&self.weak) {
                return Err(TrainError::config(
                    "pretrain.weak_documents",
                    "only a weak model from scratch is pretrained",
                ));
            }
        }
        self.weak_sft.validate()?;
        self.strong_sft.validate()?;
        self.stage2.train.validate()?;
        self.stage2
            .mining
            .validate()
            .map_err(|e| TrainError::config("stage2.mining", e.to_string()))?;
        if self.stage1.iterations == 0 {
            return Err(TrainError::config(
                "stage1.iterations",
                "must be at least 1",
            ));
        }
        if self.stage2.num_samples < 2 {
            return Err(TrainError::config(
                "stage2.num_samples",
                "needs at least 2 samples",
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for l in &self.stage2.losses {
            l.loss
                .validate()
                .map_err(|e| TrainError::config("stage2.losses", e.to_string()))?;
            if !names.insert(l.name.as_str())
                || !l
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(TrainError::config(
                    "stage2.losses",
                    format!("name {:?} must be unique and of [A-Za-z0-9_]", l.name),
                ));
            }
        }
        if self.generation.max_new_tokens == 0 || self.generation.prompts_per_batch == 0 {
            return Err(TrainError::config(
                "generation",
                "max_new_tokens and prompts_per_batch must be > 0",
            ));
        }
        self.validate_engines()
    }

    /// Checks each role's engines: a server's address and concurrency, and that a command
    /// trainer's templates fill for every fine-tune the role will run.
    fn validate_engines(&self) -> Result<()> {
        let pretraining = |weak: bool| {
            self.pretrain
                .as_ref()
                .filter(|p| !weak || p.weak_documents > 0)
                .map(|p| &p.train)
        };
        let stage1 = self.stage1_sft();
        let mut strong_sft = vec![&self.strong_sft, &stage1];
        strong_sft.extend(pretraining(false));
        let mut weak_sft = vec![&self.weak_sft];
        weak_sft.extend(pretraining(true));
        let losses: Vec<_> = self
            .stage2
            .losses
            .iter()
            .map(|l| (&self.stage2.train, &l.loss))
            .collect();
        check_templates("weak", &self.weak.trainer, &weak_sft, &[])?;
        check_templates("strong", &self.strong.trainer, &strong_sft, &losses)?;
        for (name, role) in [("weak", &self.weak), ("strong", &self.strong)] {
            role.sampler.validate(name)?;
        }
        Ok(())
    }

    /// The training config of every Stage I SFT: the strong SFT's, with Stage I's `min_steps`
    /// where it sets one.
    pub fn stage1_sft(&self) -> TrainConfig {
        TrainConfig {
            min_steps: self.stage1.min_steps.or(self.strong_sft.min_steps),
            ..self.strong_sft.clone()
        }
    }
}

/// A TOML file as `T`; errors name the file (and, from the parser, the line and field).
pub(crate) fn read_toml<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    toml::from_str(&text)
        .map_err(|e| TrainError::config("config", format!("{}: {e}", path.display())))
}

/// `value` as TOML.
pub(crate) fn to_toml<T: Serialize>(value: &T) -> Result<String> {
    toml::to_string(value).map_err(|e| TrainError::config("config", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_defaults_are_valid_and_round_trip_through_toml() -> Result<()> {
        for config in [
            PipelineConfig::embedded(),
            PipelineConfig::embedded_from_scratch(),
        ] {
            config.validate()?;
            let text = config.to_toml()?;
            let back: PipelineConfig =
                toml::from_str(&text).map_err(|e| TrainError::config("toml", e.to_string()))?;
            assert_eq!(back, config);
        }
        Ok(())
    }

    #[test]
    fn chat_template_is_a_switch_of_model_directories_off_by_default() -> Result<()> {
        let read = |text: &str| toml::from_str::<ModelSpec>(text);
        let instruct = read("kind = \"dir\"\npath = \"m\"\nchat_template = true").unwrap();
        assert_eq!(instruct.prompt_format(), PromptFormat::Chat);
        let base = read("kind = \"dir\"\npath = \"m\"").unwrap();
        assert_eq!(base.prompt_format(), PromptFormat::Text);
        // Off, it is not written: configs and fingerprints stay as they were.
        assert_eq!(to_toml(&base)?, "kind = \"dir\"\npath = \"m\"\n");
        let builtin = "kind = \"builtin\"\nname = \"arithmetic_weak\"";
        assert!(read(builtin).is_ok());
        assert!(read(&format!("{builtin}\nchat_template = true")).is_err());
        let embedded = PipelineConfig::embedded();
        assert_eq!(embedded.strong.model.prompt_format(), PromptFormat::Text);
        Ok(())
    }

    #[test]
    fn bad_fields_are_named() {
        let mut c = PipelineConfig::embedded();
        c.stage1.iterations = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("stage1.iterations"));
        let mut c = PipelineConfig::embedded_from_scratch();
        if let ModelSpec::Scratch { heads, .. } = &mut c.strong.model {
            *heads = 3;
        }
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("strong.heads"));
        let mut c = PipelineConfig::embedded();
        c.task = TaskKind::Gsm8k;
        assert!(c.validate().unwrap_err().to_string().contains("task"));
        let mut c = PipelineConfig::embedded_from_scratch();
        c.weak = PipelineConfig::embedded().weak;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("pretrain.weak_documents"));
    }
}
