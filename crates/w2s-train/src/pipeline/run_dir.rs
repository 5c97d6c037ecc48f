//! The run directory and its stages: each stage writes under its own folder and, when it
//! finishes, a `stage.json` holding the fingerprint of its inputs, its wall time and its
//! summary. A rerun skips a stage whose `stage.json` matches the fingerprint it would compute
//! now; a stage whose inputs changed starts over in an emptied folder.
//!
//! A fingerprint is FNV-1a over the JSON of what the stage reads: its part of the config and
//! the fingerprints of the stages it depends on; a model directory given by path enters by its
//! files' names, sizes and modification times ([`dir_fingerprint`]). Stages are deterministic given those, so equal
//! fingerprints mean equal outputs. Work inside a stage (a training run's checkpoints, a
//! sampling file) resumes by itself after a crash; `stage.json` is written last and atomically,
//! so a stage killed midway is never taken for finished.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, TrainError};
use w2s_data::Digest;

/// A finished stage: its summary and the fingerprint later stages depend on.
#[derive(Debug, Clone)]
pub struct Done<T> {
    /// What the stage reports.
    pub value: T,
    /// FNV-1a of its inputs.
    pub fingerprint: String,
}

/// Wall time of one stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageTime {
    /// Stage name.
    pub stage: String,
    /// Seconds it took when it was computed.
    pub seconds: f64,
    /// Whether this run reused it.
    pub reused: bool,
}

#[derive(Serialize, Deserialize)]
struct Marker<T> {
    fingerprint: String,
    seconds: f64,
    summary: T,
}

/// A run directory.
#[derive(Debug)]
pub struct RunDir {
    root: PathBuf,
    quiet: bool,
    times: Vec<StageTime>,
}

