//! Reports: the grade of one run (overall, per MATH level and subject), and a comparison of runs
//! (weak floor, strong ceiling, weak-to-strong students with their PGR), as JSON with stable keys,
//! a Markdown table, and an SVG bar chart ([`svg`](crate::svg)). Files are written atomically.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::metrics::{pgr, Tally};
use crate::task::TaskKind;
use w2s_data::atomic::write_atomic;

/// The grade of one file of responses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The task graded.
    pub task: TaskKind,
    /// What was graded (a file name, a model name).
    pub source: String,
    /// All answers.
    pub overall: Score,
    /// By MATH difficulty level (`"1"`..`"5"`, `"none"` for a null level); empty when no line has one.
    pub by_level: BTreeMap<String, Score>,
    /// By MATH subject; empty when no line has one.
    pub by_subject: BTreeMap<String, Score>,
}

/// A tally with its accuracy spelled out for readers of the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub total: usize,
    pub correct: usize,
    pub undecided: usize,
    pub no_answer: usize,
    pub accuracy: f64,
}

impl From<Tally> for Score {
    fn from(t: Tally) -> Score {
        Score {
            total: t.total,
            correct: t.correct,
            undecided: t.undecided,
            no_answer: t.no_answer,
            accuracy: t.accuracy(),
        }
    }
}

/// Builds a [`Report`] one graded answer at a time.
#[derive(Debug, Clone)]
pub struct ReportBuilder {
    task: TaskKind,
    source: String,
    overall: Tally,
    by_level: BTreeMap<String, Tally>,
    by_subject: BTreeMap<String, Tally>,
}

impl ReportBuilder {
    pub fn new(task: TaskKind, source: impl Into<String>) -> ReportBuilder {
        ReportBuilder {
            task,
            source: source.into(),
            overall: Tally::default(),
            by_level: BTreeMap::new(),
            by_subject: BTreeMap::new(),
        }
    }

    /// Count one answer. `level` is `Some(None)` for a line whose level is null.
    pub fn record(
        &mut self,
        pred: &str,
        outcome: crate::answer::Equivalence,
        level: Option<Option<u32>>,
        subject: Option<&str>,
    ) {
        self.overall.record(pred, outcome);
        if let Some(level) = level {
            let key = level.map_or_else(|| "none".to_string(), |l| l.to_string());
            self.by_level.entry(key).or_default().record(pred, outcome);
        }
        if let Some(subject) = subject {
            self.by_subject
                .entry(subject.to_string())
                .or_default()
                .record(pred, outcome);
        }
    }

    pub fn finish(self) -> Report {
        let scores =
            |m: BTreeMap<String, Tally>| m.into_iter().map(|(k, t)| (k, t.into())).collect();
        Report {
            task: self.task,
            source: self.source,
            overall: self.overall.into(),
            by_level: scores(self.by_level),
            by_subject: scores(self.by_subject),
        }
    }
}

impl Report {
    /// A Markdown table: the overall row, then one row per level and per subject.
    pub fn to_markdown(&self) -> String {
        let mut md = format!("### {} on {}\n\n", self.source, self.task);
        md.push_str("| group | n | correct | accuracy | undecided | no answer |\n");
        md.push_str("|---|---:|---:|---:|---:|---:|\n");
        let mut row = |name: &str, s: &Score| {
            // Writing to a String cannot fail.
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {:.1}% | {} | {} |",
                s.total,
                s.correct,
                100.0 * s.accuracy,
                s.undecided,
                s.no_answer
            );
        };
        row("all", &self.overall);
        for (level, s) in &self.by_level {
            row(&format!("level {level}"), s);
        }
        for (subject, s) in &self.by_subject {
            row(subject, s);
        }
        md
    }

    /// Write the report as pretty JSON, atomically.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        write_json(path, self)
    }
}

/// What a run is in a weak-to-strong comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The weak model trained on gold labels.
    Floor,
    /// A strong model trained on weak supervision (the method under test).
    WeakToStrong,
    /// The strong model trained on gold labels.
    Ceiling,
}

/// One run of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub role: Role,
    pub accuracy: f64,
    /// PGR of a weak-to-strong run; `None` for the floor and ceiling, and where the ceiling is not
    /// above the floor.
    pub pgr: Option<f64>,
}

/// Floor, ceiling and weak-to-strong runs on one test set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub title: String,
    pub task: TaskKind,
    /// Floor first, then the weak-to-strong runs in the given order, then the ceiling.
    pub entries: Vec<Entry>,
}

