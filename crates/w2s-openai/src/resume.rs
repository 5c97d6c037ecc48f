//! Sampling a stage's prompts into a JSONL file that a killed run resumes.
//!
//! [`sample_to_jsonl`] appends each prompt's `n` lines as soon as the prompt is answered, in
//! one write followed by an fsync, so a kill loses at most the prompts still in flight and never
//! leaves a prompt half written but for a torn tail. A rerun reads the file first: a torn last
//! line (no newline) is truncated away, the lines of a prompt with fewer than `n` of them are
//! dropped, and only the prompts without their `n` lines are sent. Once every prompt is
//! answered the file is rewritten, atomically, in prompt order, so its content does not depend on
//! the order answers came in. Prompts are told apart by the `id` field of their lines, so ids
//! must be unique within a stage.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use serde_json::Value;
use w2s_data::jsonl::{write_jsonl, BadLines, JsonlReader, Object};

use crate::client::OpenAiSampler;
use crate::error::{OpenAiError, Result};
use crate::prompt::{Answer, Prompt, SamplingOptions};

/// One prompt of a stage: the `id` its output lines carry, and what to send.
#[derive(Debug, Clone, PartialEq)]
pub struct StagePrompt {
    /// The prompt's id (a string or a number); every output line of the prompt has it as `id`.
    pub id: Value,
    /// What to send.
    pub prompt: Prompt,
}

/// What a call of [`sample_to_jsonl`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageSummary {
    /// Prompts in the stage.
    pub prompts: usize,
    /// Prompts that had all their lines in the file already.
    pub already_done: usize,
    /// Prompts answered and written by this call.
    pub answered: usize,
}

/// Samples every prompt of `prompts` not yet in `output` and appends its lines there; see the
/// module docs. `lines_of(i, answer)` makes the `n` lines of prompt `i` (each with the prompt's
/// `id`), in the order they are written.
///
/// # Errors
/// Duplicate ids; an output file with lines of ids not in `prompts`, lines without an id, or more
/// than `n` lines of one id (it belongs to another stage or another `n`); a malformed line
/// (naming file and line); the sampler's and `lines_of`'s errors; a `lines_of` that gives other
/// than `n` lines or lines of another id. Whatever was answered before an error is in the file.
pub fn sample_to_jsonl<E: From<OpenAiError>>(
    sampler: &OpenAiSampler,
    prompts: &[StagePrompt],
    options: &SamplingOptions,
    output: &Path,
    mut lines_of: impl FnMut(usize, &Answer) -> std::result::Result<Vec<Object>, E>,
) -> std::result::Result<StageSummary, E> {
    let index = id_index(prompts)?;
    let done = answered_ids(output, &index, options.n)?;
    let jobs: Vec<(usize, &Prompt)> = prompts
        .iter()
        .enumerate()
        .filter(|(_, p)| !done.contains(&p.id.to_string()))
        .map(|(i, p)| (i, &p.prompt))
        .collect();
    let mut summary = StageSummary {
        prompts: prompts.len(),
        already_done: prompts.len() - jobs.len(),
        answered: 0,
    };
    if !jobs.is_empty() {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(output)
            .map_err(|e| OpenAiError::io(output, e))?;
        sampler.sample_each::<E>(&jobs, options, |i, answer| {
            let lines = lines_of(i, &answer)?;
            let bytes = prompt_lines(&prompts[i].id, &lines, options.n, output)?;
            file.write_all(&bytes)
                .and_then(|()| file.flush())
                .and_then(|()| file.sync_data())
                .map_err(|e| OpenAiError::io(output, e))?;
            summary.answered += 1;
            Ok(())
        })?;
    }
    put_in_prompt_order(output, &index)?;
    Ok(summary)
}

/// Each prompt's position by the JSON text of its id.
fn id_index(prompts: &[StagePrompt]) -> Result<HashMap<String, usize>> {
    let mut index = HashMap::with_capacity(prompts.len());
    for (i, prompt) in prompts.iter().enumerate() {
        if let Some(first) = index.insert(prompt.id.to_string(), i) {
            return Err(OpenAiError::Config(format!(
                "prompts {first} and {i} have the same id {}: a resumable stage tells prompts \
                 apart by id",
                prompt.id
            )));
        }
    }
    Ok(index)
}

