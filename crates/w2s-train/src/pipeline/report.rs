//! The pipeline report: the paper's table (accuracy and PGR of every model on the test split),
//! what Stage I kept and Stage II mined, the supervision quality of every training set, and the
//! wall time of every stage. Written as `report.json` (an interface; docs/architecture.md lists
//! its fields), `report.md` and `report.svg`.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use w2s_curation::quality::QualityReport;
use w2s_curation::stage2::MiningStats;
use w2s_eval::metrics::{mean_and_std, pgr};
use w2s_eval::report::Comparison;
use w2s_eval::TaskKind;

use super::run_dir::{write_json, write_text, StageTime};
use crate::error::Result;

/// One model's test accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// `weak`, `naive`, `stage1_iter1`, ..., `m_plus`, `stage2_dpo`, `stage2_orpo`, `ceiling`.
    pub name: String,
    /// Greedy test accuracy in [0, 1].
    pub accuracy: f64,
    /// (accuracy - weak) / (ceiling - weak); `null` for weak and ceiling, and where the ceiling
    /// is not above the weak floor.
    pub pgr: Option<f64>,
}

/// Size and quality of one training set, measured against the hidden gold answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetQuality {
    /// Examples.
    pub size: usize,
    /// Share whose final answer is gold (1 - outcome error rate).
    pub accuracy: Option<f64>,
    /// Share of wrong final answers.
    pub outcome_error_rate: Option<f64>,
    /// Share of wrong arithmetic steps among the checkable ones.
    pub step_error_rate: Option<f64>,
}

impl From<&QualityReport> for SetQuality {
    fn from(q: &QualityReport) -> Self {
        Self {
            size: q.size,
            accuracy: q.outcome_error_rate.map(|e| 1.0 - e),
            outcome_error_rate: q.outcome_error_rate,
            step_error_rate: q.step_error_rate,
        }
    }
}

/// One Stage I iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage1Iteration {
    /// 1-based.
    pub iteration: usize,
    /// Answers of the first source (the weak model, then the weak-set model) on D_gold,2.
    pub first_source: SetQuality,
    /// Answers of the second source (the base with ICL, then the ICL-set model).
    pub second_source: SetQuality,
    /// Questions kept (both answers agree).
    pub kept: usize,
    /// Share of D_gold,2 kept.
    pub kept_share: f64,
    /// The weak-solution set.
    pub weak_set: SetQuality,
    /// The ICL-solution set.
    pub icl_set: SetQuality,
    /// Both together (each question twice): what the hybrid model is trained on.
    pub hybrid_set: SetQuality,
}

/// Stage II sampling and mining.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage2Stats {
    /// Samples per question.
    pub samples_per_question: usize,
    /// Mean accuracy of M_plus's samples on D_gold,2.
    pub sample_accuracy: f64,
    /// Share of questions whose majority answer is gold (maj@n).
    pub majority_accuracy: f64,
    /// Share of questions with at least one gold sample (pass@n).
    pub pass_at_n: f64,
    /// Pairs mined.
    pub pairs: usize,
    /// Share of pairs whose chosen answer is gold.
    pub chosen_correct: Option<f64>,
    /// Share of pairs whose rejected answer is gold.
    pub rejected_correct: Option<f64>,
    /// Why questions gave no pair.
    pub mining: MiningStats,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineReport {
    /// Task graded.
    pub task: TaskKind,
    /// Run seed.
    pub seed: u64,
    /// Backend the run used.
    pub backend: String,
    /// The paper's table, weak first and ceiling last.
    pub rows: Vec<Row>,
    /// The weak model's labels on D_gold,2 (what naive SFT trains on).
    pub weak_labels: SetQuality,
    /// Stage I, per iteration.
    pub stage1: Vec<Stage1Iteration>,
    /// Stage II.
    pub stage2: Stage2Stats,
    /// Seconds per stage (as computed, also when this run reused it) and `"total"`.
    pub seconds: serde_json::Map<String, serde_json::Value>,
    /// Stages this run reused from an earlier run of the same directory.
    pub reused_stages: Vec<String>,
}

