//! The built-in synthetic arithmetic reasoning task: the embedded default of the main job.
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
//! [`tokenizer`] builds the word-level tokenizer of the task as an ordinary `tokenizer.json`.

mod corrupt;
mod family;
mod render;
pub mod tokenizer;

pub use corrupt::{CorruptSolution, Mistake, Slip};
pub use family::{generate, ArithmeticProblem, DivisionRule, Family, Op, Step, Surface};
