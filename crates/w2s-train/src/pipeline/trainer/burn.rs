//! The built-in trainer: w2s's SFT and preference trainers in this process.

use burn::tensor::backend::AutodiffBackend;
use w2s_losses::ChunkedLogprobsBackend;

use super::{TrainData, TrainJob, Trainer};
use crate::error::Result;
use crate::pipeline::models::{fine_tune, preference_tune, Trained};
use crate::prompt_format::PromptFormat;

/// Fine-tunes on `device` with [`fine_tune`] and [`preference_tune`], the model reading the
/// records in `format`.
#[derive(Debug)]
pub(crate) struct BurnTrainer<'a, B: AutodiffBackend> {
    pub format: PromptFormat,
    pub quiet: bool,
    pub device: &'a B::Device,
}

impl<B: AutodiffBackend + ChunkedLogprobsBackend> Trainer for BurnTrainer<'_, B> {
    fn train(&self, job: &TrainJob<'_>) -> Result<Trained> {
        match job.data {
            TrainData::Sft(examples) => fine_tune::<B>(
                job.base,
                examples,
                self.format,
                job.config,
                job.dir,
                self.quiet,
                self.device,
            ),
            TrainData::Preference { pairs, loss } => preference_tune::<B>(
                job.base,
                pairs,
                self.format,
                loss,
                job.config,
                job.dir,
                self.quiet,
                self.device,
            ),
        }
    }
}
