//! The whole pipeline on a tiny budget: every stage runs, writes its artifacts and the report
//! with the numbers seed 3 gives on CPU, and a rerun reuses every stage. Three paths: the
//! embedded arithmetic task with models from scratch (both pretrained), the same task from the
//! built-in bases, and real HF model directories (w2s-llama's tiny fixtures) on a GSM8K-format
//! file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;
use w2s::arith::{DivisionRule, Family, Op, Surface};
use w2s::backend;
use w2s::curation::stage2::MiningConfig;
use w2s::eval::TaskKind;
use w2s::llama::{LlamaConfig, ModelDir};
use w2s::losses::PreferenceLossConfig;
use w2s::train::pipeline::{
    run_pipeline, scratch_config, BaseModel, DataConfig, DecodeConfig, ModelSpec, NamedLoss,
    PipelineConfig, PipelineOptions, PretrainConfig, Stage1Config, Stage2Config, WeightedFamily,
};
use w2s::train::{Overlong, TrainConfig};

fn train(epochs: usize) -> TrainConfig {
    TrainConfig {
        learning_rate: 1e-3,
        epochs,
        batch_tokens: 1024,
        overlong: Overlong::Skip,
        ..TrainConfig::default()
    }
}

fn tiny_model(max_positions: usize) -> ModelSpec {
    ModelSpec::Scratch {
        hidden_size: 16,
        intermediate_size: 32,
        layers: 1,
        heads: 2,
        max_positions,
    }
}

fn tiny(data: DataConfig, task: TaskKind, weak: ModelSpec, strong: ModelSpec) -> PipelineConfig {
    let pretrain = matches!(strong, ModelSpec::Scratch { .. }).then(|| PretrainConfig {
        mix: vec![WeightedFamily {
            weight: 1.0,
            family: Family {
                surface: Surface::Instructions,
                min_steps: 1,
                max_steps: 2,
                ops: Op::ALL.to_vec(),
                division: DivisionRule::Any,
                max_value: 99,
            },
        }],
        documents: 8,
        problems_per_document: 3,
        train: train(1),
        weak_documents: if matches!(weak, ModelSpec::Scratch { .. }) {
            6
        } else {
            0
        },
    });
    PipelineConfig {
        seed: 3,
        task,
        backend: None,
        data,
        weak,
        strong,
        pretrain,
        weak_sft: train(2),
        strong_sft: train(1),
        stage1: Stage1Config {
            iterations: 2,
            k_shot: 1,
            match_mode: Default::default(),
            min_steps: Some(3),
        },
        stage2: Stage2Config {
            num_samples: 2,
            temperature: 1.0,
            mining: MiningConfig::default(),
            losses: vec![
                NamedLoss {
                    name: "stage2_dpo".into(),
                    loss: PreferenceLossConfig::Dpo {
                        beta: 0.1,
                        label_smoothing: 0.0,
                        nll_alpha: 0.0,
                        reference_free: false,
                    },
                },
                NamedLoss {
                    name: "stage2_orpo".into(),
                    loss: PreferenceLossConfig::Orpo {
                        beta: 0.1,
                        nll_scope: Default::default(),
                    },
                },
            ],
            train: train(1),
        },
        generation: DecodeConfig {
            max_new_tokens: 10,
            prompts_per_batch: 16,
            stop_strings: vec!["Question".into()],
        },
    }
}

fn run(config: &PipelineConfig, out: &Path) -> Result<w2s::train::pipeline::PipelineReport> {
    let options = PipelineOptions {
        out: out.to_path_buf(),
        fresh: false,
        quiet: true,
        backend: backend::name().into(),
    };
    Ok(run_pipeline::<backend::Training>(
        config,
        &options,
        &backend::device(),
    )?)
}

/// `report.json` of the run in `out`.
fn read_report(out: &Path) -> Result<Value> {
    let path = out.join("report.json");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    serde_json::from_str(&text).with_context(|| path.display().to_string())
}

/// `json[key]` read by `read`; an error naming report.json and the key when it is missing or of
/// another type.
fn field<'a, T>(
    json: &'a Value,
    key: &str,
    read: impl FnOnce(&'a Value) -> Option<T>,
) -> Result<T> {
    json.get(key)
        .and_then(read)
        .with_context(|| format!("report.json: `{key}` is missing or of another type in {json}"))
}

