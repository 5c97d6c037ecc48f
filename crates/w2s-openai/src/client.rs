//! [`OpenAiSampler`]: a blocking client of any OpenAI-compatible server (vLLM, SGLang,
//! llama.cpp's server, TGI, w2s's own `serve`).
//!
//! A text or token-id prompt goes to `/v1/completions`, a conversation to
//! `/v1/chat/completions`; one request per prompt, asking for its `n` completions. Many prompts
//! are sampled by `concurrency` worker threads taking prompts from one queue, so at most that
//! many requests are in flight. Each request has a timeout and is retried as [`RetryPolicy`]
//! says; an answer that cannot be used (malformed JSON, a 4xx refusal, fewer than `n` choices) is
//! an error naming the URL, the prompt and the response body.
//!
//! The API key is read once, from the environment variable the config names (`OPENAI_API_KEY` by
//! default), and sent as `Authorization: Bearer KEY`; without the variable no header is sent,
//! as local servers want.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use serde::de::DeserializeOwned;

use crate::error::{cut, OpenAiError, Result};
use crate::prompt::{prompt_seed, Answer, Completion, Prompt, SamplingOptions};
use crate::retry::{parse_retry_after, retryable_status, RetryPolicy};
use crate::wire::{
    ChatCompletionRequest, ChatCompletionResponse, CompletionRequest, CompletionResponse,
    FinishReason, ModelList, PromptInput, SamplingParams, Stop,
};

/// Longest response body an error quotes.
const BODY_IN_ERRORS: usize = 500;

/// Where and how to send requests.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    /// The API's base URL up to and including `/v1`, as the OpenAI SDK's `base_url`
    /// (`http://127.0.0.1:8000/v1`).
    pub endpoint: String,
    /// The model name requests carry (`/v1/models` lists a server's).
    pub model: String,
    /// The environment variable holding the API key; unset or empty sends no key.
    pub api_key_env: String,
    /// Longest one request may take, connecting and reading the whole answer included.
    pub timeout: Duration,
    /// Requests in flight at once (worker threads).
    pub concurrency: usize,
    /// Retries and backoff.
    pub retry: RetryPolicy,
}

impl SamplerConfig {
    /// A config for `model` at `endpoint` with the defaults: key from `OPENAI_API_KEY`, 600 s
    /// timeout, 8 requests in flight, [`RetryPolicy::default`].
    pub fn new(endpoint: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            model: model.into(),
            api_key_env: "OPENAI_API_KEY".into(),
            timeout: Duration::from_secs(600),
            concurrency: 8,
            retry: RetryPolicy::default(),
        }
    }
}

/// A blocking sampler over an OpenAI-compatible server; see the module docs.
pub struct OpenAiSampler {
    config: SamplerConfig,
    agent: ureq::Agent,
    api_key: Option<String>,
    jitter: Mutex<rand::rngs::ChaCha8Rng>,
}

