//! The tasks w2s grades: GSM8K, MATH and the built-in synthetic arithmetic task.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::EvalError;

/// Which benchmark a question belongs to; it decides answer extraction and the SFT target format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Grade-school math word problems; final answer after `####`.
    Gsm8k,
    /// Competition math (Hendrycks et al.); final answer after `The answer is:` or in `\boxed{}`.
    Math,
    /// The built-in synthetic integer arithmetic task; answers formatted like GSM8K.
    Arithmetic,
}

impl TaskKind {
    /// The lowercase name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Gsm8k => "gsm8k",
            TaskKind::Math => "math",
            TaskKind::Arithmetic => "arithmetic",
        }
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TaskKind {
    type Err = EvalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gsm8k" => Ok(TaskKind::Gsm8k),
            "math" => Ok(TaskKind::Math),
            "arithmetic" => Ok(TaskKind::Arithmetic),
            _ => Err(EvalError::UnknownTask(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_str_display_and_serde() -> Result<(), Box<dyn std::error::Error>> {
        for task in [TaskKind::Gsm8k, TaskKind::Math, TaskKind::Arithmetic] {
            assert_eq!(task.to_string().parse::<TaskKind>()?, task);
            assert_eq!(serde_json::to_string(&task)?, format!("\"{task}\""));
        }
        assert_eq!(" MATH ".parse::<TaskKind>()?, TaskKind::Math);
        assert!("olympiad".parse::<TaskKind>().is_err());
        Ok(())
    }
}
