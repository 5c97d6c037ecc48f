//! Training metrics as JSONL (`OUT/metrics.jsonl`, one object per optimizer step or evaluation),
//! their chart (`OUT/metrics.svg`) and the progress bar.
//!
//! A step line holds `step` and TRL's names: `epoch`, `loss`, `learning_rate`, `grad_norm`,
//! `num_tokens` (tokens seen so far, prompts and completions, padding excluded), then
//! `tokens_per_s` (this step's throughput) and the objective's own metrics (SFT:
//! `mean_token_accuracy`; preference runs: `rewards/chosen`, `rewards/rejected`,
//! `rewards/accuracies`, `rewards/margins`, `logps/chosen`, `logps/rejected`, ...); an evaluation
//! line holds `step` and `eval/...` keys. On resume, lines of steps after the checkpoint are
//! dropped, so the file reads as one uninterrupted run.
//!
//! The chart has one panel per series of [`CHART_SERIES`] over the steps, redrawn from the file
//! whole, so a resumed run's chart covers the steps before the resume too.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};
use w2s_data::jsonl::{for_each_object, write_jsonl};
use w2s_data::write_atomic;
use w2s_eval::svg::{line_chart, Series};

use crate::error::{Result, TrainError};

/// The metrics file in a run's output directory.
pub(crate) const METRICS_FILE: &str = "metrics.jsonl";
/// Its chart, beside it.
pub(crate) const CHART_FILE: &str = "metrics.svg";
/// The step metrics the chart draws, one panel each.
const CHART_SERIES: [&str; 3] = ["loss", "learning_rate", "grad_norm"];

/// Appends metric lines to a JSONL file.
pub(crate) struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens `path` for appending, first dropping lines whose `step` is after `resume_step`.
    pub fn open(path: &Path, resume_step: usize) -> Result<Self> {
        if path.is_file() {
            let mut kept = Vec::new();
            for_each_object::<w2s_data::DataError>(path, |_, line| {
                if line.get("step").and_then(Value::as_u64).unwrap_or(0) <= resume_step as u64 {
                    kept.push(line);
                }
                Ok(())
            })?;
            write_jsonl(path, kept)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| TrainError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Writes one line.
    pub fn write(&mut self, record: &Map<String, Value>) -> Result<()> {
        let mut line = serde_json::to_string(record).map_err(|source| TrainError::Json {
            path: self.path.clone(),
            source,
        })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| TrainError::io(&self.path, e))
    }

    /// Draws [`CHART_SERIES`] over the steps written so far into `chart` (SVG, written
    /// atomically), titled with the name of the directory it is in.
    pub fn write_chart(&self, chart: &Path) -> Result<()> {
        let title = chart
            .parent()
            .and_then(Path::file_name)
            .map_or_else(|| "training".into(), |name| name.to_string_lossy());
        let svg = line_chart(&title, "step", &chart_series(&self.path)?);
        Ok(write_atomic(chart, |file| file.write_all(svg.as_bytes()))?)
    }
}

/// [`CHART_SERIES`] over `step` from the step lines of the metrics file `path` (evaluation lines
/// hold `eval/` keys only and add nothing). A value JSON cannot hold (NaN is written as `null`)
/// becomes NaN, which the chart leaves out.
fn chart_series(path: &Path) -> Result<Vec<Series>> {
    let mut series: Vec<Series> = CHART_SERIES
        .iter()
        .map(|name| Series {
            name: (*name).into(),
            points: Vec::new(),
        })
        .collect();
    for_each_object::<TrainError>(path, |_, line| {
        let Some(step) = line.get("step").and_then(Value::as_f64) else {
            return Ok(());
        };
        for s in &mut series {
            if let Some(value) = line.get(&s.name) {
                s.points.push((step, value.as_f64().unwrap_or(f64::NAN)));
            }
        }
        Ok(())
    })?;
    Ok(series)
}

/// A progress bar with rate and ETA, or nothing in quiet mode.
pub(crate) fn progress_bar(total: usize, done: usize, unit: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    let template = format!(
        "{{bar:30}} {{pos}}/{{len}} {unit} [{{elapsed_precise}}<{{eta_precise}}, {{per_sec}}] {{msg}}"
    );
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar.set_position(done as u64);
    bar.reset_eta();
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_drops_lines_after_the_checkpoint() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("metrics.jsonl");
        let mut log = MetricsLog::open(&path, 0)?;
        for step in 1..=5u64 {
            let mut m = Map::new();
            m.insert("step".into(), step.into());
            log.write(&m)?;
        }
        drop(log);
        let mut log = MetricsLog::open(&path, 3)?;
        let mut m = Map::new();
        m.insert("step".into(), 4.into());
        log.write(&m)?;
        let steps: Vec<u64> = std::fs::read_to_string(&path)?
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).map(|v| v["step"].as_u64().unwrap_or(0)))
            .collect::<std::result::Result<_, _>>()?;
        assert_eq!(steps, vec![1, 2, 3, 4]);
        Ok(())
    }

    #[test]
    fn the_chart_has_a_line_per_series_and_survives_nan_and_missing_values() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let run = dir.path().join("my-run");
        std::fs::create_dir_all(&run)?;
        let mut log = MetricsLog::open(&run.join(METRICS_FILE), 0)?;
        let lines = [
            serde_json::json!({"step": 1, "loss": 2.0, "learning_rate": 1e-4, "grad_norm": 3.0}),
            serde_json::json!({"step": 2, "loss": 1.0, "learning_rate": 2e-4, "grad_norm": f64::NAN}),
            serde_json::json!({"step": 2, "eval/loss": 1.5}),
            serde_json::json!({"step": 3, "loss": 0.5, "learning_rate": 1e-4, "grad_norm": 1.0}),
        ];
        for l in &lines {
            log.write(l.as_object().expect("an object"))?;
        }
        let chart = run.join(CHART_FILE);
        log.write_chart(&chart)?;
        let svg = std::fs::read_to_string(&chart)?;
        assert!(
            svg.contains(">my-run</text>"),
            "titled with the run directory"
        );
        assert_eq!(svg.matches("<polyline").count(), 3);
        for name in CHART_SERIES {
            assert!(svg.contains(&format!("<title>{name}</title>")), "{name}");
        }
        assert!(!svg.contains("NaN"));
        // The grad_norm line has steps 1 and 3 only: the NaN (logged as null) is left out.
        let grad_norm = svg
            .lines()
            .find(|l| l.contains("<title>grad_norm</title>"))
            .unwrap_or_default();
        assert_eq!(grad_norm.matches(',').count(), 2, "{grad_norm}");

        // A file with steps but none of the charted metrics still gives a chart, of empty panels.
        drop(log);
        let other = dir.path().join("empty");
        std::fs::create_dir_all(&other)?;
        let mut log = MetricsLog::open(&other.join(METRICS_FILE), 0)?;
        log.write(
            serde_json::json!({"step": 1, "eval/loss": 1.0})
                .as_object()
                .expect("an object"),
        )?;
        log.write_chart(&other.join(CHART_FILE))?;
        let svg = std::fs::read_to_string(other.join(CHART_FILE))?;
        assert_eq!(svg.matches("<polyline").count(), 0);
        assert_eq!(svg.matches("no data").count(), 3);
        Ok(())
    }
}
