//! From records to padded micro-batches: tokenization, the length policy, the seeded data order,
//! token-budget batching, and the tensors one forward pass needs.
//!
//! A micro-batch takes records in data order while `rows x longest row` stays within
//! `batch_tokens` (the padded size, which is what costs compute), so short records travel in large
//! batches and long ones in small batches. Rows are right-padded. The whole run's order is fixed up
//! front from the seed (epoch `e` is shuffled by a generator seeded from `(seed, e)`), so a resumed
//! run finds its place from the step number alone.
//!
//! # Shapes
//! `b` rows, `s` longest row.

use burn::prelude::*;
use rand::rngs::ChaCha12Rng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use w2s_curation::record::{PreferencePair, SftExample};
use w2s_llama::{PaddingMask, Tokenizer};

use crate::config::{Overlong, TrainConfig};
use crate::error::{Result, TrainError};
use w2s_data::Digest;

/// A prompt-completion example as token ids (the loss covers the completion only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedSft {
    /// Prompt ids, BOS included when the tokenizer adds one.
    pub prompt: Vec<u32>,
    /// Completion ids, EOS included when asked for.
    pub completion: Vec<u32>,
}

/// A preference pair as token ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedPair {
    /// Prompt ids, shared by both responses.
    pub prompt: Vec<u32>,
    /// Preferred completion ids.
    pub chosen: Vec<u32>,
    /// Dispreferred completion ids.
    pub rejected: Vec<u32>,
}

/// The prompt's ids and each completion's, with the special tokens the model's tokenizer adds
/// (BOS before the prompt, for a tokenizer whose files say so), then `eos` after a completion
/// that does not already end with it (TRL's rule). Every completion is encoded with the prompt,
/// which gives the same prompt ids each time.
fn encode_parts(
    tokenizer: &Tokenizer,
    prompt: &str,
    completions: &[&str],
    eos: Option<u32>,
) -> Result<(Vec<u32>, Vec<Vec<u32>>)> {
    let mut prompt_ids = Vec::new();
    let mut encoded = Vec::with_capacity(completions.len());
    for text in completions {
        let (prompt, mut ids) = tokenizer.encode_prompt_completion(prompt, text)?;
        if let Some(eos) = eos.filter(|&eos| ids.last() != Some(&eos)) {
            ids.push(eos);
        }
        prompt_ids = prompt;
        encoded.push(ids);
    }
    Ok((prompt_ids, encoded))
}

/// Tokenizes SFT examples: the prompt with the special tokens the model's tokenizer puts first
/// (BOS, when its files say so), the completion, then `eos` if given. Prompt and completion are
/// encoded separately, so the boundary is exact.
pub fn tokenize_sft(
    examples: &[SftExample],
    tokenizer: &Tokenizer,
    eos: Option<u32>,
) -> Result<Vec<TokenizedSft>> {
    examples
        .iter()
        .map(|e| {
            let (prompt, mut c) = encode_parts(tokenizer, &e.prompt, &[&e.completion], eos)?;
            Ok(TokenizedSft {
                prompt,
                completion: c.remove(0),
            })
        })
        .collect()
}

/// Tokenizes preference pairs as [`tokenize_sft`] does each response.
pub fn tokenize_pairs(
    pairs: &[PreferencePair],
    tokenizer: &Tokenizer,
    eos: Option<u32>,
) -> Result<Vec<TokenizedPair>> {
    pairs
        .iter()
        .map(|p| {
            let (prompt, mut c) =
                encode_parts(tokenizer, &p.prompt, &[&p.chosen, &p.rejected], eos)?;
            let rejected = c.remove(1);
            Ok(TokenizedPair {
                prompt,
                chosen: c.remove(0),
                rejected,
            })
        })
        .collect()
}

/// Checks one sequence (`prompt ++ completion`) and says whether it fits in `max_len`.
pub(crate) fn check_sequence(
    index: usize,
    prompt: usize,
    completion: usize,
    max_len: usize,
    overlong: Overlong,
) -> Result<bool> {
    if prompt == 0 {
        return Err(TrainError::Record {
            index,
            reason: "empty prompt: the first completion token would have no context".into(),
        });
    }
    if completion == 0 {
        return Err(TrainError::Record {
            index,
            reason: "empty completion: there is nothing to learn from".into(),
        });
    }
    let len = prompt + completion;
    match (len > max_len, overlong) {
        (false, _) => Ok(true),
        (true, Overlong::Skip) => Ok(false),
        (true, Overlong::Error) => Err(TrainError::Record {
            index,
            reason: format!(
                "{len} tokens exceed max_seq_len {max_len} (set overlong = \"skip\" to leave such \
                 records out)"
            ),
        }),
    }
}

