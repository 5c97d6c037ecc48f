//! Final answers: extraction from a response, Minerva-style normalization, and equivalence.
//!
//! The rules are docs/method.md's "Answer extraction and grading", which also says where the W2SR
//! reference code differs and why w2s does not follow it there.

mod equivalence;
mod extract;
mod latex;
mod normalize;
mod value;

pub use equivalence::{equivalent, Equivalence};
pub use extract::{extract, last_boxed};
pub use normalize::normalize;

use crate::task::TaskKind;

/// Extract and normalize in one go; `""` when the response holds no answer.
pub fn extract_normalized(task: TaskKind, response: &str) -> String {
    extract(task, response)
        .map(|raw| normalize(task, &raw))
        .unwrap_or_default()
}

/// The normalized gold answer from a gold field: the task's extraction when the field holds a
/// worked solution (`... #### 72`, `... \boxed{3}`), else the field itself (`72`, `\frac{1}{2}`).
pub fn gold_answer(task: TaskKind, gold: &str) -> String {
    let raw = extract(task, gold).unwrap_or_else(|| gold.trim().to_string());
    normalize(task, &raw)
}
