//! The sampler against mock servers on 127.0.0.1: retries and backoff, timeouts, malformed and
//! refused answers, authorization, and the order of choices and prompts.

mod common;

use std::time::{Duration, Instant};

use common::{completion, Mock, Reply};
use w2s_openai::wire::ChatMessage;
use w2s_openai::{
    FinishReason, OpenAiError, OpenAiSampler, Prompt, RetryPolicy, SamplerConfig, SamplingOptions,
};

/// A sampler of `mock` with fast retries.
fn sampler(mock: &Mock, max_retries: u32, timeout: Duration) -> OpenAiSampler {
    let mut config = SamplerConfig::new(&mock.url, "m");
    config.api_key_env = "W2S_TEST_KEY_THAT_IS_NEVER_SET".into();
    config.timeout = timeout;
    config.retry = RetryPolicy {
        max_retries,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    };
    OpenAiSampler::new(config).unwrap_or_else(|e| panic!("{e}"))
}

fn text(prompt: &str) -> Prompt {
    Prompt::Text(prompt.to_string())
}

#[test]
fn a_server_that_fails_twice_with_500_is_retried_until_it_answers() {
    let mock = Mock::start(|seen| match seen.number {
        0 | 1 => Reply::json(
            500,
            r#"{"error": {"message": "busy", "type": "server_error"}}"#,
        ),
        _ => Reply::json(200, completion(&["five"])),
    });
    let answer = sampler(&mock, 3, Duration::from_secs(5))
        .sample(&text("2 + 3 ="), &SamplingOptions::default());
    let answer = answer.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer.completions[0].text, "five");
    assert_eq!(answer.completions[0].finish_reason, FinishReason::Stop);
    assert_eq!(mock.seen().len(), 3);
    assert!(mock
        .seen()
        .iter()
        .all(|s| s.route == "POST /v1/completions"));
}

#[test]
fn a_429_waits_for_retry_after_then_succeeds() {
    let mock = Mock::start(|seen| match seen.number {
        0 => Reply {
            headers: vec![("Retry-After".into(), "0.3".into())],
            ..Reply::json(
                429,
                r#"{"error": {"message": "queue full", "type": "rate_limit_error"}}"#,
            )
        },
        _ => Reply::json(200, completion(&["ok"])),
    });
    let start = Instant::now();
    let answer =
        sampler(&mock, 2, Duration::from_secs(5)).sample(&text("p"), &SamplingOptions::default());
    assert!(answer.is_ok(), "{answer:?}");
    // The jittered backoff would be at most 10 ms; the server asked for 300.
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(mock.seen().len(), 2);
}

#[test]
fn a_hanging_server_times_out_and_gives_a_clear_error_after_the_retries() {
    let mock = Mock::start(|_| Reply {
        delay: Duration::from_secs(3),
        ..Reply::json(200, completion(&["late"]))
    });
    let start = Instant::now();
    let result = sampler(&mock, 2, Duration::from_millis(200))
        .sample(&text("slow prompt"), &SamplingOptions::default());
    let elapsed = start.elapsed();
    let Err(err @ OpenAiError::GaveUp { attempts: 3, .. }) = result else {
        panic!("expected GaveUp after 3 attempts, got {result:?}");
    };
    let message = err.to_string();
    assert!(message.contains(&mock.url), "{message}");
    assert!(message.contains("slow prompt"), "{message}");
    assert!(
        message.to_lowercase().contains("timeout") || message.contains("timed out"),
        "{message}"
    );
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(mock.seen().len(), 3);
}

#[test]
fn malformed_json_names_the_endpoint_the_prompt_and_the_body() {
    let mock = Mock::start(|_| Reply::json(200, "<html>gateway says hello</html>"));
    let result = sampler(&mock, 3, Duration::from_secs(5))
        .sample(&text("what is 6 * 7"), &SamplingOptions::default());
    let Err(err @ OpenAiError::Malformed { .. }) = result else {
        panic!("expected Malformed, got {result:?}");
    };
    let message = err.to_string();
    assert!(
        message.contains(&format!("{}/completions", mock.url)),
        "{message}"
    );
    assert!(message.contains("what is 6 * 7"), "{message}");
    assert!(
        message.contains("<html>gateway says hello</html>"),
        "{message}"
    );
    assert_eq!(mock.seen().len(), 1, "a malformed answer is not retried");
}

#[test]
fn a_4xx_refusal_is_final_and_quotes_the_body() {
    let mock = Mock::start(|_| {
        Reply::json(
            400,
            r#"{"error": {"message": "max_tokens is too large", "type": "invalid_request_error"}}"#,
        )
    });
    let result =
        sampler(&mock, 3, Duration::from_secs(5)).sample(&text("p"), &SamplingOptions::default());
    let Err(err @ OpenAiError::Refused { status: 400, .. }) = result else {
        panic!("expected Refused, got {result:?}");
    };
    assert!(err.to_string().contains("max_tokens is too large"), "{err}");
    assert_eq!(mock.seen().len(), 1);
}

#[test]
fn a_404_from_an_endpoint_without_v1_says_where_the_base_url_ends() {
    let mock = Mock::start(|_| Reply::json(404, "not found"));
    let root = mock.url.trim_end_matches("/v1").to_string();
    let sampler =
        OpenAiSampler::new(SamplerConfig::new(&root, "m")).unwrap_or_else(|e| panic!("{e}"));
    let result = sampler.sample(&text("p"), &SamplingOptions::default());
    let message = result.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("HTTP 404"), "{message}");
    assert!(message.contains("up to and including /v1"), "{message}");
}

