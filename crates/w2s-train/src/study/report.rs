//! The study's report: one row per supervision set (the rates asked for and measured back, and
//! the trained model's test accuracy), the paper's three questions answered from those rows, and
//! the time per stage. Markdown, `study.json` and `study.svg` in the run directory.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use w2s_eval::report::Comparison;
use w2s_eval::TaskKind;

use super::sets::SetKind;
use crate::error::Result;
use crate::pipeline::run_dir::{write_json, write_text};

/// One supervision set and the model trained on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyRow {
    /// The set's name (`hard_e30`, ...).
    pub name: String,
    /// Its comparison.
    pub kind: SetKind,
    /// Training examples.
    pub examples: usize,
    /// Outcome error rate asked for (of the hard part, for a mix).
    pub requested_epsilon: f64,
    /// Step-wise error rate asked for, if one was.
    pub requested_step_rate: Option<f64>,
    /// Outcome error rate measured on the set against gold.
    pub outcome_error_rate: Option<f64>,
    /// Step-wise error rate measured on the set.
    pub step_error_rate: Option<f64>,
    /// Greedy test accuracy of the trained model, 0..1.
    pub accuracy: f64,
}

/// One of the paper's questions and what the rows say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The question.
    pub question: String,
    /// The answer in a sentence, with the figures it rests on.
    pub answer: String,
    /// The accuracy difference it turns on, in points; `None` when a set was not run.
    pub difference: Option<f64>,
    /// Whether that difference is more than two standard errors.
    pub beyond_noise: Option<bool>,
}

/// The whole report (`study.json`, an interface: scripts read it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyReport {
    /// Grading rules.
    pub task: TaskKind,
    /// Seed of the study.
    pub seed: u64,
    /// Backend it ran on.
    pub backend: String,
    /// Test questions.
    pub test_size: usize,
    /// Test accuracy of the untrained model.
    pub base_accuracy: f64,
    /// One per set, in order.
    pub rows: Vec<StudyRow>,
    /// The three questions.
    pub findings: Vec<Finding>,
    /// Seconds per stage, and `total`.
    pub seconds: serde_json::Map<String, serde_json::Value>,
}

impl StudyReport {
    /// The findings of `rows`: hard with high outcome error versus clean subtasks; low versus
    /// high step-wise error at equal outcome error; subtasks versus a rephrased copy added.
    pub fn findings(rows: &[StudyRow], test_size: usize) -> Vec<Finding> {
        let find = |pred: &dyn Fn(&StudyRow) -> bool| rows.iter().find(|r| pred(r));
        let compare = |question: &str, a: Option<&StudyRow>, b: Option<&StudyRow>| {
            let (Some(a), Some(b)) = (a, b) else {
                return Finding {
                    question: question.into(),
                    answer: "not run".into(),
                    difference: None,
                    beyond_noise: None,
                };
            };
            let diff = 100.0 * (a.accuracy - b.accuracy);
            let se =
                100.0 * (variance(a.accuracy, test_size) + variance(b.accuracy, test_size)).sqrt();
            let beyond = diff.abs() > 2.0 * se;
            let verdict = match (diff > 0.0, beyond) {
                (true, true) => "yes",
                (false, true) => "no",
                _ => "no difference beyond noise",
            };
            Finding {
                question: question.into(),
                answer: format!(
                    "{verdict}: {} {:.1}% vs {} {:.1}% ({diff:+.1} points, 2 SE = {:.1})",
                    a.name,
                    100.0 * a.accuracy,
                    b.name,
                    100.0 * b.accuracy,
                    2.0 * se
                ),
                difference: Some(diff),
                beyond_noise: Some(beyond),
            }
        };
        let worst_hard = rows
            .iter()
            .filter(|r| r.kind == SetKind::Hard)
            .max_by(|a, b| a.requested_epsilon.total_cmp(&b.requested_epsilon));
        let clean_subtask = rows
            .iter()
            .filter(|r| r.kind == SetKind::Subtask)
            .min_by(|a, b| a.requested_epsilon.total_cmp(&b.requested_epsilon));
        let low = rows
            .iter()
            .filter(|r| r.kind == SetKind::StepRate)
            .min_by(|a, b| rate(a).total_cmp(&rate(b)));
        let high = rows
            .iter()
            .filter(|r| r.kind == SetKind::StepRate)
            .max_by(|a, b| rate(a).total_cmp(&rate(b)));
        vec![
            compare(
                "Does hard-task supervision with a high outcome error rate beat clean subtask supervision?",
                worst_hard,
                clean_subtask,
            ),
            compare(
                "At equal outcome error rate, does a lower step-wise error rate train a better model?",
                low,
                high,
            ),
            compare(
                "Does adding subtasks to hard-task supervision beat adding a rephrased copy?",
                find(&|r| r.kind == SetKind::Mix && r.name.contains("+subtask")),
                find(&|r| r.kind == SetKind::Mix && r.name.contains("+rephrased")),
            ),
        ]
    }

    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let pct = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{:.1}%", 100.0 * v));
        let mut md = format!(
            "## Supervision quality ({}, seed {}, {} test questions)\n\n\
             Untrained model: {:.1}%. Standard error of one accuracy: at most {:.1} points.\n\n\
             | set | examples | ε asked | ε measured | step rate asked | step rate measured | test accuracy |\n\
             |---|---:|---:|---:|---:|---:|---:|\n",
            self.task,
            self.seed,
            self.test_size,
            100.0 * self.base_accuracy,
            100.0 * variance(0.5, self.test_size).sqrt(),
        );
        for r in &self.rows {
            // Writing to a String cannot fail.
            let _ = writeln!(
                md,
                "| {} | {} | {:.1}% | {} | {} | {} | {:.1}% |",
                r.name,
                r.examples,
                100.0 * r.requested_epsilon,
                pct(r.outcome_error_rate),
                r.requested_step_rate
                    .map_or_else(|| "fewest".to_string(), |s| format!("{:.1}%", 100.0 * s)),
                pct(r.step_error_rate),
                100.0 * r.accuracy
            );
        }
        md.push('\n');
        for f in &self.findings {
            let _ = writeln!(md, "- **{}** {}", f.question, f.answer);
        }
        let total = self
            .seconds
            .get("total")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        let _ = writeln!(md, "\nTotal time: {total} s.");
        md
    }

    /// Writes `study.json`, `study.md` and `study.svg` into `dir`, atomically.
    ///
    /// # Errors
    /// I/O errors, naming the file.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_json(&dir.join("study.json"), self)?;
        write_text(&dir.join("study.md"), &self.to_markdown())?;
        // The chart: untrained model as the floor, the cleanest hard-task set as the ceiling.
        let clean = self
            .rows
            .iter()
            .filter(|r| r.kind == SetKind::Hard)
            .min_by(|a, b| a.requested_epsilon.total_cmp(&b.requested_epsilon));
        if let Some(clean) = clean {
            let others: Vec<(&str, f64)> = self
                .rows
                .iter()
                .filter(|r| r.name != clean.name)
                .map(|r| (r.name.as_str(), r.accuracy))
                .collect();
            let chart = Comparison::new(
                format!("supervision quality, seed {}", self.seed),
                self.task,
                ("untrained", self.base_accuracy),
                (&clean.name, clean.accuracy),
                &others,
            );
            chart.write_svg(&dir.join("study.svg"))?;
        }
        Ok(())
    }
}