impl Comparison {
    /// Accuracies are fractions in [0, 1]; each weak-to-strong run gets its PGR.
    pub fn new(
        title: impl Into<String>,
        task: TaskKind,
        floor: (&str, f64),
        ceiling: (&str, f64),
        weak_to_strong: &[(&str, f64)],
    ) -> Comparison {
        let entry = |(name, accuracy): (&str, f64), role, pgr| Entry {
            name: name.to_string(),
            role,
            accuracy,
            pgr,
        };
        let mut entries = vec![entry(floor, Role::Floor, None)];
        entries.extend(weak_to_strong.iter().map(|&(name, acc)| {
            entry(
                (name, acc),
                Role::WeakToStrong,
                pgr(floor.1, acc, ceiling.1),
            )
        }));
        entries.push(entry(ceiling, Role::Ceiling, None));
        Comparison {
            title: title.into(),
            task,
            entries,
        }
    }

    /// A Markdown table of accuracy and PGR.
    pub fn to_markdown(&self) -> String {
        let mut md = format!(
            "### {} ({})\n\n| run | role | accuracy | PGR |\n|---|---|---:|---:|\n",
            self.title, self.task
        );
        for e in &self.entries {
            let pgr = e.pgr.map_or_else(|| "–".to_string(), |p| format!("{p:.2}"));
            let role = match e.role {
                Role::Floor => "weak floor",
                Role::WeakToStrong => "weak-to-strong",
                Role::Ceiling => "strong ceiling",
            };
            // Writing to a String cannot fail.
            let _ = writeln!(
                md,
                "| {} | {role} | {:.1}% | {pgr} |",
                e.name,
                100.0 * e.accuracy
            );
        }
        md
    }

    /// Write the comparison as pretty JSON, atomically.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        write_json(path, self)
    }

    /// Write the SVG bar chart, atomically.
    pub fn write_svg(&self, path: &Path) -> Result<()> {
        let svg = crate::svg::bar_chart(self);
        Ok(write_atomic(path, |w| w.write_all(svg.as_bytes()))?)
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    Ok(write_atomic(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value)?;
        w.write_all(b"\n")
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::Equivalence;

    #[test]
    fn report_breaks_down_by_level_and_subject() {
        let mut b = ReportBuilder::new(TaskKind::Math, "run");
        b.record("1", Equivalence::Equal, Some(Some(1)), Some("Algebra"));
        b.record("x", Equivalence::Undecided, Some(Some(1)), Some("Geometry"));
        b.record("", Equivalence::NotEqual, Some(None), Some("Algebra"));
        let r = b.finish();
        assert_eq!(r.overall.total, 3);
        assert_eq!(r.by_level["1"].correct, 1);
        assert_eq!(r.by_level["none"].no_answer, 1);
        assert_eq!(r.by_subject["Algebra"].total, 2);
        assert_eq!(r.by_subject["Geometry"].undecided, 1);
        let md = r.to_markdown();
        assert!(md.contains("| all | 3 | 1 | 33.3% | 1 | 1 |"), "{md}");
        assert!(md.contains("| level none | 1 | 0 | 0.0% | 0 | 1 |"), "{md}");
    }

    #[test]
    fn json_keys_are_stable() -> anyhow::Result<()> {
        let r = ReportBuilder::new(TaskKind::Gsm8k, "f").finish();
        let json = serde_json::to_string(&r)?;
        assert_eq!(
            json,
            concat!(
                r#"{"task":"gsm8k","source":"f","overall":{"total":0,"correct":0,"undecided":0,"#,
                r#""no_answer":0,"accuracy":0.0},"by_level":{},"by_subject":{}}"#
            )
        );
        let c = Comparison::new(
            "t",
            TaskKind::Math,
            ("weak", 0.2),
            ("strong", 0.6),
            &[("w2s", 0.5)],
        );
        let json = serde_json::to_value(&c)?;
        assert_eq!(json["entries"][1]["role"], "weak_to_strong");
        assert!(json["entries"][0]["pgr"].is_null());
        assert!((json["entries"][1]["pgr"].as_f64().unwrap_or(0.0) - 0.75).abs() < 1e-9);
        assert!(c
            .to_markdown()
            .contains("| w2s | weak-to-strong | 50.0% | 0.75 |"));
        Ok(())
    }

    #[test]
    fn files_are_written() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let c = Comparison::new("t", TaskKind::Gsm8k, ("weak", 0.3), ("strong", 0.7), &[]);
        c.write_json(&dir.path().join("c.json"))?;
        c.write_svg(&dir.path().join("c.svg"))?;
        let back: Comparison =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("c.json"))?)?;
        assert_eq!(back, c);
        assert!(std::fs::read_to_string(dir.path().join("c.svg"))?.starts_with("<svg"));
        Ok(())
    }
}
