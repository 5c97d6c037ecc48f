//! The training loop shared by SFT and preference optimization.
//!
//! One optimizer step, read top to bottom (after nanoGPT's `train.py`):
//! learning rate from the schedule → for each micro-batch: loss (already divided by the step's
//! normaliser) → backward → accumulate gradients → stop on a non-finite loss or gradient norm →
//! clip by global norm → AdamW step → log → evaluate / checkpoint when due.
//!
//! Each micro-batch's loss is its share of the whole step's loss (token sums over the step's token
//! count for SFT, per-pair losses over the step's pair count for preferences), so accumulating `k`
//! micro-batches gives the gradient of one batch `k` times the size.
//!
//! Before anything is written, the run's memory plan ([`crate::memory_plan`]) is printed and
//! checked against [`TrainOptions::memory_budget`], so a run that cannot fit is refused up front.
//!
//! A resume continues from the newest checkpoint that loads and belongs to this run: same config,
//! same batch plan, same token ids ([`Plan::fingerprint`]). Every checkpoint (the last step always
//! makes one) also redraws `metrics.svg` from `metrics.jsonl`, so even a killed run has its chart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde_json::{Map, Value};
use w2s_llama::{Llama, LlamaConfig, Tokenizer};

use crate::batching::Plan;
use crate::checkpoint::{
    load_newest_checkpoint, save_checkpoint, save_model, state_param_ids, Checkpoint, TrainerState,
};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::memory_plan::{
    print_and_check, trained_parameter_count, MemoryBudget, MemoryPlan, MicroBatch, TrainingShape,
};
use crate::metrics_log::{progress_bar, MetricsLog, CHART_FILE, METRICS_FILE};
use crate::optimizer::{adamw, clip_global_norm};
use crate::schedule::learning_rate;

/// Where a run writes and how it behaves; none of this changes what it computes.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Checkpoints (`ckpt-N/`), `metrics.jsonl`, its chart `metrics.svg` and the final model
    /// (`final/`) go here.
    pub output_dir: PathBuf,
    /// Continue from the newest checkpoint in `output_dir` that loads, when there is one.
    pub resume: bool,
    /// No progress bar and no printed memory plan.
    pub quiet: bool,
    /// Saved into the final model directory, so it is a complete HF model directory.
    pub tokenizer: Option<Tokenizer>,
    /// Stop after this many steps as if the process were killed there: no final save. For
    /// time-boxed jobs and for testing resume.
    pub halt_after: Option<usize>,
    /// Refuse to start when the run's memory plan ([`crate::memory_plan`]) is larger; `None`
    /// prints the plan without checking it.
    pub memory_budget: Option<MemoryBudget>,
    /// The base model's HF id or directory, recorded as `base_model_name_or_path` in saved LoRA
    /// adapters so PEFT can find it.
    pub base_model: Option<String>,
}

impl TrainOptions {
    /// Options writing to `output_dir`, resuming, with a progress bar.
    pub fn new(output_dir: impl Into<PathBuf>) -> Self {
        Self {
            output_dir: output_dir.into(),
            resume: true,
            quiet: false,
            tokenizer: None,
            halt_after: None,
            memory_budget: None,
            base_model: None,
        }
    }
}

/// What a run did.
#[derive(Debug)]
pub struct TrainOutcome<B: Backend> {
    /// The trained model.
    pub model: Llama<B>,
    /// Optimizer steps done (all of them unless halted).
    pub steps: usize,
    /// Optimizer steps the run was planned for.
    pub total_steps: usize,
    /// The step the run resumed from, if it did.
    pub resumed_from: Option<usize>,
    /// Records left out for being longer than `max_seq_len` (`overlong = "skip"`).
    pub skipped_records: usize,
    /// The final model directory (HF layout; PEFT's adapter layout when training LoRA), unless
    /// halted.
    pub final_dir: Option<PathBuf>,
    /// The metrics of the last step.
    pub last_step: BTreeMap<String, f64>,
    /// The last evaluation's metrics, if any.
    pub last_eval: BTreeMap<String, f64>,
}

/// The output of one micro-batch.
pub(crate) struct MicroStep<B: Backend> {
    /// The micro-batch's share of the step loss, `[1]`.
    pub loss: Tensor<B, 1>,
    /// Metrics already weighted by the micro-batch's share (they sum to the step's mean).
    pub metrics: Vec<(String, f64)>,
}

