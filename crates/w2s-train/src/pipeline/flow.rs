//! [`run_pipeline`]: the stages of docs/method.md in the order they run ([`Flow::run`]), each a
//! method in `stages/` over the two roles' engines.

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use serde_json::Value;
use w2s_losses::ChunkedLogprobsBackend;

use super::config::PipelineConfig;
use super::report::PipelineReport;
use super::role::Role;
use super::run_dir::{write_json, RunDir};
use super::sampler::{BurnSampler, OpenAiSampler, Sampler};
use super::trainer::{BurnTrainer, CommandTrainer, Commands, TrainKind, Trainer};
use crate::error::Result;

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
    let engines = |name: &str, role| Engines::new::<B>(name, role, config, options.quiet, device);
    let flow = Flow::<B> {
        config,
        quiet: options.quiet,
        device,
        weak: engines("weak", &config.weak)?,
        strong: engines("strong", &config.strong)?,
    };
    let report = flow.run(&mut run, &options.backend)?;
    report.write(run.root())?;
    Ok(report)
}

/// A role's engines: what samples its models and what fine-tunes them, both reading the
/// method's prompts as the role's model does.
pub(super) struct Engines<'a> {
    pub role: &'a Role,
    pub sampler: Box<dyn Sampler + 'a>,
    pub trainer: Box<dyn Trainer + 'a>,
}

impl<'a> Engines<'a> {
    fn new<B: AutodiffBackend + ChunkedLogprobsBackend>(
        name: &str,
        role: &'a Role,
        config: &PipelineConfig,
        quiet: bool,
        device: &'a B::Device,
    ) -> Result<Self> {
        let format = role.model.prompt_format();
        let sampler: Box<dyn Sampler + 'a> = match OpenAiSampler::new(&role.sampler, format, quiet)
        {
            Some(server) => Box::new(server),
            None => Box::new(BurnSampler::<B> {
                format,
                prompts_per_batch: config.generation.prompts_per_batch,
                quiet,
                device,
            }),
        };
        let trainer: Box<dyn Trainer + 'a> = match Commands::parse(name, &role.trainer)? {
            Some(commands) => Box::new(CommandTrainer::<B::InnerBackend> {
                commands,
                format,
                quiet,
                device,
            }),
            None => Box::new(BurnTrainer::<B> {
                format,
                quiet,
                device,
            }),
        };
        Ok(Self {
            role,
            sampler,
            trainer,
        })
    }

    /// A sampling stage's fingerprint inputs: `inputs`, and the sampler unless it is built in.
    pub fn sampled(&self, inputs: Value) -> Value {
        with_engine(inputs, "sampler", self.role.sampler.fingerprint())
    }

    /// A training stage's fingerprint inputs: `inputs`, and the trainer unless it is built in.
    pub fn trained(&self, inputs: Value, kind: TrainKind) -> Value {
        with_engine(inputs, "trainer", self.role.trainer.fingerprint(kind))
    }
}

/// `inputs` with `engine` under `key` when there is one: the built-in engines add nothing, so
/// their stages keep the fingerprints they had before engines could be chosen.
fn with_engine(inputs: Value, key: &str, engine: Option<Value>) -> Value {
    match (inputs, engine) {
        (Value::Object(mut fields), Some(engine)) => {
            fields.insert(key.into(), engine);
            Value::Object(fields)
        }
        (inputs, _) => inputs,
    }
}

/// One pipeline run: the config, and each role's engines.
pub(super) struct Flow<'a, B: AutodiffBackend> {
    pub config: &'a PipelineConfig,
    pub quiet: bool,
    /// The device from-scratch models are initialised on.
    pub device: &'a B::Device,
    pub weak: Engines<'a>,
    pub strong: Engines<'a>,
}

impl<B: AutodiffBackend + ChunkedLogprobsBackend> Flow<'_, B> {
    /// The method, stage by stage (docs/method.md).
    fn run(&self, run: &mut RunDir, backend: &str) -> Result<PipelineReport> {
        // D_gold,1, D_gold,2 and test; the arithmetic task's tokenizer and corpora.
        let splits = self.splits(run)?;
        // The strong base M and the weak base, given, built in, or pretrained from scratch.
        let strong_base = self.strong_base(run, &splits)?;
        let weak_base = self.weak_base(run, &splits)?;
        // The weak model m: SFT on D_gold,1; its greedy answers on D_gold,2.
        let weak = self.weak_sft(run, &splits, &weak_base)?;
        let labels = self.weak_labels(run, &splits, &weak)?;
        // Baselines: M on every weak answer (naive) and on the gold answers (ceiling).
        let naive = self.naive(run, &strong_base, &labels)?;
        let ceiling = self.ceiling(run, &splits, &strong_base)?;
        // Stage I: SFT on the answers two sources agree on, over iterations; M_plus.
        let stage1 = self.stage1(run, &splits, &strong_base, &labels)?;
        // Stage II: M_plus's samples, mined pairs, one preference run per loss.
        let stage2 = self.stage2(run, &splits, stage1.m_plus()?, &labels)?;
        // Greedy test accuracy of every model, in the table's order.
        let mut models = vec![("weak".to_string(), weak), ("naive".to_string(), naive)];
        models.extend(stage1.models());
        models.extend(stage2.models);
        models.push(("ceiling".to_string(), ceiling));
        let accuracies = self.evaluate(run, &splits, &models, &stage1.last_name())?;
        Ok(PipelineReport {
            task: self.config.task,
            seed: self.config.seed,
            backend: backend.to_string(),
            rows: PipelineReport::rows(&accuracies),
            weak_labels: labels.quality,
            stage1: stage1.iterations,
            stage2: stage2.stats,
            seconds: PipelineReport::seconds(run.times()),
            reused_stages: run
                .times()
                .iter()
                .filter(|t| t.reused)
                .map(|t| t.stage.clone())
                .collect(),
        })
    }
}
