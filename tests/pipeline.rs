//! The whole pipeline on a tiny budget: every stage runs, writes its artifacts and the report
//! with the numbers seed 3 gives on CPU, and a rerun reuses every stage. Three paths: the
//! embedded arithmetic task with models from scratch (both pretrained), the same task from the
//! built-in bases, and real HF model directories (w2s-llama's tiny fixtures) on a GSM8K-format
//! file. Stage fingerprints are pinned, so that existing run directories stay cached. Then the
//! engines (docs/engines.md): fine-tunes run as commands (w2s's own `sft` and `preference`
//! examples, in separate processes) and a role sampled by w2s's own OpenAI server give the
//! built-in engine's report; a failing command stops the run with its log; a role sampled over
//! the API asks for the model of each stage by name.

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
    PipelineConfig, PipelineOptions, PipelineReport, PretrainConfig, SamplerSpec, Stage1Config,
    Stage2Config, TrainerSpec, WeightedFamily,
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
        weak: weak.into(),
        strong: strong.into(),
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

fn run(config: &PipelineConfig, out: &Path) -> Result<PipelineReport> {
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
    refused.weak = model(fixtures.join("gqa_sharded"), true).into();
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
    for name in ["gsm8k.toml", "math.toml", "trl-recipe.toml"] {
        let config = PipelineConfig::from_toml_file(&dir.join(name))?;
        assert!(
            matches!(config.strong.model, ModelSpec::Dir { .. }),
            "{name}"
        );
    }
    // The recipe's commands fill for every stage (checked when it loads); they run TRL.
    let recipe = PipelineConfig::from_toml_file(&dir.join("trl-recipe.toml"))?;
    for role in [&recipe.weak, &recipe.strong] {
        let TrainerSpec::Command { sft, .. } = &role.trainer else {
            panic!("the recipe trains with commands");
        };
        assert!(
            sft.starts_with("trl sft --accelerate_config zero3"),
            "{sft}"
        );
        assert!(!role.sampler.is_burn());
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

/// The embedded task from the built-in bases on a tiny budget: 16 / 8 / 8 questions.
fn builtin_bases() -> PipelineConfig {
    let data = DataConfig::Arithmetic {
        family: Family::target(3),
        gold1: 16,
        gold2: 8,
        test: 8,
    };
    let embedded = PipelineConfig::embedded();
    tiny(
        data,
        TaskKind::Arithmetic,
        embedded.weak.model,
        embedded.strong.model,
    )
}

/// A report without what differs between equal runs (wall times, reused stages).
fn comparable(report: &PipelineReport) -> Result<Value> {
    let mut value = serde_json::to_value(report)?;
    let fields = value.as_object_mut().context("a report is an object")?;
    fields.remove("seconds");
    fields.remove("reused_stages");
    Ok(value)
}

#[test]
fn the_embedded_default_runs_from_the_builtin_bases() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let out = tmp.path().join("run");
    let config = builtin_bases();
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
        (BaseModel::ArithmeticWeak, &scratch.weak.model),
        (BaseModel::ArithmeticStrong, &scratch.strong.model),
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

/// The built example binary `name` (`cargo test` and `cargo nextest` build the examples into
/// `target/<profile>/examples/`, beside this test's `deps/`).
fn example_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .context("the test binary has no target directory")?;
    let mut candidates = vec![profile.join("examples")];
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(target).join("debug/examples"));
    }
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    candidates
        .iter()
        .map(|dir| dir.join(&file))
        .find(|path| path.is_file())
        .with_context(|| {
            format!(
                "the `{name}` example is not built (looked in {candidates:?}): build it with \
                 `cargo build --examples` (a test run narrowed with --test builds no examples)"
            )
        })
}

