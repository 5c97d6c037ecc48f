//! Builders of supervision sets for controlled studies (He et al. 2024, "Guiding Through
//! Complexity"; hexuan21/Weak-to-Strong, slides p.14: "replacing part of correct sols with
//! incorrect ones").
//!
//! - [`controlled_set`]: for a seeded fraction epsilon of the tasks, the correct solution is
//!   replaced by one of the task's incorrect solutions; exactly `round(epsilon * n)` tasks are
//!   replaced, so the set's outcome error rate is epsilon up to that rounding. Which incorrect
//!   solution a task gets is the [`StepTarget`]: a random one (the paper), the one with the fewest
//!   or the most wrong steps, or the ones that bring the set's step-wise error rate closest to a
//!   requested rate (the "same outcome error rate, different step-wise error rate" comparison).
//! - [`mix`]: sets combined and shuffled, each example tagged with the set it came from, for the
//!   "adding subtask supervision (or a rephrased copy) to hard-task supervision" comparison.

use rand::rngs::ChaCha12Rng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{CurationError, Result};
use crate::quality::StepCheck;
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

/// Which incorrect solution a replaced task gets.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepTarget {
    /// A random one, as the paper's pairs do.
    #[default]
    Random,
    /// The one with the fewest wrong steps: an answer derailed by as little as the pool offers.
    Fewest,
    /// The one with the most wrong steps.
    Most,
    /// The ones that bring the whole set's step-wise error rate (wrong and missing steps over all
    /// steps, correct solutions included) closest to this rate.
    Rate(f64),
}

/// What a controlled set asks for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ControlledSpec {
    /// Outcome error rate: the share of tasks given an incorrect solution, in `[0, 1]`.
    pub epsilon: f64,
    /// Which incorrect solutions.
    #[serde(default)]
    pub steps: StepTarget,
    /// Seed of the choice of tasks and solutions.
    pub seed: u64,
}

