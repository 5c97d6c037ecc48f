//! w2s-eval: tasks, prompts, answer grading, metrics and reports for weak-to-strong reasoning.
//!
//! Burn-free on purpose (docs/architecture.md): curating data or grading a file of responses must not
//! compile a tensor library. The grading rules are docs/method.md's "Answer extraction and grading".
//!
//! ```
//! use w2s_eval::{equivalent, extract_normalized, normalize, TaskKind};
//!
//! let pred = extract_normalized(TaskKind::Math, "So $x = \\dfrac{1}{2}$. The answer is: \\frac12");
//! assert_eq!(pred, "\\frac{1}{2}");
//! let gold = normalize(TaskKind::Math, "0.5");
//! assert!(equivalent(TaskKind::Math, &pred, &gold).is_equal());
//! ```

pub mod answer;
pub mod dataset;
pub mod error;
pub mod grade;
pub mod metrics;
pub mod prompt;
pub mod rational;
pub mod report;
pub mod split;
pub mod svg;
pub mod task;

pub use answer::{equivalent, extract, extract_normalized, normalize, Equivalence};
pub use dataset::{load, load_gsm8k, load_math, Fields, Problem};
pub use error::{EvalError, Result};
pub use grade::{grade_file, GradeFields};
pub use task::TaskKind;

/// The README's example, compiled and run as a doctest so it stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