/// Lines of `file` in the run directory `out`.
fn lines(out: &Path, file: &str) -> Result<usize> {
    let path = out.join(file);
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    Ok(text.lines().count())
}

/// What seed 3 makes of a tiny run on the CPU backend. Two runs agree bit for bit: the splits
/// come from the seed alone, and training, greedy decoding and seeded sampling repeat exactly.
struct Pinned {
    /// Lines of `splits/gold1.jsonl`, `splits/gold2.jsonl` and `splits/test.jsonl`.
    splits: [usize; 3],
    /// Per Stage I iteration: questions kept, accuracy of the first and of the second source.
    stage1: Vec<(u64, f64, f64)>,
    /// Stage II: mean sample accuracy, maj@n, pass@n, and pairs mined.
    stage2: (f64, f64, f64, u64),
    /// Test accuracy of every row, `weak` first and `ceiling` last.
    accuracies: [f64; 8],
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-9
}

fn check_report(out: &Path, pinned: &Pinned) -> Result<()> {
    let json = read_report(out)?;
    let rows = field(&json, "rows", Value::as_array)?;
    let names = rows
        .iter()
        .map(|row| field(row, "name", Value::as_str))
        .collect::<Result<Vec<_>>>()?;
    let mut expected = vec!["weak", "naive"];
    let iters: Vec<String> = (1..=pinned.stage1.len())
        .map(|t| format!("stage1_iter{t}"))
        .collect();
    expected.extend(iters.iter().map(String::as_str));
    expected.extend(["m_plus", "stage2_dpo", "stage2_orpo", "ceiling"]);
    assert_eq!(names, expected);
    for (row, &want) in rows.iter().zip(&pinned.accuracies) {
        let acc = field(row, "accuracy", Value::as_f64)?;
        assert!(close(acc, want), "{row}: want accuracy {want}");
        assert!(row.get("pgr").is_some(), "{row}");
    }
    assert!(json["rows"][0]["pgr"].is_null());
    assert!(json["seconds"]["total"].as_u64().is_some());

    let [gold1, gold2, test] = pinned.splits;
    let split_lines = [
        lines(out, "splits/gold1.jsonl")?,
        lines(out, "splits/gold2.jsonl")?,
        lines(out, "splits/test.jsonl")?,
    ];
    assert_eq!(split_lines, [gold1, gold2, test]);
    let weak_labels = field(&json, "weak_labels", Some)?;
    assert_eq!(field(weak_labels, "size", Value::as_u64)?, gold2 as u64);

    let stage1 = field(&json, "stage1", Value::as_array)?;
    assert_eq!(stage1.len(), pinned.stage1.len());
    for (it, &(kept, first, second)) in stage1.iter().zip(&pinned.stage1) {
        let accuracy = |source: &str| field(field(it, source, Some)?, "accuracy", Value::as_f64);
        assert_eq!(field(it, "kept", Value::as_u64)?, kept, "{it}");
        assert!(close(accuracy("first_source")?, first), "{it}");
        assert!(close(accuracy("second_source")?, second), "{it}");
        // The hybrid set holds each kept question twice, once per source.
        let hybrid = field(field(it, "hybrid_set", Some)?, "size", Value::as_u64)?;
        assert_eq!(hybrid, 2 * kept, "{it}");
    }

    let stage2 = field(&json, "stage2", Some)?;
    let (sample_accuracy, majority, pass, pairs) = pinned.stage2;
    for (key, want) in [
        ("sample_accuracy", sample_accuracy),
        ("majority_accuracy", majority),
        ("pass_at_n", pass),
    ] {
        assert!(close(field(stage2, key, Value::as_f64)?, want), "{key}");
    }
    assert_eq!(field(stage2, "pairs", Value::as_u64)?, pairs);
    assert_eq!(lines(out, "stage2_pairs/pairs.jsonl")? as u64, pairs);
    let mining = field(stage2, "mining", Some)?;
    assert_eq!(field(mining, "questions", Value::as_u64)?, gold2 as u64);

    for file in ["report.md", "report.svg", "config.json"] {
        assert!(out.join(file).is_file(), "missing {file}");
    }
    Ok(())
}

