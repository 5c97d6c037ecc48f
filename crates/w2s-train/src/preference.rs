//! Preference optimization on (prompt, chosen, rejected) pairs: the DPO family, ORPO and SimPO,
//! selected by [`PreferenceLossConfig`] from w2s-losses.
//!
//! A micro-batch of `n` pairs is one forward pass over `2n` right-padded rows (the chosen rows,
//! then the rejected rows, as TRL's `concatenated_forward`). Losses that compare against a
//! reference read its summed completion log-probs from one of three sources ([`Reference`]):
//! a frozen model evaluated on the same rows, values precomputed once by
//! [`precompute_reference`] (TRL's `precompute_ref_log_probs`, so the reference model need not
//! stay in memory; [`save_reference_cache`] keeps them on disk), or none for reference-free
//! losses. Each micro-batch's loss is weighted by its share of the step's pairs.
//!
//! Logged per step, besides `loss`: TRL's metric names (`rewards/chosen`, `rewards/rejected`,
//! `rewards/accuracies`, `rewards/margins`, `logps/*`, `logits/*`, `nll_loss`, ORPO's
//! `log_odds_*`), averaged over the step's pairs; the evaluation set gives the same under `eval/`.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use w2s_data::write_atomic;
use w2s_llama::{Llama, LlamaConfig};
use w2s_losses::{
    preference_loss, ChunkedLogprobsBackend, PreferenceInputs, PreferenceLossConfig,
    PreferenceLossOutput, ReferenceLogprobs, SequenceLogprobs,
};

use crate::batching::{check_sequence, pack, token_digest, PaddedBatch, Rows, TokenizedPair};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::scoring::{
    frozen_logprobs, hidden, model_device, policy_logprobs, select_rows, to_host, Scope,
};
use crate::trainer::{run, scalar, MicroStep, Objective, TrainOptions, TrainOutcome};

/// Summed reference completion log-probs `[chosen, rejected]` per pair; `None` for a pair that
/// was not scored (longer than the context and left out).
pub type ReferenceLogps = Vec<Option<[f32; 2]>>;

/// Where reference log-probs come from. `B` is the inference backend (no autodiff).
#[derive(Debug)]
pub enum Reference<B: Backend> {
    /// No reference: only for reference-free losses (SimPO, ORPO, `reference_free = true`).
    None,
    /// A frozen model scored on every micro-batch.
    Model(Box<Llama<B>>),
    /// The policy itself with its LoRA adapters switched off, scored on every micro-batch: the
    /// base it started from, with no second copy of the weights.
    AdaptersOff,
    /// Values from [`precompute_reference`], for the training and the evaluation pairs.
    Precomputed {
        /// One entry per training pair.
        train: ReferenceLogps,
        /// One entry per evaluation pair.
        eval: ReferenceLogps,
    },
}

impl<B: Backend> Reference<B> {
    fn name(&self) -> &'static str {
        match self {
            Reference::None => "none",
            Reference::Model(_) => "model",
            Reference::AdaptersOff => "adapters_off",
            Reference::Precomputed { .. } => "precomputed",
        }
    }
}

/// Trains `model` on preference `pairs` with `loss`, evaluating on `eval` (may be empty).
///
/// Length policy as [`crate::train_sft`], applied to both responses of a pair; a pair with an
/// empty prompt, chosen or rejected response is an error naming its index.
///
/// # Errors
/// Those of [`crate::train_sft`], plus [`TrainError::Loss`] for an invalid loss config and
/// [`TrainError::Config`] when the loss needs a reference and none (or too few precomputed
/// values) is given.
#[allow(clippy::too_many_arguments)]
pub fn train_preference<B: AutodiffBackend + ChunkedLogprobsBackend>(
    model: Llama<B>,
    llama_config: &LlamaConfig,
    pairs: &[TokenizedPair],
    eval: &[TokenizedPair],
    loss: &PreferenceLossConfig,
    reference: Reference<B::InnerBackend>,
    config: &TrainConfig,
    options: &TrainOptions,
) -> Result<TrainOutcome<B>> {
    config.validate()?;
    loss.validate()?;
    if loss.needs_reference() && matches!(reference, Reference::None) {
        return Err(TrainError::config(
            "reference",
            format!(
                "loss `{}` needs a reference model or precomputed log-probs",
                loss.name()
            ),
        ));
    }
    if matches!(reference, Reference::AdaptersOff)
        && model.lora().is_none()
        && config.lora.is_none()
    {
        return Err(TrainError::config(
            "reference",
            "`adapters_off` needs LoRA adapters to switch off: give a `lora` config".to_string(),
        ));
    }
    if let Reference::Precomputed { train, eval: ev } = &reference {
        if train.len() != pairs.len() || ev.len() != eval.len() {
            return Err(TrainError::config(
                "reference",
                format!(
                    "precomputed log-probs cover {} + {} pairs, the data has {} + {}",
                    train.len(),
                    ev.len(),
                    pairs.len(),
                    eval.len()
                ),
            ));
        }
    }
    if pairs.is_empty() {
        return Err(TrainError::EmptyDataset { what: "training" });
    }
    let max_len = config
        .max_seq_len
        .unwrap_or(usize::MAX)
        .min(model.max_positions());
    let train_kept = kept_pairs(pairs, max_len, config)?;
    if train_kept.is_empty() {
        return Err(TrainError::EmptyDataset { what: "training" });
    }
    let objective = Preference {
        skipped: pairs.len() - train_kept.len(),
        train: train_kept,
        eval: kept_pairs(eval, max_len, config)?,
        loss: loss.clone(),
        reference: if loss.needs_reference() {
            reference
        } else {
            Reference::None
        },
        chunk: config.logprob_chunk_size,
        batch_tokens: config.batch_tokens,
    };
    let skipped = objective.skipped;
    run(model, llama_config, &objective, config, options, skipped)
}

