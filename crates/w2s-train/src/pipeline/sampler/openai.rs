//! A sampler over the OpenAI completions API: w2s-openai's client against vLLM, SGLang or any
//! compatible server, which runs the model (with tensor parallelism, on other machines).
//!
//! The request's model name is the `model` template with `{model}` filled by the absolute path
//! of the directory the stage samples; the stage first checks that the server lists that name,
//! so that a server still holding the previous stage's model is never sampled by mistake.
//! Prompts read as text go to `/v1/completions`, a `chat_template` model's as one user message to
//! `/v1/chat/completions`. Prompt `i` is sent the seed `prompt_seed(seed, i)`, so samples repeat
//! where the server's sampling is seeded (vLLM's is).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use w2s_curation::record::Sample;
use w2s_openai::{sample_to_jsonl, Prompt, SamplerConfig, SamplingOptions, StagePrompt};

use super::{read_lines, SampleRequest, Sampler};
use crate::error::{Result, TrainError};
use crate::pipeline::role::SamplerSpec;
use crate::prompt_format::PromptFormat;
use crate::sampling::PromptRecord;

/// A role's server (see the module docs).
#[derive(Debug)]
pub(crate) struct OpenAiSampler {
    endpoint: String,
    model: String,
    api_key_env: String,
    concurrency: usize,
    timeout: Duration,
    format: PromptFormat,
    quiet: bool,
}

impl OpenAiSampler {
    /// The sampler of `spec` (`None` for the built-in engine), for a model reading prompts in
    /// `format`.
    pub fn new(spec: &SamplerSpec, format: PromptFormat, quiet: bool) -> Option<Self> {
        match spec {
            SamplerSpec::Burn => None,
            SamplerSpec::OpenAi {
                endpoint,
                model,
                api_key_env,
                concurrency,
                timeout_s,
            } => Some(Self {
                endpoint: endpoint.clone(),
                model: model.clone(),
                api_key_env: api_key_env.clone(),
                concurrency: *concurrency,
                timeout: Duration::from_secs(*timeout_s),
                format,
                quiet,
            }),
        }
    }

    /// The client for the model in `dir`.
    ///
    /// # Errors
    /// A bad endpoint; a server that does not list the model's name ([`TrainError::NotServed`]).
    fn client(&self, dir: &Path) -> Result<w2s_openai::OpenAiSampler> {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let name = self.model.replace("{model}", &dir.display().to_string());
        let config = SamplerConfig {
            api_key_env: self.api_key_env.clone(),
            timeout: self.timeout,
            concurrency: self.concurrency,
            ..SamplerConfig::new(&self.endpoint, &name)
        };
        let client = w2s_openai::OpenAiSampler::new(config)?;
        let served: Vec<String> = client.models()?.data.into_iter().map(|m| m.id).collect();
        if !served.contains(&name) {
            return Err(TrainError::NotServed {
                endpoint: client.config().endpoint.clone(),
                model: name,
                served: served.join(", "),
            });
        }
        Ok(client)
    }
}

impl Sampler for OpenAiSampler {
    fn sample(
        &self,
        model: &Path,
        prompts: &[PromptRecord],
        request: &SampleRequest,
        out: &Path,
    ) -> Result<Vec<Sample>> {
        let client = self.client(model)?;
        if !self.quiet {
            eprintln!(
                "  sampling {} prompts x {} from {} ({})",
                prompts.len(),
                request.n,
                client.config().endpoint,
                client.config().model
            );
        }
        let stage: Vec<StagePrompt> = prompts
            .iter()
            .map(|p| StagePrompt {
                id: Value::String(p.id.clone()),
                prompt: match self.format {
                    PromptFormat::Text => Prompt::Text(p.prompt.clone()),
                    PromptFormat::Chat => {
                        Prompt::Chat(vec![w2s_data::ChatMessage::new("user", &p.prompt)])
                    }
                },
            })
            .collect();
        let options = SamplingOptions {
            n: request.n,
            max_tokens: request.max_new_tokens,
            temperature: request.temperature,
            top_p: request.top_p,
            top_k: None,
            seed: Some(request.seed),
            stop: request.stop.clone(),
            return_token_ids: false,
        };
        sample_to_jsonl::<TrainError>(&client, &stage, &options, out, |i, answer| {
            let p = &prompts[i];
            answer
                .completions
                .iter()
                .enumerate()
                .map(|(k, completion)| {
                    let mut extra = p.extra.clone();
                    extra.insert("sample_index".into(), k.into());
                    extra.insert("seed".into(), request.seed.into());
                    extra.insert(
                        "finish_reason".into(),
                        serde_json::to_value(completion.finish_reason).unwrap_or(Value::Null),
                    );
                    let sample = Sample {
                        id: p.id.clone(),
                        prompt: p.prompt.clone(),
                        response: completion.text.clone(),
                        extra,
                    };
                    match serde_json::to_value(sample) {
                        Ok(Value::Object(line)) => Ok(line),
                        other => Err(TrainError::Engine {
                            field: "sampler".into(),
                            reason: format!("a sample is not a JSON object: {other:?}"),
                        }),
                    }
                })
                .collect()
        })?;
        read_lines(out)
    }
}