/// What an objective (SFT, preference) supplies to the loop.
pub(crate) trait Objective<B: AutodiffBackend> {
    /// The objective's config, saved with checkpoints and compared on resume.
    fn config_json(&self) -> Value;
    /// Padded-size cost of each record, for batching.
    fn lengths(&self) -> Vec<usize>;
    /// Rows of the forward pass per record, whose tokens its [`Objective::lengths`] cost counts.
    fn rows_per_record(&self) -> usize {
        1
    }
    /// Parameters of a frozen model the objective holds beside the one it trains.
    fn reference_params(&self) -> usize {
        0
    }
    /// Real (non-pad) tokens of a micro-batch's rows, for `num_tokens`.
    fn tokens(&self, batch: &[usize]) -> usize;
    /// Digest of every token id of the training records ([`crate::batching::token_digest`]),
    /// so that a resume onto other data is refused.
    fn token_digest(&self) -> u64;
    /// Normaliser units (completion tokens, pairs) of a micro-batch.
    fn units(&self, batch: &[usize]) -> f64;
    /// The loss of a micro-batch as its share of a step of `step_units` units.
    fn micro_step(
        &self,
        model: &Llama<B>,
        batch: &[usize],
        step_units: f64,
    ) -> Result<MicroStep<B>>;
    /// Metrics on the evaluation set (keys without the `eval/` prefix); `None` without one.
    fn evaluate(&self, model: &Llama<B::InnerBackend>) -> Result<Option<BTreeMap<String, f64>>>;
}

pub(crate) fn scalar<B: Backend>(t: Tensor<B, 1>) -> Result<f64> {
    let data = t.into_data().convert::<f64>();
    let values = data
        .to_vec::<f64>()
        .map_err(|e| TrainError::TensorData(format!("{e:?}")))?;
    Ok(values.first().copied().unwrap_or(f64::NAN))
}

/// Runs `objective` on `model` (see the module docs).
pub(crate) fn run<B: AutodiffBackend, O: Objective<B>>(
    model: Llama<B>,
    llama_config: &LlamaConfig,
    objective: &O,
    config: &TrainConfig,
    options: &TrainOptions,
    skipped_records: usize,
) -> Result<TrainOutcome<B>> {
    config.validate()?;
    let device = crate::scoring::model_device(&model);
    let model = with_configured_lora(model, config, &device)?;
    let lengths = objective.lengths();
    let memory = MemoryPlan::training(&TrainingShape {
        model: llama_config,
        config,
        micro_batch: MicroBatch::largest(
            &lengths,
            objective.rows_per_record(),
            config.batch_tokens,
        ),
        trained_params: trained_parameter_count(&model),
        reference_params: objective.reference_params(),
        lora: model.lora(),
        base_dtype: model.base_dtype(),
    });
    print_and_check(&memory, options.memory_budget.as_ref(), options.quiet)?;
    let out = &options.output_dir;
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    let plan = Plan::new(&lengths, config);
    let fingerprint = plan.fingerprint(objective.token_digest());
    let run_config = serde_json::json!({
        "train": config,
        "objective": objective.config_json(),
    });
    let base_model = options.base_model.as_deref();

    let mut model = model;
    let mut optimizer = adamw::<B>(config);
    let mut start = 0;
    let mut resumed_from = None;
    if options.resume {
        if let Some(ckpt) = resume_point(out, config, &run_config, fingerprint, &model, &device)? {
            model = ckpt.model;
            optimizer = ckpt.optimizer;
            start = ckpt.state.step;
            resumed_from = Some(start);
        }
    }

    let mut log = MetricsLog::open(&out.join(METRICS_FILE), start)?;
    let bar = progress_bar(plan.steps, start, "steps", options.quiet);
    let mut num_tokens: usize = (0..start)
        .flat_map(|step| plan.step(step))
        .map(|batch| objective.tokens(batch))
        .sum();
    let mut last_step = BTreeMap::new();
    let mut last_eval = BTreeMap::new();
    for step in start..plan.steps {
        let done = step + 1;
        let lr = learning_rate(config, step, plan.steps);
        let batches = plan.step(step);
        let total: f64 = batches.iter().map(|b| objective.units(b)).sum();
        let tokens: usize = batches.iter().map(|b| objective.tokens(b)).sum();
        let clock = Instant::now();
        let mut accumulator = GradientsAccumulator::<Llama<B>>::new();
        let mut loss = 0.0;
        let mut metrics: BTreeMap<String, f64> = BTreeMap::new();
        for batch in batches {
            let micro = objective.micro_step(&model, batch, total)?;
            loss += scalar(micro.loss.clone())?;
            for (name, value) in micro.metrics {
                *metrics.entry(name).or_default() += value;
            }
            let grads = GradientsParams::from_grads(micro.loss.backward(), &model);
            accumulator.accumulate(&model, grads);
        }
        if !loss.is_finite() {
            return Err(TrainError::NonFinite {
                what: "loss",
                step: done,
                value: loss,
            });
        }
        let mut grads = accumulator.grads();
        let grad_norm = clip_global_norm(&model, &mut grads, config.max_grad_norm)?;
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFinite {
                what: "gradient norm",
                step: done,
                value: grad_norm,
            });
        }
        model = optimizer.step(lr, model, grads);
        let seconds = clock.elapsed().as_secs_f64();
        num_tokens += tokens;

        metrics.insert("loss".into(), loss);
        metrics.insert("learning_rate".into(), lr);
        metrics.insert("grad_norm".into(), grad_norm);
        metrics.insert("num_tokens".into(), num_tokens as f64);
        metrics.insert("tokens_per_s".into(), tokens as f64 / seconds.max(1e-9));
        metrics.insert(
            "epoch".into(),
            (done * plan.accum).min(plan.micro_batches.len()) as f64 / plan.per_epoch,
        );
        log.write(&line(done, "", &metrics))?;
        bar.set_message(format!("loss {loss:.4} lr {lr:.2e}"));
        last_step = metrics;

        let last = done == plan.steps;
        if config.eval_every.is_some_and(|n| done % n == 0) || last {
            if let Some(eval) = objective.evaluate(&model.valid())? {
                log.write(&line(done, "eval/", &eval))?;
                last_eval = eval;
            }
        }
        if config.checkpoint_every.is_some_and(|n| done % n == 0) || last {
            let state = TrainerState {
                step: done,
                total_steps: plan.steps,
                plan_fingerprint: fingerprint,
                learning_rate: lr,
                param_ids: state_param_ids(&model),
            };
            save_checkpoint(
                out,
                &model,
                llama_config,
                base_model,
                &optimizer,
                &state,
                &run_config,
            )?;
            log.write_chart(&out.join(CHART_FILE))?;
        }
        bar.inc(1);
        if options.halt_after == Some(done) && !last {
            bar.abandon();
            return Ok(TrainOutcome {
                model,
                steps: done,
                total_steps: plan.steps,
                resumed_from,
                skipped_records,
                final_dir: None,
                last_step,
                last_eval,
            });
        }
    }
    bar.finish();

    let final_dir = out.join("final");
    save_model(&final_dir, &model, llama_config, base_model, &run_config)?;
    if let Some(tokenizer) = &options.tokenizer {
        tokenizer.save(&final_dir)?;
    }
    Ok(TrainOutcome {
        model,
        steps: plan.steps,
        total_steps: plan.steps,
        resumed_from,
        skipped_records,
        final_dir: Some(final_dir),
        last_step,
        last_eval,
    })
}

