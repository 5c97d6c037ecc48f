//! From records to padded micro-batches: tokenization, the length policy, the seeded data order,
//! token-budget batching, and the tensors one forward pass needs.
//!
//! Records come as text or as conversations (TRL's two forms). Text is encoded with the special
//! tokens the model's tokenizer adds; a conversation is rendered by the model's chat template and
//! encoded as transformers' `apply_chat_template(tokenize=True)` encodes it, without added special
//! tokens (the template writes its own). An SFT row's loss covers its completion, or a
//! conversation's assistant turns ([`w2s_llama::conversation`]).
//!
//! A micro-batch takes records in data order while `rows x longest row` stays within
//! `batch_tokens` (the padded size, which is what costs compute), so short records travel in large
//! batches and long ones in small batches. Rows are right-padded. The whole run's order is fixed up
//! front from the seed (epoch `e` is shuffled by a generator seeded from `(seed, e)`), so a resumed
//! run finds its place from the step number alone.
//!
//! # Shapes
//! `b` rows, `s` longest row.

use std::ops::Range;

use burn::prelude::*;
use rand::rngs::ChaCha12Rng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use w2s_curation::record::{PreferenceRecord, SftRecord};
use w2s_llama::{LlamaError, PaddingMask, Tokenizer};

use crate::config::{Overlong, TrainConfig};
use crate::error::{Result, TrainError};
use w2s_data::Digest;

/// An SFT record as token ids: one row, and the ranges of it the loss covers (a prompt-completion
/// record's completion, a conversation's assistant turns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedSft {
    /// The row, BOS included when the tokenizer or the chat template writes one.
    pub ids: Vec<u32>,
    /// The ranges of `ids` the loss covers, in order and apart.
    pub targets: Vec<Range<usize>>,
}

impl TokenizedSft {
    /// The row `prompt ++ completion`, the loss on the completion.
    pub fn prompt_completion(mut prompt: Vec<u32>, completion: Vec<u32>) -> Self {
        let target = prompt.len()..prompt.len() + completion.len();
        prompt.extend(completion);
        Self {
            targets: vec![target],
            ids: prompt,
        }
    }

    /// Tokens before the first target: the context of the first token the loss counts.
    pub(crate) fn context_len(&self) -> usize {
        self.targets.first().map_or(self.ids.len(), |t| t.start)
    }

    /// Tokens the loss counts.
    pub(crate) fn target_len(&self) -> usize {
        self.targets.iter().map(ExactSizeIterator::len).sum()
    }

