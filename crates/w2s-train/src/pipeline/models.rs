//! What the stages do with models: make one from scratch, fine-tune one, answer questions with
//! one. Every model lives in an HF directory (config.json, model.safetensors, tokenizer.json), so
//! each stage's output can be loaded by transformers, and a rerun picks up where a crash left.

use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::{Deserialize, Serialize};
use w2s_curation::record::{PreferencePair, PreferenceRecord, Sample, SftExample, SftRecord};
use w2s_data::jsonl::{read_jsonl, BadLines};
use w2s_eval::{Problem, TaskKind};
use w2s_llama::{LlamaConfig, ModelDir, SaveOptions, Tokenizer, TokenizerConfig};
use w2s_losses::ChunkedLogprobsBackend;

use super::config::{DecodeConfig, ModelSpec};
use super::run_dir::{dir_fingerprint, Done};
use super::sampler::SampleRequest;
use crate::batching::{tokenize_pairs, tokenize_sft};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::evaluate::evaluate;
use crate::prompt_format::PromptFormat;
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

/// A model directory named in the config, used in place. Its fingerprint is its files' and, when
/// it reads prompts through its chat template, says so, so that switching `chat_template` reruns
/// every stage the model touches.
///
/// # Errors
/// An unreadable directory; with `chat_template`, a directory without a chat template (named) or
/// with unreadable tokenizer files.
pub(crate) fn given_model(path: &Path, chat_template: bool) -> Result<Done<PathBuf>> {
    let files = dir_fingerprint(path)?;
    let fingerprint = if chat_template {
        if TokenizerConfig::read(path)?.chat_template.is_none() {
            return Err(TrainError::config(
                "chat_template",
                format!(
                    "is true but {} has no chat template (chat_template.jinja, or a \
                     `chat_template` in tokenizer_config.json); a base model reads plain text",
                    path.display()
                ),
            ));
        }
        serde_json::json!({"files": files, "chat_template": true}).to_string()
    } else {
        files
    };
    Ok(Done {
        value: path.to_path_buf(),
        fingerprint,
    })
}

/// What a fine-tuning stage reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trained {
    /// The fine-tuned model directory.
    pub model: PathBuf,
    /// Training examples.
    pub examples: usize,
    /// Optimizer steps (`None` when an external trainer ran).
    pub steps: Option<usize>,
    /// Loss of the last step (`None` when an external trainer ran).
    pub final_loss: Option<f64>,
}