/// The pairs that fit, with their index in the input.
fn kept_pairs(
    pairs: &[TokenizedPair],
    max_len: usize,
    config: &TrainConfig,
) -> Result<Vec<(usize, TokenizedPair)>> {
    let mut kept = Vec::new();
    for (index, p) in pairs.iter().enumerate() {
        let (lp, o) = (p.prompt.len(), config.overlong);
        let chosen = check_sequence(index, lp, p.chosen.len(), max_len, o)?;
        let rejected = check_sequence(index, lp, p.rejected.len(), max_len, o)?;
        if chosen && rejected {
            kept.push((index, p.clone()));
        }
    }
    Ok(kept)
}

/// Padded cost of a pair: two rows of the longer response.
fn pair_length(p: &TokenizedPair) -> usize {
    2 * (p.prompt.len() + p.chosen.len().max(p.rejected.len()))
}

/// Real tokens of a pair's two rows (the prompt twice, both responses).
fn pair_tokens(p: &TokenizedPair) -> usize {
    2 * p.prompt.len() + p.chosen.len() + p.rejected.len()
}

/// A pair's token sequences, in the order the digests read them.
fn pair_sequences(p: &TokenizedPair) -> [&[u32]; 3] {
    [&p.prompt, &p.chosen, &p.rejected]
}

/// The `2n` rows of a micro-batch: chosen rows, then rejected rows.
fn pair_rows<'a>(pairs: impl Iterator<Item = &'a TokenizedPair> + Clone) -> Rows {
    let mut rows = Rows::default();
    for p in pairs.clone() {
        rows.push(&p.prompt, &p.chosen);
    }
    for p in pairs {
        rows.push(&p.prompt, &p.rejected);
    }
    rows
}

/// Summed completion log-probs of a frozen model over `2n` rows: `[chosen, rejected]` per pair.
fn score_pairs<B: Backend>(
    model: &Llama<B>,
    rows: &Rows,
    n: usize,
    chunk: usize,
) -> Result<Vec<[f32; 2]>> {
    let padded = rows.to_batch::<B>(&model_device(model));
    let states = hidden(model, &padded)?;
    let sums = to_host(frozen_logprobs(model, states, &padded, Scope::Completion, chunk)?.sum)?;
    Ok((0..n).map(|i| [sums[i], sums[n + i]]).collect())
}

/// Scores every pair that fits `config` under the reference `model`, once, in the order of
/// `pairs` (pairs left out by the length policy get `None`).
///
/// # Errors
/// As the trainer's length policy, and model errors.
pub fn precompute_reference<B: Backend>(
    model: &Llama<B>,
    pairs: &[TokenizedPair],
    config: &TrainConfig,
) -> Result<ReferenceLogps> {
    config.validate()?;
    let max_len = config
        .max_seq_len
        .unwrap_or(usize::MAX)
        .min(model.max_positions());
    let kept = kept_pairs(pairs, max_len, config)?;
    let lengths: Vec<usize> = kept.iter().map(|(_, p)| pair_length(p)).collect();
    let order: Vec<usize> = (0..kept.len()).collect();
    let mut out = vec![None; pairs.len()];
    for batch in pack(&lengths, &order, config.batch_tokens) {
        let rows = pair_rows(batch.iter().map(|&i| &kept[i].1));
        let scores = score_pairs(model, &rows, batch.len(), config.logprob_chunk_size)?;
        for (&i, score) in batch.iter().zip(scores) {
            out[kept[i].0] = Some(score);
        }
    }
    Ok(out)
}

