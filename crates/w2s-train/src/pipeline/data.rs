//! The splits stage: D_gold,1, D_gold,2 and test (generated or read from benchmark files), the
//! strong model's pretraining corpus for the arithmetic task, and its tokenizer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rand::rngs::ChaCha12Rng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use w2s_arith::{generate, ArithmeticProblem, Family};
use w2s_curation::record::SftExample;
use w2s_data::jsonl::{read_jsonl, write_jsonl, BadLines};
use w2s_eval::prompt::{sft_target, zero_shot};
use w2s_eval::split::{SplitConfig, Splits};
use w2s_eval::{load, Fields, Problem, TaskKind};

use super::config::{DataConfig, PipelineConfig, PretrainConfig};
use crate::error::{Result, TrainError};

/// Sizes of what the splits stage wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitSizes {
    /// D_gold,1.
    pub gold1: usize,
    /// D_gold,2.
    pub gold2: usize,
    /// Test.
    pub test: usize,
    /// Pretraining documents (0 without pretraining).
    pub pretrain_documents: usize,
}

/// Writes `gold1.jsonl`, `gold2.jsonl`, `test.jsonl`, and for the arithmetic task
/// `tokenizer.json` and (with pretraining) `pretrain.jsonl`, into `dir`.
///
/// # Errors
/// Unreadable benchmark files, too few questions, and I/O errors naming the file.
pub fn write_splits(config: &PipelineConfig, dir: &Path) -> Result<SplitSizes> {
    let splits = match &config.data {
        DataConfig::Arithmetic {
            family,
            gold1,
            gold2,
            test,
        } => {
            let n = gold1 + gold2 + test;
            let pool = distinct(family, n, config.seed)?;
            Splits::from_pool(
                pool,
                SplitConfig {
                    gold1: *gold1,
                    gold2: *gold2,
                    test: *test,
                    seed: config.seed,
                },
            )?
        }
        DataConfig::Files {
            train,
            test_file,
            gold1,
            gold2,
            test,
        } => {
            let fields = Fields::for_task(config.task);
            let pool = load(config.task, train, &fields)?;
            let mut splits = Splits::from_pool(
                pool,
                SplitConfig {
                    gold1: *gold1,
                    gold2: *gold2,
                    test: 0,
                    seed: config.seed,
                },
            )?;
            let mut tests = load(config.task, test_file, &fields)?;
            if *test > 0 {
                tests.truncate(*test);
            }
            splits.test = tests;
            splits
        }
    };
    splits.write(dir)?;
    let mut pretrain_documents = 0;
    if config.task == TaskKind::Arithmetic {
        w2s_arith::tokenizer::write(&dir.join("tokenizer.json"))?;
    }
    if let Some(pretrain) = &config.pretrain {
        let documents = pretraining_corpus(pretrain, pretrain.documents, config.seed)?;
        pretrain_documents = documents.len();
        write_jsonl(dir.join(Corpus::Strong.file()), &documents)?;
        if pretrain.weak_documents > 0 {
            let documents = pretraining_corpus(pretrain, pretrain.weak_documents, config.seed)?;
            write_jsonl(dir.join(Corpus::Weak.file()), &documents)?;
        }
    }
    Ok(SplitSizes {
        gold1: splits.gold1.len(),
        gold2: splits.gold2.len(),
        test: splits.test.len(),
        pretrain_documents,
    })
}

/// `n` problems of `family` with pairwise different questions.
fn distinct(family: &Family, n: usize, seed: u64) -> Result<Vec<Problem>> {
    let problems = distinct_problems(family, n, |round| {
        seed.wrapping_add(round.wrapping_mul(0x9E37_79B9))
    })?;
    Ok(problems
        .iter()
        .enumerate()
        .map(|(i, p)| p.to_problem(format!("a{i}")))
        .collect())
}

/// `n` problems of `family` with pairwise different questions, the first unseen ones of up to 20
/// rounds of `n` draws, round `r` seeded by `seed_of(r)`.
///
/// # Errors
/// A configuration error naming `data.family` when 20 rounds find fewer than `n`.
pub(crate) fn distinct_problems(
    family: &Family,
    n: usize,
    seed_of: impl Fn(u64) -> u64,
) -> Result<Vec<ArithmeticProblem>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(n);
    for round in 0..20u64 {
        for p in generate(family, n, seed_of(round))? {
            if out.len() < n && seen.insert(p.question()) {
                out.push(p);
            }
        }
        if out.len() == n {
            return Ok(out);
        }
    }
    Err(TrainError::config(
        "data.family",
        format!("holds fewer than {n} distinct questions; raise max_value or the steps"),
    ))
}

