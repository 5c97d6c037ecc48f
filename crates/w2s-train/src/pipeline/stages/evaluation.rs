//! Evaluation: every model's greedy answers to the test questions (`eval_NAME/responses.jsonl`),
//! sampled by its role's engine and graded by w2s-eval (`graded.jsonl`, `report.json`).

use burn::tensor::backend::AutodiffBackend;
use serde_json::json;
use w2s_eval::prompt::zero_shot;
use w2s_losses::ChunkedLogprobsBackend;

use super::Splits;
use crate::error::Result;
use crate::evaluate::grade_responses;
use crate::pipeline::data::question_fields;
use crate::pipeline::flow::Flow;
use crate::pipeline::models::Trained;
use crate::pipeline::run_dir::{Done, RunDir};
use crate::pipeline::sampler::SampleRequest;
use crate::sampling::PromptRecord;

impl<B: AutodiffBackend + ChunkedLogprobsBackend> Flow<'_, B> {
    /// The `eval_NAME` stages of `models`, in order: each model's test accuracy, with the row
    /// `m_plus` (the model of row `m_plus_row`) after it.
    pub(in crate::pipeline) fn evaluate(
        &self,
        run: &mut RunDir,
        splits: &Splits,
        models: &[(String, Done<Trained>)],
        m_plus_row: &str,
    ) -> Result<Vec<(String, f64)>> {
        let c = self.config;
        let prompts: Vec<PromptRecord> = splits
            .data
            .test
            .iter()
            .map(|p| {
                let mut extra = question_fields(p);
                if let Some(level) = p.level {
                    extra.insert("level".into(), level.into());
                }
                if let Some(subject) = &p.subject {
                    extra.insert("subject".into(), subject.clone().into());
                }
                PromptRecord {
                    id: p.id.clone(),
                    prompt: zero_shot(&p.question),
                    extra,
                }
            })
            .collect();
        let request = SampleRequest::greedy(&c.generation, 0);
        let mut accuracies = Vec::new();
        for (name, model) in models {
            // Every model but the weak one is the strong base's.
            let engines = if name == "weak" {
                &self.weak
            } else {
                &self.strong
            };
            let inputs = json!({"model": model.fingerprint, "splits": splits.fingerprint, "generation": c.generation});
            let accuracy = run.stage(&format!("eval_{name}"), &engines.sampled(inputs), |dir| {
                let responses = dir.join("responses.jsonl");
                engines
                    .sampler
                    .sample(&model.value.model, &prompts, &request, &responses)?;
                Ok(grade_responses(c.task, &responses)?.report.overall.accuracy)
            })?;
            accuracies.push((name.clone(), accuracy.value));
            if name == m_plus_row {
                accuracies.push(("m_plus".into(), accuracy.value));
            }
        }
        Ok(accuracies)
    }
}