/// The checkpoint in `out` to resume from: the newest that loads ([`load_newest_checkpoint`]),
/// refused unless it was saved by a run of the same `run_config` and data-plan `fingerprint`.
fn resume_point<B: AutodiffBackend>(
    out: &Path,
    config: &TrainConfig,
    run_config: &Value,
    fingerprint: u64,
    base: &Llama<B>,
    device: &B::Device,
) -> Result<Option<Checkpoint<B>>> {
    let Some(ckpt) = load_newest_checkpoint(out, || adamw::<B>(config), base, device)? else {
        return Ok(None);
    };
    let refuse = |reason: String| TrainError::Resume {
        path: ckpt.dir.clone(),
        reason,
    };
    if ckpt.run_config != *run_config {
        return Err(refuse(format!(
            "it was trained with another config: {} (now {run_config})",
            ckpt.run_config
        )));
    }
    if ckpt.state.plan_fingerprint != fingerprint {
        return Err(refuse(
            "it was trained on other data: the token ids of the training records differ".into(),
        ));
    }
    Ok(Some(ckpt))
}

/// `model` with the adapters `config.lora` asks for: fresh ones drawn from `config.seed`, or the
/// model's own when it already has the same (training an adapter further).
fn with_configured_lora<B: Backend>(
    model: Llama<B>,
    config: &TrainConfig,
    device: &B::Device,
) -> Result<Llama<B>> {
    match (&config.lora, model.lora()) {
        (None, _) => Ok(model),
        (Some(wanted), Some(has)) if wanted == has => Ok(model),
        (Some(_), Some(has)) => Err(TrainError::config(
            "lora",
            format!("differs from the adapters the model already has ({has:?})"),
        )),
        (Some(wanted), None) => {
            B::seed(device, config.seed);
            Ok(model.with_lora(wanted, device)?)
        }
    }
}

fn line(step: usize, prefix: &str, metrics: &BTreeMap<String, f64>) -> Map<String, Value> {
    let mut line = Map::new();
    line.insert("step".into(), step.into());
    for (name, value) in metrics {
        line.insert(format!("{prefix}{name}"), (*value).into());
    }
    line
}
