//! `generate --endpoint`: the same JSONL in and out as the in-process generator, sampled by an
//! OpenAI-compatible server (vLLM, SGLang, llama.cpp's server, TGI, or `serve`) through
//! [`w2s_openai`].
//!
//! Each input line is one request: a `prompt` text or `prompt_ids` to `/v1/completions`, a
//! `messages` conversation to `/v1/chat/completions` (the server renders it with its model's
//! template). Each output line is a sample as [`crate::model_io::sample_head`] starts it (`id`,
//! `prompt`, `response`, every input field), then `sample_index`, `prompt_ids` and `output_ids`
//! when the server gives token ids (with `--return-token-ids`; a `prompt_ids` input is its own),
//! and `finish_reason`: `stop` (end of sequence or a stop string) or `length`. A conversation's
//! `prompt` is its last message, since the rendering happens on the server.
//!
//! With `--output` the run is resumable: each line's samples are appended as soon as it is
//! answered, a rerun sends only the lines without all their samples, and the finished file is in
//! input order ([`w2s_openai::sample_to_jsonl`]). Lines are told apart by `id` (their line
//! number when they have none), so ids must be unique. Line `i` is sampled with the seed
//! [`w2s_openai::prompt_seed`]`(--seed, i)`.

use std::io::{IsTerminal, Write};
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::Value;
use w2s_data::jsonl::{BadLines, JsonlReader, Object};
use w2s_openai::{
    sample_to_jsonl, Answer, OpenAiSampler, Prompt, RetryPolicy, SamplerConfig, SamplingOptions,
    StagePrompt,
};

use crate::model_io::{sample_head, InputFields, LineInput};

/// The options of sampling through a server; flattened beside [`crate::model_io::ModelIoArgs`],
/// whose `--adapter` and `--no-special-tokens` it conflicts with.
#[derive(Args, Debug)]
pub struct EndpointArgs {
    /// Sample through the OpenAI-compatible server at this base URL (up to and including /v1,
    /// e.g. http://127.0.0.1:8000/v1) instead of loading --model.
    #[arg(long, value_name = "URL", conflicts_with_all = ["adapter", "no_special_tokens"])]
    pub endpoint: Option<String>,
    /// The model to ask the server for (default: the one model its /v1/models lists).
    #[arg(long, value_name = "NAME", requires = "endpoint")]
    pub api_model: Option<String>,
    /// The environment variable holding the API key, sent as a bearer token when it is set.
    #[arg(long, value_name = "VAR", default_value = "OPENAI_API_KEY")]
    pub api_key_env: String,
    /// Requests in flight at once (the server batches them).
    #[arg(long, value_name = "N", default_value = "8")]
    pub concurrency: NonZeroUsize,
    /// Longest one request may take, in seconds.
    #[arg(long, value_name = "S", default_value_t = 600.0)]
    pub timeout_s: f64,
    /// Retries of a request answered 429 or 5xx or cut by a connection error or a timeout, with
    /// jittered exponential backoff (a Retry-After header is honoured).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub max_retries: u32,
    /// Ask the server for token ids (vLLM's `return_token_ids`, honoured by `serve`), for
    /// `prompt_ids` and `output_ids`; servers that do not know the option may refuse it.
    #[arg(long)]
    pub return_token_ids: bool,
}

impl EndpointArgs {
    /// A sampler of `endpoint` for `--api-model`, or for the server's only model.
    ///
    /// # Errors
    /// Bad options, an unreachable server, or a server with several models and no
    /// `--api-model`.
    pub fn sampler(&self, endpoint: &str) -> Result<OpenAiSampler> {
        if !(self.timeout_s.is_finite() && self.timeout_s > 0.0) {
            bail!("--timeout-s must be a positive number of seconds");
        }
        let config = |model: &str| SamplerConfig {
            api_key_env: self.api_key_env.clone(),
            timeout: Duration::from_secs_f64(self.timeout_s),
            concurrency: self.concurrency.get(),
            retry: RetryPolicy {
                max_retries: self.max_retries,
                ..RetryPolicy::default()
            },
            ..SamplerConfig::new(endpoint, model)
        };
        if let Some(model) = &self.api_model {
            return Ok(OpenAiSampler::new(config(model))?);
        }
        let models = OpenAiSampler::new(config(""))?
            .models()
            .context("asking the server for its model (or give --api-model)")?;
        match models.data.as_slice() {
            [one] => Ok(OpenAiSampler::new(config(&one.id))?),
            many => {
                let names: Vec<&str> = many.iter().map(|m| m.id.as_str()).collect();
                bail!("{endpoint} serves {names:?}: give --api-model NAME")
            }
        }
    }
}

