//! The bases: the strong model M and the weak model's base, each a given directory (used in
//! place), a model built into w2s (written out), or a fresh Llama, pretrained on the related
//! corpus when the config has one.

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use serde_json::json;
use w2s_losses::ChunkedLogprobsBackend;

use super::Splits;
use crate::error::{Result, TrainError};
use crate::pipeline::config::ModelSpec;
use crate::pipeline::data::Corpus;
use crate::pipeline::flow::{Engines, Flow};
use crate::pipeline::models::{given_model, init_model, scratch_config};
use crate::pipeline::run_dir::{Done, RunDir};
use crate::pipeline::trainer::{TrainData, TrainJob, TrainKind};

impl<B: AutodiffBackend + ChunkedLogprobsBackend> Flow<'_, B> {
    /// The `strong_base` stage (none for a given directory).
    pub(in crate::pipeline) fn strong_base(
        &self,
        run: &mut RunDir,
        splits: &Splits,
    ) -> Result<Done<PathBuf>> {
        let seed = self.config.seed ^ 2;
        self.base(
            run,
            "strong_base",
            &self.strong,
            seed,
            Some(Corpus::Strong),
            splits,
        )
    }

    /// The `weak_base` stage (none for a given directory); a from-scratch weak model is
    /// pretrained only on a weak corpus of its own (`pretrain.weak_documents`).
    pub(in crate::pipeline) fn weak_base(
        &self,
        run: &mut RunDir,
        splits: &Splits,
    ) -> Result<Done<PathBuf>> {
        let pretrained = self
            .config
            .pretrain
            .as_ref()
            .is_some_and(|p| p.weak_documents > 0);
        let corpus = pretrained.then_some(Corpus::Weak);
        self.base(
            run,
            "weak_base",
            &self.weak,
            self.config.seed ^ 1,
            corpus,
            splits,
        )
    }

    /// A base (see the module docs): a built-in model goes to `stage/model`, a fresh one to
    /// `stage/init`, pretrained by the role's trainer into `stage/train`.
    fn base(
        &self,
        run: &mut RunDir,
        stage: &str,
        engines: &Engines<'_>,
        seed: u64,
        corpus: Option<Corpus>,
        splits: &Splits,
    ) -> Result<Done<PathBuf>> {
        let spec = &engines.role.model;
        let Some(config) = scratch_config(spec, &splits.tokenizer)? else {
            return match spec {
                ModelSpec::Dir {
                    path,
                    chat_template,
                } => given_model(path, *chat_template),
                ModelSpec::Builtin { name } => {
                    // The splits wrote the tokenizer that goes beside the weights.
                    let inputs =
                        json!({"builtin": name.fingerprint(), "splits": splits.fingerprint});
                    run.stage(stage, &inputs, |dir| {
                        let model = dir.join("model");
                        name.write(&splits.tokenizer, &model)?;
                        Ok(model)
                    })
                }
                ModelSpec::Scratch { .. } => Err(TrainError::config("model", "no model")),
            };
        };
        let pretrain = self
            .config
            .pretrain
            .as_ref()
            .and_then(|p| corpus.map(|which| (&p.train, which)));
        let train_config = pretrain.map(|(train, _)| train);
        let inputs = json!({"splits": splits.fingerprint, "model": spec, "pretrain": train_config, "seed": seed});
        let inputs = match pretrain {
            Some(_) => engines.trained(inputs, TrainKind::Sft),
            None => inputs,
        };
        run.stage(stage, &inputs, |dir| {
            let init = dir.join("init");
            init_model::<B::InnerBackend>(config, &splits.tokenizer, seed, &init, self.device)?;
            let Some((train, which)) = pretrain else {
                return Ok(init);
            };
            let documents = splits.data.pretraining(which)?;
            let job = TrainJob {
                base: &init,
                data: TrainData::Sft(&documents),
                config: train,
                dir: &dir.join("train"),
            };
            Ok(engines.trainer.train(&job)?.model)
        })
    }
}
