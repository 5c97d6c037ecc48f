//! `w2s-arith`: the built-in synthetic arithmetic reasoning task, the embedded default of w2s's
//! main job.
//!
//! A seeded generator ([`generate`]) writes multi-step integer word problems ("Mia has 12 shells.
//! She gives away 4 shells. ...") and the same chains as bare instructions ("Start with 12.
//! Subtract 4. ..."), each with a gold solution in GSM8K's format: one line per step with a
//! calculator annotation, then `#### N`. Every intermediate value is an integer in
//! `0..=max_value`, so every step can be checked exactly.
//!
//! A problem [`Family`] fixes the surface (story or instructions), the number of steps, the
//! operations allowed and how division may appear; the families of a run decide what each model
//! sees (the weak model's gold data, the strong model's pretraining, the target questions).
//! For the supervision-quality study, [`ArithmeticProblem::subtasks`] gives the subtasks of a
//! problem (its leading steps posed as problems of their own), [`ArithmeticProblem::rephrased`]
//! the same problem told about someone else, and [`ArithmeticProblem::corrupt`] wrong solutions
//! with a chosen number of wrong steps.
//!
//! [`tokenizer`] builds the word-level tokenizer of the task as an ordinary `tokenizer.json`, and
//! [`BaseModel`] holds the two small pretrained Llamas the default run starts from, as the files
//! of HF model directories. Nothing here depends on a tensor library; the pipeline reads the
//! task's problems as w2s-eval [`Problem`](w2s_eval::Problem)s and its models as any checkpoint.
//!
//! ```
//! use w2s_arith::{generate, Family};
//!
//! # fn main() -> w2s_arith::Result<()> {
//! let problems = generate(&Family::target(3), 2, 0)?;
//! assert_eq!(problems.len(), 2);
//! let problem = problems[0].to_problem("0");
//! assert_eq!(problem.answer, problems[0].answer().to_string());
//! assert!(problem.solution.is_some_and(|s| s.ends_with(&format!("#### {}", problem.answer))));
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod base_models;
mod corrupt;
pub mod error;
mod family;
mod render;
pub mod tokenizer;

pub use base_models::BaseModel;
pub use corrupt::{CorruptSolution, Mistake, Slip};
pub use error::{ArithError, Result};
pub use family::{generate, ArithmeticProblem, DivisionRule, Family, Op, Step, Surface};

/// The README's example, compiled and run as a doctest so it stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