    /// The row cut at every target's start and end: context, target, context, target, ..., then
    /// the context after the last target when there is one. Consecutive pieces alternate, so the
    /// cuts say which tokens the loss covers; a prompt-completion record's pieces are its prompt
    /// and its completion.
    pub(crate) fn segments(&self) -> Vec<&[u32]> {
        let mut cuts = vec![0];
        for target in &self.targets {
            cuts.extend([target.start, target.end]);
        }
        if cuts.last() != Some(&self.ids.len()) {
            cuts.push(self.ids.len());
        }
        cuts.windows(2).map(|w| &self.ids[w[0]..w[1]]).collect()
    }
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

/// Tokenizes SFT records.
///
/// - Text: the prompt with the special tokens the model's tokenizer puts first (BOS, when its
///   files say so), the completion, then `eos` if given; the loss covers the completion. Prompt and
///   completion are encoded separately, so the boundary is exact.
/// - A conversation: its chat template's rendering, the loss on its assistant turns
///   ([`Tokenizer::encode_conversation`]: each turn's text and end-of-turn marker, as TRL's
///   `assistant_only_loss` takes it). No `eos` is added: the template ends every turn, and TRL
///   adds none to conversations either.
///
/// # Errors
/// A tokenizer failure; [`TrainError::Record`] for a conversation without an assistant turn or
/// that the model cannot render: no chat template (the error names the model directory), a
/// template that refuses it, or one that does not render it turn by turn.
pub fn tokenize_sft(
    records: &[SftRecord],
    tokenizer: &Tokenizer,
    eos: Option<u32>,
) -> Result<Vec<TokenizedSft>> {
    records
        .iter()
        .enumerate()
        .map(|(index, record)| match record {
            SftRecord::Text(e) => {
                let (prompt, mut c) = encode_parts(tokenizer, &e.prompt, &[&e.completion], eos)?;
                Ok(TokenizedSft::prompt_completion(prompt, c.remove(0)))
            }
            SftRecord::Conversation(c) => {
                let encoded = tokenizer
                    .encode_conversation(&c.messages)
                    .map_err(|e| unrenderable(index, e))?;
                if encoded.assistant.is_empty() {
                    return Err(TrainError::Record {
                        index,
                        reason: "no assistant turn: there is nothing to learn from".into(),
                    });
                }
                Ok(TokenizedSft {
                    ids: encoded.ids,
                    targets: encoded.assistant,
                })
            }
        })
        .collect()
}

/// Tokenizes preference pairs.
///
/// - Text: as [`tokenize_sft`] does each response.
/// - A conversation: the prompt rendered for the model to answer (with the generation prompt),
///   each response as the text its messages add after it ([`Tokenizer::render_reply`]), as TRL
///   splits conversational pairs; each part encoded without added special tokens, and, as in TRL,
///   no `eos` added (the template ends the turn).
///
/// # Errors
/// A tokenizer failure; [`TrainError::Record`] for a conversational pair with an empty response or
/// that the model cannot render, as in [`tokenize_sft`].
pub fn tokenize_pairs(
    pairs: &[PreferenceRecord],
    tokenizer: &Tokenizer,
    eos: Option<u32>,
) -> Result<Vec<TokenizedPair>> {
    pairs
        .iter()
        .enumerate()
        .map(|(index, pair)| match pair {
            PreferenceRecord::Text(p) => {
                let (prompt, mut c) =
                    encode_parts(tokenizer, &p.prompt, &[&p.chosen, &p.rejected], eos)?;
                let rejected = c.remove(1);
                Ok(TokenizedPair {
                    prompt,
                    chosen: c.remove(0),
                    rejected,
                })
            }
            PreferenceRecord::Conversation(p) => {
                if p.chosen.is_empty() || p.rejected.is_empty() {
                    return Err(TrainError::Record {
                        index,
                        reason: "\"chosen\" and \"rejected\" need a message each".into(),
                    });
                }
                let reply = |messages| {
                    tokenizer
                        .render_reply(&p.prompt, messages)
                        .map_err(|e| unrenderable(index, e))
                };
                let ((prompt, chosen), (_, rejected)) = (reply(&p.chosen)?, reply(&p.rejected)?);
                Ok(TokenizedPair {
                    prompt: tokenizer.encode(&prompt, false)?,
                    chosen: tokenizer.encode(&chosen, false)?,
                    rejected: tokenizer.encode(&rejected, false)?,
                })
            }
        })
        .collect()
}

/// Record `index`, a conversation the model's chat template cannot render as asked (`cause` names
/// the model directory or the template's file).
fn unrenderable(index: usize, cause: LlamaError) -> TrainError {
    TrainError::Record {
        index,
        reason: format!("conversation: {cause}"),
    }
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

/// Right-padded rows of one forward pass, each with the ranges its loss covers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rows {
    rows: Vec<Vec<u32>>,
    targets: Vec<Vec<Range<usize>>>,
}

impl Rows {
    /// Appends the row `prompt ++ completion`, the loss on the completion.
    pub fn push(&mut self, prompt: &[u32], completion: &[u32]) {
        self.push_record(TokenizedSft::prompt_completion(
            prompt.to_vec(),
            completion.to_vec(),
        ));
    }

    /// Appends a record's row, the loss on its targets.
    pub fn push_record(&mut self, record: TokenizedSft) {
        self.rows.push(record.ids);
        self.targets.push(record.targets);
    }

