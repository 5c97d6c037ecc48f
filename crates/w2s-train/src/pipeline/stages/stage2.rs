//! Stage II: M_plus samples n answers per question of D_gold,2 (`stage2_samples`), pairs are
//! mined from its confident majorities against the weak labels (`stage2_pairs`), and M_plus is
//! trained on them once per configured preference loss (`stage2_dpo`, `stage2_orpo`, ...).

use std::collections::HashMap;

use burn::tensor::backend::AutodiffBackend;
use serde_json::json;
use w2s_curation::quality::pair_quality;
use w2s_curation::quality::StepCheck;
use w2s_curation::record::{PreferencePair, Sample};
use w2s_curation::stage2::mine_pairs;
use w2s_data::jsonl::{read_jsonl, write_jsonl, BadLines};
use w2s_eval::answer::{equivalent, extract_normalized};
use w2s_eval::metrics::{majority_correct, pass_at_k, Tally};
use w2s_eval::TaskKind;
use w2s_losses::ChunkedLogprobsBackend;

use super::{gold, Answers, Splits};
use crate::error::Result;
use crate::pipeline::flow::Flow;
use crate::pipeline::models::{read_samples, trimmed, Trained};
use crate::pipeline::report::Stage2Stats;
use crate::pipeline::run_dir::{Done, RunDir};
use crate::pipeline::sampler::SampleRequest;
use crate::pipeline::trainer::{TrainData, TrainJob, TrainKind};

/// What Stage II made.
pub(in crate::pipeline) struct Stage2 {
    /// Sampling and mining statistics.
    pub stats: Stage2Stats,
    /// One model per configured loss, named as its row.
    pub models: Vec<(String, Done<Trained>)>,
}

impl<B: AutodiffBackend + ChunkedLogprobsBackend> Flow<'_, B> {
    /// Stage II (see the module docs); without pairs, every loss's model stays M_plus.
    pub(in crate::pipeline) fn stage2(
        &self,
        run: &mut RunDir,
        splits: &Splits,
        m_plus: &Done<Trained>,
        labels: &Answers,
    ) -> Result<Stage2> {
        let (samples, sampled) = self.stage2_samples(run, splits, m_plus)?;
        let c = self.config;
        let mining = json!({"samples": sampled.fingerprint, "labels": labels.fingerprint, "mining": c.stage2.mining});
        let pairs = run.stage("stage2_pairs", &mining, |dir| {
            let mined = mine_pairs(c.task, &samples, &labels.samples, &c.stage2.mining)?;
            write_jsonl(dir.join("pairs.jsonl"), &mined.pairs)?;
            let q = pair_quality(&mined.pairs, &gold(c.task), StepCheck::for_task(c.task))?;
            let share = |k: usize| (q.pairs > 0).then(|| k as f64 / q.pairs as f64);
            let (accuracy, majority, pass) = sampled.value;
            Ok(Stage2Stats {
                samples_per_question: c.stage2.num_samples,
                sample_accuracy: accuracy,
                majority_accuracy: majority,
                pass_at_n: pass,
                pairs: mined.pairs.len(),
                chosen_correct: share(q.chosen_correct),
                rejected_correct: share(q.rejected_correct),
                mining: mined.stats,
            })
        })?;
        let pair_set: Vec<PreferencePair> = read_jsonl(
            run.stage_dir("stage2_pairs").join("pairs.jsonl"),
            BadLines::Fail,
        )?
        .records;
        if pair_set.is_empty() && !self.quiet {
            eprintln!("  warning: Stage II mined no pair; its models stay M_plus");
        }
        let mut models = Vec::new();
        for l in &c.stage2.losses {
            if pair_set.is_empty() {
                models.push((l.name.clone(), m_plus.clone()));
                continue;
            }
            let inputs = json!({"m_plus": m_plus.fingerprint, "pairs": pairs.fingerprint, "loss": l.loss, "train": c.stage2.train});
            let trained = run.stage(
                &l.name,
                &self.strong.trained(inputs, TrainKind::Preference),
                |dir| {
                    self.strong.trainer.train(&TrainJob {
                        base: &m_plus.value.model,
                        data: TrainData::Preference {
                            pairs: &pair_set,
                            loss: &l.loss,
                        },
                        config: &c.stage2.train,
                        dir,
                    })
                },
            )?;
            models.push((l.name.clone(), trained));
        }
        Ok(Stage2 {
            stats: pairs.value,
            models,
        })
    }

    /// `stage2_samples`: n samples of M_plus per question, and their mean accuracy, maj@n and
    /// pass@n.
    fn stage2_samples(
        &self,
        run: &mut RunDir,
        splits: &Splits,
        m_plus: &Done<Trained>,
    ) -> Result<(Vec<Sample>, Done<SampleStats>)> {
        let c = self.config;
        let n = c.stage2.num_samples;
        let inputs = json!({"m_plus": m_plus.fingerprint, "n": n, "temperature": c.stage2.temperature, "seed": c.seed, "generation": c.generation});
        let request = SampleRequest::new(&c.generation, n, c.stage2.temperature, c.seed);
        let sampled = run.stage("stage2_samples", &self.strong.sampled(inputs), |dir| {
            let out = dir.join("samples.jsonl");
            let samples =
                self.strong
                    .sampler
                    .sample(&m_plus.value.model, &splits.prompts, &request, &out)?;
            sample_stats(c.task, &trimmed(samples), &splits.data.gold2)
        })?;
        let samples = read_samples(&run.stage_dir("stage2_samples").join("samples.jsonl"))?;
        Ok((samples, sampled))
    }
}

