//! Running a model over JSONL lines, the body of the `generate` and `score` examples: load a
//! model directory, turn each input line (or one prompt from the command line) into token ids,
//! run the model on batches of lines, and write the output lines as JSONL, atomically, to a file
//! or to stdout.
//!
//! Every output line keeps the fields of its input line, so what a run adds travels on to the
//! next tool without glue: `generate` writes curation samples `{"id", "prompt", "response", ...}`
//! that `grade` and `curate` read as they are, with the benchmark's gold answer still on them.
//!
//! A `generate` line may hold a conversation instead of a prompt (`"messages"`, TRL's
//! conversational form): the model's chat template renders it with the generation prompt, as
//! transformers' `apply_chat_template(..., add_generation_prompt=True)` does, and the rendering
//! is encoded without added special tokens (the template writes its own).

use std::io::{IsTerminal, StdoutLock, Write};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::prelude::Backend;
use clap::Args;
use serde_json::Value;
use w2s_data::jsonl::{BadLines, JsonlReader, JsonlWriter, Object};
use w2s_llama::{
    generate, load_adapter, score_tokens, ChatMessage, ChatOptions, Generation, GenerationConfig,
    ModelDir, Tokenizer,
};

/// The model to load: its directory, a LoRA adapter to put on it, the dtype of its weights
/// (`generate`, `score`, `serve`). `--model` is optional to clap so that `generate --endpoint`
/// can do without it; a binary that always needs it makes it required with an `ArgGroup`.
#[derive(Args, Debug)]
pub struct ModelArgs {
    /// Model directory (config.json, model.safetensors[.index.json], tokenizer.json).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A LoRA adapter in PEFT's layout (adapter_config.json, adapter_model.safetensors) to put on
    /// --model: one made by `sft`/`preference` with --lora-r, or by PEFT.
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
    /// Hold the model's weights in this dtype (auto: bf16 on GPU backends, f32 on CPU).
    #[arg(long, value_enum, default_value_t = crate::backend::BaseDtype::Auto)]
    pub base_dtype: crate::backend::BaseDtype,
}

impl ModelArgs {
    /// Loads `--model` on `device` in `--base-dtype`, with `--adapter` on it when given.
    ///
    /// # Errors
    /// No `--model`, or a directory or adapter that does not load (naming the flag).
    pub fn load<B: Backend>(&self, device: &B::Device) -> Result<ModelDir<B>> {
        let Some(model) = &self.model else {
            bail!("give --model DIR");
        };
        let mut dir = ModelDir::load(model, device)
            .with_context(|| format!("--model {}", model.display()))?;
        dir.model = dir.model.cast_base(self.base_dtype.resolve());
        if let Some(adapter) = &self.adapter {
            dir.model = load_adapter(dir.model, adapter, device)
                .with_context(|| format!("--adapter {}", adapter.display()))?;
        }
        Ok(dir)
    }
}

/// The options every model run over lines has: the model, and where the output lines go.
#[derive(Args, Debug)]
pub struct ModelIoArgs {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Write the output lines as JSONL here (replaced atomically when complete); without it they
    /// go to stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Tokenize text without the special tokens the model's tokenizer adds (its tokenizer.json
    /// post-processor: BOS first for a Llama-2 or Llama-3 tokenizer, nothing for SmolLM2), as
    /// transformers' `add_special_tokens=False`.
    #[arg(long, alias = "no-bos")]
    pub no_special_tokens: bool,
}

impl ModelIoArgs {
    /// Loads the model as [`ModelArgs::load`] does.
    ///
    /// # Errors
    /// As [`ModelArgs::load`].
    pub fn load<B: Backend>(&self, device: &B::Device) -> Result<ModelDir<B>> {
        self.model.load(device)
    }
}

/// Which fields of an input line hold its text, its conversation or its token ids; the ids win
/// when a line has them. A line with both a text and a conversation is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputFields {
    /// The text, tokenized with the model's tokenizer.
    pub text: &'static str,
    /// The token ids, read as they are.
    pub ids: &'static str,
    /// A list of messages `{"role", "content"}`, rendered by the model's chat template with the
    /// generation prompt, for the model to answer; `None` where conversations are not read.
    pub conversation: Option<&'static str>,
}

