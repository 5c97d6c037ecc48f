//! The weak model m: SFT of its base on D_gold,1, then its greedy answers on D_gold,2, the weak
//! labels that naive SFT, Stage I and Stage II learn from.

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use serde_json::json;
use w2s_losses::ChunkedLogprobsBackend;

use super::{Answers, Splits};
use crate::error::Result;
use crate::pipeline::data::gold_examples;
use crate::pipeline::flow::Flow;
use crate::pipeline::models::Trained;
use crate::pipeline::run_dir::{Done, RunDir};
use crate::pipeline::trainer::{TrainData, TrainJob, TrainKind};

impl<B: AutodiffBackend + ChunkedLogprobsBackend> Flow<'_, B> {
    /// The `weak_sft` stage: the weak base fine-tuned on D_gold,1's gold solutions, into
    /// `weak_sft/train`.
    pub(in crate::pipeline) fn weak_sft(
        &self,
        run: &mut RunDir,
        splits: &Splits,
        base: &Done<PathBuf>,
    ) -> Result<Done<Trained>> {
        let c = self.config;
        let inputs =
            json!({"splits": splits.fingerprint, "base": base.fingerprint, "train": c.weak_sft});
        run.stage(
            "weak_sft",
            &self.weak.trained(inputs, TrainKind::Sft),
            |dir| {
                let gold = gold_examples(c.task, &splits.data.gold1)?;
                self.weak.trainer.train(&TrainJob {
                    base: &base.value,
                    data: TrainData::Sft(&gold),
                    config: &c.weak_sft,
                    dir: &dir.join("train"),
                })
            },
        )
    }

    /// The `weak_labels` stage: m's greedy answers to D_gold,2.
    pub(in crate::pipeline) fn weak_labels(
        &self,
        run: &mut RunDir,
        splits: &Splits,
        weak: &Done<Trained>,
    ) -> Result<Answers> {
        let inputs = json!({"model": weak.fingerprint, "generation": self.config.generation});
        self.greedy_answers(
            run,
            "weak_labels",
            inputs,
            &self.weak,
            &weak.value.model,
            &splits.prompts,
        )
    }
}
