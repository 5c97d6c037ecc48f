//! The stages in order (docs/method.md): splits, the strong and weak bases (built in, given, or from
//! scratch and pretrained), weak SFT, weak labels on D_gold,2, naive and ceiling SFT, Stage I iterations, Stage II
//! sampling, mining and one preference run per configured loss, then greedy test evaluation of
//! every model and the report.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use serde_json::json;
use w2s_curation::demos::{DemoFilter, DemoPicker};
use w2s_curation::quality::{pair_quality, sft_quality, Gold, GoldFormat, StepCheck};
use w2s_curation::record::{Sample, SftExample};
use w2s_curation::stage1::select_consistent;
use w2s_curation::stage2::mine_pairs;
use w2s_data::jsonl::{read_jsonl, write_jsonl, BadLines};
use w2s_eval::answer::{equivalent, extract_normalized};
use w2s_eval::metrics::{majority_correct, pass_at_k, Tally};
use w2s_eval::prompt::{few_shot, zero_shot, Demonstration};
use w2s_eval::TaskKind;
use w2s_losses::ChunkedLogprobsBackend;

use super::config::{ModelSpec, PipelineConfig};
use super::data::{gold_examples, question_fields, write_splits, Corpus, SplitData};
use super::models::{
    answer, fine_tune, given_model, init_model, preference_tune, read_samples, scratch_config,
    test_accuracy, Trained,
};
use super::report::{PipelineReport, SetQuality, Stage1Iteration, Stage2Stats};
use super::run_dir::{write_json, Done, RunDir};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::prompt_format::PromptFormat;
use crate::sampling::PromptRecord;

/// Where and how a pipeline run writes.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// The run directory.
    pub out: PathBuf,
    /// Recompute every stage.
    pub fresh: bool,
    /// No progress output.
    pub quiet: bool,
    /// Name of the backend, for the report.
    pub backend: String,
}

/// Runs the whole pipeline (see the module docs) and writes the report into the run directory.
///
/// # Errors
/// An invalid config, and the first error of any stage (finished stages stay done).
pub fn run_pipeline<B: AutodiffBackend + ChunkedLogprobsBackend>(
    config: &PipelineConfig,
    options: &PipelineOptions,
    device: &B::Device,
) -> Result<PipelineReport> {
    config.validate()?;
    let mut run = RunDir::open(&options.out, options.fresh, options.quiet)?;
    write_json(&run.root().join("config.json"), config)?;
    let flow = Flow::<B> {
        config,
        quiet: options.quiet,
        device,
    };
    flow.run(&mut run, &options.backend)
}

struct Flow<'a, B: AutodiffBackend> {
    config: &'a PipelineConfig,
    quiet: bool,
    device: &'a B::Device,
}

