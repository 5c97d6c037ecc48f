//! The tasks of a study and the supervision sets built from them: the hard-task and subtask
//! sweeps over epsilon, the low and high step-wise error rate pair, and the two mixes. Every
//! set keeps its solutions as written (calculator annotations included, so the step check sees
//! them); [`training_examples`] gives the SFT targets.

use std::collections::HashMap;
use std::path::Path;

use rand::rngs::ChaCha12Rng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use w2s_arith::{ArithmeticProblem, Family};
use w2s_curation::controlled::{controlled_set, mix, ControlledSpec, ControlledTask, StepTarget};
use w2s_curation::jsonl::{read_jsonl, BadLines};
use w2s_curation::quality::StepCheck;
use w2s_curation::record::SftExample;
use w2s_eval::dataset::{load, Fields};
use w2s_eval::prompt::{strip_calculator_annotations, zero_shot};
use w2s_eval::{Problem, TaskKind};

use super::config::{StudyConfig, StudyData};
use crate::error::{Result, TrainError};
use crate::pipeline::data::distinct_problems;

/// Hard tasks, their subtasks, rephrased copies of the hard tasks (same order) and the test.
#[derive(Debug, Clone)]
pub struct StudyTasks {
    /// Hard tasks.
    pub hard: Vec<ControlledTask>,
    /// Their subtasks.
    pub subtasks: Vec<ControlledTask>,
    /// The hard tasks told in other words, index for index; `None` when not supplied.
    pub rephrased: Option<Vec<ControlledTask>>,
    /// Test questions.
    pub test: Vec<Problem>,
}

/// Which comparison a set belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SetKind {
    /// Hard-task supervision at one epsilon.
    Hard,
    /// Subtask supervision at one epsilon.
    Subtask,
    /// Hard-task supervision at a requested step-wise error rate.
    StepRate,
    /// Hard-task supervision plus subtasks or a rephrased copy.
    Mix,
}

/// One supervision set and what was asked of it.
#[derive(Debug, Clone)]
pub struct StudySet {
    /// Its name in the report (`hard_e30`, `subtask_e0`, `hard_e60_steps20`, ...).
    pub name: String,
    /// Its comparison.
    pub kind: SetKind,
    /// The outcome error rate asked for (of the hard part, for a mix).
    pub epsilon: f64,
    /// The step-wise error rate asked for, if one was.
    pub step_rate: Option<f64>,
    /// The examples, solutions as written.
    pub examples: Vec<SftExample>,
}

/// The tasks `data` describes.
///
/// # Errors
/// Unreadable or malformed files (naming file and line), too few distinct generated questions,
/// and rephrased copies whose ids do not match the hard tasks.
pub fn study_tasks(data: &StudyData, seed: u64) -> Result<StudyTasks> {
    match data {
        StudyData::Arithmetic {
            family,
            tasks,
            test,
        } => arithmetic_tasks(family, *tasks, *test, seed),
        StudyData::Files {
            task,
            hard,
            subtasks,
            rephrased,
            test,
        } => {
            let hard = read_tasks(hard)?;
            let rephrased = match rephrased {
                Some(path) => Some(align(&hard, read_tasks(path)?, path)?),
                None => None,
            };
            Ok(StudyTasks {
                subtasks: read_tasks(subtasks)?,
                rephrased,
                test: load(*task, test, &Fields::for_task(*task))?,
                hard,
            })
        }
    }
}

fn arithmetic_tasks(family: &Family, tasks: usize, test: usize, seed: u64) -> Result<StudyTasks> {
    let problems = distinct_problems(family, tasks + test, |round| {
        seed ^ round.wrapping_mul(0x9E37_79B9)
    })?;
    let (hard, rest) = problems.split_at(tasks);
    let test = rest[..test]
        .iter()
        .enumerate()
        .map(|(i, p)| p.to_problem(format!("test{i}")))
        .collect();
    let mut rng = ChaCha12Rng::seed_from_u64(seed ^ 0xC0AA);
    let mut task = |p: &ArithmeticProblem, id: String| controlled(p, id, &mut rng);
    let subtasks = hard
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            p.subtasks()
                .into_iter()
                .enumerate()
                .map(move |(k, s)| (s, format!("h{i}.s{}", k + 1)))
        })
        .map(|(s, id)| task(&s, id))
        .collect();
    let hard_tasks: Vec<ControlledTask> = hard
        .iter()
        .enumerate()
        .map(|(i, p)| task(p, format!("h{i}")))
        .collect();
    let rephrased = hard
        .iter()
        .zip(&hard_tasks)
        .map(|(p, t)| ControlledTask {
            prompt: zero_shot(&p.rephrased().question()),
            ..t.clone()
        })
        .collect();
    Ok(StudyTasks {
        hard: hard_tasks,
        subtasks,
        rephrased: Some(rephrased),
        test,
    })
}

/// A problem as a task: its gold solution, and one corrupted solution per count of wrong steps
/// the corrupter could make.
fn controlled(p: &ArithmeticProblem, id: String, rng: &mut ChaCha12Rng) -> ControlledTask {
    let mut extra = serde_json::Map::new();
    extra.insert("id".into(), Value::String(id));
    extra.insert("gold".into(), Value::String(p.answer().to_string()));
    ControlledTask {
        prompt: zero_shot(&p.question()),
        correct: p.solution(),
        incorrect: (1..=p.steps.len())
            .filter_map(|k| p.corrupt(k, rng).map(|c| c.solution))
            .collect(),
        extra,
    }
}

