//! The baselines: the strong base fine-tuned on every weak answer (naive weak-to-strong) and on
//! the gold answers of D_gold,2 (the ceiling).

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use serde_json::json;
use w2s_curation::record::SftExample;
use w2s_losses::ChunkedLogprobsBackend;

use super::{to_sft, Answers, Splits};
use crate::error::Result;
use crate::pipeline::data::gold_examples;
use crate::pipeline::flow::Flow;
use crate::pipeline::models::Trained;
use crate::pipeline::run_dir::{Done, RunDir};
use crate::pipeline::trainer::{TrainData, TrainJob, TrainKind};

impl<B: AutodiffBackend + ChunkedLogprobsBackend> Flow<'_, B> {
    /// The `naive` stage: SFT on the weak labels. An empty response cannot be a target, so it is
    /// left out; the paper's naive set is every output.
    pub(in crate::pipeline) fn naive(
        &self,
        run: &mut RunDir,
        base: &Done<PathBuf>,
        labels: &Answers,
    ) -> Result<Done<Trained>> {
        let c = self.config;
        let inputs =
            json!({"base": base.fingerprint, "labels": labels.fingerprint, "train": c.strong_sft});
        run.stage(
            "naive",
            &self.strong.trained(inputs, TrainKind::Sft),
            |dir| {
                let answered: Vec<SftExample> = to_sft(&labels.samples)
                    .into_iter()
                    .filter(|e| !e.completion.is_empty())
                    .collect();
                self.strong.trainer.train(&TrainJob {
                    base: &base.value,
                    data: TrainData::Sft(&answered),
                    config: &c.strong_sft,
                    dir,
                })
            },
        )
    }

    /// The `ceiling` stage: SFT on D_gold,2's gold solutions.
    pub(in crate::pipeline) fn ceiling(
        &self,
        run: &mut RunDir,
        splits: &Splits,
        base: &Done<PathBuf>,
    ) -> Result<Done<Trained>> {
        let c = self.config;
        let inputs =
            json!({"base": base.fingerprint, "splits": splits.fingerprint, "train": c.strong_sft});
        run.stage(
            "ceiling",
            &self.strong.trained(inputs, TrainKind::Sft),
            |dir| {
                let gold = gold_examples(c.task, &splits.data.gold2)?;
                self.strong.trainer.train(&TrainJob {
                    base: &base.value,
                    data: TrainData::Sft(&gold),
                    config: &c.strong_sft,
                    dir,
                })
            },
        )
    }
}
