//! Stage I: the strong base learns from the answers two sources agree on.
//!
//! Iteration 1's sources are the weak labels and the base's own k-shot answers, with the weak
//! model's solutions as demonstrations (`stage1_iter1_icl`). Each iteration keeps the questions
//! whose final answers agree (`stage1_iterT_sets`) and fine-tunes the base on the hybrid set
//! (`stage1_iterT_hybrid_sft`); every iteration but the last also fine-tunes it on the weak and
//! the ICL sets, whose greedy answers are the next iteration's sources
//! (`stage1_iterT_{weak,icl}_source`). The last hybrid model is M_plus.

use std::collections::HashMap;
use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use serde_json::json;
use w2s_curation::demos::{DemoFilter, DemoPicker};
use w2s_curation::record::SftExample;
use w2s_curation::stage1::select_consistent;
use w2s_data::jsonl::{read_jsonl, write_jsonl, BadLines};
use w2s_eval::prompt::{few_shot, Demonstration};
use w2s_losses::ChunkedLogprobsBackend;

use super::{quality, Answers, Splits};
use crate::error::{Result, TrainError};
use crate::pipeline::flow::Flow;
use crate::pipeline::models::Trained;
use crate::pipeline::report::Stage1Iteration;
use crate::pipeline::run_dir::{Done, RunDir};
use crate::pipeline::trainer::{TrainData, TrainJob, TrainKind};
use crate::sampling::PromptRecord;

/// What Stage I made.
pub(in crate::pipeline) struct Stage1 {
    /// What each iteration kept and how good its sets are.
    pub iterations: Vec<Stage1Iteration>,
    /// Each iteration's hybrid-set model.
    hybrids: Vec<Done<Trained>>,
}

impl Stage1 {
    /// The report rows' models: `stage1_iterT`, each iteration's hybrid model.
    pub fn models(&self) -> Vec<(String, Done<Trained>)> {
        (1..)
            .zip(&self.hybrids)
            .map(|(t, model)| (format!("stage1_iter{t}"), model.clone()))
            .collect()
    }

    /// The name of M_plus's row.
    pub fn last_name(&self) -> String {
        format!("stage1_iter{}", self.hybrids.len())
    }

    /// M_plus, the last hybrid model.
    ///
    /// # Errors
    /// No iteration ran.
    pub fn m_plus(&self) -> Result<&Done<Trained>> {
        self.hybrids
            .last()
            .ok_or_else(|| TrainError::config("stage1", "no model"))
    }
}