#[derive(Serialize, Deserialize)]
struct ReferenceCache {
    pairs_digest: u64,
    logps: ReferenceLogps,
}

/// FNV-1a over the token ids of every pair, so a cache is never applied to other pairs.
fn pairs_digest(pairs: &[TokenizedPair]) -> u64 {
    token_digest(pairs.iter().flat_map(pair_sequences))
}

/// Writes precomputed reference log-probs of `pairs` to `path` (JSON, atomically; f32 values
/// round-trip exactly).
pub fn save_reference_cache(
    path: &Path,
    pairs: &[TokenizedPair],
    logps: &ReferenceLogps,
) -> Result<()> {
    let cache = ReferenceCache {
        pairs_digest: pairs_digest(pairs),
        logps: logps.clone(),
    };
    let text = serde_json::to_string(&cache).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(write_atomic(path, |file| {
        std::io::Write::write_all(file, text.as_bytes())
    })?)
}

/// Reads a cache written by [`save_reference_cache`] for the same `pairs`.
///
/// # Errors
/// I/O and JSON errors naming the file, and [`TrainError::Config`] when the cache was computed
/// for other pairs.
pub fn load_reference_cache(path: &Path, pairs: &[TokenizedPair]) -> Result<ReferenceLogps> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    let cache: ReferenceCache = serde_json::from_str(&text).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    if cache.pairs_digest != pairs_digest(pairs) || cache.logps.len() != pairs.len() {
        return Err(TrainError::config(
            "reference",
            format!("{} was computed for other pairs", path.display()),
        ));
    }
    Ok(cache.logps)
}

struct Preference<R: Backend> {
    train: Vec<(usize, TokenizedPair)>,
    eval: Vec<(usize, TokenizedPair)>,
    skipped: usize,
    loss: PreferenceLossConfig,
    reference: Reference<R>,
    chunk: usize,
    batch_tokens: usize,
}

/// Which pairs a batch indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    /// The training pairs.
    Train,
    /// The evaluation pairs.
    Eval,
}

/// Log-probs of a padded batch under a model, from its hidden states: [`policy_logprobs`]
/// (with gradients) or [`frozen_logprobs`] (without).
type LogprobsFn<M> =
    fn(&Llama<M>, Tensor<M, 3>, &PaddedBatch<M>, Scope, usize) -> Result<SequenceLogprobs<M>>;

impl<R: Backend> Preference<R> {
    /// The kept pairs of `split`, with their index in the input.
    fn pairs(&self, split: Split) -> &[(usize, TokenizedPair)] {
        match split {
            Split::Train => &self.train,
            Split::Eval => &self.eval,
        }
    }

    /// Reference sums for `batch` of `split`, or `None` when the loss has no reference;
    /// `policy` gives the policy being trained, without autodiff, for [`Reference::AdaptersOff`].
    fn reference_values(
        &self,
        split: Split,
        batch: &[usize],
        policy: &dyn Fn() -> Llama<R>,
    ) -> Result<Option<Vec<[f32; 2]>>> {
        let set = self.pairs(split);
        let rows = || pair_rows(batch.iter().map(|&i| &set[i].1));
        match &self.reference {
            Reference::None => Ok(None),
            Reference::Model(model) => {
                score_pairs(model, &rows(), batch.len(), self.chunk).map(Some)
            }
            Reference::AdaptersOff => {
                let base = policy().without_adapters();
                score_pairs(&base, &rows(), batch.len(), self.chunk).map(Some)
            }
            Reference::Precomputed { train, eval } => {
                let table = match split {
                    Split::Train => train,
                    Split::Eval => eval,
                };
                batch
                    .iter()
                    .map(|&i| {
                        let index = set[i].0;
                        table[index].ok_or_else(|| TrainError::Record {
                            index,
                            reason: "no precomputed reference log-probs for this pair".into(),
                        })
                    })
                    .collect::<Result<Vec<_>>>()
                    .map(Some)
            }
        }
    }

