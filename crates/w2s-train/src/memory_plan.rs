//! The memory plan of a training or sampling stage: what the stage holds at its peak, line by
//! line, printed before it starts and checked against the memory there is, so that a run that
//! cannot fit is refused up front with what to change, instead of being killed part-way.
//!
//! Every line follows the code that allocates it; tensors are f32 (4 bytes) except a bf16 base
//! (`w2s_llama::Llama::cast_base`), whose weights and KV cache take 2:
//!
//! - weights: 4 bytes per parameter ([`parameter_count`]), 2 for a bf16 base;
//! - reference model: 4 per parameter of a frozen reference model scored on every micro-batch;
//! - adapters: 4 per LoRA adapter parameter, `r · (d_in + d_out)` per adapted projection
//!   ([`adapter_parameter_count`]); with adapters the trained parameters are theirs alone;
//! - gradients: 4 per trained parameter (one that requires grad, [`trained_parameter_count`]),
//!   twice with gradient accumulation, where burn's accumulator holds the sum while the next
//!   micro-batch's gradients are made;
//! - optimizer state: 8 per trained parameter, AdamW's two moments;
//! - activations, when training: what autodiff keeps for backward over the largest micro-batch
//!   (below);
//! - chunked loss: one `[chunk, vocab]` logits buffer, reused by every chunk of
//!   `w2s_losses::chunked`;
//! - checkpoint: what writing a checkpoint needs beyond the gradients and activations it comes
//!   after: the optimizer state as host data, then as bytes, 16 per trained parameter;
//! - KV cache: keys and values of every layer at the capacity `w2s_llama`'s cache grows to by
//!   doubling, and of one layer more: the layer being regrown holds its old buffers and a
//!   zeroed spare beside the new ones;
//! - activations, when sampling: the prefill's tensors beside the cache as it is then, beyond
//!   what the cache's later growth needs (the two peaks do not coincide).
//!
//! Activations, in f32 values per token of a micro-batch of rows of `s` tokens, for hidden size
//! `d`, MLP width `i`, `h` query heads, `g` key/value heads of width `e` and `L` layers (from
//! `w2s_llama::model` and what the backward operations of `w2s_kernels` keep):
//!
//! ```text
//! layer    = 4d                        both norms' inputs and outputs (the residual stream, what
//!                                      q/k/v and gate/up read)
//!          + 2he + 2ge                 rotated queries and keys, values, the attention output
//!          + h·s                       attention probabilities [b, h, s, s] (softmax's backward)
//!          + 3i                        MLP gate, up and their SwiGLU product
//! shared   = h·s + 2he (+ 2ge if g<h)  the attention bias and the RoPE cos/sin tables
//! head     = 4d                        the final norm's input and output, the loss's hidden
//!                                      states and their gradient
//! training = L·layer + shared + head   backward frees each layer's tensors as it makes their
//!                                      gradients, so its peak is the forward's
//! prefill  = shared + 2d               sampling, without autodiff: the residual and its normed
//!          + max(2he + 2ge + h·s, 3i)  copy beside the larger of attention's tensors (queries
//!                                      before and after rotation, keys, values, scores) and
//!                                      the MLP's
//! ```
//!
//! The total is the sum of the lines, which leans high (during backward the gradients grow while
//! the activations are freed) and leaves out what is not a tensor: the program, the tokenized
//! data and the allocator's slack. docs/performance.md compares plans with measured peaks.

use std::fmt;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::FloatDType;
use w2s_llama::{LlamaConfig, LoraConfig, LoraTarget};

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};

/// Bytes of one f32.
const F32: u64 = 4;
/// Bytes per trained parameter of AdamW's state: two f32 moments.
const ADAMW_BYTES: u64 = 2 * F32;
/// Bytes per trained parameter while a checkpoint serializes the optimizer state: the moments
/// as host data, then as bincode bytes.
const CHECKPOINT_BYTES: u64 = 2 * ADAMW_BYTES;

