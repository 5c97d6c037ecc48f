//! What the stages do with models: make one from scratch, fine-tune one, answer questions with
//! one. Every model lives in an HF directory (config.json, model.safetensors, tokenizer.json), so
//! each stage's output can be loaded by transformers, and a rerun picks up where a crash left.

use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::{Deserialize, Serialize};
use w2s_curation::record::{Sample, SftExample};
use w2s_data::jsonl::{read_jsonl, BadLines};
use w2s_eval::{Problem, TaskKind};
use w2s_llama::{GenerationConfig, LlamaConfig, ModelDir, Sampling, SaveOptions, Tokenizer};
use w2s_losses::ChunkedLogprobsBackend;

use super::config::{DecodeConfig, ModelSpec};
use crate::batching::tokenize_sft;
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::evaluate::evaluate;
use crate::sampling::{sample_dataset, PromptRecord};
use crate::sft::train_sft;
use crate::trainer::{TrainOptions, TrainOutcome};

/// The HF config of a from-scratch model for the tokenizer in `tokenizer` (a `tokenizer.json`).
///
/// The vocabulary size is the tokenizer's, and the BOS, EOS and padding ids are its ids of
/// Llama's special-token names `<s>`, `</s>` and `<pad>` (each `null` in the config when the
/// tokenizer lacks it), so any task's tokenizer that uses those names serves.
///
/// # Errors
/// An unreadable tokenizer; sizes the config refuses.
pub fn scratch_config(spec: &ModelSpec, tokenizer: &Path) -> Result<Option<LlamaConfig>> {
    let ModelSpec::Scratch {
        hidden_size,
        intermediate_size,
        layers,
        heads,
        max_positions,
    } = spec
    else {
        return Ok(None);
    };
    let tokenizer = Tokenizer::from_file(tokenizer, usize::MAX, None)?;
    let vocab_size = tokenizer.vocab_size();
    let json = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "max_position_embeddings": max_positions,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": false,
        "bos_token_id": tokenizer.token_id("<s>"),
        "eos_token_id": tokenizer.token_id("</s>"),
        "pad_token_id": tokenizer.token_id("<pad>"),
        "initializer_range": 0.02,
        "hidden_act": "silu",
    });
    Ok(Some(LlamaConfig::from_json(&json.to_string())?))
}

/// Writes a freshly initialised model (seeded) with `tokenizer` to `dir`.
///
/// # Errors
/// Invalid sizes, an unreadable tokenizer, I/O errors.
pub fn init_model<B: Backend>(
    config: LlamaConfig,
    tokenizer: &Path,
    seed: u64,
    dir: &Path,
    device: &B::Device,
) -> Result<()> {
    B::seed(device, seed);
    let model = config.init::<B>(device)?;
    let tokenizer = Tokenizer::from_file(tokenizer, config.vocab_size, config.bos_token_id)?;
    ModelDir {
        path: dir.to_path_buf(),
        config,
        model,
        tokenizer: Some(tokenizer),
    }
    .save(dir, SaveOptions::default())?;
    Ok(())
}

/// What a fine-tuning stage reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trained {
    /// The fine-tuned model directory.
    pub model: PathBuf,
    /// Training examples.
    pub examples: usize,
    /// Optimizer steps.
    pub steps: usize,
    /// Loss of the last step.
    pub final_loss: Option<f64>,
}

impl Trained {
    fn from_outcome<B: Backend>(outcome: TrainOutcome<B>, examples: usize) -> Result<Self> {
        let model = outcome
            .final_dir
            .ok_or_else(|| TrainError::config("halt_after", "run halted"))?;
        Ok(Self {
            model,
            examples,
            steps: outcome.steps,
            final_loss: outcome.last_step.get("loss").copied(),
        })
    }
}

/// A model to train, its tokenizer and the EOS id appended to targets.
fn load_for_training<B: Backend>(
    start: &Path,
    device: &B::Device,
) -> Result<(ModelDir<B>, Tokenizer, Option<u32>)> {
    let loaded = ModelDir::<B>::load(start, device)?;
    let tokenizer = loaded.tokenizer()?.clone();
    let eos = loaded.config.eos_token_ids().first().copied();
    Ok((loaded, tokenizer, eos))
}

/// Fine-tunes the model in `start` on `examples` into `dir/final` (resuming from `dir`).
///
/// # Errors
/// Model, tokenizer and training errors.
pub fn fine_tune<B: AutodiffBackend + ChunkedLogprobsBackend>(
    start: &Path,
    examples: &[SftExample],
    config: &TrainConfig,
    dir: &Path,
    quiet: bool,
    device: &B::Device,
) -> Result<Trained> {
    let (loaded, tokenizer, eos) = load_for_training::<B>(start, device)?;
    let train = tokenize_sft(examples, &tokenizer, eos)?;
    let options = TrainOptions {
        quiet,
        tokenizer: Some(tokenizer),
        ..TrainOptions::new(dir)
    };
    let outcome = train_sft(loaded.model, &loaded.config, &train, &[], config, &options)?;
    Trained::from_outcome(outcome, examples.len())
}