    /// The tensors of the rows.
    pub fn to_batch<B: Backend>(&self, device: &B::Device) -> PaddedBatch<B> {
        let (grid, padding) = PaddingMask::right_pad(&self.rows, 0);
        let (b, s) = (grid.len(), padding.len());
        let ids: Vec<i64> = grid.iter().flatten().map(|&t| i64::from(t)).collect();
        let mut completion = Vec::with_capacity(b * s);
        for (row, targets) in padding.rows().iter().zip(&self.targets) {
            completion.extend(
                row.iter()
                    .enumerate()
                    .map(|(t, &real)| real && targets.iter().any(|target| target.contains(&t))),
            );
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
    /// `[b, s]` true on the tokens the loss covers: the completion, a conversation's assistant
    /// turns.
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
    use burn::backend::Flex;
    use std::path::{Path, PathBuf};
    use w2s_curation::record::{PreferencePair, SftExample};
    use w2s_data::{ChatMessage, PreferenceConversation, SftConversation};

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

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../w2s-llama/tests/fixtures")
    }

    /// A tokenizer of w2s-llama's tokenization fixtures: `no_bos` has SmolLM2's ChatML template,
    /// `bos` a Llama 3 style one with a system turn (and BOS from its post-processor).
    fn tokenizer(name: &str) -> Tokenizer {
        let path = fixtures()
            .join("tokenization")
            .join(name)
            .join("tokenizer.json");
        Tokenizer::from_file(path, 320, None).expect("fixture tokenizer")
    }

    fn conversation(messages: &[(&str, &str)]) -> SftRecord {
        SftRecord::Conversation(SftConversation {
            messages: messages
                .iter()
                .map(|(role, content)| ChatMessage::new(*role, *content))
                .collect(),
            extra: Default::default(),
        })
    }

    fn text(prompt: &str, completion: &str) -> SftRecord {
        SftRecord::Text(SftExample {
            prompt: prompt.into(),
            completion: completion.into(),
            extra: Default::default(),
        })
    }

    /// Each row's `(ids, mask)` as the loss sees them.
    fn batch(records: &[TokenizedSft]) -> Vec<(Vec<i64>, Vec<bool>)> {
        let mut rows = Rows::default();
        for record in records {
            rows.push_record(record.clone());
        }
        let padded = rows.to_batch::<Flex>(&Default::default());
        let [b, s] = padded.ids.dims();
        let ids = padded
            .ids
            .into_data()
            .convert::<i64>()
            .to_vec::<i64>()
            .unwrap();
        let mask = padded.completion.into_data().to_vec::<bool>().unwrap();
        (0..b)
            .map(|r| {
                let row = r * s..(r + 1) * s;
                (ids[row.clone()].to_vec(), mask[row].to_vec())
            })
            .collect()
    }

    #[test]
    fn prompt_completion_batches_are_as_before() {
        // Rows of 2 + 3 and 1 + 1 tokens: the mask is on the completion, never on padding.
        let records = [
            TokenizedSft::prompt_completion(vec![7, 8], vec![9, 10, 11]),
            TokenizedSft::prompt_completion(vec![5], vec![6]),
        ];
        let expected = [
            (vec![7, 8, 9, 10, 11], vec![false, false, true, true, true]),
            (vec![5, 6, 0, 0, 0], vec![false, true, false, false, false]),
        ];
        assert_eq!(batch(&records), expected);
        let mut rows = Rows::default();
        rows.push(&[7, 8], &[9, 10, 11]);
        rows.push(&[5], &[6]);
        let padded = rows.to_batch::<Flex>(&Default::default());
        let mask = padded.completion.into_data().to_vec::<bool>().unwrap();
        assert_eq!(
            mask,
            [expected[0].1.clone(), expected[1].1.clone()].concat()
        );
        // The token digest, which checkpoints store, sees the prompt and the completion as before.
        assert_eq!(
            token_digest(records.iter().flat_map(TokenizedSft::segments)),
            token_digest([&[7, 8][..], &[9, 10, 11], &[5], &[6]])
        );
        // Text records tokenize as before: the prompt with the tokenizer's BOS, then the completion
        // and EOS.
        let tok = tokenizer("bos");
        let tokenized = tokenize_sft(&[text("Hello", " world")], &tok, Some(5)).unwrap();
        let (prompt, completion) = tok.encode_prompt_completion("Hello", " world").unwrap();
        let expected = TokenizedSft::prompt_completion(prompt, [completion, vec![5]].concat());
        assert_eq!(tokenized, [expected]);
    }

    #[test]
    fn the_mask_of_a_conversation_is_exactly_its_assistant_tokens() {
        let chat = [
            ("system", "Be brief."),
            ("user", "Say hi."),
            ("assistant", "Hi there!"),
            ("user", "What is 6 times 7?"),
            ("assistant", "42"),
            ("user", "Thanks."),
        ];
        for (name, end_of_turn) in [("no_bos", "<|im_end|>\n"), ("bos", "<|eot_id|>")] {
            let tok = tokenizer(name);
            let records = [conversation(&chat), text("Hello", " world")];
            let tokenized = tokenize_sft(&records, &tok, Some(2)).unwrap();
            let rows = batch(&tokenized);
            let (ids, mask) = &rows[0];
            let real = tokenized[0].ids.len();
            let as_ids = |ids: &[i64]| -> Vec<u32> { ids.iter().map(|&t| t as u32).collect() };
            let decoded = |keep: bool| -> String {
                let picked: Vec<i64> = ids[..real]
                    .iter()
                    .zip(mask)
                    .filter(|(_, &m)| m == keep)
                    .map(|(&t, _)| t)
                    .collect();
                tok.decode(&as_ids(&picked), false).unwrap()
            };
            assert_eq!(
                decoded(true),
                format!("Hi there!{end_of_turn}42{end_of_turn}"),
                "{name}"
            );
            let rendered = tok
                .apply_chat_template(&chat_messages(&chat), &Default::default())
                .unwrap();
            let context = decoded(false);
            assert!(
                context.contains("Say hi.") && context.contains("Thanks."),
                "{name}: {context:?}"
            );
            assert!(!context.contains("Hi there!"), "{name}: {context:?}");
            assert_eq!(tok.decode(&as_ids(&ids[..real]), false).unwrap(), rendered);
            assert!(
                mask[real..].iter().all(|&m| !m),
                "{name}: padding is never a target"
            );
            // No EOS after a conversation: its template ends every turn.
            assert_eq!(
                tokenized[0].target_len(),
                mask.iter().filter(|&&m| m).count()
            );
            assert_ne!(tokenized[0].ids.last(), Some(&2));
        }
    }

    fn chat_messages(chat: &[(&str, &str)]) -> Vec<ChatMessage> {
        chat.iter()
            .map(|(role, content)| ChatMessage::new(*role, *content))
            .collect()
    }

    #[test]
    fn conversations_the_model_cannot_render_name_the_record_and_the_model() {
        // The fixture model directory has a tokenizer but no chat template.
        let dir = fixtures().join("gqa_sharded");
        let tok = Tokenizer::from_file(dir.join("tokenizer.json"), 1000, Some(1)).unwrap();
        let records = [
            text("a", "b"),
            conversation(&[("user", "a"), ("assistant", "b")]),
        ];
        let err = tokenize_sft(&records, &tok, None).unwrap_err();
        assert!(matches!(err, TrainError::Record { index: 1, .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains(&dir.display().to_string()), "{message}");
        assert!(message.contains("no chat template"), "{message}");

        let err = tokenize_sft(
            &[conversation(&[("user", "a")])],
            &tokenizer("no_bos"),
            None,
        )
        .unwrap_err();
        assert!(
            matches!(&err, TrainError::Record { index: 0, reason } if reason.contains("no assistant turn")),
            "{err}"
        );
    }

    #[test]
    fn conversational_pairs_split_at_the_prompt_rendered_for_generation() {
        let user = vec![ChatMessage::new("user", "What is 6 times 7?")];
        let answer = |a: &str| vec![ChatMessage::new("assistant", a)];
        let pairs = [
            PreferenceRecord::Conversation(PreferenceConversation {
                prompt: user.clone(),
                chosen: answer("42"),
                rejected: answer("41"),
                extra: Default::default(),
            }),
            PreferenceRecord::Text(PreferencePair {
                prompt: "Hello".into(),
                chosen: " world".into(),
                rejected: " there".into(),
                extra: Default::default(),
            }),
        ];
        for (name, end_of_turn) in [("no_bos", "<|im_end|>\n"), ("bos", "<|eot_id|>")] {
            let tok = tokenizer(name);
            let tokenized = tokenize_pairs(&pairs, &tok, Some(2)).unwrap();
            let conversation = &tokenized[0];
            let options = w2s_llama::ChatOptions::generation();
            assert_eq!(
                conversation.prompt,
                tok.encode_chat(&user, &options).unwrap()
            );
            let decode = |ids: &[u32]| tok.decode(ids, false).unwrap();
            assert_eq!(decode(&conversation.chosen), format!("42{end_of_turn}"));
            assert_eq!(decode(&conversation.rejected), format!("41{end_of_turn}"));
            // The text pair is encoded as before.
            let (prompt, completion) = tok.encode_prompt_completion("Hello", " world").unwrap();
            assert_eq!(tokenized[1].prompt, prompt);
            assert_eq!(tokenized[1].chosen, [completion, vec![2]].concat());
        }
        let empty = PreferenceRecord::Conversation(PreferenceConversation {
            prompt: user,
            chosen: Vec::new(),
            rejected: answer("41"),
            extra: Default::default(),
        });
        let err = tokenize_pairs(&[empty], &tokenizer("no_bos"), None).unwrap_err();
        assert!(matches!(err, TrainError::Record { index: 0, .. }), "{err}");
    }

    #[test]
    fn segments_alternate_context_and_targets() {
        let record = TokenizedSft {
            ids: (0..10).collect(),
            targets: vec![2..4, 6..8],
        };
        assert_eq!(
            record.segments(),
            [&[0, 1][..], &[2, 3], &[4, 5], &[6, 7], &[8, 9]]
        );
        assert_eq!((record.context_len(), record.target_len()), (2, 4));
        let ending = TokenizedSft {
            targets: vec![2..4, 6..10],
            ..record
        };
        assert_eq!(ending.segments().len(), 4);
    }
}