/// `generate`'s input: a `prompt` (TRL's field name), its `prompt_ids`, or the conversation
/// `messages` to answer.
pub const PROMPT_FIELDS: InputFields = InputFields {
    text: "prompt",
    ids: "prompt_ids",
    conversation: Some("messages"),
};

/// `score`'s input: a `text` or its `input_ids`.
pub const SEQUENCE_FIELDS: InputFields = InputFields {
    text: "text",
    ids: "input_ids",
    conversation: None,
};

/// One input line, ready for the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// 1-based line number in its file (1 for a prompt given on the command line).
    pub number: usize,
    /// Every field of the line.
    pub record: Object,
    /// The token ids the model reads.
    pub ids: Vec<u32>,
    /// The text the model reads: the line's text field or its conversation rendered, else its
    /// ids decoded (special tokens left out); `None` for ids without a tokenizer to decode them.
    pub text: Option<String>,
}

/// The lines of one run and where they came from, for errors.
#[derive(Debug, Clone, PartialEq)]
pub struct Lines {
    source: String,
    lines: Vec<Line>,
}

impl Lines {
    /// Reads every line of the JSONL file `path`: its token ids from `fields.ids`, else its
    /// `fields.conversation` rendered by the chat template and tokenized without added special
    /// tokens, else its `fields.text` tokenized (with the model's special tokens when
    /// `special_tokens`).
    ///
    /// # Errors
    /// An unreadable file, a malformed line, a line without any of the fields or with both a text
    /// and a conversation, or a conversation the model has no chat template for (naming its
    /// directory); each naming file and line.
    pub fn read(
        path: &Path,
        fields: InputFields,
        tokenizer: Option<&Tokenizer>,
        special_tokens: bool,
    ) -> Result<Lines> {
        let source = path.display().to_string();
        let mut reader = JsonlReader::<Object>::open(path, BadLines::Fail)?;
        let mut lines = Vec::new();
        while let Some(record) = reader.next() {
            let record = record?;
            let number = reader.line();
            let origin = format!("{source}:{number}");
            let (ids, text) = input_of(&record, fields, tokenizer, special_tokens, &origin)?;
            lines.push(Line {
                number,
                record,
                ids,
                text,
            });
        }
        Ok(Lines { source, lines })
    }

    /// One line from a prompt given on the command line as `flag` (`--prompt`), tokenized with
    /// the model's special tokens when `special_tokens`.
    ///
    /// # Errors
    /// No tokenizer, or one that fails on the text.
    pub fn from_text(
        flag: &str,
        text: &str,
        tokenizer: Option<&Tokenizer>,
        special_tokens: bool,
    ) -> Result<Lines> {
        let ids = encode(tokenizer, text, special_tokens, flag)?;
        Ok(Lines::single(flag, ids, Some(text.to_string())))
    }

    /// One line from token ids given on the command line as `flag` (`--prompt-ids`).
    ///
    /// # Errors
    /// A tokenizer that fails to decode the ids.
    pub fn from_ids(flag: &str, ids: Vec<u32>, tokenizer: Option<&Tokenizer>) -> Result<Lines> {
        let text = decode(tokenizer, &ids, flag)?;
        Ok(Lines::single(flag, ids, text))
    }

    fn single(flag: &str, ids: Vec<u32>, text: Option<String>) -> Lines {
        let line = Line {
            number: 1,
            record: Object::new(),
            ids,
            text,
        };
        Lines {
            source: flag.to_string(),
            lines: vec![line],
        }
    }

    /// The lines, in input order.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// Runs `process` on batches of `batch_size` lines and writes every record it returns, in
    /// order, to `output` (atomically, when complete) or to stdout. Shows progress on stderr
    /// when that is a terminal. Returns the number of records written.
    ///
    /// # Errors
    /// An error of `process`, naming the lines of its batch, or an I/O error naming the file.
    pub fn run(
        &self,
        batch_size: NonZeroUsize,
        output: Option<&Path>,
        mut process: impl FnMut(&[Line]) -> Result<Vec<Object>>,
    ) -> Result<usize> {
        let mut sink = Sink::create(output)?;
        let progress = std::io::stderr().is_terminal();
        let mut done = 0;
        for batch in self.lines.chunks(batch_size.get()) {
            let records = process(batch).with_context(|| self.origin(batch))?;
            for record in &records {
                sink.write(record)?;
            }
            done += batch.len();
            if progress {
                eprint!("\r{done}/{} lines", self.lines.len());
            }
        }
        if progress {
            eprintln!();
        }
        sink.finish()
    }

