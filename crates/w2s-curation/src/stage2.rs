//! Stage II: mine contrastive preference pairs from M_plus's samples and the weak solutions
//! (docs/method.md "Stage II"; W2SR `construct_paired_data_gsm8k` /
//! `construct_paired_data_math`).
//!
//! Per question, with confidence and a+ from [`Consensus`] over the n samples, in this order:
//! 1. skip if confidence < `tau_low` (0.6) ([`Skip::LowConfidence`]);
//! 2. skip if a+ is the empty answer ([`Skip::EmptyMajority`]);
//! 3. if the weak answer equals a+: the weak response is **chosen**, rejected is drawn from A-;
//!    skip if A- is empty ([`Skip::NoNegatives`], "too easy" in the reference);
//! 4. else if confidence >= `tau_high` (0.8): the weak response is **rejected** (its answer may be
//!    empty), chosen is drawn from A+;
//! 5. else skip ([`Skip::MiddleBand`]).
//!
//! Both comparisons use exactly `<` and `>=` on `count / n` as the reference does. Answers are
//! compared as normalized strings, as the reference's `Counter` and `==` do (semantic equivalence
//! here could make a rejected answer equivalent to the chosen one).
//!
//! `pairs_per_question` is 1 for GSM8K and 3 for MATH: the weak response is paired with up to that
//! many samples drawn without replacement from the candidates, after dropping candidates whose
//! response text repeats an earlier one, so the pairs of a question are distinct.
//!
//! Seeding: each question's draws use their own generator, seeded from the run seed and the
//! question id, so the pairs of one question do not change when others are added or removed.

use std::collections::HashMap;

use rand::rngs::ChaCha12Rng;
use rand::seq::IndexedRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use w2s_eval::answer::extract_normalized;
use w2s_eval::TaskKind;

use crate::confidence::Consensus;
use crate::error::{CurationError, Result};
use crate::record::{PreferencePair, Sample};
use crate::stage1::index_by_id;

/// Thresholds, pair count and seed of Stage II mining.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MiningConfig {
    /// Below this confidence a question gives no pair (W2SR: 0.6).
    pub tau_low: f64,
    /// From this confidence on, a disagreeing weak response becomes the rejected side (W2SR: 0.8).
    pub tau_high: f64,
    /// Pairs per question: 1 for GSM8K, up to 3 for MATH.
    pub pairs_per_question: usize,
    /// Seed of the draws from A+ and A-.
    pub seed: u64,
}

impl Default for MiningConfig {
    fn default() -> Self {
        Self {
            tau_low: 0.6,
            tau_high: 0.8,
            pairs_per_question: 1,
            seed: 0,
        }
    }
}

impl MiningConfig {
    /// The paper's setting for a task: 1 pair a question for GSM8K and arithmetic, 3 for MATH.
    pub fn for_task(task: TaskKind) -> Self {
        let pairs_per_question = if task == TaskKind::Math { 3 } else { 1 };
        Self {
            pairs_per_question,
            ..Self::default()
        }
    }

    /// Check that `0 <= tau_low <= tau_high <= 1` and `pairs_per_question >= 1`.
    ///
    /// # Errors
    /// [`CurationError::Config`] naming the bad value.
    pub fn validate(&self) -> Result<()> {
        let in_unit = |t: f64| (0.0..=1.0).contains(&t);
        if !in_unit(self.tau_low) || !in_unit(self.tau_high) || self.tau_low > self.tau_high {
            return Err(CurationError::Config(format!(
                "need 0 <= tau_low <= tau_high <= 1, got tau_low {} and tau_high {}",
                self.tau_low, self.tau_high
            )));
        }
        if self.pairs_per_question == 0 {
            return Err(CurationError::Config(
                "pairs_per_question must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Why a question gave no pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// The question has no samples.
    NoSamples,
    /// Confidence below `tau_low`.
    LowConfidence,
    /// The majority answer is empty.
    EmptyMajority,
    /// The weak answer is a+ but every sample agrees, so there is nothing to reject.
    NoNegatives,
    /// The weak answer is not a+ and confidence is below `tau_high`.
    MiddleBand,
}

/// Which side of its pairs the weak response is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeakRole {
    /// The weak answer is the majority answer.
    Chosen,
    /// The majority confidently disagrees with the weak answer.
    Rejected,
}

impl WeakRole {
    /// `"chosen"` or `"rejected"`, as in the `weak_role` field of mined pairs.
    pub fn name(self) -> &'static str {
        match self {
            WeakRole::Chosen => "chosen",
            WeakRole::Rejected => "rejected",
        }
    }
}

/// The pairs mined for one question: the weak response against each sample in `partners`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mined {
    /// Side of the weak response.
    pub weak_role: WeakRole,
    /// Indices of the samples paired with the weak response (distinct responses).
    pub partners: Vec<usize>,
    /// The vote the decision rests on.
    pub consensus: Consensus,
}

/// Decide one question from normalized answers; `responses[i]` is the text of the sample with
/// answer `answers[i]` (used only to keep the pairs distinct).
pub fn mine_question<A: AsRef<str>, R: AsRef<str>>(
    weak_answer: &str,
    answers: &[A],
    responses: &[R],
    config: &MiningConfig,
    rng: &mut ChaCha12Rng,
) -> std::result::Result<Mined, Skip> {
    let consensus = Consensus::of(answers).ok_or(Skip::NoSamples)?;
    let confidence = consensus.confidence();
    if confidence < config.tau_low {
        return Err(Skip::LowConfidence);
    }
    let majority = answers[consensus.majority_index].as_ref();
    if majority.is_empty() {
        return Err(Skip::EmptyMajority);
    }
    let (weak_role, candidates) = if weak_answer == majority {
        if consensus.negatives.is_empty() {
            return Err(Skip::NoNegatives);
        }
        (WeakRole::Chosen, &consensus.negatives)
    } else if confidence >= config.tau_high {
        (WeakRole::Rejected, &consensus.positives)
    } else {
        return Err(Skip::MiddleBand);
    };
    let mut distinct: Vec<usize> = Vec::with_capacity(candidates.len());
    for &i in candidates {
        let text = responses[i].as_ref();
        if distinct.iter().all(|&j| responses[j].as_ref() != text) {
            distinct.push(i);
        }
    }
    let partners = distinct
        .sample(rng, config.pairs_per_question)
        .copied()
        .collect();
    Ok(Mined {
        weak_role,
        partners,
        consensus,
    })
}

/// Counts of what Stage II mined and why the rest was skipped (one reason per question).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MiningStats {
    /// Weak records (one per question).
    pub questions: usize,
    /// Questions that gave at least one pair.
    pub mined_questions: usize,
    /// Pairs in total.
    pub pairs: usize,
    /// Pairs with the weak response as chosen.
    pub weak_chosen: usize,
    /// Pairs with the weak response as rejected.
    pub weak_rejected: usize,
    /// Skipped: no samples for the question.
    pub no_samples: usize,
    /// Skipped: confidence below `tau_low`.
    pub low_confidence: usize,
    /// Skipped: empty majority answer.
    pub empty_majority: usize,
    /// Skipped: weak = a+ and A- empty.
    pub no_negatives: usize,
    /// Skipped: weak != a+ and confidence below `tau_high`.
    pub middle_band: usize,
    /// Sample records whose id has no weak record (ignored).
    pub samples_without_weak: usize,
}