/// The pretraining documents: `problems_per_document` solved problems of one family each, in
/// the few-shot layout (`Question: q\nAnswer: a\n\n...`), as prompt (the first question) and
/// completion (everything after it), so the loss covers every solution and later question.
fn pretraining_corpus(config: &PretrainConfig, size: usize, seed: u64) -> Result<Vec<SftExample>> {
    let mut rng = ChaCha12Rng::seed_from_u64(seed ^ 0x5eed_0fc0_a9a5);
    let total: f64 = config.mix.iter().map(|m| m.weight).sum();
    let mut documents = Vec::with_capacity(size);
    for (k, m) in config.mix.iter().enumerate() {
        let count = ((m.weight / total) * size as f64).round() as usize;
        let problems = generate(
            &m.family,
            count * config.problems_per_document,
            rng.random(),
        )?;
        for (d, chunk) in problems.chunks(config.problems_per_document).enumerate() {
            let mut text = String::new();
            for p in chunk {
                text.push_str(&format!(
                    "Question: {}\nAnswer: {}\n\n",
                    p.question(),
                    target(p)?
                ));
            }
            let (prompt, completion) = split_document(&text);
            let mut extra = serde_json::Map::new();
            extra.insert("id".into(), format!("pretrain-{k}-{d}").into());
            extra.insert("family".into(), k.into());
            documents.push(SftExample {
                prompt,
                completion,
                extra,
            });
        }
    }
    documents.shuffle(&mut rng);
    Ok(documents)
}

fn target(p: &ArithmeticProblem) -> Result<String> {
    Ok(sft_target(TaskKind::Arithmetic, &p.to_problem(""))?)
}

/// Cuts a document after its first `Answer:`.
fn split_document(text: &str) -> (String, String) {
    let cut = text.find("\nAnswer:").map_or(0, |i| i + "\nAnswer:".len());
    (text[..cut].to_string(), text[cut..].trim_end().to_string())
}

/// The three splits as written by [`write_splits`].
#[derive(Debug, Clone)]
pub struct SplitData {
    /// D_gold,1.
    pub gold1: Vec<Problem>,
    /// D_gold,2.
    pub gold2: Vec<Problem>,
    /// Test.
    pub test: Vec<Problem>,
    /// The folder.
    pub dir: PathBuf,
}

impl SplitData {
    /// Reads the splits back from `dir`.
    ///
    /// # Errors
    /// Unreadable files.
    pub fn read(task: TaskKind, dir: &Path) -> Result<Self> {
        let fields = Fields::for_task(task);
        let part = |name: &str| load(task, &dir.join(name), &fields);
        Ok(Self {
            gold1: part("gold1.jsonl")?,
            gold2: part("gold2.jsonl")?,
            test: part("test.jsonl")?,
            dir: dir.to_path_buf(),
        })
    }

    /// A pretraining corpus, if the stage wrote it.
    ///
    /// # Errors
    /// An unreadable file.
    pub fn pretraining(&self, corpus: Corpus) -> Result<Vec<SftExample>> {
        Ok(read_jsonl(self.dir.join(corpus.file()), BadLines::Fail)?.records)
    }
}

/// Whose pretraining corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corpus {
    /// The strong model's (`pretrain.documents` documents).
    Strong,
    /// The weak model's (`pretrain.weak_documents`).
    Weak,
}

impl Corpus {
    fn file(self) -> &'static str {
        match self {
            Corpus::Strong => "pretrain.jsonl",
            Corpus::Weak => "pretrain_weak.jsonl",
        }
    }
}

/// Gold SFT examples of `problems` (zero-shot prompt, gold target), with `id` and `gold`.
///
/// # Errors
/// A problem without a worked solution.
pub fn gold_examples(task: TaskKind, problems: &[Problem]) -> Result<Vec<SftExample>> {
    problems
        .iter()
        .map(|p| {
            Ok(SftExample {
                prompt: zero_shot(&p.question),
                completion: sft_target(task, p)?,
                extra: {
                    let mut extra = question_fields(p);
                    extra.insert("id".into(), p.id.clone().into());
                    extra
                },
            })
        })
        .collect()
}

/// The field every record about question `p` carries besides its id: `gold`, the answer that
/// only reports read.
pub fn question_fields(p: &Problem) -> serde_json::Map<String, serde_json::Value> {
    let mut extra = serde_json::Map::new();
    extra.insert("gold".into(), p.answer.clone().into());
    extra
}