/// One part of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryLine {
    /// What it is ("weights", "activations", ...).
    pub name: &'static str,
    /// Its size.
    pub bytes: u64,
    /// How the size was reached, for the printed table.
    pub detail: String,
}

/// What a plan is for, with the settings a refusal tells the user to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanStage {
    /// A training run.
    Training {
        /// Padded tokens of the largest micro-batch.
        micro_batch_tokens: usize,
        /// Tokens of its longest row.
        seq_len: usize,
        /// Micro-batches per optimizer step.
        grad_accum_steps: usize,
    },
    /// Batched generation with a KV cache.
    Sampling {
        /// Rows generated together (prompts per batch x samples per prompt).
        rows: usize,
        /// Tokens of the longest prompt.
        prompt_len: usize,
        /// Most tokens generated per row.
        max_new_tokens: usize,
    },
}

/// What a stage holds at its peak, line by line (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryPlan {
    stage: PlanStage,
    lines: Vec<MemoryLine>,
}

/// The memory a plan must fit in, and where that figure came from (for the messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryBudget {
    /// Bytes available.
    pub bytes: u64,
    /// Where the figure came from, e.g. "--memory-budget" or "MemTotal in /proc/meminfo".
    pub source: &'static str,
}

impl MemoryBudget {
    /// This machine's memory: `MemTotal` of `/proc/meminfo`; `None` where there is no such file
    /// (not Linux). The right budget for CPU backends only: burn 0.21 cannot query a GPU's
    /// memory, so a GPU run needs a budget given by hand.
    pub fn host() -> Option<Self> {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kib: u64 = text
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(Self {
            bytes: kib * 1024,
            source: "MemTotal in /proc/meminfo",
        })
    }
}

/// The largest micro-batch the trainer's batching can form: padded tokens and the longest row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MicroBatch {
    /// Padded tokens (rows x longest row).
    pub tokens: usize,
    /// Tokens of the longest row.
    pub seq_len: usize,
}

impl MicroBatch {
    /// The bound the batching gives for records of padded cost `costs` (tokens of a record's
    /// `rows_per_record` rows at its longest; a preference pair is two rows): a micro-batch
    /// stays within `batch_tokens` unless one record alone is longer, and holds at most every
    /// record, each padded to the longest.
    pub fn largest(costs: &[usize], rows_per_record: usize, batch_tokens: usize) -> Self {
        let longest = costs.iter().copied().max().unwrap_or(0);
        Self {
            tokens: batch_tokens.max(longest).min(costs.len() * longest),
            seq_len: longest / rows_per_record.max(1),
        }
    }
}

/// What a training plan is computed from.
#[derive(Debug, Clone, Copy)]
pub struct TrainingShape<'a> {
    /// The model being trained.
    pub model: &'a LlamaConfig,
    /// The run's options (gradient accumulation, loss chunk).
    pub config: &'a TrainConfig,
    /// The largest micro-batch.
    pub micro_batch: MicroBatch,
    /// Parameters that receive gradients and optimizer state ([`trained_parameter_count`]).
    pub trained_params: usize,
    /// Parameters of a frozen reference model held beside it (0 for none).
    pub reference_params: usize,
    /// The LoRA adapters trained on the frozen base, if any.
    pub lora: Option<&'a LoraConfig>,
    /// The dtype the base weights are held in.
    pub base_dtype: FloatDType,
}

/// What a sampling plan is computed from.
#[derive(Debug, Clone, Copy)]
pub struct SamplingShape<'a> {
    /// The model generating.
    pub model: &'a LlamaConfig,
    /// Rows generated together (prompts per batch x samples per prompt).
    pub rows: usize,
    /// Tokens of the longest prompt.
    pub prompt_len: usize,
    /// Most tokens generated per row.
    pub max_new_tokens: usize,
    /// LoRA adapters on the model, if any.
    pub lora: Option<&'a LoraConfig>,
    /// The dtype the base weights (and so the KV cache) are held in.
    pub base_dtype: FloatDType,
}