/// The micro-batches of a whole run, in order, and how they group into optimizer steps.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// Record indices of each micro-batch.
    pub micro_batches: Vec<Vec<usize>>,
    /// Micro-batches per optimizer step.
    pub accum: usize,
    /// Optimizer steps of the run.
    pub steps: usize,
    /// Micro-batches of one epoch, on average (for the `epoch` metric).
    pub per_epoch: f64,
}

impl Plan {
    /// Plans every epoch of a run over records of the given row lengths (in tokens): `epochs`
    /// of them, or more while the run has fewer than `min_steps` optimizer steps.
    pub fn new(lengths: &[usize], config: &TrainConfig) -> Self {
        let mut micro_batches = Vec::new();
        let accum = config.grad_accum_steps;
        let min_steps = config.min_steps.unwrap_or(0);
        let mut epochs = 0;
        while epochs < config.epochs
            || (micro_batches.len().div_ceil(accum) < min_steps && !lengths.is_empty())
        {
            let epoch = epochs;
            epochs += 1;
            let mut order: Vec<usize> = (0..lengths.len()).collect();
            if config.shuffle {
                order.shuffle(&mut ChaCha12Rng::seed_from_u64(epoch_seed(
                    config.seed,
                    epoch,
                )));
            }
            if config.group_by_length {
                micro_batches.extend(pack_grouped(lengths, &order, config, epoch));
            } else {
                micro_batches.extend(pack(lengths, &order, config.batch_tokens));
            }
        }
        let per_epoch = micro_batches.len() as f64 / epochs as f64;
        let mut steps = micro_batches.len().div_ceil(accum);
        if let Some(max) = config.max_steps {
            steps = steps.min(max);
        }
        Self {
            micro_batches,
            accum,
            steps,
            per_epoch,
        }
    }

    /// The micro-batches of 0-based optimizer step `step`.
    pub fn step(&self, step: usize) -> &[Vec<usize>] {
        let start = step * self.accum;
        let end = (start + self.accum).min(self.micro_batches.len());
        &self.micro_batches[start..end]
    }

    /// A stable digest (FNV-1a) of the plan and of the records it orders, whose token ids
    /// `records` digests ([`token_digest`]); stored in checkpoints so that a resume onto other
    /// data (even of the same lengths) or another batching is refused.
    pub fn fingerprint(&self, records: u64) -> u64 {
        let mut digest = Digest::new();
        digest.bytes(&records.to_le_bytes());
        for batch in &self.micro_batches {
            digest.bytes(&u64::MAX.to_le_bytes());
            for &i in batch {
                digest.bytes(&(i as u64).to_le_bytes());
            }
        }
        digest.finish()
    }
}

/// FNV-1a over every token id of `sequences`, each sequence closed by `u32::MAX` (never a token
/// id), so that moving a token from one sequence to the next changes the digest.
pub(crate) fn token_digest<'a>(sequences: impl IntoIterator<Item = &'a [u32]>) -> u64 {
    let mut digest = Digest::new();
    for sequence in sequences {
        for &id in sequence.iter().chain(std::iter::once(&u32::MAX)) {
            digest.bytes(&id.to_le_bytes());
        }
    }
    digest.finish()
}