impl PipelineReport {
    /// Builds the rows from `(name, accuracy)` pairs, `weak` and `ceiling` among them.
    pub fn rows(accuracies: &[(String, f64)]) -> Vec<Row> {
        let find = |n: &str| {
            accuracies
                .iter()
                .find(|(name, _)| name == n)
                .map(|(_, a)| *a)
        };
        let (weak, ceiling) = (find("weak"), find("ceiling"));
        accuracies
            .iter()
            .map(|(name, accuracy)| Row {
                name: name.clone(),
                accuracy: *accuracy,
                pgr: match (name.as_str(), weak, ceiling) {
                    ("weak" | "ceiling", _, _) => None,
                    (_, Some(w), Some(c)) => pgr(w, *accuracy, c),
                    _ => None,
                },
            })
            .collect()
    }

    /// Seconds per stage, plus `"total"`.
    pub fn seconds(times: &[StageTime]) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        for t in times {
            map.insert(t.stage.clone(), (t.seconds.round() as u64).into());
        }
        let total: f64 = times.iter().map(|t| t.seconds).sum();
        map.insert("total".into(), (total.round() as u64).into());
        map
    }

    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let pct = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{:.1}%", 100.0 * v));
        let mut md = format!(
            "## Weak-to-strong on {} (seed {}, backend {})\n\n| model | test accuracy | PGR |\n|---|---:|---:|\n",
            self.task, self.seed, self.backend
        );
        for r in &self.rows {
            let pgr = r.pgr.map_or("–".into(), |p| format!("{p:.2}"));
            let _ = writeln!(md, "| {} | {:.1}% | {pgr} |", r.name, 100.0 * r.accuracy);
        }
        md.push_str("\n### Training sets (accuracy against hidden gold)\n\n");
        md.push_str(
            "| set | size | accuracy | outcome error | step error |\n|---|---:|---:|---:|---:|\n",
        );
        let mut set = |name: String, q: &SetQuality| {
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {} |",
                q.size,
                pct(q.accuracy),
                pct(q.outcome_error_rate),
                pct(q.step_error_rate)
            );
        };
        set("weak labels (naive)".into(), &self.weak_labels);
        for it in &self.stage1 {
            let i = it.iteration;
            set(format!("iter {i} source 1"), &it.first_source);
            set(format!("iter {i} source 2"), &it.second_source);
            set(format!("iter {i} weak set"), &it.weak_set);
            set(format!("iter {i} icl set"), &it.icl_set);
            set(format!("iter {i} hybrid set"), &it.hybrid_set);
        }
        let s = &self.stage2;
        let _ = write!(
            md,
            "\n### Stage II\n\nM_plus samples ({} per question): mean accuracy {}, maj@{} {}, pass@{} {}.\n\
             Pairs: {} (weak answer chosen in {}), chosen correct {}, rejected correct {}.\n",
            s.samples_per_question,
            pct(Some(s.sample_accuracy)),
            s.samples_per_question,
            pct(Some(s.majority_accuracy)),
            s.samples_per_question,
            pct(Some(s.pass_at_n)),
            s.pairs,
            s.mining.weak_chosen,
            pct(s.chosen_correct),
            pct(s.rejected_correct),
        );
        md.push_str("\n### Wall time\n\n| stage | seconds |\n|---|---:|\n");
        for (stage, secs) in &self.seconds {
            let reused = if self.reused_stages.contains(stage) {
                " (reused)"
            } else {
                ""
            };
            let _ = writeln!(md, "| {stage}{reused} | {secs} |");
        }
        md
    }

    /// Writes `report.json`, `report.md` and `report.svg` into `dir`, each atomically.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_json(&dir.join("report.json"), self)?;
        write_text(&dir.join("report.md"), &self.to_markdown())?;
        let find = |n: &str| {
            self.rows
                .iter()
                .find(|r| r.name == n)
                .map_or(0.0, |r| r.accuracy)
        };
        let middle: Vec<(&str, f64)> = self
            .rows
            .iter()
            .filter(|r| r.name != "weak" && r.name != "ceiling")
            .map(|r| (r.name.as_str(), r.accuracy))
            .collect();
        let chart = Comparison::new(
            format!("weak-to-strong, seed {}", self.seed),
            self.task,
            ("weak", find("weak")),
            ("ceiling", find("ceiling")),
            &middle,
        );
        chart.write_svg(&dir.join("report.svg"))?;
        Ok(())
    }
}

