//! The splits: D_gold,1, D_gold,2 and test (and, for the arithmetic task, its tokenizer and
//! pretraining corpora), and the zero-shot prompts of D_gold,2 that every later pass answers.

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use serde_json::json;
use w2s_eval::prompt::zero_shot;

use crate::error::Result;
use crate::pipeline::data::{question_fields, write_splits, SplitData};
use crate::pipeline::flow::Flow;
use crate::pipeline::run_dir::RunDir;
use crate::sampling::PromptRecord;

/// What the splits stage wrote.
pub(in crate::pipeline) struct Splits {
    /// The stage's fingerprint.
    pub fingerprint: String,
    /// The three splits (and where the corpora are).
    pub data: SplitData,
    /// The arithmetic task's `tokenizer.json` (absent for other tasks).
    pub tokenizer: PathBuf,
    /// D_gold,2's questions as zero-shot prompts, with their hidden gold answers.
    pub prompts: Vec<PromptRecord>,
}

impl<B: AutodiffBackend> Flow<'_, B> {
    /// The `splits` stage.
    pub(in crate::pipeline) fn splits(&self, run: &mut RunDir) -> Result<Splits> {
        let c = self.config;
        let pretrain = c.pretrain.as_ref().map(|p| {
            json!({"mix": p.mix, "documents": p.documents, "weak_documents": p.weak_documents, "per_document": p.problems_per_document})
        });
        let done = run.stage(
            "splits",
            &json!({"task": c.task, "seed": c.seed, "data": c.data, "pretrain": pretrain}),
            |dir| write_splits(c, dir),
        )?;
        let dir = run.stage_dir("splits");
        let data = SplitData::read(c.task, &dir)?;
        let prompts = data
            .gold2
            .iter()
            .map(|p| PromptRecord {
                id: p.id.clone(),
                prompt: zero_shot(&p.question),
                extra: question_fields(p),
            })
            .collect();
        Ok(Splits {
            fingerprint: done.fingerprint,
            data,
            tokenizer: dir.join("tokenizer.json"),
            prompts,
        })
    }
}
