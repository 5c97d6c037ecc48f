//! The supervision-quality study: every set's outcome and step-wise error rates measured back
//! within 2 points of the rates asked for; the whole study on a tiny budget writes its report
//! and reuses every stage on a rerun; a user's GSM8K-format files with a real HF model directory
//! run the same study.

use std::path::Path;

use anyhow::Result;
use w2s::backend;
use w2s::curation::quality::{sft_quality, Gold, GoldFormat, StepCheck};
use w2s::eval::TaskKind;
use w2s::train::pipeline::{ModelSpec, PipelineOptions};
use w2s::train::study::{
    run_study, study_sets, study_tasks, SetKind, StudyConfig, StudyData, StudyReport,
};
use w2s::train::{Overlong, TrainConfig};

fn gold(task: TaskKind) -> Gold {
    Gold {
        task,
        field: "gold".into(),
        format: GoldFormat::Answer,
    }
}

#[test]
fn the_shipped_study_config_is_the_default() -> Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/supervision.toml");
    let shipped = StudyConfig::from_toml_file(&path)?;
    assert_eq!(
        shipped,
        StudyConfig::embedded(),
        "regenerate supervision.toml with --print-config"
    );
    Ok(())
}

#[test]
fn requested_rates_are_measured_back_within_two_points() -> Result<()> {
    let mut config = StudyConfig::embedded();
    config.data = StudyData::Arithmetic {
        family: w2s::arith::Family::target(3),
        tasks: 400,
        test: 10,
    };
    let tasks = study_tasks(&config.data, 7)?;
    assert_eq!((tasks.hard.len(), tasks.subtasks.len()), (400, 800));
    let sets = study_sets(&config, &tasks)?;
    let names: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "hard_e0",
            "hard_e30",
            "hard_e60",
            "hard_e90",
            "subtask_e0",
            "subtask_e30",
            "subtask_e60",
            "subtask_e90",
            "hard_e60_steps20",
            "hard_e60_steps50",
            "hard_e60+subtask_e30",
            "hard_e60+rephrased",
        ]
    );
    for set in &sets {
        let q = sft_quality(
            &set.examples,
            &gold(TaskKind::Arithmetic),
            StepCheck::Grounded,
        )?;
        let outcome = q.outcome_error_rate.unwrap();
        let step = q.step_error_rate.unwrap();
        match set.kind {
            SetKind::Mix => {}
            _ => assert!(
                (outcome - set.epsilon).abs() <= 0.02,
                "{}: {outcome}",
                set.name
            ),
        }
        if let Some(asked) = set.step_rate {
            assert!(
                (step - asked).abs() <= 0.02,
                "{}: {step} vs {asked}",
                set.name
            );
        }
        if set.epsilon == 0.0 {
            assert_eq!(step, 0.0, "{}", set.name);
        }
    }
    // The rephrased copy repeats its original's solutions word for word, in other questions.
    let copy = &sets[11];
    assert_eq!(copy.examples.len(), 800);
    let hard_only = sft_quality(
        &sets[2].examples,
        &gold(TaskKind::Arithmetic),
        StepCheck::Grounded,
    )?;
    let doubled = sft_quality(
        &copy.examples,
        &gold(TaskKind::Arithmetic),
        StepCheck::Grounded,
    )?;
    assert_eq!(doubled.outcome_error_rate, hard_only.outcome_error_rate);
    assert_eq!(doubled.step_error_rate, hard_only.step_error_rate);
    // Subtasks without wrong solutions cannot give ε > 0, and the error says which pool.
    let mut bare = tasks.clone();
    bare.subtasks.iter_mut().for_each(|t| t.incorrect.clear());
    let err = study_sets(&config, &bare).unwrap_err().to_string();
    assert!(
        err.contains("data.subtasks") && err.contains("epsilon 0.3"),
        "{err}"
    );
    Ok(())
}

fn tiny_train() -> TrainConfig {
    TrainConfig {
        learning_rate: 1e-3,
        epochs: 1,
        batch_tokens: 1024,
        overlong: Overlong::Skip,
        ..TrainConfig::default()
    }
}

fn run(config: &StudyConfig, out: &Path) -> Result<StudyReport> {
    let options = PipelineOptions {
        out: out.to_path_buf(),
        fresh: false,
        quiet: true,
        backend: backend::name().into(),
    };
    Ok(run_study::<backend::Training>(
        config,
        &options,
        &backend::device(),
    )?)
}