fn rate(r: &StudyRow) -> f64 {
    r.requested_step_rate.unwrap_or(0.0)
}

/// Binomial variance of an accuracy over `n` questions.
fn variance(p: f64, n: usize) -> f64 {
    p * (1.0 - p) / n.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, kind: SetKind, epsilon: f64, step: Option<f64>, acc: f64) -> StudyRow {
        StudyRow {
            name: name.into(),
            kind,
            examples: 10,
            requested_epsilon: epsilon,
            requested_step_rate: step,
            outcome_error_rate: Some(epsilon),
            step_error_rate: step,
            accuracy: acc,
        }
    }

    #[test]
    fn findings_compare_the_right_rows_and_call_noise_noise() {
        let rows = vec![
            row("hard_e0", SetKind::Hard, 0.0, None, 0.40),
            row("hard_e90", SetKind::Hard, 0.9, None, 0.30),
            row("subtask_e0", SetKind::Subtask, 0.0, None, 0.20),
            row("subtask_e90", SetKind::Subtask, 0.9, None, 0.05),
            row("hard_e60_steps50", SetKind::StepRate, 0.6, Some(0.5), 0.31),
            row("hard_e60_steps20", SetKind::StepRate, 0.6, Some(0.2), 0.32),
            row("hard_e60+rephrased", SetKind::Mix, 0.6, None, 0.40),
            row("hard_e60+subtask_e30", SetKind::Mix, 0.6, None, 0.30),
        ];
        let f = StudyReport::findings(&rows, 400);
        assert_eq!(f[0].difference.map(|d| d.round()), Some(10.0));
        assert!(f[0]
            .answer
            .starts_with("yes: hard_e90 30.0% vs subtask_e0 20.0%"));
        assert_eq!(f[1].beyond_noise, Some(false));
        assert!(f[1]
            .answer
            .starts_with("no difference beyond noise: hard_e60_steps20"));
        assert!(
            f[2].answer.starts_with("no: hard_e60+subtask_e30"),
            "{}",
            f[2].answer
        );
        let f = StudyReport::findings(&rows[..4], 400);
        assert_eq!((f[1].answer.as_str(), f[1].difference), ("not run", None));
    }
}