    /// `FILE:LINE` or `FILE:FIRST-LAST` of a batch.
    fn origin(&self, batch: &[Line]) -> String {
        match (batch.first(), batch.last()) {
            (Some(first), Some(last)) if first.number != last.number => {
                format!("{}:{}-{}", self.source, first.number, last.number)
            }
            (Some(line), _) => format!("{}:{}", self.source, line.number),
            _ => self.source.clone(),
        }
    }
}

/// What an input line asks for, before tokenization: its ids win, then its conversation, then
/// its text.
#[derive(Debug, Clone, PartialEq)]
pub enum LineInput {
    /// Token ids, with the line's text when it has one as well.
    Ids(Vec<u32>, Option<String>),
    /// A conversation to answer.
    Conversation(Vec<ChatMessage>),
    /// A text to continue.
    Text(String),
}

impl LineInput {
    /// The input of `record` under `fields`; errors start with `origin` (`FILE:LINE`).
    ///
    /// # Errors
    /// A line without any of the fields, with both a text and a conversation, or whose ids or
    /// messages have the wrong shape.
    pub fn of(record: &Object, fields: InputFields, origin: &str) -> Result<LineInput> {
        let text = record.get(fields.text).and_then(Value::as_str);
        let conversation = fields
            .conversation
            .and_then(|name| Some((name, record.get(name)?)));
        if let (None, Some((name, messages))) = (record.get(fields.ids), conversation) {
            if text.is_some() {
                bail!("{origin}: give {:?} or {name:?}, not both", fields.text);
            }
            let messages: Vec<ChatMessage> = serde_json::from_value(messages.clone())
                .with_context(|| {
                    format!(
                        "{origin}: {name:?} must be a list of {{\"role\", \"content\"}} messages"
                    )
                })?;
            return Ok(LineInput::Conversation(messages));
        }
        match (record.get(fields.ids), text) {
            (Some(ids), _) => {
                let ids: Vec<u32> = serde_json::from_value(ids.clone()).with_context(|| {
                    format!("{origin}: {:?} must be a list of token ids", fields.ids)
                })?;
                Ok(LineInput::Ids(ids, text.map(str::to_string)))
            }
            (None, Some(text)) => Ok(LineInput::Text(text.to_string())),
            (None, None) => {
                let conversation = fields
                    .conversation
                    .map(|name| format!(", a {name:?} list of messages"))
                    .unwrap_or_default();
                bail!(
                    "{origin}: expected a {:?} string{conversation} or a {:?} list",
                    fields.text,
                    fields.ids
                )
            }
        }
    }
}

/// The token ids and text of an input record.
fn input_of(
    record: &Object,
    fields: InputFields,
    tokenizer: Option<&Tokenizer>,
    special_tokens: bool,
    origin: &str,
) -> Result<(Vec<u32>, Option<String>)> {
    match LineInput::of(record, fields, origin)? {
        LineInput::Ids(ids, Some(text)) => Ok((ids, Some(text))),
        LineInput::Ids(ids, None) => {
            let text = decode(tokenizer, &ids, origin)?;
            Ok((ids, text))
        }
        LineInput::Conversation(messages) => {
            let text = render(tokenizer, &messages, origin)?;
            Ok((encode(tokenizer, &text, false, origin)?, Some(text)))
        }
        LineInput::Text(text) => Ok((
            encode(tokenizer, &text, special_tokens, origin)?,
            Some(text),
        )),
    }
}

/// `messages` rendered by the model's chat template, ending with the generation prompt.
fn render(tokenizer: Option<&Tokenizer>, messages: &[ChatMessage], origin: &str) -> Result<String> {
    let Some(tokenizer) = tokenizer else {
        bail!(
            "{origin}: a conversation needs the model directory's tokenizer.json, which it lacks"
        );
    };
    tokenizer
        .apply_chat_template(messages, &ChatOptions::generation())
        .with_context(|| format!("{origin}: rendering the conversation"))
}

fn encode(
    tokenizer: Option<&Tokenizer>,
    text: &str,
    special_tokens: bool,
    origin: &str,
) -> Result<Vec<u32>> {
    let Some(tokenizer) = tokenizer else {
        bail!("{origin}: text needs the model directory's tokenizer.json, which it lacks");
    };
    let ids = if special_tokens {
        tokenizer.encode_with_special_tokens(text)
    } else {
        tokenizer.encode(text, false)
    };
    ids.with_context(|| format!("{origin}: tokenizing"))
}