impl<B: AutodiffBackend + ChunkedLogprobsBackend> Flow<'_, B> {
    fn run(&self, run: &mut RunDir, backend: &str) -> Result<PipelineReport> {
        let c = self.config;
        let (task, seed) = (c.task, c.seed);
        // How each model reads the prompts; every model trained from a base reads them as it does.
        let (weak_format, strong_format) = (c.weak.prompt_format(), c.strong.prompt_format());
        let pretrain_data = c.pretrain.as_ref().map(|p| {
            json!({"mix": p.mix, "documents": p.documents, "weak_documents": p.weak_documents, "per_document": p.problems_per_document})
        });
        let splits = run.stage(
            "splits",
            &json!({"task": task, "seed": seed, "data": c.data, "pretrain": pretrain_data}),
            |dir| write_splits(c, dir),
        )?;
        let data = SplitData::read(task, &run.stage_dir("splits"))?;
        let tokenizer = run.stage_dir("splits").join("tokenizer.json");

        let corpus = Sources {
            splits: &splits.fingerprint,
            data: &data,
            tokenizer: &tokenizer,
        };
        let base = self.base(
            run,
            "strong_base",
            &c.strong,
            seed ^ 2,
            Some(Corpus::Strong),
            &corpus,
        )?;
        let weak_pretrain = c.pretrain.as_ref().is_some_and(|p| p.weak_documents > 0);
        let weak_corpus = weak_pretrain.then_some(Corpus::Weak);
        let weak_base = self.base(run, "weak_base", &c.weak, seed ^ 1, weak_corpus, &corpus)?;
        let weak = run.stage(
            "weak_sft",
            &json!({"splits": splits.fingerprint, "base": weak_base.fingerprint, "train": c.weak_sft}),
            |dir| fine_tune::<B>(&weak_base.value, &gold_examples(task, &data.gold1)?, weak_format, &c.weak_sft, &dir.join("train"), self.quiet, self.device),
        )?;

        let prompts: Vec<PromptRecord> = data
            .gold2
            .iter()
            .map(|p| PromptRecord {
                id: p.id.clone(),
                prompt: zero_shot(&p.question),
                extra: question_fields(p),
            })
            .collect();
        let labels = run.stage(
            "weak_labels",
            &json!({"model": weak.fingerprint, "generation": c.generation}),
            |dir| {
                self.greedy(
                    &weak.value.model,
                    weak_format,
                    &prompts,
                    &dir.join("samples.jsonl"),
                )
            },
        )?;
        let weak_samples = read_samples(&run.stage_dir("weak_labels").join("samples.jsonl"))?;

        let naive = run.stage(
            "naive",
            &json!({"base": base.fingerprint, "labels": labels.fingerprint, "train": c.strong_sft}),
            |dir| {
                // An empty response cannot be a target; the paper's naive set is every output.
                let answered: Vec<SftExample> = to_sft(&weak_samples)
                    .into_iter()
                    .filter(|e| !e.completion.is_empty())
                    .collect();
                fine_tune::<B>(
                    &base.value,
                    &answered,
                    strong_format,
                    &c.strong_sft,
                    dir,
                    self.quiet,
                    self.device,
                )
            },
        )?;
        let ceiling = run.stage(
            "ceiling",
            &json!({"base": base.fingerprint, "splits": splits.fingerprint, "train": c.strong_sft}),
            |dir| {
                fine_tune::<B>(
                    &base.value,
                    &gold_examples(task, &data.gold2)?,
                    strong_format,
                    &c.strong_sft,
                    dir,
                    self.quiet,
                    self.device,
                )
            },
        )?;

        let questions: HashMap<&str, &str> = data
            .gold2
            .iter()
            .map(|p| (p.id.as_str(), p.question.as_str()))
            .collect();
        let mut models: Vec<(String, Done<Trained>)> =
            vec![("weak".into(), weak.clone()), ("naive".into(), naive)];
        let mut stage1 = Vec::new();
        // Iteration t's two sources and the fingerprint they come from.
        let mut sources = (
            weak_samples.clone(),
            labels.value.clone(),
            labels.fingerprint.clone(),
        );
        let icl = run.stage(
            "stage1_iter1_icl",
            &json!({"base": base.fingerprint, "labels": labels.fingerprint, "k": c.stage1.k_shot, "seed": seed, "generation": c.generation}),
            |dir| {
                let picker = DemoPicker::new(&weak_samples, c.stage1.k_shot, seed, DemoFilter::AnyResponse);
                let icl_prompts: Vec<PromptRecord> = weak_samples
                    .iter()
                    .zip(&prompts)
                    .map(|(sample, p)| {
                        let demos: Vec<Demonstration> = picker
                            .pick(sample)
                            .into_iter()
                            .map(|d| Demonstration {
                                question: questions.get(d.id.as_str()).copied().unwrap_or_default().to_string(),
                                answer: d.response.clone(),
                            })
                            .collect();
                        let question = questions.get(sample.id.as_str()).copied().unwrap_or_default();
                        PromptRecord { prompt: few_shot(&demos, question), ..p.clone() }
                    })
                    .collect();
                self.greedy(&base.value, strong_format, &icl_prompts, &dir.join("samples.jsonl"))
            },
        )?;
        let mut second = (
            read_samples(&run.stage_dir("stage1_iter1_icl").join("samples.jsonl"))?,
            icl.value,
            icl.fingerprint,
        );
        let stage1_sft = TrainConfig {
            min_steps: c.stage1.min_steps.or(c.strong_sft.min_steps),
            ..c.strong_sft.clone()
        };
        for t in 1..=c.stage1.iterations {
            let name = format!("stage1_iter{t}");
            let sets_stage = format!("{name}_sets");
            let sets = run.stage(
                &sets_stage,
                &json!({"first": sources.2, "second": second.2, "match": c.stage1.match_mode}),
                |dir| {
                    let sets = select_consistent(task, &sources.0, &second.0, c.stage1.match_mode)?;
                    write_jsonl(dir.join("weak.jsonl"), &sets.weak)?;
                    write_jsonl(dir.join("icl.jsonl"), &sets.icl)?;
                    write_jsonl(dir.join("hybrid.jsonl"), &sets.hybrid)?;
                    Ok(Stage1Iteration {
                        iteration: t,
                        first_source: sources.1.clone(),
                        second_source: second.1.clone(),
                        kept: sets.stats.kept,
                        kept_share: sets.stats.kept as f64 / sets.stats.questions.max(1) as f64,
                        weak_set: quality(task, &sets.weak)?,
                        icl_set: quality(task, &sets.icl)?,
                        hybrid_set: quality(task, &sets.hybrid)?,
                    })
                },
            )?;
            if sets.value.kept == 0 && !self.quiet {
                eprintln!(
                    "  warning: Stage I iteration {t} kept no question; its models stay the base"
                );
            }
            let sets_dir = run.stage_dir(&sets_stage);
            let set = |kind: &str| -> Result<Vec<SftExample>> {
                Ok(read_jsonl(sets_dir.join(format!("{kind}.jsonl")), BadLines::Fail)?.records)
            };
            let train = |run: &mut RunDir, kind: &str| -> Result<Done<Trained>> {
                let examples = set(kind)?;
                if examples.is_empty() {
                    return Ok(untrained(&base));
                }
                run.stage(
                    &format!("{name}_{kind}_sft"),
                    &json!({"base": base.fingerprint, "set": sets.fingerprint, "kind": kind, "train": stage1_sft}),
                    |dir| fine_tune::<B>(&base.value, &examples, strong_format, &stage1_sft, dir, self.quiet, self.device),
                )
            };
            let hybrid = train(run, "hybrid")?;
            stage1.push(sets.value);
            models.push((name.clone(), hybrid));
            if t < c.stage1.iterations {
                let weak_ft = train(run, "weak")?;
                let icl_ft = train(run, "icl")?;
                let next = format!("stage1_iter{}", t + 1);
                let pass = |run: &mut RunDir,
                            which: &str,
                            model: &Done<Trained>|
                 -> Result<(Vec<Sample>, SetQuality, String)> {
                    let stage = format!("{next}_{which}");
                    let done = run.stage(
                        &stage,
                        &json!({"model": model.fingerprint, "generation": c.generation}),
                        |dir| {
                            self.greedy(
                                &model.value.model,
                                strong_format,
                                &prompts,
                                &dir.join("samples.jsonl"),
                            )
                        },
                    )?;
                    Ok((
                        read_samples(&run.stage_dir(&stage).join("samples.jsonl"))?,
                        done.value,
                        done.fingerprint,
                    ))
                };
                sources = pass(run, "weak_source", &weak_ft)?;
                second = pass(run, "icl_source", &icl_ft)?;
            }
        }
        let m_plus = models
            .last()
            .map(|(_, m)| m.clone())
            .ok_or_else(|| TrainError::config("stage1", "no model"))?;

        let n = c.stage2.num_samples;
        let sampled = run.stage(
            "stage2_samples",
            &json!({"m_plus": m_plus.fingerprint, "n": n, "temperature": c.stage2.temperature, "seed": seed, "generation": c.generation}),
            |dir| {
                let samples = answer::<B>(&m_plus.value.model, strong_format, &prompts, &c.generation, c.stage2.temperature, n, seed, &dir.join("samples.jsonl"), self.quiet, self.device)?;
                sample_stats(task, &samples, &data.gold2)
            },
        )?;
        let samples = read_samples(&run.stage_dir("stage2_samples").join("samples.jsonl"))?;
        let mining = json!({"samples": sampled.fingerprint, "labels": labels.fingerprint, "mining": c.stage2.mining});
        let pairs = run.stage("stage2_pairs", &mining, |dir| {
            let mined = mine_pairs(task, &samples, &weak_samples, &c.stage2.mining)?;
            write_jsonl(dir.join("pairs.jsonl"), &mined.pairs)?;
            let q = pair_quality(&mined.pairs, &gold(task), StepCheck::for_task(task))?;
            let share = |k: usize| (q.pairs > 0).then(|| k as f64 / q.pairs as f64);
            let (accuracy, majority, pass) = sampled.value;
            Ok(Stage2Stats {
                samples_per_question: n,
                sample_accuracy: accuracy,
                majority_accuracy: majority,
                pass_at_n: pass,
                pairs: mined.pairs.len(),
                chosen_correct: share(q.chosen_correct),
                rejected_correct: share(q.rejected_correct),
                mining: mined.stats,
            })
        })?;
        let pair_set: Vec<w2s_curation::record::PreferencePair> = read_jsonl(
            run.stage_dir("stage2_pairs").join("pairs.jsonl"),
            BadLines::Fail,
        )?
        .records;
        let mut stage2_models = Vec::new();
        if pair_set.is_empty() && !self.quiet {
            eprintln!("  warning: Stage II mined no pair; its models stay M_plus");
        }
        for l in &c.stage2.losses {
            if pair_set.is_empty() {
                stage2_models.push((l.name.clone(), m_plus.clone()));
                continue;
            }
            let trained = run.stage(
                &l.name,
                &json!({"m_plus": m_plus.fingerprint, "pairs": pairs.fingerprint, "loss": l.loss, "train": c.stage2.train}),
                |dir| preference_tune::<B>(&m_plus.value.model, &pair_set, strong_format, &l.loss, &c.stage2.train, dir, self.quiet, self.device),
            )?;
            stage2_models.push((l.name.clone(), trained));
        }

        let mut evaluated: Vec<(String, f64)> = Vec::new();
        let last_stage1 = format!("stage1_iter{}", c.stage1.iterations);
        for (name, model) in models
            .iter()
            .chain(&stage2_models)
            .chain(std::iter::once(&("ceiling".to_string(), ceiling)))
        {
            // Every model but the weak one is the strong base's.
            let format = if name == "weak" {
                weak_format
            } else {
                strong_format
            };
            let acc = run.stage(
                &format!("eval_{name}"),
                &json!({"model": model.fingerprint, "splits": splits.fingerprint, "generation": c.generation}),
                |dir| test_accuracy::<B>(&model.value.model, format, task, &data.test, &c.generation, dir, self.quiet, self.device),
            )?;
            evaluated.push((name.clone(), acc.value));
            if *name == last_stage1 {
                evaluated.push(("m_plus".into(), acc.value));
            }
        }
        let report = PipelineReport {
            task,
            seed,
            backend: backend.to_string(),
            rows: PipelineReport::rows(&evaluated),
            weak_labels: labels.value,
            stage1,
            stage2: pairs.value,
            seconds: PipelineReport::seconds(run.times()),
            reused_stages: run
                .times()
                .iter()
                .filter(|t| t.reused)
                .map(|t| t.stage.clone())
                .collect(),
        };
        report.write(run.root())?;
        Ok(report)
    }

    /// A model to start from: the given directory (used in place, [`given_model`]), a built-in
    /// model (written out as `stage/model`), or a fresh Llama (`stage/init`), pretrained on the
    /// related corpus (`stage/train`) on `pretrain`'s corpus when the config has one.
    fn base(
        &self,
        run: &mut RunDir,
        stage: &str,
        spec: &ModelSpec,
        seed: u64,
        pretrain: Option<Corpus>,
        corpus: &Sources,
    ) -> Result<Done<PathBuf>> {
        let c = self.config;
        let Some(config) = scratch_config(spec, corpus.tokenizer)? else {
            return match spec {
                ModelSpec::Dir {
                    path,
                    chat_template,
                } => given_model(path, *chat_template),
                ModelSpec::Builtin { name } => {
                    // The splits wrote the tokenizer that goes beside the weights.
                    let inputs = json!({"builtin": name.fingerprint(), "splits": corpus.splits});
                    run.stage(stage, &inputs, |dir| {
                        let model = dir.join("model");
                        name.write(corpus.tokenizer, &model)?;
                        Ok(model)
                    })
                }
                ModelSpec::Scratch { .. } => Err(TrainError::config("model", "no model")),
            };
        };
        let pretrain = c
            .pretrain
            .as_ref()
            .and_then(|p| pretrain.map(|which| (&p.train, which)));
        let train_config = pretrain.map(|(train, _)| train);
        run.stage(
            stage,
            &json!({"splits": corpus.splits, "model": spec, "pretrain": train_config, "seed": seed}),
            |dir| {
                let init = dir.join("init");
                init_model::<B::InnerBackend>(config, corpus.tokenizer, seed, &init, self.device)?;
                match pretrain {
                    Some((train, which)) => Ok(fine_tune::<B>(
                        &init,
                        &corpus.data.pretraining(which)?,
                        spec.prompt_format(),
                        train,
                        &dir.join("train"),
                        self.quiet,
                        self.device,
                    )?
                    .model),
                    None => Ok(init),
                }
            },
        )
    }

    /// Greedy answers of a model, which reads the prompts in `format`, into `out`, and their
    /// quality against gold.
    fn greedy(
        &self,
        model: &Path,
        format: PromptFormat,
        prompts: &[PromptRecord],
        out: &Path,
    ) -> Result<SetQuality> {
        let c = self.config;
        let samples = answer::<B>(
            model,
            format,
            prompts,
            &c.generation,
            0.0,
            1,
            c.seed,
            out,
            self.quiet,
            self.device,
        )?;
        quality(c.task, &to_sft(&samples))
    }
}

/// What a from-scratch base is built from.
struct Sources<'a> {
    /// Fingerprint of the splits stage (which wrote the corpus).
    splits: &'a str,
    data: &'a SplitData,
    tokenizer: &'a Path,
}

/// A model that a stage with no training data leaves as it was.
fn untrained(start: &Done<PathBuf>) -> Done<Trained> {
    Done {
        value: Trained {
            model: start.value.clone(),
            examples: 0,
            steps: 0,
            final_loss: None,
        },
        fingerprint: start.fingerprint.clone(),
    }
}

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

/// Mean sample accuracy, maj@n and pass@n of `samples` on `problems`, by w2s-eval's metrics; a
/// question without samples counts as failed.
fn sample_stats(
    task: TaskKind,
    samples: &[Sample],
    problems: &[w2s_eval::Problem],
) -> Result<(f64, f64, f64)> {
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