/// Parameters of a model with `config`, as `LlamaConfig::init` and the weight loader build it.
pub fn parameter_count(config: &LlamaConfig) -> usize {
    let (d, i, v) = (
        config.hidden_size,
        config.intermediate_size,
        config.vocab_size,
    );
    let (q, kv) = (
        config.num_attention_heads * config.head_dim(),
        config.num_key_value_heads() * config.head_dim(),
    );
    let layer = 2 * d * q + 2 * d * kv + 3 * d * i + 2 * d;
    let head = if config.tie_word_embeddings { 0 } else { d * v };
    v * d + config.num_hidden_layers * layer + d + head
}

/// Parameters of the LoRA adapters `lora` puts on a model with `config`.
pub fn adapter_parameter_count(config: &LlamaConfig, lora: &LoraConfig) -> usize {
    let (d, i) = (config.hidden_size, config.intermediate_size);
    let (q, kv) = (
        config.num_attention_heads * config.head_dim(),
        config.num_key_value_heads() * config.head_dim(),
    );
    let per_layer: usize = lora
        .targets
        .iter()
        .map(|target| {
            let (d_in, d_out) = match target {
                LoraTarget::QProj => (d, q),
                LoraTarget::KProj | LoraTarget::VProj => (d, kv),
                LoraTarget::OProj => (q, d),
                LoraTarget::GateProj | LoraTarget::UpProj => (d, i),
                LoraTarget::DownProj => (i, d),
            };
            lora.r * (d_in + d_out)
        })
        .sum();
    config.num_hidden_layers * per_layer
}

/// Parameters of `module` that require gradients: those the optimizer trains. On a backend
/// without autodiff, none.
pub fn trained_parameter_count<B: Backend, M: Module<B>>(module: &M) -> usize {
    struct Count(usize);
    impl<B: Backend> ModuleVisitor<B> for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if param.is_require_grad() {
                self.0 += param.shape().num_elements();
            }
        }
    }
    let mut count = Count(0);
    module.visit(&mut count);
    count.0
}

/// f32 values per token of one decoder layer's tensors over rows of `s` tokens (module docs).
fn layer_values(model: &LlamaConfig, s: usize) -> usize {
    let (d, i, h, g, e) = dims(model);
    4 * d + 2 * h * e + 2 * g * e + h * s + 3 * i
}

/// f32 values per token of a forward pass without autodiff over rows of `s` tokens: the
/// residual stream and its normed copy beside the larger of attention's tensors and the MLP's
/// (module docs).
fn prefill_values(model: &LlamaConfig, s: usize) -> usize {
    let (d, i, h, g, e) = dims(model);
    shared_values(model, s) + 2 * d + (2 * h * e + 2 * g * e + h * s).max(3 * i)
}

/// f32 values per token shared by every layer of one forward pass: the attention bias and the
/// RoPE tables (module docs).
fn shared_values(model: &LlamaConfig, s: usize) -> usize {
    let (_, _, h, g, e) = dims(model);
    let key_tables = if g == h { 0 } else { 2 * g * e };
    h * s + 2 * h * e + key_tables
}

fn dims(model: &LlamaConfig) -> (usize, usize, usize, usize, usize) {
    (
        model.hidden_size,
        model.intermediate_size,
        model.num_attention_heads,
        model.num_key_value_heads(),
        model.head_dim(),
    )
}

/// Columns the KV cache's buffers hold after a prefill of `prompt_len` and decoding up to
/// `max_new_tokens`: `w2s_llama::cache` allocates twice the columns in use whenever it runs out
/// (the last generated token is never fed back, so `prompt_len + max_new_tokens - 1` are used).
fn kv_capacity(prompt_len: usize, max_new_tokens: usize) -> usize {
    if max_new_tokens == 0 {
        return 0;
    }
    let mut capacity = 2 * prompt_len;
    for used in prompt_len + 1..prompt_len + max_new_tokens {
        if used > capacity {
            capacity = 2 * used;
        }
    }
    capacity
}

