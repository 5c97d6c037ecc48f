//! The study's stages: the sets (built, measured and written), the base model, its test
//! accuracy, then for every set an SFT of the base and its greedy test accuracy. A training
//! stage's fingerprint holds a digest of its examples, so a rerun retrains only the sets that
//! changed, and two runs that ask for the same set share nothing by accident.

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use serde_json::json;
use w2s_curation::quality::{sft_quality, Gold, GoldFormat, QualityReport, StepCheck};
use w2s_data::jsonl::write_jsonl;
use w2s_data::Digest;
use w2s_losses::ChunkedLogprobsBackend;

use super::config::{StudyConfig, StudyData};
use super::report::{StudyReport, StudyRow};
use super::sets::{study_sets, study_tasks, training_examples};
use crate::error::{Result, TrainError};
use crate::pipeline::models::{fine_tune, given_model, test_accuracy};
use crate::pipeline::run_dir::{write_json, Done, RunDir};
use crate::pipeline::{ModelSpec, PipelineOptions};

/// Runs the study (see the module docs) and writes its report into the run directory.
///
/// # Errors
/// An invalid config, unreadable data, and the first error of any stage (finished stages stay
/// done).
pub fn run_study<B: AutodiffBackend + ChunkedLogprobsBackend>(
    config: &StudyConfig,
    options: &PipelineOptions,
    device: &B::Device,
) -> Result<StudyReport> {
    config.validate()?;
    let task = config.task();
    let mut run = RunDir::open(&options.out, options.fresh, options.quiet)?;
    write_json(&run.root().join("config.json"), config)?;
    let tasks = study_tasks(&config.data, config.seed)?;
    let sets = study_sets(config, &tasks)?;
    let check = StepCheck::for_task(task);
    let gold = Gold {
        task,
        field: "gold".into(),
        format: GoldFormat::Answer,
    };
    let digests = sets
        .iter()
        .map(|set| {
            let text = serde_json::to_vec(&set.examples)
                .map_err(|e| TrainError::config("sets", e.to_string()))?;
            Ok(format!("{:016x}", Digest::new().bytes(&text).finish()))
        })
        .collect::<Result<Vec<String>>>()?;
    // Keyed on the examples themselves, so sets made by other code are never taken for these.
    let inputs = json!({"sets": digests, "check": check, "test": tasks.test.len()});
    let quality = run.stage("sets", &inputs, |dir| {
        let test: Vec<_> = tasks.test.iter().map(|p| &p.record).collect();
        write_jsonl(dir.join("test.jsonl"), &test)?;
        sets.iter()
            .map(|set| {
                write_jsonl(dir.join(format!("{}.jsonl", set.name)), &set.examples)?;
                Ok(sft_quality(&set.examples, &gold, check)?)
            })
            .collect::<Result<Vec<QualityReport>>>()
    })?;
    let base = base(&mut run, config)?;
    let format = config.model.prompt_format();
    let test_inputs =
        json!({"data": config.data, "seed": config.seed, "generation": config.generation});
    let quiet = options.quiet;
    let evaluate = |run: &mut RunDir, name: &str, model: &Done<PathBuf>| {
        run.stage(
            &format!("eval_{name}"),
            &json!({"model": model.fingerprint, "test": test_inputs}),
            |dir| {
                test_accuracy::<B>(
                    &model.value,
                    format,
                    task,
                    &tasks.test,
                    &config.generation,
                    dir,
                    quiet,
                    device,
                )
            },
        )
    };
    let base_accuracy = evaluate(&mut run, "untrained", &base)?.value;
    let mut rows = Vec::with_capacity(sets.len());
    for ((set, digest), q) in sets.iter().zip(&digests).zip(&quality.value) {
        let trained = run.stage(
            &format!("train_{}", set.name),
            &json!({"base": base.fingerprint, "set": digest, "train": config.train}),
            |dir| {
                fine_tune::<B>(
                    &base.value,
                    &training_examples(task, &set.examples),
                    format,
                    &config.train,
                    dir,
                    quiet,
                    device,
                )
            },
        )?;
        let model = Done {
            value: trained.value.model,
            fingerprint: trained.fingerprint,
        };
        let accuracy = evaluate(&mut run, &set.name, &model)?.value;
        rows.push(StudyRow {
            name: set.name.clone(),
            kind: set.kind,
            examples: set.examples.len(),
            requested_epsilon: set.epsilon,
            requested_step_rate: set.step_rate,
            outcome_error_rate: q.outcome_error_rate,
            step_error_rate: q.step_error_rate,
            accuracy,
        });
    }
    let report = StudyReport {
        task,
        seed: config.seed,
        backend: options.backend.clone(),
        test_size: tasks.test.len(),
        base_accuracy,
        findings: StudyReport::findings(&rows, tasks.test.len()),
        rows,
        seconds: crate::pipeline::PipelineReport::seconds(run.times()),
    };
    report.write(run.root())?;
    Ok(report)
}

/// The model every set trains: a built-in base written out with the arithmetic tokenizer, or
/// the given directory in place ([`given_model`]).
fn base(run: &mut RunDir, config: &StudyConfig) -> Result<Done<PathBuf>> {
    match &config.model {
        ModelSpec::Dir {
            path,
            chat_template,
        } => given_model(path, *chat_template),
        ModelSpec::Builtin { name } => {
            if !matches!(config.data, StudyData::Arithmetic { .. }) {
                return Err(TrainError::config(
                    "model",
                    "a built-in model only reads the arithmetic task; give kind = \"dir\"",
                ));
            }
            run.stage("base", &json!({"builtin": name.fingerprint()}), |dir| {
                let tokenizer = dir.join("tokenizer.json");
                w2s_arith::tokenizer::write(&tokenizer)?;
                let model = dir.join("model");
                name.write(&tokenizer, &model)?;
                Ok(model)
            })
        }
        ModelSpec::Scratch { .. } => Err(TrainError::config(
            "model",
            "the study trains a pretrained model",
        )),
    }
}