    /// The loss of the pairs `batch` of `split` under `model`, one forward pass over their `2n`
    /// rows, with the log-probs `logprobs` takes from it.
    fn batch_loss<M: Backend>(
        &self,
        model: &Llama<M>,
        policy: &dyn Fn() -> Llama<R>,
        split: Split,
        batch: &[usize],
        logprobs: LogprobsFn<M>,
    ) -> Result<PreferenceLossOutput<M>> {
        let n = batch.len();
        let device = model_device(model);
        let padded = pair_rows(batch.iter().map(|&i| &self.pairs(split)[i].1)).to_batch(&device);
        let states = hidden(model, &padded)?;
        let nll = if self.loss.nll_covers_prompt() {
            let chosen_states = states.clone().slice_dim(0, 0..n);
            let chosen = padded.head(n);
            Some(logprobs(
                model,
                chosen_states,
                &chosen,
                Scope::Sequence,
                self.chunk,
            )?)
        } else {
            None
        };
        let completions = logprobs(model, states, &padded, Scope::Completion, self.chunk)?;
        let reference = self.reference_values(split, batch, policy)?;
        let inputs = inputs(&completions, n, reference, nll, &device);
        Ok(preference_loss(&self.loss, inputs)?)
    }
}

/// The metrics of a batch weighted by its `share` of the pairs they are averaged over.
fn shared_metrics<B: Backend>(
    out: &PreferenceLossOutput<B>,
    share: f64,
) -> Result<Vec<(String, f64)>> {
    Ok(out
        .metrics()?
        .to_map()
        .into_iter()
        .map(|(k, v)| (k, v * share))
        .collect())
}

/// Builds the loss inputs from `2n` rows of log-probs.
fn inputs<B: Backend>(
    logprobs: &SequenceLogprobs<B>,
    n: usize,
    reference: Option<Vec<[f32; 2]>>,
    nll_chosen: Option<SequenceLogprobs<B>>,
    device: &B::Device,
) -> PreferenceInputs<B> {
    let mut inputs =
        PreferenceInputs::new(select_rows(logprobs, 0..n), select_rows(logprobs, n..2 * n));
    if let Some(values) = reference {
        let column = |k: usize| {
            let v: Vec<f32> = values.iter().map(|pair| pair[k]).collect();
            Tensor::<B, 1>::from_data(TensorData::new(v, [n]), device)
        };
        inputs = inputs.with_reference(ReferenceLogprobs::new(column(0), column(1)));
    }
    if let Some(nll) = nll_chosen {
        inputs = inputs.with_nll_chosen(nll);
    }
    inputs
}

impl<B> Objective<B> for Preference<B::InnerBackend>
where
    B: AutodiffBackend + ChunkedLogprobsBackend,
{
    fn rows_per_record(&self) -> usize {
        2
    }

    fn reference_params(&self) -> usize {
        match &self.reference {
            Reference::Model(model) => model.num_params(),
            Reference::None | Reference::AdaptersOff | Reference::Precomputed { .. } => 0,
        }
    }

    fn config_json(&self) -> Value {
        serde_json::json!({
            "type": "preference",
            "loss": self.loss,
            "reference": self.reference.name(),
            "skipped_records": self.skipped,
        })
    }

    fn lengths(&self) -> Vec<usize> {
        self.train.iter().map(|(_, p)| pair_length(p)).collect()
    }

    fn tokens(&self, batch: &[usize]) -> usize {
        batch.iter().map(|&i| pair_tokens(&self.train[i].1)).sum()
    }

    fn token_digest(&self) -> u64 {
        token_digest(self.train.iter().flat_map(|(_, p)| pair_sequences(p)))
    }

    fn units(&self, batch: &[usize]) -> f64 {
        batch.len() as f64
    }

    fn micro_step(
        &self,
        model: &Llama<B>,
        batch: &[usize],
        step_units: f64,
    ) -> Result<MicroStep<B>> {
        let policy = || model.valid();
        let out = self.batch_loss(model, &policy, Split::Train, batch, policy_logprobs::<B>)?;
        let share = batch.len() as f64 / step_units;
        Ok(MicroStep {
            metrics: shared_metrics(&out, share)?,
            loss: out.loss.mul_scalar(share),
        })
    }

    fn evaluate(&self, model: &Llama<B::InnerBackend>) -> Result<Option<BTreeMap<String, f64>>> {
        if self.eval.is_empty() {
            return Ok(None);
        }
        let lengths: Vec<usize> = self.eval.iter().map(|(_, p)| pair_length(p)).collect();
        let order: Vec<usize> = (0..lengths.len()).collect();
        let total = self.eval.len() as f64;
        let mut sums: BTreeMap<String, f64> = BTreeMap::new();
        for batch in pack(&lengths, &order, self.batch_tokens) {
            let frozen = frozen_logprobs::<B::InnerBackend>;
            let policy = || model.clone();
            let out = self.batch_loss(model, &policy, Split::Eval, &batch, frozen)?;
            let share = batch.len() as f64 / total;
            *sums.entry("loss".into()).or_default() += scalar(out.loss.clone())? * share;
            for (k, v) in shared_metrics(&out, share)? {
                *sums.entry(k).or_default() += v;
            }
        }
        Ok(Some(sums))
    }
}