fn line(name: &'static str, bytes: u64, detail: String) -> MemoryLine {
    MemoryLine {
        name,
        bytes,
        detail,
    }
}

fn adapters(model: &LlamaConfig, lora: Option<&LoraConfig>) -> MemoryLine {
    match lora {
        None => line(
            "adapters",
            0,
            "none: full fine-tuning or plain inference".into(),
        ),
        Some(lora) => {
            let params = adapter_parameter_count(model, lora);
            line(
                "adapters",
                F32 * params as u64,
                format!(
                    "LoRA r {} on {} projections per layer: {} parameters, f32",
                    lora.r,
                    lora.targets.len(),
                    millions(params)
                ),
            )
        }
    }
}

/// `dtype` as the plan prints it: `f32`, `bf16`.
fn dtype_name(dtype: FloatDType) -> String {
    format!("{dtype:?}").to_lowercase()
}

/// Bytes of one value of `dtype`.
fn bytes_of(dtype: FloatDType) -> u64 {
    match dtype {
        FloatDType::F64 => 8,
        FloatDType::F16 | FloatDType::BF16 => 2,
        _ => F32,
    }
}

fn weights(model: &LlamaConfig, dtype: FloatDType) -> MemoryLine {
    let params = parameter_count(model);
    line(
        "weights",
        bytes_of(dtype) * params as u64,
        format!("{} parameters, {}", millions(params), dtype_name(dtype)),
    )
}

impl MemoryPlan {
    /// The plan of a training run (see the module docs for each line).
    pub fn training(shape: &TrainingShape<'_>) -> Self {
        let TrainingShape {
            model,
            config,
            micro_batch,
            trained_params,
            reference_params,
            lora,
            base_dtype,
        } = *shape;
        let MicroBatch { tokens, seq_len } = micro_batch;
        let layers = model.num_hidden_layers;
        let trained = trained_params as u64;
        let copies = if config.grad_accum_steps > 1 { 2 } else { 1 };
        let gradients = copies * F32 * trained;
        let per_token = layers * layer_values(model, seq_len)
            + shared_values(model, seq_len)
            + 4 * model.hidden_size;
        let activations = F32 * (tokens * per_token) as u64;
        let chunk = config.logprob_chunk_size.min(tokens.max(1));
        let loss = F32 * (chunk * model.vocab_size) as u64;
        let checkpoint =
            (CHECKPOINT_BYTES * trained).saturating_sub(gradients + activations + loss);
        let mut lines = vec![weights(model, base_dtype)];
        if reference_params > 0 {
            lines.push(line(
                "reference model",
                F32 * reference_params as u64,
                format!("{} frozen parameters, f32", millions(reference_params)),
            ));
        }
        lines.extend([
            adapters(model, lora),
            line(
                "gradients",
                gradients,
                format!(
                    "{} trained parameters, f32{}",
                    millions(trained_params),
                    if copies > 1 {
                        ", x2 for accumulation"
                    } else {
                        ""
                    }
                ),
            ),
            line(
                "optimizer state",
                ADAMW_BYTES * trained,
                "AdamW: 2 moments per trained parameter".into(),
            ),
            line(
                "activations",
                activations,
                format!("{layers} layers x {tokens} tokens, rows of {seq_len}"),
            ),
            line(
                "chunked loss",
                loss,
                format!("logits of {chunk} tokens x {} vocabulary", model.vocab_size),
            ),
            line(
                "checkpoint",
                checkpoint,
                "optimizer state serialized, beyond the freed gradients and activations".into(),
            ),
        ]);
        Self {
            stage: PlanStage::Training {
                micro_batch_tokens: tokens,
                seq_len,
                grad_accum_steps: config.grad_accum_steps,
            },
            lines,
        }
    }