/// Every stage's fingerprint in the run directory `out` (from its `inputs.json`), as
/// `stage=fingerprint` lines in stage order, and their FNV-1a digest: pinned so that a change of
/// the pipeline's code cannot silently invalidate the stages of existing run directories.
fn stage_fingerprints(out: &Path) -> Result<(String, String)> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(out)? {
        let inputs = entry?.path().join("inputs.json");
        if inputs.is_file() {
            let text = std::fs::read_to_string(&inputs)?;
            let json: Value = serde_json::from_str(&text)?;
            let stage = inputs
                .parent()
                .and_then(Path::file_name)
                .unwrap_or_default();
            let fingerprint = field(&json, "fingerprint", Value::as_str)?;
            lines.push(format!("{}={fingerprint}", stage.to_string_lossy()));
        }
    }
    lines.sort();
    let text = lines.join("\n");
    let digest = w2s::data::Digest::new().bytes(text.as_bytes()).finish();
    Ok((format!("{digest:016x}"), text))
}

fn check_fingerprints(out: &Path, pinned: &str) -> Result<()> {
    let (digest, stages) = stage_fingerprints(out)?;
    assert_eq!(digest, pinned, "stage fingerprints changed:\n{stages}");
    Ok(())
}

fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| d.display().to_string())? {
            let p = entry?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    Ok(out)
}

#[test]
fn the_embedded_task_runs_every_stage_and_reruns_for_free() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let out = tmp.path().join("run");
    let data = DataConfig::Arithmetic {
        family: Family::target(2),
        gold1: 24,
        gold2: 12,
        test: 8,
    };
    let config = tiny(data, TaskKind::Arithmetic, tiny_model(256), tiny_model(512));
    let first = run(&config, &out)?;
    let pinned = Pinned {
        splits: [24, 12, 8],
        stage1: vec![(0, 0.0, 0.0), (0, 0.0, 0.0)],
        stage2: (0.0, 0.0, 0.0, 0),
        accuracies: [0.0; 8],
    };
    check_report(&out, &pinned)?;
    for artifact in [
        "splits/tokenizer.json",
        "splits/pretrain.jsonl",
        "strong_base/stage.json",
        "strong_base/train/final/model.safetensors",
        "weak_base/train/final/model.safetensors",
        "weak_sft/train/final/config.json",
        "weak_sft/train/final/model.safetensors",
        "weak_sft/train/final/tokenizer.json",
        "weak_labels/samples.jsonl",
        "naive/final/model.safetensors",
        "ceiling/final/model.safetensors",
        "stage1_iter1_icl/samples.jsonl",
        "stage1_iter1_sets/hybrid.jsonl",
        "stage1_iter2_weak_source/samples.jsonl",
        "stage1_iter2_icl_source/samples.jsonl",
        "stage2_samples/samples.jsonl",
        "stage2_pairs/pairs.jsonl",
        "eval_weak/graded.jsonl",
        "eval_ceiling/report.json",
    ] {
        assert!(out.join(artifact).is_file(), "missing {artifact}");
    }
    assert!(first.reused_stages.is_empty());
    check_fingerprints(&out, "6526e93281076af7")?;
    assert_eq!(lines(&out, "stage2_samples/samples.jsonl")?, 2 * 12);
    assert!(files_under(&out)?
        .iter()
        .all(|p| !p.to_string_lossy().ends_with(".tmp")));

    let again = run(&config, &out)?;
    assert_eq!(again.rows, first.rows);
    assert_eq!(
        again.reused_stages.len(),
        first.seconds.len() - 1,
        "every stage is reused"
    );
    Ok(())
}

/// w2s-llama's test fixtures: tiny HF model directories and tokenizers.
fn llama_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/w2s-llama/tests/fixtures")
}

/// A GSM8K-format train file of 20 questions and test file of 4 in `dir`, split 8 / 8 / all.
fn gsm8k_files(dir: &Path) -> Result<DataConfig> {
    let train_file = dir.join("train.jsonl");
    let test_file = dir.join("test.jsonl");
    let line = |a: u32, b: u32| {
        serde_json::json!({
            "question": format!("What is {a} plus {b}?"),
            "answer": format!("{a} + {b} = <<{a}+{b}={}>>{}\n#### {}", a + b, a + b, a + b),
        })
        .to_string()
    };
    std::fs::write(
        &train_file,
        (1..=20)
            .map(|i| line(i, 2 * i))
            .collect::<Vec<_>>()
            .join("\n"),
    )?;
    std::fs::write(
        &test_file,
        (1..=4).map(|i| line(i, 3)).collect::<Vec<_>>().join("\n"),
    )?;
    Ok(DataConfig::Files {
        train: train_file,
        test_file,
        gold1: 8,
        gold2: 8,
        test: 0,
    })
}

