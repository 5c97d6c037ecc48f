//! Seeded, reproducible splits of a question pool into D_gold,1 (weak-model SFT), D_gold,2 (the
//! strong model sees only its questions) and a test set, as in W2SR (docs/method.md, "Roles and
//! data": GSM8K 7,000 / 7,000 / official test, MATH 6,000 / 6,000 / MATH-500).
//!
//! The pool is shuffled with `ChaCha12Rng::seed_from_u64(seed)` (rand's ChaCha12, pinned by Cargo.lock)
//! and cut in order. The split is written as `gold1.jsonl`, `gold2.jsonl`, `test.jsonl` (each the
//! original lines, every field kept) and `split.json` (the config with its seed, and the counts).

use std::path::Path;

use rand::rngs::ChaCha12Rng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::dataset::Problem;
use crate::error::{EvalError, Result};
use w2s_data::atomic::write_atomic;
use w2s_data::jsonl::write_jsonl;

/// Sizes of the three parts and the shuffle seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitConfig {
    pub gold1: usize,
    pub gold2: usize,
    /// Questions cut from the pool for testing; 0 when the test set is a separate file.
    pub test: usize,
    pub seed: u64,
}

impl SplitConfig {
    /// Errors when the parts do not fit in a pool of `pool_len` questions.
    pub fn validate(&self, pool_len: usize) -> Result<()> {
        let needed = self
            .gold1
            .checked_add(self.gold2)
            .and_then(|n| n.checked_add(self.test));
        match needed {
            Some(n) if n <= pool_len => Ok(()),
            _ => Err(EvalError::Invalid(format!(
                "split {} + {} + {} does not fit in a pool of {pool_len}",
                self.gold1, self.gold2, self.test
            ))),
        }
    }
}

/// The three parts of a split.
#[derive(Debug, Clone, PartialEq)]
pub struct Splits {
    pub config: SplitConfig,
    pub gold1: Vec<Problem>,
    pub gold2: Vec<Problem>,
    pub test: Vec<Problem>,
}

/// What `split.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitManifest {
    pub config: SplitConfig,
    pub gold1: usize,
    pub gold2: usize,
    pub test: usize,
}

impl Splits {
    /// Shuffle `pool` with the seed and cut it; questions beyond the three parts are left out.
    pub fn from_pool(mut pool: Vec<Problem>, config: SplitConfig) -> Result<Splits> {
        config.validate(pool.len())?;
        pool.shuffle(&mut ChaCha12Rng::seed_from_u64(config.seed));
        let mut rest = pool.into_iter();
        let mut take = |n: usize| rest.by_ref().take(n).collect::<Vec<_>>();
        let gold1 = take(config.gold1);
        let gold2 = take(config.gold2);
        let test = take(config.test);
        Ok(Splits {
            config,
            gold1,
            gold2,
            test,
        })
    }

    /// Write the parts and `split.json` into `dir` (created if needed), each file atomically.
    /// An empty test part writes no `test.jsonl`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
        let parts = [
            ("gold1.jsonl", &self.gold1),
            ("gold2.jsonl", &self.gold2),
            ("test.jsonl", &self.test),
        ];
        for (name, part) in parts {
            if name != "test.jsonl" || !part.is_empty() {
                write_jsonl(dir.join(name), part.iter().map(|p| &p.record))?;
            }
        }
        let manifest = SplitManifest {
            config: self.config,
            gold1: self.gold1.len(),
            gold2: self.gold2.len(),
            test: self.test.len(),
        };
        Ok(write_atomic(dir.join("split.json"), |w| {
            serde_json::to_writer_pretty(&mut *w, &manifest)?;
            std::io::Write::write_all(w, b"\n")
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::load_gsm8k;
    use std::collections::HashSet;

    fn pool(n: usize) -> Vec<Problem> {
        (0..n)
            .map(|i| Problem {
                id: i.to_string(),
                question: format!("q{i}"),
                answer: i.to_string(),
                solution: None,
                subject: None,
                level: None,
                record:
                    serde_json::json!({"question": format!("q{i}"), "answer": format!("#### {i}")})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
            })
            .collect()
    }

    fn ids(p: &[Problem]) -> Vec<&str> {
        p.iter().map(|p| p.id.as_str()).collect()
    }

    #[test]
    fn same_seed_same_split_and_parts_are_disjoint() -> Result<()> {
        let config = SplitConfig {
            gold1: 40,
            gold2: 40,
            test: 15,
            seed: 7,
        };
        let a = Splits::from_pool(pool(100), config)?;
        let b = Splits::from_pool(pool(100), config)?;
        assert_eq!(a, b);
        let c = Splits::from_pool(pool(100), SplitConfig { seed: 8, ..config })?;
        assert_ne!(ids(&a.gold1), ids(&c.gold1));
        let all: Vec<&str> = [&a.gold1, &a.gold2, &a.test]
            .iter()
            .flat_map(|p| ids(p))
            .collect();
        assert_eq!(all.len(), 95);
        assert_eq!(
            all.iter().collect::<HashSet<_>>().len(),
            95,
            "no question in two parts"
        );
        assert_ne!(ids(&a.gold1), ids(&pool(40)), "the pool was shuffled");
        assert!(Splits::from_pool(pool(10), config).is_err());
        Ok(())
    }

    #[test]
    fn written_split_reloads_with_its_seed() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let config = SplitConfig {
            gold1: 3,
            gold2: 2,
            test: 0,
            seed: 42,
        };
        let splits = Splits::from_pool(pool(6), config)?;
        splits.write(dir.path())?;
        let gold1 = load_gsm8k(&dir.path().join("gold1.jsonl"))?;
        assert_eq!(
            gold1.iter().map(|p| &p.question).collect::<Vec<_>>(),
            splits.gold1.iter().map(|p| &p.question).collect::<Vec<_>>()
        );
        assert!(!dir.path().join("test.jsonl").exists());
        let manifest: SplitManifest =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("split.json"))?)?;
        assert_eq!(
            manifest,
            SplitManifest {
                config,
                gold1: 3,
                gold2: 2,
                test: 0
            }
        );
        Ok(())
    }
}