    /// The plan of batched generation with a KV cache (see the module docs for each line).
    pub fn sampling(shape: &SamplingShape<'_>) -> Self {
        let SamplingShape {
            model,
            rows,
            prompt_len,
            max_new_tokens,
            lora,
            base_dtype,
        } = *shape;
        let layers = model.num_hidden_layers;
        // Keys and values of `layers` layers' buffers of `columns` columns.
        let kv = |layers: usize, columns: usize| {
            bytes_of(base_dtype)
                * (2 * layers * rows * model.num_key_value_heads() * model.head_dim() * columns)
                    as u64
        };
        // The prefill's tensors and the cache's buffers right after it (nothing runs when
        // nothing is to be generated), and the capacity decoding grows the buffers to.
        let (prefill, prefill_columns, capacity) = match max_new_tokens {
            0 => (0, 0, 0),
            _ => (
                F32 * (rows * prompt_len * prefill_values(model, prompt_len)) as u64,
                2 * prompt_len,
                kv_capacity(prompt_len, max_new_tokens),
            ),
        };
        let cache = kv(layers + 1, capacity);
        let beyond_cache = (prefill + kv(layers, prefill_columns)).saturating_sub(cache);
        let lines = vec![
            weights(model, base_dtype),
            adapters(model, lora),
            line(
                "activations",
                beyond_cache,
                format!(
                    "prefill of {rows} rows x {prompt_len} tokens ({}) beside the cache then, \
                     beyond its later growth",
                    format_bytes(prefill)
                ),
            ),
            line(
                "KV cache",
                cache,
                format!(
                    "{layers} layers + 1 regrowing x {rows} rows x {capacity} columns (prompt \
                     {prompt_len} + {max_new_tokens} new, grown by doubling)"
                ),
            ),
        ];
        Self {
            stage: PlanStage::Sampling {
                rows,
                prompt_len,
                max_new_tokens,
            },
            lines,
        }
    }

    /// What the plan is for.
    pub fn stage(&self) -> PlanStage {
        self.stage
    }

    /// The lines, in the printed order.
    pub fn lines(&self) -> &[MemoryLine] {
        &self.lines
    }

    /// The bytes of the line called `name`, if the plan has one.
    pub fn bytes(&self, name: &str) -> Option<u64> {
        self.lines.iter().find(|l| l.name == name).map(|l| l.bytes)
    }

    /// The sum of the lines.
    pub fn total(&self) -> u64 {
        self.lines.iter().map(|l| l.bytes).sum()
    }

    /// Refuses a plan larger than `budget`.
    ///
    /// # Errors
    /// [`TrainError::OverMemoryBudget`] naming the largest lines and what to change.
    pub fn check(&self, budget: &MemoryBudget) -> Result<()> {
        let total = self.total();
        if total <= budget.bytes {
            return Ok(());
        }
        let mut largest: Vec<&MemoryLine> = self.lines.iter().filter(|l| l.bytes > 0).collect();
        largest.sort_by_key(|l| std::cmp::Reverse(l.bytes));
        let largest = largest
            .iter()
            .take(3)
            .map(|l| format!("{} {}", l.name, format_bytes(l.bytes)))
            .collect::<Vec<_>>()
            .join(", ");
        Err(TrainError::OverMemoryBudget {
            reason: format!(
                "{} needs about {}, more than the budget of {} ({}); the largest parts are \
                 {largest}. To fit: {}; or, if the memory is really there, give a larger \
                 --memory-budget GIB",
                self.stage_name(),
                format_bytes(total),
                format_bytes(budget.bytes),
                budget.source,
                self.advice(budget.bytes),
            ),
        })
    }