/// An SFT set in task order in which `round(epsilon * tasks.len())` tasks, chosen by the seed,
/// carry an incorrect solution picked by `spec.steps` (steps counted with `check`). Each example
/// gains `"outcome": "correct" | "incorrect"`.
///
/// # Errors
/// [`CurationError::Config`] when epsilon or a step rate is outside `[0, 1]`;
/// [`CurationError::NotEnoughIncorrect`] when fewer tasks than needed have an incorrect solution.
pub fn controlled_set(
    tasks: &[ControlledTask],
    spec: &ControlledSpec,
    check: StepCheck,
) -> Result<Vec<SftExample>> {
    let epsilon = spec.epsilon;
    let rate_ok = match spec.steps {
        StepTarget::Rate(r) => (0.0..=1.0).contains(&r),
        _ => true,
    };
    if !(0.0..=1.0).contains(&epsilon) || !rate_ok {
        return Err(CurationError::Config(format!(
            "epsilon {epsilon} and step rate {:?} must be in [0, 1]",
            spec.steps
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
    let mut rng = ChaCha12Rng::seed_from_u64(spec.seed);
    eligible.shuffle(&mut rng);
    let mut replaced = eligible[..needed].to_vec();
    replaced.sort_unstable();
    let picks = pick_incorrect(tasks, &replaced, spec.steps, check, &mut rng);
    let examples = tasks
        .iter()
        .enumerate()
        .map(|(i, task)| {
            let pick = replaced.binary_search(&i).ok().map(|k| picks[k]);
            let (completion, outcome) = match pick {
                Some(j) => (task.incorrect[j].clone(), "incorrect"),
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

/// Errors (wrong and missing steps) and steps of one solution.
fn step_counts(check: StepCheck, prompt: &str, solution: &str) -> (usize, usize) {
    let s = check.stats(prompt, solution);
    (s.wrong + s.missing, s.correct + s.wrong + s.missing)
}

/// For each task of `replaced`, the index of its chosen incorrect solution.
fn pick_incorrect(
    tasks: &[ControlledTask],
    replaced: &[usize],
    target: StepTarget,
    check: StepCheck,
    rng: &mut ChaCha12Rng,
) -> Vec<usize> {
    if target == StepTarget::Random {
        return replaced
            .iter()
            .map(|&i| {
                let pool: Vec<usize> = (0..tasks[i].incorrect.len()).collect();
                pool.choose(rng).copied().unwrap_or(0)
            })
            .collect();
    }
    // Each replaced task's candidates, ordered by wrong steps (ties in seeded order).
    let candidates: Vec<Vec<(usize, usize, usize)>> = replaced
        .iter()
        .map(|&i| {
            let task = &tasks[i];
            let mut pool: Vec<(usize, usize, usize)> = task
                .incorrect
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    let (errors, steps) = step_counts(check, &task.prompt, s);
                    (j, errors, steps)
                })
                .collect();
            pool.shuffle(rng);
            pool.sort_by_key(|&(_, errors, _)| errors);
            pool
        })
        .collect();
    let mut level: Vec<usize> = match target {
        StepTarget::Most => candidates.iter().map(|c| c.len() - 1).collect(),
        _ => vec![0; candidates.len()],
    };
    if let StepTarget::Rate(goal) = target {
        let (mut errors, mut steps) = (0..tasks.len())
            .filter(|i| replaced.binary_search(i).is_err())
            .map(|i| step_counts(check, &tasks[i].prompt, &tasks[i].correct))
            .chain(candidates.iter().map(|c| (c[0].1, c[0].2)))
            .fold((0usize, 0usize), |(e, s), (de, ds)| (e + de, s + ds));
        let distance = |e: usize, s: usize| {
            let rate = if s == 0 { 0.0 } else { e as f64 / s as f64 };
            (rate - goal).abs()
        };
        // Greedy passes in a seeded order: move a task one candidate up while that brings the
        // set's rate closer to the goal.
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        order.shuffle(rng);
        let mut moved = true;
        while moved {
            moved = false;
            for &k in &order {
                let Some(&(_, up_errors, up_steps)) = candidates[k].get(level[k] + 1) else {
                    continue;
                };
                let (_, now_errors, now_steps) = candidates[k][level[k]];
                let e = errors + up_errors - now_errors;
                let s = steps + up_steps - now_steps;
                if distance(e, s) < distance(errors, steps) {
                    (errors, steps) = (e, s);
                    level[k] += 1;
                    moved = true;
                }
            }
        }
    }
    candidates.iter().zip(level).map(|(c, l)| c[l].0).collect()
}

/// Several sets together, shuffled with `seed`; each example gains `"set": tag` naming the
/// part it came from (`("hard", ...), ("subtask", ...)` for the paper's mix).
pub fn mix(parts: &[(&str, &[SftExample])], seed: u64) -> Vec<SftExample> {
    let mut mixed: Vec<SftExample> = parts
        .iter()
        .flat_map(|&(tag, examples)| {
            examples.iter().map(move |example| {
                let mut example = example.clone();
                example
                    .extra
                    .insert("set".into(), Value::String(tag.into()));
                example
            })
        })
        .collect();
    mixed.shuffle(&mut ChaCha12Rng::seed_from_u64(seed));
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

    fn with_outcome_error_rate(
        tasks: &[ControlledTask],
        epsilon: f64,
        seed: u64,
    ) -> Result<Vec<SftExample>> {
        let spec = ControlledSpec {
            epsilon,
            steps: StepTarget::Random,
            seed,
        };
        controlled_set(tasks, &spec, StepCheck::Calculator)
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

    /// A task of three steps whose incorrect pool has one solution with each count of wrong
    /// steps, 1 to 3.
    fn stepped_task(i: usize) -> ControlledTask {
        let solution = |wrong: usize| {
            (0..3)
                .map(|k| format!("{i} + {k} = {}", i + k + usize::from(k < wrong)))
                .collect::<Vec<_>>()
                .join("\n")
        };
        ControlledTask {
            prompt: format!("q{i}"),
            correct: solution(0),
            incorrect: vec![solution(2), solution(3), solution(1)],
            extra: Extra::new(),
        }
    }

    fn step_rate(set: &[SftExample]) -> f64 {
        crate::steps::StepStats::of_set(set.iter().map(|e| &e.completion))
            .error_rate()
            .unwrap()
    }

    #[test]
    fn step_targets_pick_the_wrong_steps_asked_for() {
        let tasks: Vec<_> = (0..20).map(stepped_task).collect();
        let build = |steps| {
            let spec = ControlledSpec {
                epsilon: 0.5,
                steps,
                seed: 9,
            };
            controlled_set(&tasks, &spec, StepCheck::Calculator).unwrap()
        };
        // 10 incorrect of 20 tasks, 60 steps in all.
        assert_eq!(step_rate(&build(StepTarget::Fewest)), 10.0 / 60.0);
        assert_eq!(step_rate(&build(StepTarget::Most)), 30.0 / 60.0);
        for goal in [0.2, 0.25, 0.4, 0.45] {
            let set = build(StepTarget::Rate(goal));
            assert!((step_rate(&set) - goal).abs() <= 0.5 / 60.0, "{goal}");
            assert_eq!(outcomes(&set).iter().filter(|&&w| w).count(), 10);
        }
        // Out of reach: as close as the pools allow.
        assert_eq!(step_rate(&build(StepTarget::Rate(0.9))), 0.5);
        let spec = ControlledSpec {
            epsilon: 0.5,
            steps: StepTarget::Rate(1.5),
            seed: 0,
        };
        assert!(controlled_set(&tasks, &spec, StepCheck::Calculator).is_err());
    }

    #[test]
    fn mix_tags_and_keeps_everything() {
        let example = |c: &str| SftExample {
            prompt: "p".into(),
            completion: c.into(),
            extra: Extra::new(),
        };
        let mixed = mix(
            &[
                ("hard", &[example("h1"), example("h2")]),
                ("subtask", &[example("s1")]),
            ],
            3,
        );
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
