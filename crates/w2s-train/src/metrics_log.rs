//! Training metrics as JSONL (`OUT/metrics.jsonl`, one object per optimizer step or evaluation)
//! and the progress bar.
//!
//! A step line holds `step`, `epoch`, `loss`, `lr`, `grad_norm`, `tokens`, `tokens_per_s` and the
//! objective's own metrics (TRL's names for preference runs: `rewards/chosen`, ...); an evaluation
//! line holds `step` and `eval/...` keys. On resume, lines of steps after the checkpoint are
//! dropped, so the file reads as one uninterrupted run.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};
use w2s_eval::jsonl::{for_each_object, write_jsonl};

use crate::error::{Result, TrainError};

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
            for_each_object(path, |_, line| {
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
}