    fn stage_name(&self) -> &'static str {
        match self.stage {
            PlanStage::Training { .. } => "training",
            PlanStage::Sampling { .. } => "sampling",
        }
    }

    /// What to change so that the plan fits `budget` bytes.
    fn advice(&self, budget: u64) -> String {
        let part = |name| self.bytes(name).unwrap_or(0);
        let model = part("weights") + part("reference model");
        match self.stage {
            PlanStage::Training {
                micro_batch_tokens,
                seq_len,
                grad_accum_steps,
            } => {
                let fixed = model + part("gradients") + part("optimizer state");
                if fixed > budget {
                    return format!(
                        "the model alone needs {} at f32 with AdamW (weights, gradients and 2 \
                         moments: 16 bytes per trained parameter): train LoRA adapters instead \
                         (a `[lora]` table, --lora-r), a smaller model, or on a machine with \
                         more memory",
                        format_bytes(fixed)
                    );
                }
                let reference = if part("reference model") > 0 {
                    ", or score a precomputed reference instead of holding a reference model"
                } else {
                    ""
                };
                format!(
                    "lower `batch_tokens` (--batch-tokens; the largest micro-batch now has \
                     {micro_batch_tokens} tokens) and raise `grad_accum_steps` (--grad-accum, now \
                     {grad_accum_steps}) to keep the tokens per optimizer step, or lower \
                     `max_seq_len` (--max-seq-len with --skip-overlong; rows now reach {seq_len} \
                     tokens){reference}"
                )
            }
            PlanStage::Sampling {
                rows,
                prompt_len,
                max_new_tokens,
            } => {
                if model > budget {
                    return format!(
                        "the weights alone need {} at f32, and bf16 weights are not available \
                         yet, so sample with a smaller model or on a machine with more memory",
                        format_bytes(model)
                    );
                }
                format!(
                    "generate fewer rows together (now {rows}: fewer prompts per batch, \
                     --batch-size, or fewer samples per prompt, --num-samples), or fewer tokens \
                     per row (now a {prompt_len}-token prompt + --max-new-tokens \
                     {max_new_tokens})"
                )
            }
        }
    }
}

/// Prints `plan` to stderr unless `quiet`, then checks it against `budget` when there is one:
/// what every training and sampling stage does before it starts.
///
/// # Errors
/// [`TrainError::OverMemoryBudget`] from [`MemoryPlan::check`].
pub fn print_and_check(
    plan: &MemoryPlan,
    budget: Option<&MemoryBudget>,
    quiet: bool,
) -> Result<()> {
    if !quiet {
        eprint!("{plan}");
    }
    let Some(budget) = budget else {
        if !quiet {
            eprintln!("  (no memory budget given: not checked)");
        }
        return Ok(());
    };
    plan.check(budget)?;
    if !quiet {
        eprintln!(
            "  fits: {:.0}% of {} ({})",
            100.0 * plan.total() as f64 / budget.bytes.max(1) as f64,
            format_bytes(budget.bytes),
            budget.source
        );
    }
    Ok(())
}

/// `n` in millions, for parameter counts.
fn millions(n: usize) -> String {
    format!("{:.2}M", n as f64 / 1e6)
}

/// Bytes in GiB from 1 GiB on, else in MiB.
fn format_bytes(bytes: u64) -> String {
    const MIB: f64 = (1u64 << 20) as f64;
    const GIB: f64 = (1u64 << 30) as f64;
    let b = bytes as f64;
    if b >= GIB {
        format!("{:.2} GiB", b / GIB)
    } else {
        format!("{:.1} MiB", b / MIB)
    }
}

impl fmt::Display for MemoryPlan {
    /// A small table: one line per part, the total, each size aligned.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.stage {
            PlanStage::Training {
                micro_batch_tokens,
                seq_len,
                grad_accum_steps,
            } => writeln!(
                f,
                "memory plan, training: micro-batches up to {micro_batch_tokens} tokens in \
                 rows up to {seq_len}, {grad_accum_steps} per optimizer step"
            )?,
            PlanStage::Sampling {
                rows,
                prompt_len,
                max_new_tokens,
            } => writeln!(
                f,
                "memory plan, sampling: {rows} rows, prompts up to {prompt_len} tokens, \
                 {max_new_tokens} new"
            )?,
        }
        let width = self.lines.iter().map(|l| l.name.len()).max().unwrap_or(0);
        for l in &self.lines {
            writeln!(
                f,
                "  {:<width$}  {:>11}  {}",
                l.name,
                format_bytes(l.bytes),
                l.detail
            )?;
        }
        writeln!(
            f,
            "  {:<width$}  {:>11}",
            "total",
            format_bytes(self.total())
        )
    }
}
