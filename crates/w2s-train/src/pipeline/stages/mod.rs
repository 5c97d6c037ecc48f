//! The pipeline's stages, one file per step of docs/method.md, each a method of
//! [`super::flow::Flow`] that runs its stages through the run directory (skipping those already
//! done) and returns typed results for the stages after it.
//!
//! A stage's fingerprint inputs are written here as JSON literals; their keys, their order and
//! their values are what existing run directories were cached under, so they change only on
//! purpose (`tests/pipeline.rs` pins them).

mod baselines;
mod bases;
mod evaluation;
mod splits;
mod stage1;
mod stage2;
mod weak;

use std::path::Path;

use burn::tensor::backend::AutodiffBackend;
use serde_json::Value;
use w2s_curation::quality::{sft_quality, Gold, GoldFormat, StepCheck};
use w2s_curation::record::{Sample, SftExample};
use w2s_eval::TaskKind;

pub(super) use self::splits::Splits;
use super::flow::{Engines, Flow};
use super::models::{read_samples, trimmed};
use super::report::SetQuality;
use super::run_dir::RunDir;
use super::sampler::SampleRequest;
use crate::error::Result;
use crate::sampling::PromptRecord;

/// A model's greedy answers to every question of D_gold,2: the answers (trimmed), their
/// quality against the hidden gold, and the fingerprint of the stage that made them.
#[derive(Debug, Clone)]
pub(super) struct Answers {
    pub samples: Vec<Sample>,
    pub quality: SetQuality,
    pub fingerprint: String,
}

impl<B: AutodiffBackend> Flow<'_, B> {
    /// Runs `stage` on fingerprint `inputs`: the greedy answers of the model in `model`,
    /// sampled by `engines`, to `prompts`, into `stage/samples.jsonl`.
    fn greedy_answers(
        &self,
        run: &mut RunDir,
        stage: &str,
        inputs: Value,
        engines: &Engines<'_>,
        model: &Path,
        prompts: &[PromptRecord],
    ) -> Result<Answers> {
        let c = self.config;
        let request = SampleRequest::greedy(&c.generation, c.seed);
        let done = run.stage(stage, &engines.sampled(inputs), |dir| {
            let samples =
                engines
                    .sampler
                    .sample(model, prompts, &request, &dir.join("samples.jsonl"))?;
            quality(c.task, &to_sft(&trimmed(samples)))
        })?;
        Ok(Answers {
            samples: read_samples(&run.stage_dir(stage).join("samples.jsonl"))?,
            quality: done.value,
            fingerprint: done.fingerprint,
        })
    }
}

/// How the curated sets are measured: against the `gold` field the splits stage wrote.
fn gold(task: TaskKind) -> Gold {
    Gold {
        task,
        field: "gold".into(),
        format: GoldFormat::Answer,
    }
}

fn quality(task: TaskKind, examples: &[SftExample]) -> Result<SetQuality> {
    Ok(SetQuality::from(&sft_quality(
        examples,
        &gold(task),
        StepCheck::for_task(task),
    )?))
}

/// Samples as SFT examples (prompt and response), each keeping its id and fields.
fn to_sft(samples: &[Sample]) -> Vec<SftExample> {
    samples
        .iter()
        .map(|s| {
            let mut extra = s.extra.clone();
            extra.insert("id".into(), s.id.clone().into());
            SftExample {
                prompt: s.prompt.clone(),
                completion: s.response.clone(),
                extra,
            }
        })
        .collect()
}