#[test]
fn real_model_directories_run_end_to_end() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let fixtures = llama_fixtures();
    let data = gsm8k_files(tmp.path())?;
    let weak = ModelSpec::Dir {
        path: fixtures.join("gqa_sharded"),
        chat_template: false,
    };
    let strong = ModelSpec::Dir {
        path: fixtures.join("llama3_tied"),
        chat_template: false,
    };
    let config = tiny(data, TaskKind::Gsm8k, weak, strong);
    let out = tmp.path().join("run");
    run(&config, &out)?;
    // The fixtures' tokenizer adds no BOS (its tokenizer.json has no post-processor), so neither
    // does w2s, as transformers does not.
    let pinned = Pinned {
        splits: [8, 8, 4],
        stage1: vec![(1, 0.0, 0.0), (1, 0.0, 0.0)],
        stage2: (0.0, 0.0, 0.0, 0),
        accuracies: [0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5, 0.0],
    };
    check_report(&out, &pinned)?;
    // Fine-tuned real models are saved back in HF layout with their tokenizer.
    for model in ["weak_sft/train/final", "ceiling/final"] {
        for file in ["config.json", "tokenizer.json"] {
            assert!(
                out.join(model).join(file).is_file(),
                "missing {model}/{file}"
            );
        }
    }
    Ok(())
}

#[test]
fn lora_tables_train_adapters_in_every_stage() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let fixtures = llama_fixtures();
    let data = gsm8k_files(tmp.path())?;
    let dir = |name: &str| ModelSpec::Dir {
        path: fixtures.join(name),
        chat_template: false,
    };
    let mut config = tiny(
        data,
        TaskKind::Gsm8k,
        dir("gqa_sharded"),
        dir("llama3_tied"),
    );
    let lora = w2s::llama::LoraConfig {
        r: 4,
        ..w2s::llama::LoraConfig::default()
    };
    for train in [
        &mut config.weak_sft,
        &mut config.strong_sft,
        &mut config.stage2.train,
    ] {
        train.lora = Some(lora.clone());
        train.learning_rate = 1e-2;
    }
    let out = tmp.path().join("run");
    run(&config, &out)?;
    let pinned = Pinned {
        splits: [8, 8, 4],
        stage1: vec![(0, 0.0, 0.0), (7, 0.0, 0.0)],
        stage2: (0.0, 0.0, 0.0, 1),
        accuracies: [0.0, 0.0, 0.0, 0.25, 0.25, 0.0, 0.0, 0.0],
    };
    check_report(&out, &pinned)?;
    // Each fine-tune keeps its adapter in PEFT's layout and the merged model the next stages
    // load; the adapters differ from the base.
    for stage in ["weak_sft/train", "ceiling"] {
        let stage = out.join(stage);
        for file in [
            "final/adapter_config.json",
            "final/adapter_model.safetensors",
        ] {
            assert!(
                stage.join(file).is_file(),
                "missing {}",
                stage.join(file).display()
            );
        }
        assert!(!stage.join("final/model.safetensors").exists());
        let merged =
            ModelDir::<backend::Inference>::load(stage.join("merged"), &backend::device())?;
        assert!(merged.tokenizer.is_some());
    }
    Ok(())
}