/// Epoch `epoch`'s shuffle seed: the run seed and the epoch mixed (SplitMix64), so neighbouring
/// epochs get unrelated orders.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    let mut z = seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Greedy packing in the given order: a record joins the current micro-batch while
/// `rows x longest` stays within `budget`.
pub(crate) fn pack(lengths: &[usize], order: &[usize], budget: usize) -> Vec<Vec<usize>> {
    let mut batches = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut longest = 0;
    for &i in order {
        let len = lengths[i];
        let grown = longest.max(len);
        if !current.is_empty() && (current.len() + 1) * grown > budget {
            batches.push(std::mem::take(&mut current));
            longest = 0;
        }
        longest = longest.max(len);
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// Records sorted by length inside each window of the data order before packing.
const LENGTH_GROUP: usize = 1024;

/// [`pack`] after sorting each [`LENGTH_GROUP`] window of `order` by length; each window's
/// micro-batches are then shuffled, so lengths do not rise steadily through the epoch.
fn pack_grouped(
    lengths: &[usize],
    order: &[usize],
    config: &TrainConfig,
    epoch: usize,
) -> Vec<Vec<usize>> {
    let mut rng = ChaCha12Rng::seed_from_u64(!epoch_seed(config.seed, epoch));
    let mut batches = Vec::new();
    for window in order.chunks(LENGTH_GROUP) {
        let mut window = window.to_vec();
        window.sort_by_key(|&i| lengths[i]);
        let mut packed = pack(lengths, &window, config.batch_tokens);
        packed.shuffle(&mut rng);
        batches.extend(packed);
    }
    batches
}

/// Right-padded rows of one forward pass, each split into a prompt and a completion.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rows {
    rows: Vec<Vec<u32>>,
    prompt_lens: Vec<usize>,
}

impl Rows {
    /// Appends the row `prompt ++ completion`.
    pub fn push(&mut self, prompt: &[u32], completion: &[u32]) {
        let mut row = prompt.to_vec();
        row.extend_from_slice(completion);
        self.rows.push(row);
        self.prompt_lens.push(prompt.len());
    }

    /// The tensors of the rows.
    pub fn to_batch<B: Backend>(&self, device: &B::Device) -> PaddedBatch<B> {
        let (grid, padding) = PaddingMask::right_pad(&self.rows, 0);
        let (b, s) = (grid.len(), padding.len());
        let ids: Vec<i64> = grid.iter().flatten().map(|&t| i64::from(t)).collect();
        let mut completion = Vec::with_capacity(b * s);
        for (row, &prompt) in padding.rows().iter().zip(&self.prompt_lens) {
            completion.extend(row.iter().enumerate().map(|(t, &real)| real && t >= prompt));
        }
        let real: Vec<bool> = padding.rows().iter().flatten().copied().collect();
        PaddedBatch {
            ids: Tensor::from_data(TensorData::new(ids, [b, s]), device),
            completion: Tensor::from_data(TensorData::new(completion, [b, s]), device),
            real: Tensor::from_data(TensorData::new(real, [b, s]), device),
            padding,
        }
    }
}

/// One forward pass's inputs.
#[derive(Debug, Clone)]
pub(crate) struct PaddedBatch<B: Backend> {
    /// `[b, s]` token ids, pad id 0.
    pub ids: Tensor<B, 2, Int>,
    /// Which columns are real, for the model.
    pub padding: PaddingMask,
    /// `[b, s]` true on completion tokens.
    pub completion: Tensor<B, 2, Bool>,
    /// `[b, s]` true on every real token (prompt and completion).
    pub real: Tensor<B, 2, Bool>,
}

impl<B: Backend> PaddedBatch<B> {
    /// The first `n` rows.
    pub fn head(&self, n: usize) -> Self {
        Self {
            ids: self.ids.clone().slice_dim(0, 0..n),
            padding: PaddingMask::new(self.padding.rows()[..n].to_vec())
                .unwrap_or_else(|_| PaddingMask::full(0, 0)),
            completion: self.completion.clone().slice_dim(0, 0..n),
            real: self.real.clone().slice_dim(0, 0..n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_grouping_pads_less_and_keeps_every_record_once() {
        // Lengths 10..=109 in a scrambled order.
        let lengths: Vec<usize> = (0..2000).map(|i| 10 + (i * 37) % 100).collect();
        let config = |group_by_length| TrainConfig {
            batch_tokens: 512,
            epochs: 2,
            group_by_length,
            ..TrainConfig::default()
        };
        let padded = |plan: &Plan| -> usize {
            plan.micro_batches
                .iter()
                .map(|b| b.len() * b.iter().map(|&i| lengths[i]).max().unwrap_or(0))
                .sum()
        };
        let (plain, grouped) = (
            Plan::new(&lengths, &config(false)),
            Plan::new(&lengths, &config(true)),
        );
        let real: usize = 2 * lengths.iter().sum::<usize>();
        assert!(padded(&grouped) - real < (padded(&plain) - real) / 5);
        let mut seen: Vec<usize> = grouped.micro_batches.concat();
        seen.sort_unstable();
        let expected: Vec<usize> = (0..2000).flat_map(|i| [i, i]).collect();
        assert_eq!(seen, expected);
        // Batch order is shuffled: lengths do not just rise through the window.
        let longest: Vec<usize> = grouped.micro_batches[..10]
            .iter()
            .map(|b| b.iter().map(|&i| lengths[i]).max().unwrap_or(0))
            .collect();
        assert!(longest.windows(2).any(|w| w[0] > w[1]), "{longest:?}");
    }

    #[test]
    fn packing_respects_the_padded_budget() {
        let lengths = [3, 3, 5, 2, 9, 1];
        let order: Vec<usize> = (0..6).collect();
        // Budget 10: [3,3] (2x3=6; adding 5 gives 3x5=15), [5,2] (2x5), [9], [1].
        assert_eq!(
            pack(&lengths, &order, 10),
            vec![vec![0, 1], vec![2, 3], vec![4], vec![5]]
        );
        // A record longer than the budget still gets a batch of its own.
        assert_eq!(pack(&lengths, &[4], 4), vec![vec![4]]);
    }

    #[test]
    fn plans_are_seeded_and_cover_every_epoch() {
        let lengths = vec![4; 10];
        let config = TrainConfig {
            epochs: 2,
            batch_tokens: 8,
            grad_accum_steps: 3,
            ..TrainConfig::default()
        };
        let plan = Plan::new(&lengths, &config);
        assert_eq!(plan.micro_batches.len(), 10);
        assert_eq!(plan.steps, 4);
        assert_eq!(plan.step(3).len(), 1);
        let mut seen: Vec<usize> = plan.micro_batches[..5].iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_ne!(
            plan.micro_batches[..5],
            plan.micro_batches[5..],
            "epochs reshuffle"
        );
        assert_eq!(plan, Plan::new(&lengths, &config));
        let other = Plan::new(&lengths, &TrainConfig { seed: 7, ..config });
        assert_ne!(plan.fingerprint(0), other.fingerprint(0));
        assert_ne!(
            plan.fingerprint(0),
            plan.fingerprint(1),
            "the records count"
        );
    }

    #[test]
    fn the_token_digest_sees_every_id_and_every_boundary() {
        let digest = |rows: &[&[u32]]| token_digest(rows.iter().copied());
        let base = digest(&[&[1, 2, 3], &[4, 5]]);
        assert_eq!(base, digest(&[&[1, 2, 3], &[4, 5]]));
        assert_ne!(
            base,
            digest(&[&[1, 2, 3], &[4, 6]]),
            "same lengths, one id changed"
        );
        assert_ne!(
            base,
            digest(&[&[1, 2], &[3, 4, 5]]),
            "same ids, another boundary"
        );
    }

    #[test]
    fn a_minimum_step_count_adds_whole_epochs() {
        let lengths = vec![4; 10];
        let config = TrainConfig {
            epochs: 2,
            batch_tokens: 8,
            grad_accum_steps: 3,
            min_steps: Some(9),
            ..TrainConfig::default()
        };
        // 5 micro-batches per epoch, 3 per step: 9 steps need 5 epochs (25 micro-batches).
        let plan = Plan::new(&lengths, &config);
        assert_eq!((plan.micro_batches.len(), plan.steps), (25, 9));
        assert_eq!(plan.per_epoch, 5.0);
        let plain = Plan::new(
            &lengths,
            &TrainConfig {
                min_steps: None,
                ..config.clone()
            },
        );
        assert_eq!(plan.micro_batches[..10], plain.micro_batches[..]);
        // Already enough steps: nothing added; no records: no endless loop.
        let few = Plan::new(
            &lengths,
            &TrainConfig {
                min_steps: Some(2),
                ..config.clone()
            },
        );
        assert_eq!(few, plain);
        assert_eq!(Plan::new(&[], &config).steps, 0);
    }

    #[test]
    fn length_policy() {
        assert!(check_sequence(0, 2, 3, 5, Overlong::Error).is_ok_and(|fits| fits));
        assert!(check_sequence(0, 2, 4, 5, Overlong::Skip).is_ok_and(|fits| !fits));
        assert!(matches!(
            check_sequence(3, 2, 4, 5, Overlong::Error),
            Err(TrainError::Record { index: 3, .. })
        ));
        assert!(check_sequence(0, 2, 0, 5, Overlong::Error).is_err());
        assert!(check_sequence(0, 0, 2, 5, Overlong::Error).is_err());
    }
}