impl<B: AutodiffBackend + ChunkedLogprobsBackend> Flow<'_, B> {
    /// Every Stage I iteration (see the module docs).
    pub(in crate::pipeline) fn stage1(
        &self,
        run: &mut RunDir,
        splits: &Splits,
        base: &Done<PathBuf>,
        labels: &Answers,
    ) -> Result<Stage1> {
        let iterations = self.config.stage1.iterations;
        let mut first = labels.clone();
        let mut second = self.icl_answers(run, splits, base, labels)?;
        let mut stage1 = Stage1 {
            iterations: Vec::new(),
            hybrids: Vec::new(),
        };
        for t in 1..=iterations {
            let sets = self.consistent_sets(run, t, &first, &second)?;
            let hybrid = self.stage1_sft(run, t, &sets, "hybrid", base)?;
            stage1.iterations.push(sets.value.clone());
            stage1.hybrids.push(hybrid);
            if t < iterations {
                let weak_set_model = self.stage1_sft(run, t, &sets, "weak", base)?;
                let icl_set_model = self.stage1_sft(run, t, &sets, "icl", base)?;
                first = self.source(run, t + 1, "weak_source", &weak_set_model, splits)?;
                second = self.source(run, t + 1, "icl_source", &icl_set_model, splits)?;
            }
        }
        Ok(stage1)
    }

    /// `stage1_iter1_icl`: the base's greedy answers to k-shot prompts whose demonstrations are
    /// the weak model's solutions to other questions, chosen by one seeded shuffle.
    fn icl_answers(
        &self,
        run: &mut RunDir,
        splits: &Splits,
        base: &Done<PathBuf>,
        labels: &Answers,
    ) -> Result<Answers> {
        let c = self.config;
        let questions: HashMap<&str, &str> = splits
            .data
            .gold2
            .iter()
            .map(|p| (p.id.as_str(), p.question.as_str()))
            .collect();
        let question = |id: &str| questions.get(id).copied().unwrap_or_default();
        let picker = DemoPicker::new(
            &labels.samples,
            c.stage1.k_shot,
            c.seed,
            DemoFilter::AnyResponse,
        );
        let prompts: Vec<PromptRecord> = labels
            .samples
            .iter()
            .zip(&splits.prompts)
            .map(|(sample, p)| {
                let demos: Vec<Demonstration> = picker
                    .pick(sample)
                    .into_iter()
                    .map(|d| Demonstration {
                        question: question(&d.id).to_string(),
                        answer: d.response.clone(),
                    })
                    .collect();
                PromptRecord {
                    prompt: few_shot(&demos, question(&sample.id)),
                    ..p.clone()
                }
            })
            .collect();
        let inputs = json!({"base": base.fingerprint, "labels": labels.fingerprint, "k": c.stage1.k_shot, "seed": c.seed, "generation": c.generation});
        self.greedy_answers(
            run,
            "stage1_iter1_icl",
            inputs,
            &self.strong,
            &base.value,
            &prompts,
        )
    }

    /// `stage1_iterT_sets`: the questions whose two answers agree, as the weak, ICL and hybrid
    /// SFT sets (`weak.jsonl`, `icl.jsonl`, `hybrid.jsonl`), measured against gold.
    fn consistent_sets(
        &self,
        run: &mut RunDir,
        t: usize,
        first: &Answers,
        second: &Answers,
    ) -> Result<Done<Stage1Iteration>> {
        let c = self.config;
        let inputs = json!({"first": first.fingerprint, "second": second.fingerprint, "match": c.stage1.match_mode});
        let sets = run.stage(&format!("stage1_iter{t}_sets"), &inputs, |dir| {
            let sets =
                select_consistent(c.task, &first.samples, &second.samples, c.stage1.match_mode)?;
            write_jsonl(dir.join("weak.jsonl"), &sets.weak)?;
            write_jsonl(dir.join("icl.jsonl"), &sets.icl)?;
            write_jsonl(dir.join("hybrid.jsonl"), &sets.hybrid)?;
            Ok(Stage1Iteration {
                iteration: t,
                first_source: first.quality.clone(),
                second_source: second.quality.clone(),
                kept: sets.stats.kept,
                kept_share: sets.stats.kept as f64 / sets.stats.questions.max(1) as f64,
                weak_set: quality(c.task, &sets.weak)?,
                icl_set: quality(c.task, &sets.icl)?,
                hybrid_set: quality(c.task, &sets.hybrid)?,
            })
        })?;
        if sets.value.kept == 0 && !self.quiet {
            eprintln!(
                "  warning: Stage I iteration {t} kept no question; its models stay the base"
            );
        }
        Ok(sets)
    }

    /// `stage1_iterT_{kind}_sft`: the base fine-tuned on set `kind` of iteration `t`; an empty
    /// set leaves the base as it is, with no stage.
    fn stage1_sft(
        &self,
        run: &mut RunDir,
        t: usize,
        sets: &Done<Stage1Iteration>,
        kind: &str,
        base: &Done<PathBuf>,
    ) -> Result<Done<Trained>> {
        let path = run
            .stage_dir(&format!("stage1_iter{t}_sets"))
            .join(format!("{kind}.jsonl"));
        let examples: Vec<SftExample> = read_jsonl(path, BadLines::Fail)?.records;
        if examples.is_empty() {
            return Ok(untrained(base));
        }
        let config = self.config.stage1_sft();
        let inputs = json!({"base": base.fingerprint, "set": sets.fingerprint, "kind": kind, "train": config});
        run.stage(
            &format!("stage1_iter{t}_{kind}_sft"),
            &self.strong.trained(inputs, TrainKind::Sft),
            |dir| {
                self.strong.trainer.train(&TrainJob {
                    base: &base.value,
                    data: TrainData::Sft(&examples),
                    config: &config,
                    dir,
                })
            },
        )
    }

    /// `stage1_iterT_{which}`: the greedy answers of one of iteration t−1's set models, a
    /// source of iteration `t`.
    fn source(
        &self,
        run: &mut RunDir,
        t: usize,
        which: &str,
        model: &Done<Trained>,
        splits: &Splits,
    ) -> Result<Answers> {
        let inputs = json!({"model": model.fingerprint, "generation": self.config.generation});
        self.greedy_answers(
            run,
            &format!("stage1_iter{t}_{which}"),
            inputs,
            &self.strong,
            &model.value.model,
            &splits.prompts,
        )
    }
}

/// A model that a stage with no training data leaves as it was.
fn untrained(start: &Done<PathBuf>) -> Done<Trained> {
    Done {
        value: Trained {
            model: start.value.clone(),
            examples: 0,
            steps: Some(0),
            final_loss: None,
        },
        fingerprint: start.fingerprint.clone(),
    }
}
