//! Sampling over a dataset (resumable, reproducible) and evaluation runs graded by w2s-eval.

mod common;

use std::path::Path;

use burn::backend::Flex;
use burn::prelude::*;
use serde_json::Map;
use w2s_eval::{Problem, TaskKind};
use w2s_llama::{GenerationConfig, Llama, Sampling, Tokenizer};
use w2s_train::{evaluate, sample_dataset, PromptFormat, PromptRecord};

/// A random model over the 120-token fixture tokenizer of w2s-llama.
fn model_and_tokenizer() -> (Llama<Flex>, Tokenizer) {
    let dev = Default::default();
    <Flex as Backend>::seed(&dev, 21);
    let config = common::tiny_config(128);
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../w2s-llama/tests/fixtures/tokenizer.json");
    let tokenizer = Tokenizer::from_file(path, 128, Some(1)).expect("fixture tokenizer");
    (config.init(&dev).expect("init"), tokenizer)
}

fn prompts(n: usize) -> Vec<PromptRecord> {
    (0..n)
        .map(|i| {
            let mut extra = Map::new();
            extra.insert("gold".into(), (i * 3).into());
            PromptRecord {
                id: format!("q{i}"),
                prompt: format!("Question: {i} + {i} =\nAnswer:"),
                extra,
            }
        })
        .collect()
}

#[test]
fn interrupted_sampling_resumes_to_the_same_file() -> anyhow::Result<()> {
    let (model, tok) = model_and_tokenizer();
    let llama = common::tiny_config(128);
    let config = GenerationConfig {
        max_new_tokens: 6,
        sampling: Sampling {
            temperature: 1.0,
            top_k: None,
            top_p: None,
        },
        num_samples: 3,
        seed: 5,
        ..GenerationConfig::default()
    };
    let dir = tempfile::tempdir()?;
    let (whole, cut) = (dir.path().join("whole.jsonl"), dir.path().join("cut.jsonl"));
    let all = prompts(5);
    let summary = sample_dataset(
        &model,
        &llama,
        &tok,
        PromptFormat::Text,
        &all,
        &config,
        2,
        &whole,
        true,
    )?;
    assert_eq!((summary.written, summary.already_done), (15, 0));

    // Interrupted after the first chunk, mid-way through writing a line of the second.
    sample_dataset(
        &model,
        &llama,
        &tok,
        PromptFormat::Text,
        &all[..2],
        &config,
        2,
        &cut,
        true,
    )?;
    let mut text = std::fs::read_to_string(&cut)?;
    text.push_str("{\"id\": \"q2\", \"prompt\": \"Quest");
    std::fs::write(&cut, text)?;
    let resumed = sample_dataset(
        &model,
        &llama,
        &tok,
        PromptFormat::Text,
        &all,
        &config,
        2,
        &cut,
        true,
    )?;
    assert_eq!((resumed.already_done, resumed.written), (2, 9));
    assert_eq!(
        std::fs::read_to_string(&whole)?,
        std::fs::read_to_string(&cut)?
    );

    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&whole)?
            .lines()
            .next()
            .unwrap_or(""),
    )?;
    for key in ["id", "prompt", "response", "sample_index", "seed", "gold"] {
        assert!(first.get(key).is_some(), "field {key}");
    }
    assert!(sample_dataset(
        &model,
        &llama,
        &tok,
        PromptFormat::Text,
        &[all[0].clone(), all[0].clone()],
        &config,
        2,
        &cut,
        true
    )
    .is_err());
    Ok(())
}

#[test]
fn an_evaluation_run_writes_graded_responses_and_a_report() -> anyhow::Result<()> {
    let (model, tok) = model_and_tokenizer();
    let problems: Vec<Problem> = (0..3)
        .map(|i| Problem {
            id: i.to_string(),
            question: format!("{i} + 4"),
            answer: (i + 4).to_string(),
            solution: None,
            subject: None,
            level: None,
            record: Map::new(),
        })
        .collect();
    let dir = tempfile::tempdir()?;
    let config = GenerationConfig {
        max_new_tokens: 5,
        ..GenerationConfig::default()
    };
    let run = evaluate(
        &model,
        &tok,
        PromptFormat::Text,
        TaskKind::Arithmetic,
        &problems,
        &config,
        2,
        dir.path(),
        true,
    )?;
    assert_eq!(run.report.overall.total, 3);
    assert!(dir.path().join("report.json").is_file());
    let graded = std::fs::read_to_string(&run.graded)?;
    assert_eq!(graded.lines().count(), 3);
    assert!(graded.contains("\"correct\"") && graded.contains("\"pred\""));
    assert!(evaluate(
        &model,
        &tok,
        PromptFormat::Text,
        TaskKind::Arithmetic,
        &[],
        &config,
        2,
        dir.path(),
        true
    )
    .is_err());
    Ok(())
}
