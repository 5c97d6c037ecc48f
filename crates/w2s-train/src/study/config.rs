//! [`StudyConfig`]: the supervision-quality study as one TOML file (`configs/supervision.toml`
//! is the embedded default, [`StudyConfig::embedded`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use w2s_arith::Family;
use w2s_eval::TaskKind;

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::pipeline::config::{read_toml, to_toml};
use crate::pipeline::{BaseModel, DecodeConfig, ModelSpec, PipelineConfig};

/// The whole study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    /// Seed of the problems, of the corrupter and of every set's choices.
    pub seed: u64,
    /// The supervision and the test questions.
    pub data: StudyData,
    /// The strong model every set trains (a built-in base or an HF directory).
    pub model: ModelSpec,
    /// The SFT of each set.
    pub train: TrainConfig,
    /// Greedy decoding of the test evaluation.
    pub generation: DecodeConfig,
    /// Outcome error rates of the hard-task and subtask sweeps.
    pub epsilons: Vec<f64>,
    /// Hard-task supervision at one outcome error rate with a low and a high step-wise error rate.
    pub step_rates: StepRates,
    /// Hard-task supervision plus subtasks, against hard-task supervision plus a rephrased copy.
    pub mix: MixConfig,
}

/// Where the tasks come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum StudyData {
    /// The built-in arithmetic task: `tasks` hard problems of `family` and `test` more, all with
    /// different questions; subtasks are the hard problems' leading steps, incorrect solutions
    /// come from the corrupter, rephrased copies tell each problem about someone else.
    Arithmetic {
        /// The hard problems.
        family: Family,
        /// Hard supervision tasks.
        tasks: usize,
        /// Test questions.
        test: usize,
    },
    /// A user's supervision files (JSONL, one task per line:
    /// `{"id", "question", "answer", "correct", "incorrect": [...]}`, `answer` the gold final
    /// answer), and a test file in the task's benchmark format.
    Files {
        /// Grading rules.
        task: TaskKind,
        /// Hard tasks.
        hard: PathBuf,
        /// Their subtasks (same line format).
        subtasks: PathBuf,
        /// Rephrased copies of the hard tasks (same format and ids); without it the
        /// rephrased-copy run is left out.
        #[serde(default)]
        rephrased: Option<PathBuf>,
        /// The test questions.
        test: PathBuf,
    },
}

/// One outcome error rate, two requested step-wise error rates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRates {
    /// Outcome error rate of both sets.
    pub epsilon: f64,
    /// The low step-wise error rate asked for.
    pub low: f64,
    /// The high one.
    pub high: f64,
}

/// The outcome error rates of the two mixed runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixConfig {
    /// Of the hard-task part (and of its rephrased copy).
    pub hard_epsilon: f64,
    /// Of the subtask part.
    pub subtask_epsilon: f64,
}

impl StudyConfig {
    /// The embedded default: 3-step arithmetic stories, the built-in strong base, sized to run
    /// on two CPU cores in about a quarter of an hour.
    pub fn embedded() -> Self {
        let pipeline = PipelineConfig::embedded();
        Self {
            seed: 0,
            data: StudyData::Arithmetic {
                family: Family::target(3),
                tasks: 1000,
                test: 400,
            },
            model: ModelSpec::Builtin {
                name: BaseModel::ArithmeticStrong,
            },
            train: TrainConfig {
                epochs: 2,
                ..pipeline.strong_sft
            },
            generation: pipeline.generation,
            epsilons: vec![0.0, 0.3, 0.6, 0.9],
            step_rates: StepRates {
                epsilon: 0.6,
                low: 0.2,
                high: 0.5,
            },
            mix: MixConfig {
                hard_epsilon: 0.6,
                subtask_epsilon: 0.3,
            },
        }
    }

    /// Reads and checks a TOML config.
    ///
    /// # Errors
    /// An unreadable file, a TOML error (naming file, line and field), an invalid value.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self> {
        let config: Self = read_toml(path)?;
        config.validate()?;
        Ok(config)
    }

    /// The config as TOML (what `configs/supervision.toml` holds).
    ///
    /// # Errors
    /// A value TOML cannot represent.
    pub fn to_toml(&self) -> Result<String> {
        to_toml(self)
    }

    /// The task whose grading rules apply.
    pub fn task(&self) -> TaskKind {
        match &self.data {
            StudyData::Arithmetic { .. } => TaskKind::Arithmetic,
            StudyData::Files { task, .. } => *task,
        }
    }

    /// Checks every rate and size.
    ///
    /// # Errors
    /// [`TrainError::Config`] naming the field.
    pub fn validate(&self) -> Result<()> {
        let rate = |field: &'static str, r: f64| {
            if (0.0..=1.0).contains(&r) {
                Ok(())
            } else {
                Err(TrainError::config(field, format!("{r} is not in [0, 1]")))
            }
        };
        if self.epsilons.is_empty() {
            return Err(TrainError::config("epsilons", "must not be empty"));
        }
        for &e in &self.epsilons {
            rate("epsilons", e)?;
        }
        rate("step_rates.epsilon", self.step_rates.epsilon)?;
        rate("step_rates.low", self.step_rates.low)?;
        rate("step_rates.high", self.step_rates.high)?;
        if self.step_rates.low >= self.step_rates.high {
            return Err(TrainError::config(
                "step_rates.low",
                "must be below step_rates.high",
            ));
        }
        rate("mix.hard_epsilon", self.mix.hard_epsilon)?;
        rate("mix.subtask_epsilon", self.mix.subtask_epsilon)?;
        if let StudyData::Arithmetic {
            family,
            tasks,
            test,
        } = &self.data
        {
            family
                .validate()
                .map_err(|e| TrainError::config("data.family", e.to_string()))?;
            if *tasks == 0 || *test == 0 {
                return Err(TrainError::config(
                    "data.tasks",
                    "tasks and test must be > 0",
                ));
            }
            if family.min_steps < 2 {
                return Err(TrainError::config(
                    "data.family.min_steps",
                    "a hard task needs at least 2 steps to have a subtask",
                ));
            }
        }
        if matches!(self.model, ModelSpec::Scratch { .. }) {
            return Err(TrainError::config(
                "model",
                "the study trains a pretrained model: kind = \"builtin\" or \"dir\"",
            ));
        }
        self.train.validate()
    }
}