/// One input line, as a server gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteLine {
    /// 1-based line number in its file (1 for a prompt given on the command line).
    pub number: usize,
    /// Every field of the line.
    pub record: Object,
    /// What to send.
    pub prompt: Prompt,
    /// The output lines' `prompt`: the line's text, or its conversation's last message.
    pub text: Option<String>,
}

impl RemoteLine {
    /// A prompt given on the command line as text.
    pub fn from_text(text: &str) -> RemoteLine {
        RemoteLine::single(Prompt::Text(text.to_string()), Some(text.to_string()))
    }

    /// A prompt given on the command line as token ids.
    pub fn from_ids(ids: Vec<u32>) -> RemoteLine {
        RemoteLine::single(Prompt::TokenIds(ids), None)
    }

    fn single(prompt: Prompt, text: Option<String>) -> RemoteLine {
        RemoteLine {
            number: 1,
            record: Object::new(),
            prompt,
            text,
        }
    }

    /// The `id` of its output lines: its own, else its line number.
    fn id(&self) -> Value {
        self.record
            .get("id")
            .cloned()
            .unwrap_or_else(|| self.number.into())
    }

    /// Its output lines, one per completion of `answer`.
    fn samples(&self, answer: &Answer) -> Vec<Object> {
        let prompt_ids = match &self.prompt {
            Prompt::TokenIds(ids) => Some(ids),
            _ => answer.prompt_token_ids.as_ref(),
        };
        answer
            .completions
            .iter()
            .enumerate()
            .map(|(k, completion)| {
                let mut record = sample_head(
                    &self.record,
                    self.number,
                    self.text.as_deref(),
                    Some(&completion.text),
                );
                record.insert("sample_index".into(), k.into());
                if let Some(ids) = prompt_ids {
                    record.insert("prompt_ids".into(), ids.clone().into());
                }
                if let Some(ids) = &completion.token_ids {
                    record.insert("output_ids".into(), ids.clone().into());
                }
                let reason = serde_json::to_value(completion.finish_reason).unwrap_or_default();
                record.insert("finish_reason".into(), reason);
                record
            })
            .collect()
    }
}

/// Every line of the JSONL file `path`, its input read as [`LineInput::of`] reads it.
///
/// # Errors
/// An unreadable file or a malformed line, naming file and line.
pub fn read_lines(path: &Path, fields: InputFields) -> Result<Vec<RemoteLine>> {
    let source = path.display();
    let mut reader = JsonlReader::<Object>::open(path, BadLines::Fail)?;
    let mut lines = Vec::new();
    while let Some(record) = reader.next() {
        let record = record?;
        let number = reader.line();
        let (prompt, text) = match LineInput::of(&record, fields, &format!("{source}:{number}"))? {
            LineInput::Ids(ids, text) => (Prompt::TokenIds(ids), text),
            LineInput::Text(text) => (Prompt::Text(text.clone()), Some(text)),
            LineInput::Conversation(messages) => {
                let last = messages.last().map(|m| m.content.clone());
                (Prompt::Chat(messages), last)
            }
        };
        lines.push(RemoteLine {
            number,
            record,
            prompt,
            text,
        });
    }
    Ok(lines)
}