fn check(out: &Path, rows: usize) -> Result<StudyReport> {
    let report: StudyReport =
        serde_json::from_str(&std::fs::read_to_string(out.join("study.json"))?)?;
    assert_eq!(report.rows.len(), rows);
    assert_eq!(report.findings.len(), 3);
    assert!(report
        .rows
        .iter()
        .all(|r| (0.0..=1.0).contains(&r.accuracy)));
    assert!(report.seconds.contains_key("total"));
    for file in ["study.md", "study.svg"] {
        assert!(out.join(file).is_file(), "missing {file}");
    }
    Ok(report)
}

#[test]
fn a_tiny_study_runs_end_to_end_and_reruns_for_free() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut config = StudyConfig::embedded();
    config.data = StudyData::Arithmetic {
        family: w2s::arith::Family::target(3),
        tasks: 12,
        test: 6,
    };
    config.epsilons = vec![0.0, 0.9];
    config.train = tiny_train();
    config.generation.max_new_tokens = 24;
    let out = tmp.path().join("study");
    let first = run(&config, &out)?;
    check(&out, 2 + 2 + 2 + 2)?;
    assert!(first.findings.iter().all(|f| f.difference.is_some()));
    let marker = out.join("train_hard_e0/stage.json");
    let written = std::fs::metadata(&marker)?.modified()?;
    let again = run(&config, &out)?;
    // Reused rows are read back from JSON, which may round a rate's last bit.
    assert_eq!(again.rows.len(), first.rows.len());
    for (a, b) in again.rows.iter().zip(&first.rows) {
        assert_eq!((&a.name, a.accuracy), (&b.name, b.accuracy));
        let close = |x: Option<f64>, y: Option<f64>| (x.unwrap() - y.unwrap()).abs() < 1e-12;
        assert!(close(a.step_error_rate, b.step_error_rate), "{}", a.name);
    }
    assert_eq!(std::fs::metadata(&marker)?.modified()?, written);
    Ok(())
}

#[test]
fn a_users_files_run_the_same_study() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/w2s-llama/tests/fixtures");
    let task = |id: String, a: u32, b: u32, question: String| {
        let c = a + b;
        serde_json::json!({
            "id": id,
            "question": question,
            "answer": c.to_string(),
            "correct": format!("{a} + {b} = <<{a}+{b}={c}>>{c}\n#### {c}"),
            "incorrect": [format!("{a} + {b} = <<{a}+{b}={}>>{}\n#### {}", c + 1, c + 1, c + 1)],
        })
        .to_string()
    };
    let write = |name: &str, lines: Vec<String>| -> Result<std::path::PathBuf> {
        let path = tmp.path().join(name);
        std::fs::write(&path, lines.join("\n"))?;
        Ok(path)
    };
    let hard = write(
        "hard.jsonl",
        (1..=8)
            .map(|i| {
                task(
                    format!("q{i}"),
                    i,
                    2 * i,
                    format!("What is {i} plus {}?", 2 * i),
                )
            })
            .collect(),
    )?;
    let rephrased = write(
        "rephrased.jsonl",
        (1..=8)
            .rev()
            .map(|i| task(format!("q{i}"), i, 2 * i, format!("Add {i} and {}.", 2 * i)))
            .collect(),
    )?;
    let subtasks = write(
        "subtasks.jsonl",
        (1..=8)
            .map(|i| task(format!("q{i}.1"), i, i, format!("What is {i} plus {i}?")))
            .collect(),
    )?;
    let test = write(
        "test.jsonl",
        (1..=4)
            .map(|i| {
                serde_json::json!({"question": format!("What is {i} plus 3?"),
                    "answer": format!("#### {}", i + 3)})
                .to_string()
            })
            .collect(),
    )?;
    let mut config = StudyConfig::embedded();
    config.data = StudyData::Files {
        task: TaskKind::Gsm8k,
        hard,
        subtasks,
        rephrased: Some(rephrased),
        test,
    };
    config.model = ModelSpec::Dir {
        path: fixtures.join("llama3_tied"),
        chat_template: false,
    };
    config.epsilons = vec![0.0, 0.5];
    config.step_rates.epsilon = 0.5;
    config.step_rates.low = 0.0;
    config.step_rates.high = 0.5;
    config.train = tiny_train();
    config.generation.max_new_tokens = 8;
    let out = tmp.path().join("study");
    let report = run(&config, &out)?;
    check(&out, 8)?;
    // One planted wrong step per incorrect GSM8K solution, seen by the calculator check.
    let hard_half = report.rows.iter().find(|r| r.name == "hard_e50").unwrap();
    assert_eq!(hard_half.outcome_error_rate, Some(0.5));
    assert_eq!(hard_half.step_error_rate, Some(0.5));
    Ok(())
}
