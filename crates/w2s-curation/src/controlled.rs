//! Builders of supervision sets for controlled studies (He et al. 2024, "Guiding Through
//! Complexity"; hexuan21/Weak-to-Strong, slides p.14: "replacing part of correct sols with
//! incorrect ones").
//!
//! - [`with_outcome_error_rate`]: for a seeded fraction epsilon of the tasks, the correct solution
//!   is replaced by one of the task's given incorrect solutions; exactly `round(epsilon * n)` tasks
//!   are replaced, so the set's outcome error rate is epsilon up to that rounding.
//! - [`mix`]: hard-task and subtask sets combined and shuffled, each example tagged with the set
//!   it came from, for the "adding subtask supervision to hard-task supervision" comparison.

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{CurationError, Result};
use crate::record::{Extra, SftExample};

/// One task with a correct solution and a pool of incorrect ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlledTask {
    /// Model input.
    pub prompt: String,
    /// A solution with the right final answer.
    pub correct: String,
    /// Solutions with a wrong final answer (may be empty; such a task is never replaced).
    pub incorrect: Vec<String>,
    /// Fields copied to the example (gold answer, id, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// An SFT set in task order in which `round(epsilon * tasks.len())` tasks, chosen by `seed`, carry
/// an incorrect solution. Each example gains `"outcome": "correct" | "incorrect"`.
///
/// # Errors
/// [`CurationError::Config`] when epsilon is outside `[0, 1]`; [`CurationError::NotEnoughIncorrect`]
/// when fewer tasks than needed have an incorrect solution.
pub fn with_outcome_error_rate(
    tasks: &[ControlledTask],
    epsilon: f64,
    seed: u64,
) -> Result<Vec<SftExample>> {
    if !(0.0..=1.0).contains(&epsilon) {
        return Err(CurationError::Config(format!(
            "epsilon {epsilon} is not in [0, 1]"
        )));
    }
    let needed = (epsilon * tasks.len() as f64).round() as usize;
    let mut eligible: Vec<usize> = (0..tasks.len())
        .filter(|&i| !tasks[i].incorrect.is_empty())
        .collect();
    if eligible.len() < needed {
        return Err(CurationError::NotEnoughIncorrect {
            needed,
            available: eligible.len(),
        });
    }
    let mut rng = StdRng::seed_from_u64(seed);
    eligible.shuffle(&mut rng);
    let mut replaced = vec![false; tasks.len()];
    for &i in &eligible[..needed] {
        replaced[i] = true;
    }
    let examples = tasks
        .iter()
        .zip(replaced)
        .map(|(task, replace)| {
            let incorrect = if replace {
                task.incorrect.choose(&mut rng)
            } else {
                None
            };
            let (completion, outcome) = match incorrect {
                Some(solution) => (solution.clone(), "incorrect"),
                None => (task.correct.clone(), "correct"),
            };
            let mut extra = task.extra.clone();
            extra.insert("outcome".into(), Value::String(outcome.into()));
            SftExample {
                prompt: task.prompt.clone(),
                completion,
                extra,
            }
        })
        .collect();
    Ok(examples)
}

/// Hard-task and subtask examples together, shuffled with `seed`; each gains
/// `"set": "hard" | "subtask"`.
pub fn mix(hard: &[SftExample], subtask: &[SftExample], seed: u64) -> Vec<SftExample> {
    let tag = |set: &'static str| {
        move |example: &SftExample| {
            let mut example = example.clone();
            example
                .extra
                .insert("set".into(), Value::String(set.into()));
            example
        }
    };
    let mut mixed: Vec<SftExample> = hard
        .iter()
        .map(tag("hard"))
        .chain(subtask.iter().map(tag("subtask")))
        .collect();
    mixed.shuffle(&mut StdRng::seed_from_u64(seed));
    mixed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(i: usize, incorrect: usize) -> ControlledTask {
        ControlledTask {
            prompt: format!("q{i}"),
            correct: format!("right {i}"),
            incorrect: (0..incorrect).map(|j| format!("wrong {i}.{j}")).collect(),
            extra: Extra::new(),
        }
    }

    fn outcomes(set: &[SftExample]) -> Vec<bool> {
        set.iter()
            .map(|e| e.extra["outcome"] == "incorrect")
            .collect()
    }

    #[test]
    fn exact_count_replaced_seeded_and_in_task_order() {
        let tasks: Vec<_> = (0..10).map(|i| task(i, 2)).collect();
        let set = with_outcome_error_rate(&tasks, 0.34, 1).unwrap();
        assert_eq!(outcomes(&set).iter().filter(|&&w| w).count(), 3);
        assert!(set
            .iter()
            .enumerate()
            .all(|(i, e)| e.prompt == format!("q{i}")));
        assert!(set
            .iter()
            .all(|e| (e.extra["outcome"] == "incorrect") == e.completion.starts_with("wrong")));
        assert_eq!(set, with_outcome_error_rate(&tasks, 0.34, 1).unwrap());
        assert_ne!(
            outcomes(&set),
            outcomes(&with_outcome_error_rate(&tasks, 0.34, 2).unwrap())
        );
        assert!(outcomes(&with_outcome_error_rate(&tasks, 0.0, 1).unwrap())
            .iter()
            .all(|&w| !w));
        assert!(outcomes(&with_outcome_error_rate(&tasks, 1.0, 1).unwrap())
            .iter()
            .all(|&w| w));
    }

    #[test]
    fn tasks_without_incorrect_solutions_are_never_replaced() {
        let tasks = vec![task(0, 0), task(1, 1), task(2, 0)];
        let set = with_outcome_error_rate(&tasks, 0.3, 5).unwrap();
        assert_eq!(outcomes(&set), [false, true, false]);
        let err = with_outcome_error_rate(&tasks, 0.7, 5).unwrap_err();
        assert!(matches!(
            err,
            CurationError::NotEnoughIncorrect {
                needed: 2,
                available: 1
            }
        ));
        assert!(with_outcome_error_rate(&tasks, 1.5, 5).is_err());
    }

    #[test]
    fn mix_tags_and_keeps_everything() {
        let example = |c: &str| SftExample {
            prompt: "p".into(),
            completion: c.into(),
            extra: Extra::new(),
        };
        let mixed = mix(&[example("h1"), example("h2")], &[example("s1")], 3);
        assert_eq!(mixed.len(), 3);
        for e in &mixed {
            let expected = if e.completion.starts_with('h') {
                "hard"
            } else {
                "subtask"
            };
            assert_eq!(e.extra["set"], expected);
        }
    }
}