impl RunDir {
    /// Opens (creating) `root`; with `fresh`, everything in it is removed first.
    ///
    /// # Errors
    /// I/O errors naming the directory.
    pub fn open(root: impl Into<PathBuf>, fresh: bool, quiet: bool) -> Result<Self> {
        let root = root.into();
        if fresh && root.exists() {
            std::fs::remove_dir_all(&root).map_err(|e| TrainError::io(&root, e))?;
        }
        std::fs::create_dir_all(&root).map_err(|e| TrainError::io(&root, e))?;
        Ok(Self {
            root,
            quiet,
            times: Vec::new(),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether progress output is off.
    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// The folder of stage `name`.
    pub fn stage_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Wall times of the stages so far, in run order.
    pub fn times(&self) -> &[StageTime] {
        &self.times
    }

    /// Runs stage `name` on `inputs` unless an earlier run already did.
    ///
    /// `work` gets the stage's folder and returns the summary saved in `stage.json`.
    ///
    /// # Errors
    /// What `work` returns, and I/O errors on the folder and marker.
    pub fn stage<T, F>(&mut self, name: &str, inputs: &Value, work: F) -> Result<Done<T>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(&Path) -> Result<T>,
    {
        let fingerprint = format!("{:016x}", fnv1a(name, inputs));
        let dir = self.stage_dir(name);
        let marker_path = dir.join("stage.json");
        if let Some(marker) = read_marker::<T>(&marker_path) {
            if marker.fingerprint == fingerprint {
                self.say(&format!(
                    "= {name}: unchanged, reused ({:.0} s before)",
                    marker.seconds
                ));
                self.times.push(StageTime {
                    stage: name.into(),
                    seconds: marker.seconds,
                    reused: true,
                });
                return Ok(Done {
                    value: marker.summary,
                    fingerprint,
                });
            }
        }
        let started_for = dir.join("inputs.json");
        let same_inputs = std::fs::read_to_string(&started_for)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|v| v["fingerprint"] == Value::String(fingerprint.clone()));
        if !same_inputs && dir.exists() {
            // Partial work of other inputs must not be resumed.
            std::fs::remove_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
        write_json(
            &started_for,
            &serde_json::json!({ "fingerprint": fingerprint, "inputs": inputs }),
        )?;
        self.say(&format!("> {name}"));
        let start = Instant::now();
        let summary = work(&dir)?;
        let seconds = start.elapsed().as_secs_f64();
        write_json(
            &marker_path,
            &Marker {
                fingerprint: fingerprint.clone(),
                seconds,
                summary: &summary,
            },
        )?;
        self.say(&format!("  {name}: done in {seconds:.0} s"));
        self.times.push(StageTime {
            stage: name.into(),
            seconds,
            reused: false,
        });
        Ok(Done {
            value: summary,
            fingerprint,
        })
    }

    fn say(&self, line: &str) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }
}

fn read_marker<T: DeserializeOwned>(path: &Path) -> Option<Marker<T>> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Writes pretty JSON to `path` atomically (temporary name, then rename).
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_text(path, &text)
}

/// Writes text to `path` atomically.
pub(crate) fn write_text(path: &Path, text: &str) -> Result<()> {
    w2s_data::write_atomic(path, |w| std::io::Write::write_all(w, text.as_bytes()))?;
    Ok(())
}

fn fnv1a(name: &str, inputs: &Value) -> u64 {
    Digest::new()
        .bytes(format!("{name}\u{0}{inputs}").as_bytes())
        .finish()
}

/// Identifies a model directory by its files' names, sizes and modification times, so that a
/// directory replaced in place (a new checkpoint under the same path) invalidates the stages
/// built on it, without reading gigabytes of weights.
pub(crate) fn dir_fingerprint(path: &Path) -> Result<String> {
    let entries = std::fs::read_dir(path).map_err(|e| TrainError::io(path, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| TrainError::io(path, e))?;
        let meta = entry
            .metadata()
            .map_err(|e| TrainError::io(entry.path(), e))?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        files.push(serde_json::json!([
            entry.file_name().to_string_lossy(),
            meta.len(),
            modified
        ]));
    }
    files.sort_by_key(|f| f[0].to_string());
    Ok(serde_json::json!({"path": path, "files": files}).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_runs_once_per_input() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| TrainError::io("tmp", e))?;
        let mut runs = 0;
        let inputs = serde_json::json!({"a": 1});
        for _ in 0..2 {
            let mut run = RunDir::open(tmp.path(), false, true)?;
            let done = run.stage("s", &inputs, |_| {
                runs += 1;
                Ok(7u32)
            })?;
            assert_eq!(done.value, 7);
        }
        assert_eq!(runs, 1);
        let mut run = RunDir::open(tmp.path(), false, true)?;
        run.stage("s", &serde_json::json!({"a": 2}), |dir| {
            runs += 1;
            Ok(std::fs::read_dir(dir)
                .map_err(|e| TrainError::io(dir, e))?
                .count())
        })?;
        assert_eq!(runs, 2);
        let mut run = RunDir::open(tmp.path(), true, true)?;
        run.stage("s", &serde_json::json!({"a": 2}), |_| {
            runs += 1;
            Ok(0usize)
        })?;
        assert_eq!(runs, 3);
        Ok(())
    }

    #[test]
    fn a_directory_rewritten_in_place_changes_its_fingerprint() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| TrainError::io("tmp", e))?;
        let file = tmp.path().join("model.safetensors");
        std::fs::write(&file, b"old").map_err(|e| TrainError::io(&file, e))?;
        let before = dir_fingerprint(tmp.path())?;
        assert_eq!(dir_fingerprint(tmp.path())?, before);
        std::fs::write(&file, b"new weights").map_err(|e| TrainError::io(&file, e))?;
        assert_ne!(dir_fingerprint(tmp.path())?, before);
        assert!(dir_fingerprint(&tmp.path().join("missing")).is_err());
        Ok(())
    }

    #[test]
    fn a_failed_stage_is_not_taken_for_done() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| TrainError::io("tmp", e))?;
        let inputs = serde_json::json!(1);
        let mut run = RunDir::open(tmp.path(), false, true)?;
        let failed: Result<Done<u32>> =
            run.stage("s", &inputs, |_| Err(TrainError::config("x", "boom")));
        assert!(failed.is_err());
        let done = run.stage("s", &inputs, |_| Ok(3u32))?;
        assert_eq!(done.value, 3);
        Ok(())
    }
}