/// Mean sample accuracy, maj@n and pass@n (`stage2_samples`' summary in `stage.json`).
type SampleStats = (f64, f64, f64);

/// The [`SampleStats`] of `samples` on `problems`, by w2s-eval's metrics; a question without
/// samples counts as failed.
fn sample_stats(
    task: TaskKind,
    samples: &[Sample],
    problems: &[w2s_eval::Problem],
) -> Result<SampleStats> {
    let mut by_id: HashMap<&str, Vec<String>> = HashMap::new();
    for s in samples {
        by_id
            .entry(s.id.as_str())
            .or_default()
            .push(extract_normalized(task, &s.response));
    }
    let mut graded = Tally::default();
    let (mut maj, mut pass) = (0usize, 0.0);
    for p in problems {
        let gold = w2s_eval::normalize(task, &p.answer);
        let answers = by_id
            .get(p.id.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let correct_before = graded.correct;
        for a in answers {
            graded.record(a, equivalent(task, a, &gold));
        }
        let n = answers.len();
        if n > 0 {
            pass += pass_at_k(n, graded.correct - correct_before, n)?;
        }
        maj += usize::from(majority_correct(task, answers, &gold).is_equal());
    }
    let questions = problems.len().max(1) as f64;
    Ok((graded.accuracy(), maj as f64 / questions, pass / questions))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(id: &str, answer: &str) -> w2s_eval::Problem {
        w2s_eval::Problem {
            id: id.into(),
            question: String::new(),
            answer: answer.into(),
            solution: None,
            subject: None,
            level: None,
            record: Default::default(),
        }
    }

    fn sample(id: &str, response: &str) -> Sample {
        Sample {
            id: id.into(),
            prompt: String::new(),
            response: response.into(),
            extra: Default::default(),
        }
    }

    /// q1: two of three samples right and so is the majority; q2: none right (one without an
    /// answer); q3: no samples, so it fails maj@n and pass@n.
    #[test]
    fn sample_stats_average_samples_and_questions() -> Result<()> {
        let samples = [
            sample("q1", "#### 4"),
            sample("q1", "#### 5"),
            sample("q1", "#### 4"),
            sample("q2", "no answer"),
            sample("q2", "#### 7"),
        ];
        let problems = [problem("q1", "4"), problem("q2", "6"), problem("q3", "1")];
        let stats = sample_stats(TaskKind::Gsm8k, &samples, &problems)?;
        assert_eq!(stats, (2.0 / 5.0, 1.0 / 3.0, 1.0 / 3.0));
        Ok(())
    }
}