/// The `n` lines of the prompt with `id` as one buffer, after checking they are its lines.
fn prompt_lines(id: &Value, lines: &[Object], n: usize, output: &Path) -> Result<Vec<u8>> {
    if lines.len() != n {
        return Err(OpenAiError::Config(format!(
            "{}: prompt {id} was given {} lines to write, not n = {n}",
            output.display(),
            lines.len()
        )));
    }
    let mut bytes = Vec::new();
    for line in lines {
        if line.get("id") != Some(id) {
            return Err(OpenAiError::Config(format!(
                "{}: a line of prompt {id} has id {:?}",
                output.display(),
                line.get("id")
            )));
        }
        serde_json::to_writer(&mut bytes, line)
            .map_err(|e| OpenAiError::Config(format!("{}: prompt {id}: {e}", output.display())))?;
        bytes.push(b'\n');
    }
    Ok(bytes)
}

/// The ids with all `n` lines in `output`, after truncating a torn last line and dropping the
/// lines of prompts cut short (each with a note on stderr).
fn answered_ids(
    output: &Path,
    index: &HashMap<String, usize>,
    n: usize,
) -> Result<HashSet<String>> {
    if !output.exists() {
        return Ok(HashSet::new());
    }
    truncate_torn_line(output)?;
    let lines = read_lines(output, index)?;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (line, key, _) in &lines {
        let count = counts.entry(key.as_str()).or_default();
        *count += 1;
        if *count > n {
            return Err(OpenAiError::Output {
                path: output.to_path_buf(),
                line: *line,
                message: format!(
                    "prompt {key} has more than n = {n} lines: the file was written with another n"
                ),
            });
        }
    }
    let done: HashSet<String> = counts
        .iter()
        .filter(|&(_, &count)| count == n)
        .map(|(&key, _)| key.to_string())
        .collect();
    let cut_short = counts.len() - done.len();
    if cut_short > 0 {
        let kept: Vec<&Object> = lines
            .iter()
            .filter(|(_, key, _)| done.contains(key))
            .map(|(_, _, object)| object)
            .collect();
        eprintln!(
            "note: {}: dropping {} lines of {cut_short} prompts cut short by an interrupted run; \
             they are sampled again",
            output.display(),
            lines.len() - kept.len()
        );
        write_jsonl(output, kept)?;
    }
    Ok(done)
}

/// Truncates `output` after its last newline, when bytes follow it (a line torn by a kill).
fn truncate_torn_line(output: &Path) -> Result<()> {
    let bytes = std::fs::read(output).map_err(|e| OpenAiError::io(output, e))?;
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if keep == bytes.len() {
        return Ok(());
    }
    eprintln!(
        "note: {}: truncating a torn last line ({} bytes) left by an interrupted run",
        output.display(),
        bytes.len() - keep
    );
    let file = OpenOptions::new()
        .write(true)
        .open(output)
        .map_err(|e| OpenAiError::io(output, e))?;
    file.set_len(keep as u64)
        .and_then(|()| file.sync_all())
        .map_err(|e| OpenAiError::io(output, e))
}

/// Every line of `output` with its line number and the JSON text of its id, which must be one of
/// `index`'s.
fn read_lines(
    output: &Path,
    index: &HashMap<String, usize>,
) -> Result<Vec<(usize, String, Object)>> {
    let mut reader = JsonlReader::<Object>::open(output, BadLines::Fail)?;
    let mut lines = Vec::new();
    while let Some(object) = reader.next() {
        let object = object?;
        let line = reader.line();
        let problem = |message: String| OpenAiError::Output {
            path: output.to_path_buf(),
            line,
            message,
        };
        let key = object
            .get("id")
            .ok_or_else(|| problem("the line has no \"id\"".into()))?
            .to_string();
        if !index.contains_key(&key) {
            return Err(problem(format!(
                "id {key} is not a prompt of this stage: is this the output of another input?"
            )));
        }
        lines.push((line, key, object));
    }
    Ok(lines)
}

/// Rewrites `output` (complete now) with its lines in prompt order, each prompt's lines in the
/// order they were written, atomically; unless they are in that order already. An empty stage
/// gets an empty file.
fn put_in_prompt_order(output: &Path, index: &HashMap<String, usize>) -> Result<()> {
    let mut lines = if output.exists() {
        read_lines(output, index)?
    } else {
        Vec::new()
    };
    let order = |(line, key, _): &(usize, String, Object)| (index[key], *line);
    if output.exists() && lines.is_sorted_by_key(order) {
        return Ok(());
    }
    lines.sort_by_key(order);
    write_jsonl(output, lines.iter().map(|(_, _, object)| object))?;
    Ok(())
}
