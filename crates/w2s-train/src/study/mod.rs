//! The supervision-quality study (He, Yin & Peng 2024, "Guiding Through Complexity"; docs/method.md
//! "Supervision quality"): what makes weak supervision of hard reasoning good.
//!
//! The strong model is fine-tuned on supervision sets that differ in one controlled way each,
//! and tested greedily on hard questions:
//! - hard-task supervision at outcome error rates epsilon (share of wrong final answers), and
//!   subtask supervision (the hard tasks' leading steps, posed on their own) at the same rates;
//! - hard-task supervision at one epsilon with a low and a high step-wise error rate;
//! - hard-task supervision plus subtasks, against hard-task supervision plus a rephrased copy.
//!
//! On the built-in arithmetic task the wrong solutions come from w2s-eval's corrupter and the
//! step-wise error rate from w2s-curation's grounded check, which measures back exactly what the
//! corrupter planted; on a user's GSM8K or MATH files the wrong solutions are theirs and the
//! steps are checked by the calculator check. Each set's rates are measured, not assumed, and
//! reported beside the rates asked for.

mod config;
mod flow;
mod report;
mod sets;

pub use config::{MixConfig, StepRates, StudyConfig, StudyData};
pub use flow::run_study;
pub use report::{Finding, StudyReport, StudyRow};
pub use sets::{study_sets, study_tasks, training_examples, SetKind, StudySet, StudyTasks};