/// One line of a user's supervision file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskLine {
    id: String,
    question: String,
    answer: Value,
    correct: String,
    #[serde(default)]
    incorrect: Vec<String>,
}

fn read_tasks(path: &Path) -> Result<Vec<ControlledTask>> {
    let lines: Vec<TaskLine> = read_jsonl(path, BadLines::Fail)?.records;
    Ok(lines
        .into_iter()
        .map(|l| {
            let gold = match l.answer {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let mut extra = serde_json::Map::new();
            extra.insert("id".into(), Value::String(l.id));
            extra.insert("gold".into(), Value::String(gold));
            ControlledTask {
                prompt: zero_shot(&l.question),
                correct: l.correct,
                incorrect: l.incorrect,
                extra,
            }
        })
        .collect())
}

/// `copies` reordered to the hard tasks' order by id.
fn align(
    hard: &[ControlledTask],
    copies: Vec<ControlledTask>,
    path: &Path,
) -> Result<Vec<ControlledTask>> {
    let id = |t: &ControlledTask| t.extra.get("id").and_then(Value::as_str).map(String::from);
    let mut by_id: HashMap<Option<String>, ControlledTask> =
        copies.into_iter().map(|t| (id(&t), t)).collect();
    hard.iter()
        .map(|h| {
            by_id.remove(&id(h)).ok_or_else(|| {
                TrainError::config(
                    "data.rephrased",
                    format!("{} has no copy of hard task {:?}", path.display(), id(h)),
                )
            })
        })
        .collect()
}

/// Every set of the study, in report order.
///
/// # Errors
/// A rate the tasks cannot give (too few incorrect solutions).
pub fn study_sets(config: &StudyConfig, tasks: &StudyTasks) -> Result<Vec<StudySet>> {
    let check = StepCheck::for_task(config.task());
    // `field` names the pool: with a user's files, "not enough incorrect solutions" must say
    // which file.
    let build = |field: &'static str, epsilon: f64, steps: StepTarget| {
        let pool = if field == "data.hard" {
            &tasks.hard
        } else {
            &tasks.subtasks
        };
        let spec = ControlledSpec {
            epsilon,
            steps,
            seed: config.seed,
        };
        controlled_set(pool, &spec, check)
            .map_err(|e| TrainError::config(field, format!("epsilon {epsilon}: {e}")))
    };
    let percent = |r: f64| (100.0 * r).round() as u32;
    let set = |name: String, kind, epsilon, step_rate, examples| StudySet {
        name,
        kind,
        epsilon,
        step_rate,
        examples,
    };
    let mut sets = Vec::new();
    for (kind, field, label) in [
        (SetKind::Hard, "data.hard", "hard"),
        (SetKind::Subtask, "data.subtasks", "subtask"),
    ] {
        for &e in &config.epsilons {
            let examples = build(field, e, StepTarget::Fewest)?;
            sets.push(set(
                format!("{label}_e{}", percent(e)),
                kind,
                e,
                None,
                examples,
            ));
        }
    }
    let s = config.step_rates;
    for rate in [s.low, s.high] {
        let examples = build("data.hard", s.epsilon, StepTarget::Rate(rate))?;
        let name = format!("hard_e{}_steps{}", percent(s.epsilon), percent(rate));
        sets.push(set(
            name,
            SetKind::StepRate,
            s.epsilon,
            Some(rate),
            examples,
        ));
    }
    let m = config.mix;
    let hard = build("data.hard", m.hard_epsilon, StepTarget::Fewest)?;
    let subtask = build("data.subtasks", m.subtask_epsilon, StepTarget::Fewest)?;
    let name = format!(
        "hard_e{}+subtask_e{}",
        percent(m.hard_epsilon),
        percent(m.subtask_epsilon)
    );
    let mixed = mix(&[("hard", &hard), ("subtask", &subtask)], config.seed);
    sets.push(set(name, SetKind::Mix, m.hard_epsilon, None, mixed));
    if let Some(rephrased) = &tasks.rephrased {
        // The copy carries the very solution its original got, so only the wording is new.
        let copy: Vec<SftExample> = hard
            .iter()
            .zip(rephrased)
            .map(|(e, r)| SftExample {
                prompt: r.prompt.clone(),
                ..e.clone()
            })
            .collect();
        let name = format!("hard_e{}+rephrased", percent(m.hard_epsilon));
        let mixed = mix(&[("hard", &hard), ("rephrased", &copy)], config.seed);
        sets.push(set(name, SetKind::Mix, m.hard_epsilon, None, mixed));
    }
    Ok(sets)
}

/// The SFT targets of a set: calculator annotations removed for GSM8K and the arithmetic task,
/// as the paper's SFT format has them (w2s-eval's `sft_target`).
pub fn training_examples(task: TaskKind, examples: &[SftExample]) -> Vec<SftExample> {
    examples
        .iter()
        .map(|e| SftExample {
            completion: match task {
                TaskKind::Gsm8k | TaskKind::Arithmetic => {
                    strip_calculator_annotations(&e.completion)
                }
                TaskKind::Math => e.completion.clone(),
            },
            ..e.clone()
        })
        .collect()
}