fn decode(tokenizer: Option<&Tokenizer>, ids: &[u32], origin: &str) -> Result<Option<String>> {
    tokenizer
        .map(|tokenizer| tokenizer.decode(ids, true))
        .transpose()
        .with_context(|| format!("{origin}: decoding the token ids"))
}

/// Where output lines go.
enum Sink {
    File(JsonlWriter<Object>, PathBuf),
    Stdout(StdoutLock<'static>, usize),
}

impl Sink {
    fn create(output: Option<&Path>) -> Result<Sink> {
        Ok(match output {
            Some(path) => Sink::File(JsonlWriter::create(path)?, path.to_path_buf()),
            None => Sink::Stdout(std::io::stdout().lock(), 0),
        })
    }

    fn write(&mut self, record: &Object) -> Result<()> {
        match self {
            Sink::File(writer, _) => writer.write(record)?,
            Sink::Stdout(stdout, written) => {
                serde_json::to_writer(&mut *stdout, record)?;
                writeln!(stdout).context("writing to stdout")?;
                *written += 1;
            }
        }
        Ok(())
    }

    /// Moves the file into place; returns the lines written.
    fn finish(self) -> Result<usize> {
        match self {
            Sink::File(writer, path) => {
                let written = writer.finish()?;
                eprintln!("wrote {written} lines to {}", path.display());
                Ok(written)
            }
            Sink::Stdout(mut stdout, written) => {
                stdout.flush().context("writing to stdout")?;
                Ok(written)
            }
        }
    }
}

/// Generates for a batch of lines with `dir`'s model: `config.num_samples` output lines per input
/// line, each a [`sample_record`].
pub fn generate_lines<B: Backend>(
    dir: &ModelDir<B>,
    lines: &[Line],
    config: &GenerationConfig,
    device: &B::Device,
) -> Result<Vec<Object>> {
    let prompts: Vec<Vec<u32>> = lines.iter().map(|line| line.ids.clone()).collect();
    let generations = generate(&dir.model, &prompts, config, dir.tokenizer.as_ref(), device)?;
    generations
        .iter()
        .map(|generation| sample_record(&lines[generation.prompt_index], generation))
        .collect()
}

/// The output line of one generation: a curation sample `{"id", "prompt", "response"}` (the
/// line's `id`, else its line number; the text the model saw; the generated text), then every
/// other field of the input line, then `sample_index`, `prompt_ids` (what the model saw, special
/// tokens included), `output_ids` and `finish_reason`. `prompt` and `response` are left out only
/// when the model has no tokenizer.
pub fn sample_record(line: &Line, generation: &Generation) -> Result<Object> {
    let mut record = sample_head(
        &line.record,
        line.number,
        line.text.as_deref(),
        generation.text.as_deref(),
    );
    record.insert("sample_index".into(), generation.sample_index.into());
    record.insert("prompt_ids".into(), line.ids.clone().into());
    record.insert("output_ids".into(), generation.token_ids.clone().into());
    record.insert(
        "finish_reason".into(),
        serde_json::to_value(generation.finish_reason)?,
    );
    Ok(record)
}

/// The start of every sample line, in-process or from a server: `id` (the input line's, else its
/// line `number`), `prompt` and `response` when known, then every other field of the `input`
/// line.
pub fn sample_head(
    input: &Object,
    number: usize,
    prompt: Option<&str>,
    response: Option<&str>,
) -> Object {
    let mut record = Object::new();
    let id = input.get("id").cloned();
    record.insert("id".into(), id.unwrap_or_else(|| number.into()));
    if let Some(prompt) = prompt {
        record.insert("prompt".into(), prompt.into());
    }
    if let Some(response) = response {
        record.insert("response".into(), response.into());
    }
    for (key, value) in input {
        record.entry(key.clone()).or_insert_with(|| value.clone());
    }
    record
}

/// Scores each line of a batch with `dir`'s model: the line plus `input_ids`, `logprobs` (the
/// log-probability of token t given the tokens before it, for t >= 1) and, with `logits`, the
/// raw `logits`, one row of vocabulary size per position.
pub fn score_lines<B: Backend>(
    dir: &ModelDir<B>,
    lines: &[Line],
    logits: bool,
    device: &B::Device,
) -> Result<Vec<Object>> {
    lines
        .iter()
        .map(|line| {
            let scores = score_tokens(&dir.model, &line.ids, logits, device)?;
            let mut record = line.record.clone();
            record.insert("input_ids".into(), line.ids.clone().into());
            record.insert("logprobs".into(), scores.logprobs.into());
            if let Some(logits) = scores.logits {
                record.insert("logits".into(), logits.into());
            }
            Ok(record)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::backend::{self, Inference};
    use w2s_data::record::Sample;
    use w2s_eval::{grade_file, GradeFields, TaskKind};
    use w2s_llama::{FinishReason, Sampling};

    /// The built-in weak arithmetic model as an HF directory under `dir`.
    pub(crate) fn arithmetic_model(dir: &Path) -> Result<ModelDir<Inference>> {
        let tokenizer = dir.join("tokenizer.json");
        w2s_arith::tokenizer::write(&tokenizer)?;
        let model = dir.join("weak");
        w2s_arith::BaseModel::ArithmeticWeak.write(&tokenizer, &model)?;
        Ok(ModelDir::load(&model, &backend::device())?)
    }

    fn read_objects(path: &Path) -> Result<Vec<Object>> {
        Ok(w2s_data::jsonl::read_jsonl(path, BadLines::Fail)?.records)
    }

    #[test]
    fn generated_lines_are_samples_that_grade_and_curate_read() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let dir = arithmetic_model(tmp.path())?;
        let question = "Tom has 3 apples. He buys 4 more. How many apples does he have?";
        let prompt = w2s_eval::prompt::zero_shot(question);
        let input = tmp.path().join("in.jsonl");
        let lines = [
            serde_json::json!({"id": "q1", "question": question, "answer": "3 + 4 = 7\n#### 7", "prompt": prompt}),
            serde_json::json!({"question": question, "answer": "#### 7", "prompt": prompt}),
        ];
        w2s_data::jsonl::write_jsonl(&input, &lines)?;
        let lines = Lines::read(&input, PROMPT_FIELDS, dir.tokenizer.as_ref(), true)?;
        let config = GenerationConfig {
            max_new_tokens: 6,
            sampling: Sampling {
                temperature: 1.0,
                top_k: None,
                top_p: None,
            },
            num_samples: 2,
            ..GenerationConfig::default()
        };
        let output = tmp.path().join("gen.jsonl");
        let batch = NonZeroUsize::MIN;
        let written = lines.run(batch, Some(&output), |batch| {
            generate_lines(&dir, batch, &config, &backend::device())
        })?;
        assert_eq!(written, 4);

        let records = read_objects(&output)?;
        let ids: Vec<&Value> = records.iter().filter_map(|r| r.get("id")).collect();
        assert_eq!(
            ids,
            [&Value::from("q1"), &"q1".into(), &2.into(), &2.into()]
        );
        for (record, sample_index) in records.iter().zip([0, 1, 0, 1]) {
            assert_eq!(record.get("prompt"), Some(&Value::from(prompt.as_str())));
            assert_eq!(record.get("question"), Some(&Value::from(question)));
            assert_eq!(record.get("sample_index"), Some(&sample_index.into()));
            let output_ids = record.get("output_ids").and_then(Value::as_array);
            assert!(output_ids.is_some_and(|ids| !ids.is_empty()), "{record:?}");
            assert!(record.get("response").is_some_and(Value::is_string));
        }
        let samples: Vec<Sample> = w2s_data::jsonl::read_jsonl(&output, BadLines::Fail)?.records;
        assert_eq!(samples[2].id, "2");
        let graded = tmp.path().join("graded.jsonl");
        let fields = GradeFields::for_task(TaskKind::Arithmetic);
        let report = grade_file(TaskKind::Arithmetic, &output, &graded, &fields)?;
        assert_eq!(report.overall.total, 4);
        Ok(())
    }

    #[test]
    fn a_conversation_is_answered_through_the_chat_template() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let dir = arithmetic_model(tmp.path())?;
        let input = tmp.path().join("in.jsonl");
        let line = serde_json::json!({"id": "q", "messages": [
            {"role": "user", "content": "Question: 3 + 4"}]});
        w2s_data::jsonl::write_jsonl(&input, [&line])?;
        // The built-in model has no chat template: the error names the line and the model.
        let err = Lines::read(&input, PROMPT_FIELDS, dir.tokenizer.as_ref(), true)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(err.starts_with(&format!("{}:1:", input.display())), "{err}");
        assert!(err.contains(&dir.path.display().to_string()), "{err}");
        assert!(err.contains("no chat template"), "{err}");

        let template = "{% for m in messages %}{{ m.content }}\n{% endfor %}\
                        {% if add_generation_prompt %}Answer:{% endif %}";
        std::fs::write(dir.path.join("chat_template.jinja"), template)?;
        let dir = ModelDir::<Inference>::load(&dir.path, &backend::device())?;
        let tokenizer = dir.tokenizer()?;
        let lines = Lines::read(&input, PROMPT_FIELDS, Some(tokenizer), true)?;
        let rendered = "Question: 3 + 4\nAnswer:";
        assert_eq!(lines.lines()[0].text.as_deref(), Some(rendered));
        assert_eq!(lines.lines()[0].ids, tokenizer.encode(rendered, false)?);
        let config = GenerationConfig {
            max_new_tokens: 3,
            ..GenerationConfig::default()
        };
        let output = tmp.path().join("gen.jsonl");
        lines.run(NonZeroUsize::MIN, Some(&output), |batch| {
            generate_lines(&dir, batch, &config, &backend::device())
        })?;
        let record = &read_objects(&output)?[0];
        assert_eq!(record.get("prompt"), Some(&Value::from(rendered)));
        assert_eq!(
            record.get("prompt_ids"),
            Some(&Value::from(lines.lines()[0].ids.clone()))
        );
        assert_eq!(record.get("messages"), line.get("messages"));

        // A line with a prompt as well is ambiguous.
        let both = serde_json::json!({"prompt": "Q", "messages": []});
        w2s_data::jsonl::write_jsonl(&input, [&both])?;
        let err = Lines::read(&input, PROMPT_FIELDS, Some(tokenizer), true).err();
        assert!(err.is_some_and(|e| e.to_string().contains("not both")));
        Ok(())
    }

    #[test]
    fn scored_lines_keep_their_fields_and_score_every_next_token() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let dir = arithmetic_model(tmp.path())?;
        let input = tmp.path().join("in.jsonl");
        std::fs::write(
            &input,
            "{\"text\": \"Question: 3 + 4\", \"tag\": 1}\n{\"input_ids\": [1, 20, 21]}\n",
        )?;
        let lines = Lines::read(&input, SEQUENCE_FIELDS, dir.tokenizer.as_ref(), true)?;
        let output = tmp.path().join("scores.jsonl");
        lines.run(NonZeroUsize::MIN, Some(&output), |batch| {
            score_lines(&dir, batch, false, &backend::device())
        })?;
        let records = read_objects(&output)?;
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].get("tag"), Some(&1.into()));
        for (record, line) in records.iter().zip(lines.lines()) {
            let logprobs = record.get("logprobs").and_then(Value::as_array);
            let logprobs: Vec<f64> = logprobs
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64)
                .collect();
            assert_eq!(logprobs.len(), line.ids.len() - 1);
            assert!(logprobs.iter().all(|&p| p <= 0.0), "{logprobs:?}");
            assert_eq!(record.get("input_ids"), Some(&line.ids.clone().into()));
            assert!(record.get("logits").is_none());
        }
        Ok(())
    }

    #[test]
    fn ids_given_without_text_are_decoded_for_the_prompt() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let dir = arithmetic_model(tmp.path())?;
        let tokenizer = dir.tokenizer.as_ref();
        let ids = dir
            .tokenizer()?
            .encode_with_special_tokens("Question: 3 + 4")?;
        let lines = Lines::from_ids("--prompt-ids", ids.clone(), tokenizer)?;
        assert_eq!(lines.lines()[0].text.as_deref(), Some("Question: 3 + 4"));
        assert_eq!(lines.lines()[0].ids, ids);
        assert_eq!(
            Lines::from_ids("--prompt-ids", ids, None)?.lines()[0].text,
            None
        );
        Ok(())
    }

    #[test]
    fn sample_records_put_id_prompt_response_first_and_keep_every_field() -> Result<()> {
        let record: Object =
            serde_json::from_str(r#"{"answer": "so #### 7", "prompt": "Q", "x": 1}"#)?;
        let line = Line {
            number: 3,
            record,
            ids: vec![1, 2],
            text: Some("Q".into()),
        };
        let generation = Generation {
            prompt_index: 0,
            sample_index: 1,
            token_ids: vec![5, 6],
            text: Some(" 7".into()),
            finish_reason: FinishReason::Length,
        };
        let line = serde_json::to_string(&sample_record(&line, &generation)?)?;
        assert_eq!(
            line,
            r##"{"id":3,"prompt":"Q","response":" 7","answer":"so #### 7","x":1,"sample_index":1,"prompt_ids":[1,2],"output_ids":[5,6],"finish_reason":"length"}"##
        );
        Ok(())
    }

    #[test]
    fn bad_lines_and_failed_batches_name_file_and_lines() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let input = tmp.path().join("in.jsonl");
        std::fs::write(&input, "{\"prompt_ids\": [1]}\n{\"prompt\": 7}\n")?;
        let err = Lines::read(&input, PROMPT_FIELDS, None, true)
            .err()
            .map(|e| e.to_string());
        let expected = format!(
            "{}:2: expected a \"prompt\" string, a \"messages\" list of messages or a \
             \"prompt_ids\" list",
            input.display()
        );
        assert_eq!(err, Some(expected));

        std::fs::write(
            &input,
            "{\"prompt_ids\": [1]}\n\n{\"prompt_ids\": [2]}\n{\"prompt_ids\": [3]}\n",
        )?;
        let lines = Lines::read(&input, PROMPT_FIELDS, None, true)?;
        let output = tmp.path().join("out.jsonl");
        let batch = NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN);
        let err = lines.run(batch, Some(&output), |batch| match batch[0].number {
            1 => Ok(vec![batch[0].record.clone()]),
            _ => bail!("model failed"),
        });
        let err = err.err().map(|e| format!("{e:#}"));
        assert_eq!(err, Some(format!("{}:4: model failed", input.display())));
        assert!(!output.exists(), "a failed run leaves no output file");
        Ok(())
    }

    #[test]
    fn an_adapter_given_with_the_model_changes_what_it_generates() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let dir = arithmetic_model(tmp.path())?;
        let device = backend::device();
        backend_seed(7);
        let mut adapted = dir
            .model
            .clone()
            .with_lora(&w2s_llama::LoraConfig::default(), &device)?;
        for layer in &mut adapted.model.layers {
            for target in w2s_llama::LoraTarget::ALL {
                if let Some(lora) = layer.projection_mut(target).lora.as_mut() {
                    let dims = lora.b.val().dims();
                    lora.b = burn::module::Param::from_tensor(burn::tensor::Tensor::random(
                        dims,
                        burn::tensor::Distribution::Normal(0.0, 0.5),
                        &device,
                    ));
                }
            }
        }
        let adapter = tmp.path().join("adapter");
        w2s_llama::save_adapter(&adapted, &adapter, None)?;
        let args = |adapter: Option<PathBuf>| ModelIoArgs {
            model: ModelArgs {
                model: Some(dir.path.clone()),
                adapter,
                base_dtype: crate::backend::BaseDtype::F32,
            },
            output: None,
            no_special_tokens: false,
        };
        let greedy = |model: &ModelDir<Inference>| -> Result<Vec<u32>> {
            let prompt = model
                .tokenizer()?
                .encode_with_special_tokens("Question: 3 + 4")?;
            let config = GenerationConfig {
                max_new_tokens: 6,
                ..GenerationConfig::default()
            };
            Ok(generate(&model.model, &[prompt], &config, None, &device)?
                .remove(0)
                .token_ids)
        };
        let with = args(Some(adapter)).load::<Inference>(&device)?;
        assert!(with.model.lora().is_some());
        let direct = ModelDir {
            model: adapted,
            ..ModelDir::load(&dir.path, &device)?
        };
        assert_eq!(greedy(&with)?, greedy(&direct)?);
        let without = args(None).load::<Inference>(&device)?;
        assert_ne!(greedy(&with)?, greedy(&without)?);
        let missing = args(Some(tmp.path().join("nowhere"))).load::<Inference>(&device);
        let err = missing.err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(err.starts_with("--adapter "), "{err}");
        Ok(())
    }

    /// Seeds the inference backend's generator (adapters are drawn from it).
    fn backend_seed(seed: u64) {
        <Inference as Backend>::seed(&backend::device(), seed);
    }
}