#[test]
fn an_instruct_model_reads_the_prompts_through_its_chat_template() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let fixtures = llama_fixtures();
    // The tiny Llama with SmolLM2's ChatML template beside its tokenizer.
    let instruct = tmp.path().join("instruct");
    std::fs::create_dir(&instruct)?;
    for entry in std::fs::read_dir(fixtures.join("llama3_tied"))? {
        let path = entry?.path();
        std::fs::copy(&path, instruct.join(path.file_name().unwrap_or_default()))?;
    }
    std::fs::copy(
        fixtures.join("tokenization/no_bos/chat_template.jinja"),
        instruct.join("chat_template.jinja"),
    )?;
    let model = |path: PathBuf, chat_template| ModelSpec::Dir {
        path,
        chat_template,
    };
    let data = gsm8k_files(tmp.path())?;
    let config = |chat_template| {
        tiny(
            data.clone(),
            TaskKind::Gsm8k,
            model(fixtures.join("gqa_sharded"), false),
            model(instruct.clone(), chat_template),
        )
    };
    let out = tmp.path().join("run");
    run(&config(false), &out)?;
    // Switched on for the strong model: every stage of a strong model runs again, the weak
    // model's stages are reused.
    let chat = run(&config(true), &out)?;
    for stage in ["splits", "weak_sft", "weak_labels", "eval_weak"] {
        assert!(chat.reused_stages.iter().any(|s| s == stage), "{stage}");
    }
    for stage in [
        "naive",
        "ceiling",
        "stage1_iter1_icl",
        "stage2_samples",
        "eval_ceiling",
    ] {
        assert!(!chat.reused_stages.iter().any(|s| s == stage), "{stage}");
    }
    // Samples keep the method's plain prompts.
    let icl = std::fs::read_to_string(out.join("stage1_iter1_icl/samples.jsonl"))?;
    assert!(
        icl.lines().all(|l| l.contains("\"prompt\":\"Question: ")),
        "{icl}"
    );

    // A model directory without a chat template is refused, by name.
    let mut refused = config(true);
    refused.weak = model(fixtures.join("gqa_sharded"), true);
    let err = format!(
        "{:#}",
        run(&refused, &tmp.path().join("refused")).unwrap_err()
    );
    assert!(err.contains("chat_template"), "{err}");
    assert!(
        err.contains(&fixtures.join("gqa_sharded").display().to_string()),
        "{err}"
    );
    Ok(())
}

#[test]
fn shipped_configs_parse_and_the_embedded_one_is_the_default() -> Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    for name in ["gsm8k.toml", "math.toml"] {
        let config = PipelineConfig::from_toml_file(&dir.join(name))?;
        assert!(matches!(config.strong, ModelSpec::Dir { .. }), "{name}");
    }
    for (name, config) in [
        ("embedded.toml", PipelineConfig::embedded()),
        (
            "embedded-pretrain.toml",
            PipelineConfig::embedded_from_scratch(),
        ),
    ] {
        let shipped = PipelineConfig::from_toml_file(&dir.join(name))?;
        assert_eq!(shipped, config, "regenerate {name} with --print-config");
    }
    Ok(())
}

#[test]
fn the_embedded_default_runs_from_the_builtin_bases() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let out = tmp.path().join("run");
    let data = DataConfig::Arithmetic {
        family: Family::target(3),
        gold1: 16,
        gold2: 8,
        test: 8,
    };
    let embedded = PipelineConfig::embedded();
    let config = tiny(data, TaskKind::Arithmetic, embedded.weak, embedded.strong);
    assert!(config.pretrain.is_none());
    run(&config, &out)?;
    let pinned = Pinned {
        splits: [16, 8, 8],
        stage1: vec![(1, 0.0, 0.125), (5, 0.0, 0.125)],
        stage2: (0.0, 0.0, 0.0, 1),
        accuracies: [0.0; 8],
    };
    check_report(&out, &pinned)?;
    check_fingerprints(&out, "4dc3396fe3223abc")?;
    for base in ["weak_base", "strong_base"] {
        for file in ["config.json", "model.safetensors", "tokenizer.json"] {
            assert!(
                out.join(base).join("model").join(file).is_file(),
                "{base}/{file}"
            );
        }
    }
    Ok(())
}

#[test]
fn builtin_bases_are_the_from_scratch_models_and_load() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let tokenizer = tmp.path().join("tokenizer.json");
    w2s::arith::tokenizer::write(&tokenizer)?;
    let vocab = w2s::arith::tokenizer::vocabulary().len();
    let scratch = PipelineConfig::embedded_from_scratch();
    for (builtin, spec) in [
        (BaseModel::ArithmeticWeak, &scratch.weak),
        (BaseModel::ArithmeticStrong, &scratch.strong),
    ] {
        let dir = tmp.path().join(format!("{builtin:?}"));
        builtin.write(&tokenizer, &dir)?;
        let expected = scratch_config(spec, &tokenizer)?
            .expect("embedded_from_scratch has a model that is not from scratch");
        let mut shipped = LlamaConfig::from_file(dir.join("config.json"))?;
        // Saving adds the dtype keys; every field the model is built from must match.
        shipped
            .extra
            .retain(|key, _| expected.extra.contains_key(key));
        assert_eq!(
            shipped, expected,
            "{builtin:?}: rebuild the assets (crates/w2s-arith/assets/README.md)"
        );
        let loaded = ModelDir::<backend::Inference>::load(&dir, &Default::default())?;
        assert_eq!(loaded.tokenizer()?.vocab_size(), vocab, "{builtin:?}");
    }
    Ok(())
}
