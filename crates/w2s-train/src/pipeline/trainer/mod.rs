//! The trainer seam: a base model directory, an SFT set or preference pairs, and the stage's
//! hyperparameters in, a trained model directory out.
//!
//! Two engines implement it: [`BurnTrainer`], w2s's own trainers in this process, and
//! [`CommandTrainer`], an external command per fine-tune (TRL, accelerate, LLaMA-Factory, or
//! w2s's `sft` and `preference` examples) run from a template. A role's `trainer` table
//! ([`super::TrainerSpec`]) picks one.

mod burn;
mod command;
pub(crate) mod template;

use std::path::Path;

use w2s_curation::record::{PreferencePair, SftExample};
use w2s_losses::PreferenceLossConfig;

pub(crate) use self::burn::BurnTrainer;
pub(crate) use self::command::{check_templates, CommandTrainer, Commands};
use super::models::Trained;
use crate::config::TrainConfig;
use crate::error::Result;

/// What a fine-tune learns from.
#[derive(Debug, Clone, Copy)]
pub enum TrainData<'a> {
    /// Supervised fine-tuning on prompt/completion examples.
    Sft(&'a [SftExample]),
    /// Preference optimization on pairs with a loss.
    Preference {
        /// The pairs.
        pairs: &'a [PreferencePair],
        /// The loss.
        loss: &'a PreferenceLossConfig,
    },
}

/// The two kinds of fine-tune, which a command trainer runs with different templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainKind {
    /// SFT.
    Sft,
    /// Preference optimization.
    Preference,
}

impl TrainData<'_> {
    /// Which kind of fine-tune this is.
    pub fn kind(&self) -> TrainKind {
        match self {
            TrainData::Sft(_) => TrainKind::Sft,
            TrainData::Preference { .. } => TrainKind::Preference,
        }
    }

    /// How many records (examples or pairs) it holds.
    pub fn records(&self) -> usize {
        match self {
            TrainData::Sft(examples) => examples.len(),
            TrainData::Preference { pairs, .. } => pairs.len(),
        }
    }
}

/// One fine-tune.
#[derive(Debug, Clone, Copy)]
pub struct TrainJob<'a> {
    /// The model directory to start from (HF layout).
    pub base: &'a Path,
    /// The data.
    pub data: TrainData<'a>,
    /// The hyperparameters.
    pub config: &'a TrainConfig,
    /// The stage's folder for this fine-tune: checkpoints, logs and the trained model go under
    /// it, and a rerun resumes from what is there.
    pub dir: &'a Path,
}

/// Fine-tunes models (see the module docs).
pub trait Trainer {
    /// Runs `job` and returns the trained model's directory with what the run reports.
    ///
    /// # Errors
    /// The engine's errors; a run that leaves no loadable model.
    fn train(&self, job: &TrainJob<'_>) -> Result<Trained>;
}