/// A command trainer running w2s's own `sft` and `preference` examples: the stage's config goes
/// in whole as `--config` (its `[train]` table, and `[loss]`), and `--max-grad-norm` carries an
/// unset clipping norm, which a TOML table cannot, past the examples' TRL default of 1.0.
fn example_trainer(preference: bool) -> Result<TrainerSpec> {
    let command = |name: &str| -> Result<String> {
        Ok(format!(
            "'{}' --model {{model}} --train {{data}} --output {{output}} --config {{config}} \
             --max-grad-norm {{max_grad_norm}} --quiet",
            example_binary(name)?.display()
        ))
    };
    Ok(TrainerSpec::Command {
        sft: command("sft")?,
        preference: preference.then(|| command("preference")).transpose()?,
        trained_model: "{output}/final".into(),
    })
}

/// `a` and `b` equal, numbers within `tolerance`; `at` names the place for the message.
fn assert_close(a: &Value, b: &Value, tolerance: f64, at: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            assert!((x - y).abs() <= tolerance, "{at}: {x} vs {y}");
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{at}"
            );
            for (key, value) in x {
                assert_close(value, &y[key], tolerance, &format!("{at}.{key}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                assert_close(x, y, tolerance, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

#[test]
fn trainer_commands_running_the_examples_give_the_report_of_the_built_in_engine() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut config = builtin_bases();
    // Settings the examples' TRL defaults would change if they did not arrive: no clipping, and
    // Stage I's min_steps, which has no flag.
    config.strong_sft.max_grad_norm = None;
    assert_eq!(config.stage1_sft().min_steps, Some(3));
    let built_in = tmp.path().join("built_in");
    let expected = run(&config, &built_in)?;
    config.weak.trainer = example_trainer(false)?;
    config.strong.trainer = example_trainer(true)?;
    let external = tmp.path().join("external");
    let got = run(&config, &external)?;

    assert!(
        got.stage2.pairs > 0,
        "the preference command must run: no pairs"
    );
    assert_close(&comparable(&got)?, &comparable(&expected)?, 1e-6, "report");

    // Every fine-tune ran with the stage's own config, and left its command and log.
    let mut trained = 0;
    for path in files_under(&built_in)? {
        let Ok(inner) = path.strip_prefix(&built_in) else {
            continue;
        };
        if !inner.ends_with("final/train_config.json") {
            continue;
        }
        let stage = inner
            .parent()
            .and_then(Path::parent)
            .context("final/ has a parent")?;
        let read = |path: &Path| -> Result<Value> {
            let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
            Ok(serde_json::from_str(&text)?)
        };
        let job = external.join(stage);
        let theirs = read(&job.join("output/final/train_config.json"))?;
        assert_eq!(
            theirs["train"],
            read(&path)?["train"],
            "{}",
            stage.display()
        );
        // The same steps with the same losses.
        let steps = |path: &Path| -> Result<Vec<Value>> {
            let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
            let lines = text.lines().map(serde_json::from_str::<Value>);
            let keep = ["step", "loss", "learning_rate", "grad_norm"];
            lines
                .map(|line| {
                    let line = line?;
                    Ok(keep.iter().map(|k| line[*k].clone()).collect())
                })
                .collect()
        };
        let ours = steps(&built_in.join(stage).join("metrics.jsonl"))?;
        assert!(!ours.is_empty(), "{}", stage.display());
        let at = format!("{}/metrics.jsonl", stage.display());
        assert_close(
            &Value::Array(steps(&job.join("output/metrics.jsonl"))?),
            &Value::Array(ours),
            1e-6,
            &at,
        );
        let record = read(&job.join("command.json"))?;
        assert_eq!(record["status"]["code"], 0, "{record}");
        assert!(job.join("log.txt").is_file(), "{}", stage.display());
        trained += 1;
    }
    // weak_sft, naive, ceiling, the Stage I set models, DPO and ORPO.
    assert!(trained >= 7, "{trained} fine-tunes");

    // A rerun reuses every stage. The external engine is in the fingerprints of the stages it
    // ran and of those after them: only the splits and the bases are shared.
    let again = run(&config, &external)?;
    assert_eq!(again.reused_stages.len(), got.seconds.len() - 1);
    let (_, ours) = stage_fingerprints(&built_in)?;
    let (_, theirs) = stage_fingerprints(&external)?;
    let shared: Vec<&str> = ours
        .lines()
        .filter(|line| theirs.lines().any(|l| l == *line))
        .filter_map(|line| line.split('=').next())
        .collect();
    assert_eq!(shared, ["splits", "strong_base", "weak_base"]);
    Ok(())
}

#[test]
#[cfg(unix)] // the failing command is a POSIX shell script
fn a_failing_trainer_command_stops_the_run_with_its_log() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut config = builtin_bases();
    config.weak.trainer = TrainerSpec::Command {
        sft: "sh -c 'echo loading {model}; echo CUDA out of memory >&2; exit 3'".into(),
        preference: None,
        trained_model: "{output}".into(),
    };
    let out = tmp.path().join("run");
    let err = format!("{:#}", run(&config, &out).unwrap_err());
    let job = out.join("weak_sft/train");
    assert!(err.contains("failed (exit status: 3)"), "{err}");
    assert!(err.contains("CUDA out of memory"), "{err}");
    assert!(err.contains("loading /"), "{err}");
    assert!(
        err.contains(&job.join("log.txt").display().to_string()),
        "{err}"
    );
    assert!(!out.join("weak_sft/stage.json").exists());
    assert!(out.join("weak_base/stage.json").is_file());
    let record: Value = serde_json::from_str(&std::fs::read_to_string(job.join("command.json"))?)?;
    assert_eq!(record["status"]["code"], 3);
    assert_eq!(record["argv"][0], "sh");

    // A placeholder the template cannot fill is refused before any stage runs.
    config.weak.trainer = TrainerSpec::Command {
        sft: "trl sft --learning_rate {lr}".into(),
        preference: None,
        trained_model: "{output}".into(),
    };
    let err = run(&config, &tmp.path().join("typo"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`weak.trainer.sft`"), "{err}");
    assert!(err.contains("unknown placeholder `{lr}`"), "{err}");
    assert!(!tmp.path().join("typo/splits").exists());
    Ok(())
}

/// A mock OpenAI server on 127.0.0.1 that serves the model names in `served` and answers every
/// GSM8K question "What is a plus b?" of [`gsm8k_files`] correctly; it keeps every request body.
struct MockServer {
    url: String,
    served: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl MockServer {
    fn start() -> Result<Self> {
        let server = tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow::anyhow!("{e}"))?;
        let port = server.server_addr().to_ip().context("an IP server")?.port();
        let served = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (names, seen) = (served.clone(), requests.clone());
        std::thread::spawn(move || {
            for mut request in server.incoming_requests() {
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                let answer = if request.url().ends_with("/models") {
                    let names = names.lock().map(|n| n.clone()).unwrap_or_default();
                    let data: Vec<Value> = names
                        .iter()
                        .map(|id| serde_json::json!({"id": id}))
                        .collect();
                    serde_json::json!({"object": "list", "data": data})
                } else {
                    let body: Value = serde_json::from_str(&body).unwrap_or_default();
                    let question = body["prompt"].as_str().unwrap_or_default();
                    let numbers: Vec<u64> = question
                        .split(|c: char| !c.is_ascii_digit())
                        .filter_map(|n| n.parse().ok())
                        .collect();
                    let sum: u64 = numbers.iter().sum();
                    let n = body["n"].as_u64().unwrap_or(1);
                    let choices: Vec<Value> = (0..n)
                        .map(|i| serde_json::json!({"index": i, "text": format!(" #### {sum}"), "finish_reason": "stop"}))
                        .collect();
                    if let Ok(mut seen) = seen.lock() {
                        seen.push(body);
                    }
                    serde_json::json!({"choices": choices})
                };
                let header = tiny_http::Header::from_bytes("Content-Type", "application/json");
                let mut response = tiny_http::Response::from_string(answer.to_string());
                if let Ok(header) = header {
                    response = response.with_header(header);
                }
                let _ = request.respond(response);
            }
        });
        Ok(Self {
            url: format!("http://127.0.0.1:{port}/v1"),
            served,
            requests,
        })
    }
}

#[test]
fn a_role_sampled_over_the_openai_api_answers_from_its_server() -> Result<()> {
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
    let server = MockServer::start()?;
    config.weak.sampler = SamplerSpec::OpenAi {
        endpoint: server.url.clone(),
        model: "{model}".into(),
        api_key_env: "W2S_TEST_NO_KEY".into(),
        concurrency: 2,
        timeout_s: 30,
    };
    let out = tmp.path().join("run");
    // The server does not serve the weak model yet: the run stops at its first pass and says
    // which model to serve.
    let weak_model = std::path::absolute(out.join("weak_sft/train/final"))?;
    let err = run(&config, &out).unwrap_err().to_string();
    assert!(err.contains("does not serve model"), "{err}");
    assert!(err.contains(&weak_model.display().to_string()), "{err}");
    assert!(out.join("weak_sft/stage.json").is_file());

    // Served now: the rerun reuses the weak model and samples it from the server.
    if let Ok(mut served) = server.served.lock() {
        served.push(weak_model.display().to_string());
    }
    let report = run(&config, &out)?;
    assert!(report.reused_stages.iter().any(|s| s == "weak_sft"));
    assert_eq!(report.rows[0].name, "weak");
    assert_eq!(
        report.rows[0].accuracy, 1.0,
        "the server answers every test question"
    );
    assert_eq!(report.weak_labels.accuracy, Some(1.0));
    let requests = server
        .requests
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    // 8 weak labels and 4 test answers.
    assert_eq!(requests.len(), 12);
    for body in &requests {
        assert_eq!(body["model"], weak_model.display().to_string());
        assert_eq!(
            (&body["n"], &body["temperature"], &body["max_tokens"]),
            (
                &serde_json::json!(1),
                &serde_json::json!(0.0),
                &serde_json::json!(10)
            )
        );
        assert_eq!(body["stop"], serde_json::json!(["Question"]));
    }
    let line = std::fs::read_to_string(out.join("weak_labels/samples.jsonl"))?;
    assert!(line.contains("\"finish_reason\":\"stop\""), "{line}");
    // The strong role is still sampled in process.
    assert!(out.join("eval_ceiling/graded.jsonl").is_file());
    Ok(())
}

#[test]
fn the_weak_role_sampled_by_w2s_serve_gives_the_report_of_the_built_in_engine() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut config = builtin_bases();
    let built_in = tmp.path().join("built_in");
    let expected = run(&config, &built_in)?;

    // w2s's own server, in this process, with the weak model the run below trains (the same
    // weights: the built-in run trained it from the same inputs), under the name that run asks
    // for.
    let served = tmp.path().join("served");
    let name = std::path::absolute(served.join("weak_sft/train/final"))?;
    let device = backend::device();
    let weak =
        ModelDir::<backend::Inference>::load(built_in.join("weak_sft/train/final"), &device)?;
    let serve_config = w2s::serve::ServeConfig::new("127.0.0.1:0", name.display().to_string());
    let server = w2s::serve::serve_model(weak, device, serve_config)?;
    config.weak.sampler = SamplerSpec::OpenAi {
        endpoint: server.base_url(),
        model: "{model}".into(),
        api_key_env: "W2S_TEST_NO_KEY".into(),
        concurrency: 4,
        timeout_s: 60,
    };
    let got = run(&config, &served)?;
    // The weak labels (8) and the weak model's test answers (8), one request each.
    assert_eq!(server.stats().completed, 16);
    assert_close(&comparable(&got)?, &comparable(&expected)?, 1e-9, "report");
    let ours = std::fs::read_to_string(built_in.join("weak_labels/samples.jsonl"))?;
    let theirs = std::fs::read_to_string(served.join("weak_labels/samples.jsonl"))?;
    let responses = |text: &str| -> Result<Vec<Value>> {
        text.lines()
            .map(|line| Ok(serde_json::from_str::<Value>(line)?["response"].clone()))
            .collect()
    };
    assert_eq!(responses(&theirs)?, responses(&ours)?);
    Ok(())
}