#[test]
fn too_few_choices_is_an_error_and_choices_are_put_in_index_order() {
    let mock = Mock::start(|_| {
        let body = serde_json::json!({"choices": [
            {"index": 1, "text": "b", "finish_reason": "length"},
            {"index": 0, "text": "a", "finish_reason": "stop"}]});
        Reply::json(200, body.to_string())
    });
    let sampler = sampler(&mock, 0, Duration::from_secs(5));
    let two = SamplingOptions {
        n: 2,
        ..SamplingOptions::default()
    };
    let answer = sampler
        .sample(&text("p"), &two)
        .unwrap_or_else(|e| panic!("{e}"));
    let texts: Vec<&str> = answer.completions.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, ["a", "b"]);
    assert_eq!(answer.completions[1].finish_reason, FinishReason::Length);

    let three = SamplingOptions {
        n: 3,
        ..SamplingOptions::default()
    };
    let result = sampler.sample(&text("p"), &three);
    assert!(
        matches!(
            result,
            Err(OpenAiError::TooFewChoices {
                expected: 3,
                got: 2,
                ..
            })
        ),
        "{result:?}"
    );
}

#[test]
fn the_request_carries_the_options_and_the_key_only_when_its_variable_is_set() {
    let mock = Mock::start(|seen| {
        let route = seen.route.clone();
        if route.ends_with("/chat/completions") {
            let body = serde_json::json!({"choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "hello"}}], "prompt_token_ids": [1, 2]});
            Reply::json(200, body.to_string())
        } else {
            Reply::json(200, completion(&["x"]))
        }
    });
    let options = SamplingOptions {
        max_tokens: 7,
        temperature: 0.5,
        top_p: Some(0.9),
        seed: Some(11),
        stop: vec!["\n".into()],
        ..SamplingOptions::default()
    };
    let without_key = sampler(&mock, 0, Duration::from_secs(5));
    without_key
        .sample(&Prompt::TokenIds(vec![5, 6]), &options)
        .unwrap_or_else(|e| panic!("{e}"));
    let chat = Prompt::Chat(vec![ChatMessage::new("user", "hi")]);
    let answer = without_key
        .sample(&chat, &options)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer.completions[0].text, "hello");
    assert_eq!(answer.prompt_token_ids, Some(vec![1, 2]));

    // Cargo sets CARGO_PKG_NAME for the tests it runs: a variable that is surely set, without
    // changing this process's environment.
    let mut config = SamplerConfig::new(&mock.url, "m");
    config.api_key_env = "CARGO_PKG_NAME".into();
    let with_key = OpenAiSampler::new(config).unwrap_or_else(|e| panic!("{e}"));
    with_key
        .sample(&text("p"), &options)
        .unwrap_or_else(|e| panic!("{e}"));

    let seen = mock.seen();
    let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap_or_default();
    assert_eq!(
        body,
        serde_json::json!({"model": "m", "prompt": [5, 6], "n": 1, "max_tokens": 7,
            "temperature": 0.5, "top_p": 0.9, "seed": 11, "stop": ["\n"]})
    );
    assert_eq!(seen[0].authorization, None);
    assert_eq!(seen[1].route, "POST /v1/chat/completions");
    assert!(
        seen[1]
            .body
            .contains(r#""messages":[{"role":"user","content":"hi"}]"#),
        "{}",
        seen[1].body
    );
    assert_eq!(seen[2].authorization.as_deref(), Some("Bearer w2s-openai"));
}

#[test]
fn many_prompts_come_back_in_prompt_order_with_their_own_seeds() {
    // Answers the prompt text back, slower for earlier prompts, so they arrive out of order.
    let mock = Mock::start(|seen| {
        let body: serde_json::Value = serde_json::from_str(&seen.body).unwrap_or_default();
        let prompt = body["prompt"].as_str().unwrap_or("").to_string();
        let wait = 60u64.saturating_sub(prompt.len() as u64 * 10);
        Reply {
            delay: Duration::from_millis(wait),
            ..Reply::json(200, completion(&[&format!("{prompt}/{}", body["seed"])]))
        }
    });
    let mut config = SamplerConfig::new(&mock.url, "m");
    config.concurrency = 4;
    let sampler = OpenAiSampler::new(config).unwrap_or_else(|e| panic!("{e}"));
    let prompts: Vec<Prompt> = ["a", "bb", "ccc", "dddd", "eeeee"]
        .iter()
        .map(|p| text(p))
        .collect();
    let options = SamplingOptions {
        seed: Some(3),
        ..SamplingOptions::default()
    };
    let answers = sampler
        .sample_all(&prompts, &options)
        .unwrap_or_else(|e| panic!("{e}"));
    let texts: Vec<String> = answers
        .iter()
        .map(|a| a.completions[0].text.clone())
        .collect();
    let expected: Vec<String> = ["a", "bb", "ccc", "dddd", "eeeee"]
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{p}/{}", w2s_openai::prompt_seed(3, i)))
        .collect();
    assert_eq!(texts, expected);
}

#[test]
fn bad_configs_are_refused_before_any_request() {
    let https = OpenAiSampler::new(SamplerConfig::new("https://example.invalid/v1", "m"));
    if cfg!(feature = "tls") {
        assert!(https.is_ok());
    } else {
        let message = https.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("--features tls"), "{message}");
    }
    let ftp = OpenAiSampler::new(SamplerConfig::new("ftp://host/v1", "m"));
    assert!(matches!(ftp, Err(OpenAiError::Config(_))));
    let mut config = SamplerConfig::new("http://127.0.0.1:1/v1", "m");
    config.concurrency = 0;
    assert!(matches!(
        OpenAiSampler::new(config),
        Err(OpenAiError::Config(_))
    ));
}