/// Mined pairs and their statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MinedPairs {
    /// Pairs in the order of the weak records.
    pub pairs: Vec<PreferencePair>,
    /// What was mined and why the rest was skipped.
    pub stats: MiningStats,
}

/// Mine pairs for every weak record from the samples sharing its id (samples in seed order).
///
/// Each pair takes the weak record's prompt and extra fields, plus `id`, `weak_role`,
/// `confidence`, `majority`, `chosen_pred` and `rejected_pred`.
///
/// # Errors
/// An invalid `config`, or [`CurationError::DuplicateId`] within `weak`.
pub fn mine_pairs(
    task: TaskKind,
    samples: &[Sample],
    weak: &[Sample],
    config: &MiningConfig,
) -> Result<MinedPairs> {
    config.validate()?;
    let weak_by_id = index_by_id(weak, "weak")?;
    let mut groups: HashMap<&str, Vec<&Sample>> = HashMap::with_capacity(weak.len());
    for sample in samples {
        groups.entry(sample.id.as_str()).or_default().push(sample);
    }
    let mut out = MinedPairs::default();
    let stats = &mut out.stats;
    stats.questions = weak.len();
    stats.samples_without_weak = samples
        .iter()
        .filter(|s| !weak_by_id.contains_key(s.id.as_str()))
        .count();
    let empty = Vec::new();
    for weak_sample in weak {
        let group = groups.get(weak_sample.id.as_str()).unwrap_or(&empty);
        let answers: Vec<String> = group
            .iter()
            .map(|s| extract_normalized(task, &s.response))
            .collect();
        let responses: Vec<&str> = group.iter().map(|s| s.response.as_str()).collect();
        let weak_answer = extract_normalized(task, &weak_sample.response);
        let mut rng = question_rng(config.seed, &weak_sample.id);
        match mine_question(&weak_answer, &answers, &responses, config, &mut rng) {
            Ok(mined) => {
                stats.mined_questions += 1;
                stats.pairs += mined.partners.len();
                let majority = &answers[mined.consensus.majority_index];
                for &partner in &mined.partners {
                    let (chosen, rejected, chosen_pred, rejected_pred) = match mined.weak_role {
                        WeakRole::Chosen => {
                            stats.weak_chosen += 1;
                            (weak_sample, group[partner], &weak_answer, &answers[partner])
                        }
                        WeakRole::Rejected => {
                            stats.weak_rejected += 1;
                            (group[partner], weak_sample, &answers[partner], &weak_answer)
                        }
                    };
                    let mut extra = weak_sample.extra.clone();
                    extra.insert("id".into(), weak_sample.id.clone().into());
                    extra.insert("weak_role".into(), mined.weak_role.name().into());
                    extra.insert("confidence".into(), mined.consensus.confidence().into());
                    extra.insert("majority".into(), Value::String(majority.clone()));
                    extra.insert("chosen_pred".into(), Value::String(chosen_pred.clone()));
                    extra.insert("rejected_pred".into(), Value::String(rejected_pred.clone()));
                    out.pairs.push(PreferencePair {
                        prompt: weak_sample.prompt.clone(),
                        chosen: chosen.response.clone(),
                        rejected: rejected.response.clone(),
                        extra,
                    });
                }
            }
            Err(Skip::NoSamples) => stats.no_samples += 1,
            Err(Skip::LowConfidence) => stats.low_confidence += 1,
            Err(Skip::EmptyMajority) => stats.empty_majority += 1,
            Err(Skip::NoNegatives) => stats.no_negatives += 1,
            Err(Skip::MiddleBand) => stats.middle_band += 1,
        }
    }
    Ok(out)
}

/// The generator of one question: SplitMix64 of the seed and the FNV-1a hash of the id, so the
/// stream is stable across runs, platforms and Rust versions (std's hasher promises none of that).
pub fn question_rng(seed: u64, id: &str) -> ChaCha12Rng {
    let fnv = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut z = seed ^ fnv.rotate_left(32);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ChaCha12Rng::seed_from_u64(z ^ (z >> 31))
}