impl Trained {
    /// What a finished run made. A run that trained LoRA adapters (`final/` holds them in PEFT's
    /// layout) also writes them folded into the base as a plain model directory, `merged/` beside
    /// `final/`, which the later stages load like any other model.
    fn from_outcome<B: Backend>(
        outcome: TrainOutcome<B>,
        examples: usize,
        config: &LlamaConfig,
        tokenizer: Tokenizer,
    ) -> Result<Self> {
        let final_dir = outcome
            .final_dir
            .ok_or_else(|| TrainError::config("halt_after", "run halted"))?;
        let model = if outcome.model.lora().is_some() {
            let merged = final_dir.with_file_name("merged");
            ModelDir {
                path: merged.clone(),
                config: config.clone(),
                model: outcome.model.merge_adapters(),
                tokenizer: Some(tokenizer),
            }
            .save(&merged, SaveOptions::default())?;
            merged
        } else {
            final_dir
        };
        Ok(Self {
            model,
            examples,
            steps: Some(outcome.steps),
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

/// Fine-tunes the model in `start` on `examples`, as it reads them in `format`, into `dir/final`
/// (resuming from `dir`).
///
/// # Errors
/// Model, tokenizer and training errors.
pub fn fine_tune<B: AutodiffBackend + ChunkedLogprobsBackend>(
    start: &Path,
    examples: &[SftExample],
    format: PromptFormat,
    config: &TrainConfig,
    dir: &Path,
    quiet: bool,
    device: &B::Device,
) -> Result<Trained> {
    let (loaded, tokenizer, eos) = load_for_training::<B>(start, device)?;
    let records: Vec<SftRecord> = examples.iter().map(|e| format.sft_record(e)).collect();
    let train = tokenize_sft(&records, &tokenizer, eos)?;
    let options = TrainOptions {
        quiet,
        tokenizer: Some(tokenizer.clone()),
        base_model: Some(start.display().to_string()),
        ..TrainOptions::new(dir)
    };
    let outcome = train_sft(loaded.model, &loaded.config, &train, &[], config, &options)?;
    Trained::from_outcome(outcome, examples.len(), &loaded.config, tokenizer)
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

/// Samples of a stage's JSONL, responses trimmed (the base model's ICL answers start with the
/// space of `Answer: `, and an SFT target must not).
///
/// # Errors
/// An unreadable file or a malformed line.
pub fn read_samples(path: &Path) -> Result<Vec<Sample>> {
    Ok(trimmed(read_jsonl(path, BadLines::Fail)?.records))
}

/// `samples` with their responses trimmed of surrounding whitespace.
pub fn trimmed(mut samples: Vec<Sample>) -> Vec<Sample> {
    for s in &mut samples {
        s.response = s.response.trim().to_string();
    }
    samples
}

/// Greedy test accuracy of the model in `model_dir`, which reads the questions in `format`;
/// responses and grades go to `dir`.
///
/// # Errors
/// Model, generation and I/O errors.
#[allow(clippy::too_many_arguments)]
pub fn test_accuracy<B: AutodiffBackend>(
    model_dir: &Path,
    format: PromptFormat,
    task: TaskKind,
    test: &[Problem],
    decode: &DecodeConfig,
    dir: &Path,
    quiet: bool,
    device: &B::Device,
) -> Result<f64> {
    let (model, config, tokenizer) = load_inference::<B>(model_dir, device)?;
    let generation = SampleRequest::greedy(decode, 0).generation(&config);
    let run = evaluate(
        &model,
        &tokenizer,
        format,
        task,
        test,
        &generation,
        decode.prompts_per_batch,
        dir,
        quiet,
    )?;
    Ok(run.report.overall.accuracy)
}

/// Trains the model in `start` on preference `pairs`, as it reads them in `format`, with `loss`
/// into `dir/final`; losses with a reference use `start` itself, scored once before training.
///
/// # Errors
/// Model, tokenizer and training errors; no pairs.
#[allow(clippy::too_many_arguments)]
pub fn preference_tune<B: AutodiffBackend + ChunkedLogprobsBackend>(
    start: &Path,
    pairs: &[PreferencePair],
    format: PromptFormat,
    loss: &w2s_losses::PreferenceLossConfig,
    config: &TrainConfig,
    dir: &Path,
    quiet: bool,
    device: &B::Device,
) -> Result<Trained> {
    let (loaded, tokenizer, eos) = load_for_training::<B>(start, device)?;
    let records: Vec<PreferenceRecord> =
        pairs.iter().map(|p| format.preference_record(p)).collect();
    let train = tokenize_pairs(&records, &tokenizer, eos)?;
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
        tokenizer: Some(tokenizer.clone()),
        base_model: Some(start.display().to_string()),
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
    Trained::from_outcome(outcome, pairs.len(), &loaded.config, tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../w2s-llama/tests/fixtures")
            .join(name)
    }

    #[test]
    fn chat_template_is_refused_for_a_model_without_one_naming_it() {
        let dir = fixture("gqa_sharded");
        let plain = given_model(&dir, false).unwrap();
        assert_eq!(plain.fingerprint, dir_fingerprint(&dir).unwrap());
        let err = given_model(&dir, true).unwrap_err().to_string();
        assert!(err.contains("chat_template"), "{err}");
        assert!(err.contains(&dir.display().to_string()), "{err}");
    }

    #[test]
    fn switching_chat_template_changes_the_fingerprint() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        for file in ["config.json", "model.safetensors", "tokenizer.json"] {
            std::fs::copy(fixture("llama3_tied").join(file), dir.join(file)).unwrap();
        }
        let template = fixture("tokenization/no_bos/chat_template.jinja");
        std::fs::copy(template, dir.join("chat_template.jinja")).unwrap();
        let (plain, chat) = (
            given_model(dir, false).unwrap(),
            given_model(dir, true).unwrap(),
        );
        assert_eq!(chat.value, dir);
        assert_ne!(plain.fingerprint, chat.fingerprint);
    }
}
