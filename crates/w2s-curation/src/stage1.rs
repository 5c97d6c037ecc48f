//! Stage I: keep the questions on which two sources reach the same final answer, and build the
//! weak, ICL and hybrid SFT sets from them (docs/method.md "Stage I"; W2SR
//! `construct_training_data.py:construct_weak_icl_data`).
//!
//! - A question is kept iff both normalized answers are non-empty and agree. [`MatchMode::Exact`]
//!   is the reference's plain string equality of normalized answers; [`MatchMode::Equivalent`]
//!   uses [`w2s_eval::answer::equivalent`], so `1.5` and `3/2` agree. A comparison the grader
//!   cannot decide is not a match, and is counted apart.
//! - Every SFT example takes the **weak** record's prompt (the zero-shot prompt): the ICL record's
//!   prompt carries the k-shot demonstrations, which must not become training input. In iteration
//!   t > 1 both sources are zero-shot and the two prompts are the same.
//! - The hybrid set is the weak set followed by the ICL set, so every kept question appears twice
//!   (D_hybrid = D_weak ∪ D_icl in the paper).
//! - Each example keeps the weak record's extra fields (the source's own on top for the ICL copy)
//!   and gains `id`, `source` (`"weak"`/`"icl"`) and `pred` (the normalized answer).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use w2s_eval::answer::{equivalent, extract_normalized, Equivalence};
use w2s_eval::TaskKind;

use crate::error::{CurationError, Result};
use crate::record::{Sample, SftExample};

/// How two normalized final answers are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchMode {
    /// Normalized strings are equal (the reference's rule).
    #[default]
    Exact,
    /// The grader's semantic equivalence.
    Equivalent,
}

impl fmt::Display for MatchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchMode::Exact => "exact",
            MatchMode::Equivalent => "equivalent",
        })
    }
}

impl FromStr for MatchMode {
    type Err = CurationError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "exact" => Ok(MatchMode::Exact),
            "equivalent" => Ok(MatchMode::Equivalent),
            _ => Err(CurationError::Config(format!(
                "match mode {s:?} (expected exact or equivalent)"
            ))),
        }
    }
}

/// Why a pair of answers is or is not consistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Consistency {
    /// Both non-empty and matching: keep.
    Consistent,
    /// The first (weak) answer is empty.
    FirstEmpty,
    /// The first answer is present, the second (ICL) is empty.
    SecondEmpty,
    /// Both present and different.
    Disagree,
    /// Both present; equivalence could not be decided, so not a match.
    Undecided,
}

/// Compare two **normalized** answers under `mode`.
pub fn consistency(task: TaskKind, mode: MatchMode, first: &str, second: &str) -> Consistency {
    if first.is_empty() {
        return Consistency::FirstEmpty;
    }
    if second.is_empty() {
        return Consistency::SecondEmpty;
    }
    let verdict = match mode {
        MatchMode::Exact if first == second => Equivalence::Equal,
        MatchMode::Exact => Equivalence::NotEqual,
        MatchMode::Equivalent => equivalent(task, first, second),
    };
    match verdict {
        Equivalence::Equal => Consistency::Consistent,
        Equivalence::NotEqual => Consistency::Disagree,
        Equivalence::Undecided => Consistency::Undecided,
    }
}

/// Counts of what Stage I kept and why it dropped the rest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage1Stats {
    /// Weak records (one per question).
    pub questions: usize,
    /// Questions kept.
    pub kept: usize,
    /// Weak questions with no ICL record.
    pub missing_icl: usize,
    /// ICL records whose id has no weak record (ignored).
    pub icl_without_weak: usize,
    /// Dropped: the weak answer is empty.
    pub weak_empty: usize,
    /// Dropped: the ICL answer is empty (weak answer present).
    pub icl_empty: usize,
    /// Dropped: the answers differ.
    pub disagree: usize,
    /// Dropped: equivalence undecidable.
    pub undecided: usize,
}

/// The three Stage I SFT sets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stage1Sets {
    /// Weak solutions of the kept questions.
    pub weak: Vec<SftExample>,
    /// ICL solutions of the kept questions.
    pub icl: Vec<SftExample>,
    /// `weak` followed by `icl`.
    pub hybrid: Vec<SftExample>,
    /// What was kept and why the rest was not.
    pub stats: Stage1Stats,
}

/// Run Stage I selection; output follows the order of `weak`.
///
/// # Errors
/// [`CurationError::DuplicateId`] when an id repeats within `weak` or within `icl`.
pub fn select_consistent(
    task: TaskKind,
    weak: &[Sample],
    icl: &[Sample],
    mode: MatchMode,
) -> Result<Stage1Sets> {
    let icl_by_id = index_by_id(icl, "icl")?;
    let weak_by_id = index_by_id(weak, "weak")?;
    let mut sets = Stage1Sets::default();
    let stats = &mut sets.stats;
    stats.questions = weak.len();
    stats.icl_without_weak = icl
        .iter()
        .filter(|s| !weak_by_id.contains_key(s.id.as_str()))
        .count();
    for weak_sample in weak {
        let Some(&icl_sample) = icl_by_id.get(weak_sample.id.as_str()) else {
            stats.missing_icl += 1;
            continue;
        };
        let weak_pred = extract_normalized(task, &weak_sample.response);
        let icl_pred = extract_normalized(task, &icl_sample.response);
        match consistency(task, mode, &weak_pred, &icl_pred) {
            Consistency::Consistent => {
                stats.kept += 1;
                sets.weak
                    .push(sft_example(weak_sample, weak_sample, "weak", weak_pred));
                sets.icl
                    .push(sft_example(weak_sample, icl_sample, "icl", icl_pred));
            }
            Consistency::FirstEmpty => stats.weak_empty += 1,
            Consistency::SecondEmpty => stats.icl_empty += 1,
            Consistency::Disagree => stats.disagree += 1,
            Consistency::Undecided => stats.undecided += 1,
        }
    }
    sets.hybrid = sets.weak.iter().chain(&sets.icl).cloned().collect();
    Ok(sets)
}

/// Map each id to its record, refusing duplicates.
pub(crate) fn index_by_id<'a>(
    samples: &'a [Sample],
    source_name: &'static str,
) -> Result<HashMap<&'a str, &'a Sample>> {
    let mut by_id = HashMap::with_capacity(samples.len());
    for sample in samples {
        if by_id.insert(sample.id.as_str(), sample).is_some() {
            return Err(CurationError::DuplicateId {
                source_name,
                id: sample.id.clone(),
            });
        }
    }
    Ok(by_id)
}

fn sft_example(weak: &Sample, source: &Sample, source_name: &str, pred: String) -> SftExample {
    let mut extra = weak.extra.clone();
    if !std::ptr::eq(weak, source) {
        extra.extend(source.extra.clone());
    }
    extra.insert("id".into(), Value::String(weak.id.clone()));
    extra.insert("source".into(), Value::String(source_name.into()));
    extra.insert("pred".into(), Value::String(pred));
    SftExample {
        prompt: weak.prompt.clone(),
        completion: source.response.clone(),
        extra,
    }
}