/// Mean and spread of one row over several seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowSpread {
    /// Row name.
    pub name: String,
    /// Seeds that have the row.
    pub runs: usize,
    /// Mean accuracy.
    pub accuracy_mean: f64,
    /// Sample standard deviation of the accuracy (0 for one run).
    pub accuracy_std: f64,
    /// Mean PGR over the runs that have one.
    pub pgr_mean: Option<f64>,
    /// Sample standard deviation of the PGR.
    pub pgr_std: Option<f64>,
}

/// Mean and spread of every row over `reports` (one per seed), in the first report's row order.
pub fn summarize(reports: &[PipelineReport]) -> Vec<RowSpread> {
    let Some(first) = reports.first() else {
        return Vec::new();
    };
    first
        .rows
        .iter()
        .map(|row| {
            let same: Vec<&Row> = reports
                .iter()
                .filter_map(|r| r.rows.iter().find(|x| x.name == row.name))
                .collect();
            let acc: Vec<f64> = same.iter().map(|r| r.accuracy).collect();
            let pgr: Vec<f64> = same.iter().filter_map(|r| r.pgr).collect();
            let (accuracy_mean, accuracy_std) = mean_and_std(&acc).unwrap_or((0.0, 0.0));
            let pgr_stats = mean_and_std(&pgr);
            RowSpread {
                name: row.name.clone(),
                runs: same.len(),
                accuracy_mean,
                accuracy_std,
                pgr_mean: pgr_stats.map(|p| p.0),
                pgr_std: pgr_stats.map(|p| p.1),
            }
        })
        .collect()
}

/// The spread table as Markdown.
pub fn summary_markdown(seeds: &[u64], rows: &[RowSpread]) -> String {
    let mut md = format!(
        "## Over seeds {seeds:?}: mean ± standard deviation\n\n| model | test accuracy | PGR |\n|---|---:|---:|\n"
    );
    for r in rows {
        let pgr = match (r.pgr_mean, r.pgr_std) {
            (Some(m), Some(s)) => format!("{m:.2} ± {s:.2}"),
            _ => "–".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {:.1} ± {:.1}% | {pgr} |",
            r.name,
            100.0 * r.accuracy_mean,
            100.0 * r.accuracy_std
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_get_pgr_against_floor_and_ceiling() {
        let rows = PipelineReport::rows(&[
            ("weak".into(), 0.3),
            ("naive".into(), 0.35),
            ("m_plus".into(), 0.6),
            ("ceiling".into(), 0.8),
        ]);
        assert_eq!(rows[0].pgr, None);
        assert!((rows[1].pgr.unwrap_or(0.0) - 0.1).abs() < 1e-9);
        assert!((rows[2].pgr.unwrap_or(0.0) - 0.6).abs() < 1e-9);
        assert_eq!(rows[3].pgr, None);
    }

    #[test]
    fn seeds_summarize_to_mean_and_sample_std() {
        let report = |naive: f64| PipelineReport {
            task: TaskKind::Arithmetic,
            seed: 0,
            backend: "flex".into(),
            rows: PipelineReport::rows(&[
                ("weak".into(), 0.2),
                ("naive".into(), naive),
                ("ceiling".into(), 0.6),
            ]),
            weak_labels: SetQuality {
                size: 0,
                accuracy: None,
                outcome_error_rate: None,
                step_error_rate: None,
            },
            stage1: Vec::new(),
            stage2: Stage2Stats {
                samples_per_question: 2,
                sample_accuracy: 0.0,
                majority_accuracy: 0.0,
                pass_at_n: 0.0,
                pairs: 0,
                chosen_correct: None,
                rejected_correct: None,
                mining: MiningStats::default(),
            },
            seconds: serde_json::Map::new(),
            reused_stages: Vec::new(),
        };
        let rows = summarize(&[report(0.3), report(0.5)]);
        assert_eq!(rows.len(), 3);
        assert!((rows[1].accuracy_mean - 0.4).abs() < 1e-12);
        assert!((rows[1].accuracy_std - (0.02f64).sqrt()).abs() < 1e-12);
        assert!((rows[1].pgr_mean.unwrap_or(0.0) - 0.5).abs() < 1e-12);
        assert_eq!(rows[0].pgr_mean, None);
        assert!(summary_markdown(&[0, 1], &rows).contains("| naive | 40.0 ± 14.1% | 0.50 ± 0.35 |"));
    }
}