impl std::fmt::Debug for OpenAiSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiSampler")
            .field("config", &self.config)
            .field("api_key", &self.api_key.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// What one attempt got.
enum Attempt {
    /// A 2xx answer's body.
    Answered(String),
    /// Worth another attempt: why, and the server's `Retry-After`.
    Retry(String, Option<Duration>),
}

impl OpenAiSampler {
    /// A sampler for `config`; reads the API key from the environment now.
    ///
    /// # Errors
    /// [`OpenAiError::Config`] for an endpoint that is not an `http://` URL (or `https://`
    /// with the `tls` feature), or a concurrency of 0.
    pub fn new(config: SamplerConfig) -> Result<Self> {
        let endpoint = config.endpoint.trim_end_matches('/').to_string();
        let https = endpoint.starts_with("https://");
        if !(endpoint.starts_with("http://") || https) {
            return Err(OpenAiError::Config(format!(
                "endpoint {endpoint:?} must be an http:// URL, e.g. http://127.0.0.1:8000/v1"
            )));
        }
        if https && !cfg!(feature = "tls") {
            return Err(OpenAiError::Config(format!(
                "endpoint {endpoint} is HTTPS, but w2s was built without TLS: rebuild with \
                 `--features tls`, or reach the server over plain HTTP (an SSH tunnel, say)"
            )));
        }
        if config.concurrency == 0 {
            return Err(OpenAiError::Config("concurrency must be at least 1".into()));
        }
        let api_key = std::env::var(&config.api_key_env)
            .ok()
            .filter(|key| !key.is_empty());
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .max_idle_connections_per_host(config.concurrency.max(1))
            .build()
            .into();
        let clock = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let jitter = rand::rngs::ChaCha8Rng::seed_from_u64(clock ^ u64::from(std::process::id()));
        Ok(Self {
            config: SamplerConfig { endpoint, ..config },
            agent,
            api_key,
            jitter: Mutex::new(jitter),
        })
    }

    /// The config, endpoint without a trailing `/`.
    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// The models the server offers (`GET /v1/models`), retried like a sampling request.
    ///
    /// # Errors
    /// As [`OpenAiSampler::sample`].
    pub fn models(&self) -> Result<ModelList> {
        let url = self.url("models");
        let body = self.send(&url, None, "(GET /models)")?;
        parse(&url, "(GET /models)", &body)
    }

    /// `options.n` completions of one prompt; `options.seed` is sent as it is.
    ///
    /// # Errors
    /// [`OpenAiError::Refused`] (a 4xx other than 429), [`OpenAiError::Malformed`],
    /// [`OpenAiError::TooFewChoices`], [`OpenAiError::GaveUp`] once the retries are spent, and
    /// [`OpenAiError::Config`] for options out of range.
    pub fn sample(&self, prompt: &Prompt, options: &SamplingOptions) -> Result<Answer> {
        if options.n == 0 {
            return Err(OpenAiError::Config("n must be at least 1".into()));
        }
        let params = self.params(options);
        let model = Some(self.config.model.clone());
        let preview = prompt.preview();
        let request = |prompt| CompletionRequest {
            model: model.clone(),
            prompt,
            params: params.clone(),
        };
        match prompt {
            Prompt::Text(text) => self.complete(
                &request(PromptInput::Text(text.clone())),
                options.n,
                &preview,
            ),
            Prompt::TokenIds(ids) => self.complete(
                &request(PromptInput::TokenIds(ids.clone())),
                options.n,
                &preview,
            ),
            Prompt::Chat(messages) => {
                let request = ChatCompletionRequest {
                    model,
                    messages: messages.clone(),
                    max_completion_tokens: None,
                    params,
                };
                self.chat(&request, options.n, &preview)
            }
        }
    }

    /// Every prompt's answer, in prompt order; prompt `i` is sent the seed
    /// [`prompt_seed`]`(options.seed, i)`.
    ///
    /// # Errors
    /// The first error of any prompt, once the requests in flight have ended.
    pub fn sample_all(&self, prompts: &[Prompt], options: &SamplingOptions) -> Result<Vec<Answer>> {
        let jobs: Vec<(usize, &Prompt)> = prompts.iter().enumerate().collect();
        let mut answers: Vec<Option<Answer>> = vec![None; prompts.len()];
        self.sample_each::<OpenAiError>(&jobs, options, |index, answer| {
            answers[index] = Some(answer);
            Ok(())
        })?;
        Ok(answers.into_iter().flatten().collect())
    }

    /// Samples `jobs` (each a prompt and its index in the stage, which picks its seed as in
    /// [`OpenAiSampler::sample_all`]) on `concurrency` threads and hands each answer to
    /// `on_answer` on the calling thread as soon as it arrives.
    ///
    /// After the first error, of a request or of `on_answer`, no new request is sent; answers of
    /// requests already in flight still reach `on_answer` unless it was `on_answer` that failed.
    ///
    /// # Errors
    /// The first error.
    pub fn sample_each<E: From<OpenAiError>>(
        &self,
        jobs: &[(usize, &Prompt)],
        options: &SamplingOptions,
        mut on_answer: impl FnMut(usize, Answer) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let (sender, receiver) = mpsc::channel();
        std::thread::scope(|scope| {
            for _ in 0..self.config.concurrency.min(jobs.len()) {
                let sender = sender.clone();
                let (next, stop) = (&next, &stop);
                scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let Some(&(index, prompt)) = jobs.get(next.fetch_add(1, Ordering::Relaxed))
                        else {
                            break;
                        };
                        let options = SamplingOptions {
                            seed: options.seed.map(|seed| prompt_seed(seed, index)),
                            ..options.clone()
                        };
                        let result = self.sample(prompt, &options);
                        if result.is_err() {
                            stop.store(true, Ordering::Relaxed);
                        }
                        if sender.send((index, result)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(sender);
            let mut first_error = None;
            let mut handing_on = true;
            for (index, result) in receiver {
                let handed = match result {
                    Ok(answer) if handing_on => {
                        on_answer(index, answer).inspect_err(|_| handing_on = false)
                    }
                    Ok(_) => Ok(()),
                    Err(e) => Err(E::from(e)),
                };
                if let Err(e) = handed {
                    stop.store(true, Ordering::Relaxed);
                    first_error.get_or_insert(e);
                }
            }
            first_error.map_or(Ok(()), Err)
        })
    }

    fn url(&self, route: &str) -> String {
        format!("{}/{route}", self.config.endpoint)
    }

    fn params(&self, options: &SamplingOptions) -> SamplingParams {
        let to_u32 = |value: usize| u32::try_from(value).unwrap_or(u32::MAX);
        SamplingParams {
            n: Some(to_u32(options.n)),
            max_tokens: Some(to_u32(options.max_tokens)),
            temperature: Some(options.temperature),
            top_p: options.top_p,
            top_k: options.top_k.map(to_u32),
            seed: options.seed.map(|seed| (seed & i64::MAX as u64) as i64),
            stop: (!options.stop.is_empty()).then(|| Stop::Many(options.stop.clone())),
            stream: None,
            return_token_ids: options.return_token_ids.then_some(true),
        }
    }

    fn complete(&self, request: &CompletionRequest, n: usize, preview: &str) -> Result<Answer> {
        let url = self.url("completions");
        let body = self.send(&url, Some(&to_json(request)), preview)?;
        let response: CompletionResponse = parse(&url, preview, &body)?;
        let prompt_token_ids = response
            .choices
            .first()
            .and_then(|c| c.prompt_token_ids.clone());
        let choices = response.choices.into_iter().map(|c| {
            let completion = Completion {
                text: c.text,
                finish_reason: c.finish_reason.unwrap_or(FinishReason::Other),
                token_ids: c.token_ids,
            };
            (c.index, completion)
        });
        let completions = in_order(choices, n, &url, preview, &body)?;
        Ok(Answer {
            completions,
            prompt_token_ids,
        })
    }

    fn chat(&self, request: &ChatCompletionRequest, n: usize, preview: &str) -> Result<Answer> {
        let url = self.url("chat/completions");
        let body = self.send(&url, Some(&to_json(request)), preview)?;
        let response: ChatCompletionResponse = parse(&url, preview, &body)?;
        let choices = response.choices.into_iter().map(|c| {
            let completion = Completion {
                text: c.message.content.unwrap_or_default(),
                finish_reason: c.finish_reason.unwrap_or(FinishReason::Other),
                token_ids: c.token_ids,
            };
            (c.index, completion)
        });
        let completions = in_order(choices, n, &url, preview, &body)?;
        Ok(Answer {
            completions,
            prompt_token_ids: response.prompt_token_ids,
        })
    }

    /// Sends `body` (POST) or nothing (GET) to `url` until an attempt is answered or the
    /// retries are spent; returns the 2xx body.
    fn send(&self, url: &str, body: Option<&[u8]>, preview: &str) -> Result<String> {
        let policy = self.config.retry;
        let attempts = policy.max_retries.saturating_add(1);
        let mut last = String::new();
        for attempt in 0..attempts {
            match self.attempt(url, body, preview)? {
                Attempt::Answered(text) => return Ok(text),
                Attempt::Retry(why, retry_after) => {
                    last = why;
                    if attempt + 1 < attempts {
                        let delay = {
                            let mut rng = self.jitter.lock().unwrap_or_else(|e| e.into_inner());
                            policy.delay(attempt, retry_after, &mut *rng)
                        };
                        std::thread::sleep(delay);
                    }
                }
            }
        }
        Err(OpenAiError::GaveUp {
            url: url.to_string(),
            prompt: preview.to_string(),
            attempts,
            last,
        })
    }

    fn attempt(&self, url: &str, body: Option<&[u8]>, preview: &str) -> Result<Attempt> {
        let bearer = self.api_key.as_ref().map(|key| format!("Bearer {key}"));
        let sent = match body {
            Some(body) => {
                let mut request = self.agent.post(url).content_type("application/json");
                if let Some(bearer) = &bearer {
                    request = request.header("Authorization", bearer);
                }
                request.send(body)
            }
            None => {
                let mut request = self.agent.get(url);
                if let Some(bearer) = &bearer {
                    request = request.header("Authorization", bearer);
                }
                request.call()
            }
        };
        let mut response = match sent {
            Ok(response) => response,
            Err(e) if transient(&e) => return Ok(Attempt::Retry(e.to_string(), None)),
            Err(e) => return Err(transport(url, preview, &e)),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = match response.body_mut().read_to_string() {
            Ok(text) => text,
            Err(e) if transient(&e) => return Ok(Attempt::Retry(e.to_string(), None)),
            Err(e) => return Err(transport(url, preview, &e)),
        };
        if (200..300).contains(&status) {
            return Ok(Attempt::Answered(text));
        }
        if retryable_status(status) {
            let why = format!("HTTP {status}: {}", cut(&text, BODY_IN_ERRORS));
            return Ok(Attempt::Retry(why, retry_after));
        }
        let hint = if status == 404 && !self.config.endpoint.ends_with("/v1") {
            " (the endpoint is the base URL up to and including /v1, as the OpenAI SDK's \
             base_url)"
        } else {
            ""
        };
        Err(OpenAiError::Refused {
            url: url.to_string(),
            prompt: preview.to_string(),
            status,
            body: cut(&text, BODY_IN_ERRORS),
            hint: hint.to_string(),
        })
    }
}

/// Transport errors worth another attempt: the connection failed, broke or timed out.
fn transient(error: &ureq::Error) -> bool {
    matches!(
        error,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound
            | ureq::Error::Protocol(_)
            | ureq::Error::BodyStalled
    )
}

fn transport(url: &str, preview: &str, error: &ureq::Error) -> OpenAiError {
    OpenAiError::Transport {
        url: url.to_string(),
        prompt: preview.to_string(),
        reason: error.to_string(),
    }
}

fn to_json(value: &impl serde::Serialize) -> Vec<u8> {
    // The request types hold strings, numbers and lists only: serializing cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn parse<T: DeserializeOwned>(url: &str, preview: &str, body: &str) -> Result<T> {
    serde_json::from_str(body).map_err(|e| OpenAiError::Malformed {
        url: url.to_string(),
        prompt: preview.to_string(),
        reason: e.to_string(),
        body: cut(body, BODY_IN_ERRORS),
    })
}

/// The completions of choices `0..n`, by their `index`.
fn in_order(
    choices: impl Iterator<Item = (u32, Completion)>,
    n: usize,
    url: &str,
    preview: &str,
    body: &str,
) -> Result<Vec<Completion>> {
    let mut slots: Vec<Option<Completion>> = vec![None; n];
    for (index, completion) in choices {
        if let Some(slot) = slots.get_mut(index as usize) {
            *slot = Some(completion);
        }
    }
    let got = slots.iter().filter(|slot| slot.is_some()).count();
    if got < n {
        return Err(OpenAiError::TooFewChoices {
            url: url.to_string(),
            prompt: preview.to_string(),
            expected: n,
            got,
            body: cut(body, BODY_IN_ERRORS),
        });
    }
    Ok(slots.into_iter().flatten().collect())
}