/// Samples every line through `sampler` and writes its samples to `output` (resumable, see the
/// module docs) or, in input order, to stdout. Returns the number of lines written by this run.
///
/// # Errors
/// The sampler's errors (naming URL, prompt and body) and I/O errors naming the file; with
/// `--output`, whatever was answered before an error stays in the file.
pub fn generate(
    sampler: &OpenAiSampler,
    lines: &[RemoteLine],
    options: &SamplingOptions,
    output: Option<&Path>,
) -> Result<usize> {
    let Some(output) = output else {
        let prompts: Vec<Prompt> = lines.iter().map(|l| l.prompt.clone()).collect();
        let answers = sampler.sample_all(&prompts, options)?;
        let mut stdout = std::io::stdout().lock();
        let mut written = 0;
        for (line, answer) in lines.iter().zip(&answers) {
            for record in line.samples(answer) {
                serde_json::to_writer(&mut stdout, &record)?;
                writeln!(stdout).context("writing to stdout")?;
                written += 1;
            }
        }
        return Ok(written);
    };
    let stage: Vec<StagePrompt> = lines
        .iter()
        .map(|line| StagePrompt {
            id: line.id(),
            prompt: line.prompt.clone(),
        })
        .collect();
    let progress = std::io::stderr().is_terminal();
    let mut done = 0;
    let summary = sample_to_jsonl(sampler, &stage, options, output, |i, answer| {
        done += 1;
        if progress {
            eprint!("\r{done} lines answered");
        }
        Ok::<_, anyhow::Error>(lines[i].samples(answer))
    })
    .with_context(|| format!("--output {}", output.display()))?;
    if progress {
        eprintln!();
    }
    eprintln!(
        "{}: {} lines, {} already there, {} answered now ({} samples each)",
        output.display(),
        summary.prompts,
        summary.already_done,
        summary.answered,
        options.n
    );
    Ok(summary.answered * options.n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend;
    use crate::model_io::tests::arithmetic_model;
    use crate::model_io::{generate_lines, Lines, PROMPT_FIELDS};
    use std::num::NonZeroUsize;
    use w2s_data::jsonl::read_jsonl;
    use w2s_llama::GenerationConfig;
    use w2s_serve::{serve_model, ServeConfig};

    #[test]
    fn a_server_writes_the_lines_the_in_process_generator_writes_and_a_rerun_sends_nothing(
    ) -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let dir = arithmetic_model(tmp.path())?;
        let input = tmp.path().join("in.jsonl");
        let question =
            "Question: Tom has 3 apples. He buys 4 more. How many apples does he have?\nAnswer:";
        let lines = [
            serde_json::json!({"id": "q1", "prompt": question, "answer": "#### 7"}),
            serde_json::json!({"prompt_ids": [1, 20, 21, 22], "answer": "#### 1"}),
            serde_json::json!({"prompt": "Question: 9 - 2 =", "tag": [1, 2]}),
        ];
        w2s_data::jsonl::write_jsonl(&input, &lines)?;
        let device = backend::device();
        let local = tmp.path().join("local.jsonl");
        let config = GenerationConfig {
            max_new_tokens: 24,
            eos_token_ids: dir.config.eos_token_ids(),
            ..GenerationConfig::default()
        };
        Lines::read(&input, PROMPT_FIELDS, dir.tokenizer.as_ref(), true)?.run(
            NonZeroUsize::MIN,
            Some(&local),
            |batch| generate_lines(&dir, batch, &config, &device),
        )?;

        // The server takes its model by value: a second copy.
        let served = w2s_llama::ModelDir::<backend::Inference>::load(&dir.path, &device)?;
        let server = serve_model(served, device, ServeConfig::new("127.0.0.1:0", "arith"))?;
        let args = EndpointArgs {
            endpoint: Some(server.base_url()),
            api_model: None,
            api_key_env: "W2S_TEST_KEY_THAT_IS_NEVER_SET".into(),
            concurrency: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
            timeout_s: 60.0,
            max_retries: 0,
            return_token_ids: true,
        };
        let sampler = args.sampler(&server.base_url())?;
        assert_eq!(sampler.config().model, "arith", "the server's one model");
        let options = SamplingOptions {
            max_tokens: 24,
            temperature: 0.0,
            return_token_ids: true,
            ..SamplingOptions::default()
        };
        let remote_lines = read_lines(&input, PROMPT_FIELDS)?;
        let output = tmp.path().join("remote.jsonl");
        assert_eq!(
            generate(&sampler, &remote_lines, &options, Some(&output))?,
            3
        );

        let local: Vec<Object> = read_jsonl(&local, BadLines::Fail)?.records;
        let remote: Vec<Object> = read_jsonl(&output, BadLines::Fail)?.records;
        assert_eq!(remote.len(), 3);
        for (mut local, mut remote) in local.into_iter().zip(remote) {
            // OpenAI's API says "stop" for an end-of-sequence token too.
            let reason = |r: &mut Object| r.shift_remove("finish_reason");
            let (from_local, from_remote) = (reason(&mut local), reason(&mut remote));
            let expected = match from_local.as_ref().and_then(Value::as_str) {
                Some("eos") => Some(Value::from("stop")),
                other => other.map(Value::from),
            };
            assert_eq!(from_remote, expected);
            // Token ids sent as they are have no text without a tokenizer here.
            if !remote.contains_key("prompt") {
                assert_eq!(local["id"], 2);
                local.shift_remove("prompt");
            }
            assert_eq!(
                serde_json::to_string(&remote)?,
                serde_json::to_string(&local)?,
                "same fields, same order, same values"
            );
        }

        let before = std::fs::read(&output)?;
        assert_eq!(
            generate(&sampler, &remote_lines, &options, Some(&output))?,
            0
        );
        assert_eq!(std::fs::read(&output)?, before);
        assert_eq!(server.stats().completed, 3, "a rerun sends nothing");
        Ok(())
    }
}