/// Loads a model directory for inference.
///
/// # Errors
/// As [`ModelDir::load`], and a directory without tokenizer.
pub fn load_inference<B: AutodiffBackend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(w2s_llama::Llama<B::InnerBackend>, LlamaConfig, Tokenizer)> {
    let loaded = ModelDir::<B>::load(dir, device)?;
    let tokenizer = loaded.tokenizer()?.clone();
    Ok((loaded.model.valid(), loaded.config, tokenizer))
}

/// How a pass decodes: greedy (`temperature = 0`) or sampled.
pub fn generation_config(
    decode: &DecodeConfig,
    model: &LlamaConfig,
    temperature: f32,
    num_samples: usize,
    seed: u64,
) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: decode.max_new_tokens,
        sampling: Sampling {
            temperature,
            ..Sampling::greedy()
        },
        seed,
        num_samples,
        eos_token_ids: model.eos_token_ids(),
        stop_strings: decode.stop_strings.clone(),
        use_cache: true,
    }
}

/// Answers every prompt with the model in `model_dir` into `out` (resumable JSONL) and returns
/// the samples with responses trimmed of surrounding whitespace.
///
/// # Errors
/// Model, generation and I/O errors.
#[allow(clippy::too_many_arguments)]
pub fn answer<B: AutodiffBackend>(
    model_dir: &Path,
    prompts: &[PromptRecord],
    decode: &DecodeConfig,
    temperature: f32,
    num_samples: usize,
    seed: u64,
    out: &Path,
    quiet: bool,
    device: &B::Device,
) -> Result<Vec<Sample>> {
    let (model, config, tokenizer) = load_inference::<B>(model_dir, device)?;
    let generation = generation_config(decode, &config, temperature, num_samples, seed);
    let per_batch = (decode.prompts_per_batch / num_samples).max(1);
    sample_dataset(
        &model,
        &config,
        &tokenizer,
        prompts,
        &generation,
        per_batch,
        out,
        quiet,
    )?;
    read_samples(out)
}

/// Samples of a stage's JSONL, responses trimmed (the base model's ICL answers start with the
/// space of `Answer: `, and an SFT target must not).
///
/// # Errors
/// An unreadable file or a malformed line.
pub fn read_samples(path: &Path) -> Result<Vec<Sample>> {
    let mut samples: Vec<Sample> = read_jsonl(path, BadLines::Fail)?.records;
    for s in &mut samples {
        s.response = s.response.trim().to_string();
    }
    Ok(samples)
}

/// Greedy test accuracy of the model in `model_dir`; responses and grades go to `dir`.
///
/// # Errors
/// Model, generation and I/O errors.
pub fn test_accuracy<B: AutodiffBackend>(
    model_dir: &Path,
    task: TaskKind,
    test: &[Problem],
    decode: &DecodeConfig,
    dir: &Path,
    quiet: bool,
    device: &B::Device,
) -> Result<f64> {
    let (model, config, tokenizer) = load_inference::<B>(model_dir, device)?;
    let generation = generation_config(decode, &config, 0.0, 1, 0);
    let run = evaluate(
        &model,
        &tokenizer,
        task,
        test,
        &generation,
        decode.prompts_per_batch,
        dir,
        quiet,
    )?;
    Ok(run.report.overall.accuracy)
}

/// Trains the model in `start` on preference `pairs` with `loss` into `dir/final`; losses with
/// a reference use `start` itself, scored once before training.
///
/// # Errors
/// Model, tokenizer and training errors; no pairs.
pub fn preference_tune<B: AutodiffBackend + ChunkedLogprobsBackend>(
    start: &Path,
    pairs: &[w2s_curation::record::PreferencePair],
    loss: &w2s_losses::PreferenceLossConfig,
    config: &TrainConfig,
    dir: &Path,
    quiet: bool,
    device: &B::Device,
) -> Result<Trained> {
    let (loaded, tokenizer, eos) = load_for_training::<B>(start, device)?;
    let train = crate::batching::tokenize_pairs(pairs, &tokenizer, eos)?;
    let reference = if loss.needs_reference() {
        let logps = crate::preference::precompute_reference(&loaded.model.valid(), &train, config)?;
        crate::preference::Reference::Precomputed {
            train: logps,
            eval: Vec::new(),
        }
    } else {
        crate::preference::Reference::None
    };
    let options = TrainOptions {
        quiet,
        tokenizer: Some(tokenizer),
        ..TrainOptions::new(dir)
    };
    let outcome = crate::preference::train_preference(
        loaded.model,
        &loaded.config,
        &train,
        &[],
        loss,
        reference,
        config,
        &options,
    )?;
    Trained::from_outcome(outcome, pairs.len())
}
