//! `serve` under load and abuse, on 127.0.0.1: many concurrent clients all get 200 or 429 and
//! none is lost or left hanging; bad requests get 4xx with OpenAI's error body; a panicking
//! model answers 500 and serving goes on; a full queue answers 429 at once; a shutdown answers
//! the requests in flight.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{arithmetic_model, client, config, get, post, question, serve, NAME};
use serde_json::{json, Value};
use w2s_llama::{FinishReason, Generation, Tokenizer};
use w2s_serve::{start, Engine, GroupOptions, PromptEncoder, RunningServer, ServeConfig};

/// Clients at once, and requests each sends.
const CLIENTS: usize = 32;
const REQUESTS_EACH: usize = 4;

#[test]
fn thirty_two_clients_get_200_or_429_and_none_is_lost_or_hangs() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = serve(
        &arithmetic_model(tmp.path()),
        ServeConfig {
            max_batch: 4,
            queue: 8,
            ..config()
        },
    );
    let url = format!("{}/completions", server.base_url());
    let start = Instant::now();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let url = url.clone();
                scope.spawn(move || {
                    let agent = client();
                    (0..REQUESTS_EACH)
                        .map(|r| {
                            let body = json!({"model": NAME, "prompt": question(c * REQUESTS_EACH + r),
                                              "n": 2, "max_tokens": 12, "seed": c});
                            let (status, text) = post(&agent, &url, body.to_string());
                            if status == 200 {
                                let answer: Value = serde_json::from_str(&text).unwrap_or_default();
                                assert_eq!(answer["choices"].as_array().map(Vec::len), Some(2), "{text}");
                            }
                            status
                        })
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| {
                t.join()
                    .unwrap_or_else(|_| panic!("a client thread panicked"))
            })
            .collect()
    });
    assert_eq!(statuses.len(), CLIENTS * REQUESTS_EACH);
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let full = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!(ok + full, statuses.len(), "{statuses:?}");
    assert!(ok > 0);
    let stats = server.stats();
    assert_eq!(
        (stats.completed, stats.queue_full),
        (ok as u64, full as u64)
    );
    assert_eq!((stats.refused, stats.failed), (0, 0));
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        get(&client(), &format!("http://{}/health", server.addr())).0,
        200
    );
}

/// Sends `head` and `body` over a raw connection; returns the status line's code.
fn raw(server: &RunningServer, head: &str, body: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(server.addr()).unwrap_or_else(|e| panic!("{e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap_or_else(|e| panic!("{e}"));
    stream
        .write_all(head.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = stream.write_all(body);
    // Up to the end of the head: a refused connection may be left open.
    let mut answer = Vec::new();
    let mut byte = [0u8];
    while !answer.ends_with(b"\r\n\r\n") && matches!(stream.read(&mut byte), Ok(1)) {
        answer.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[test]
fn bad_requests_get_4xx_with_an_error_body_and_the_server_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = serve(
        &arithmetic_model(tmp.path()),
        ServeConfig {
            max_body_bytes: 4096,
            max_tokens_limit: 64,
            ..config()
        },
    );
    let agent = client();
    let base = server.base_url();
    let completions = format!("{base}/completions");
    let chat = format!("{base}/chat/completions");
    let embeddings = format!("{base}/embeddings");
    let cases: Vec<(&str, String, u16)> = vec![
        (
            &completions,
            r#"{"prompt": "2 + 3", "n": "two"}"#.into(),
            400,
        ),
        (&completions, r#"{"prompt": 5}"#.into(), 400),
        (&completions, r#"{"prompt": "2 + 3", "n": -1}"#.into(), 400),
        (&completions, r#"{"prompt": "2 + 3", "n": 0}"#.into(), 400),
        (
            &completions,
            r#"{"prompt": "2 + 3", "max_tokens": 100000}"#.into(),
            400,
        ),
        (
            &completions,
            r#"{"prompt": "2 + 3", "max_tokens": 60, "model": "gpt-4"}"#.into(),
            404,
        ),
        (
            &completions,
            r#"{"prompt": "2 + 3", "stream": true}"#.into(),
            400,
        ),
        (&completions, r#"{"prompt": [1, 2, 99999]}"#.into(), 400),
        (&completions, r#"{"prompt": []}"#.into(), 400),
        (&completions, r#"{"prompt": [[]]}"#.into(), 400),
        (&completions, "{\"prompt\": \"2 + 3\"".into(), 400),
        (&completions, "\u{0}\u{1}not json".into(), 400),
        (
            &completions,
            format!(r#"{{"prompt": "{}"}}"#, "x".repeat(5000)),
            413,
        ),
        (&chat, r#"{"messages": "hi"}"#.into(), 400),
        (
            &chat,
            r#"{"messages": [{"role": "user", "content": "hi"}]}"#.into(),
            400,
        ),
        (&embeddings, "{}".into(), 404),
    ];
    for (url, body, expected) in &cases {
        let (status, text) = post(&agent, url, body);
        assert_eq!(status, *expected, "{url} {body}: {text}");
        let error: Value = serde_json::from_str(&text).unwrap_or_default();
        let message = error["error"]["message"].as_str().unwrap_or("");
        assert!(!message.is_empty(), "{url} {body}: {text}");
        assert!(error["error"]["type"].is_string(), "{text}");
    }
    // A prompt near the context (512 tokens) with a max_tokens that passes the limit.
    let long = "1 + ".repeat(250);
    let (status, text) = post(
        &agent,
        &completions,
        json!({"prompt": long, "max_tokens": 64}).to_string(),
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("maximum context length is 512"), "{text}");
    assert_eq!(get(&agent, &format!("{base}/completions")).0, 405);

    // A body declared far larger than it is, and one far larger than memory: 413 either way.
    let head = |length: u64| {
        format!("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n")
    };
    assert_eq!(raw(&server, &head(1 << 20), b"{}"), 413);
    assert_eq!(raw(&server, &head(1 << 40), b"{}"), 413);
    // A server that buffered the declared size would abort the process: give it the time to,
    // before checking that it still serves.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(raw(&server, "GARBAGE\r\n\r\n", b""), 400);
    let chunked = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(raw(&server, chunked, b"2\r\n{}\r\n0\r\n\r\n"), 411);

    let stats = server.stats();
    assert!(stats.refused >= cases.len() as u64, "{stats:?}");
    assert_eq!(
        get(&agent, &format!("http://{}/health", server.addr())).0,
        200
    );
    let good = json!({"prompt": question(0), "max_tokens": 8});
    assert_eq!(post(&agent, &completions, good.to_string()).0, 200);
    let (status, models) = get(&agent, &format!("{base}/models"));
    assert_eq!(status, 200);
    let models: Value = serde_json::from_str(&models).unwrap_or_default();
    assert_eq!(models["data"][0]["id"], NAME);
}

/// An engine that sleeps `delay` per batch, panics on token id 7, and answers every row with
/// one token; it counts its batches.
struct FakeEngine {
    delay: Duration,
    batches: Arc<AtomicUsize>,
}

impl Engine for FakeEngine {
    fn generate(
        &self,
        prompts: &[Vec<u32>],
        _seeds: &[u64],
        options: &GroupOptions,
    ) -> Result<Vec<Generation>, String> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        assert!(
            !prompts.iter().any(|p| p.contains(&7)),
            "token 7 breaks the fake model"
        );
        Ok((0..prompts.len())
            .flat_map(|p| (0..options.n).map(move |s| (p, s)))
            .map(|(prompt_index, sample_index)| Generation {
                prompt_index,
                sample_index,
                token_ids: vec![5],
                text: Some("5".into()),
                finish_reason: FinishReason::Length,
            })
            .collect())
    }
}

fn fake_server(delay: Duration, config: ServeConfig) -> (RunningServer, Arc<AtomicUsize>) {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = tmp.path().join("tokenizer.json");
    w2s_arith::tokenizer::write(&path).unwrap_or_else(|e| panic!("{e}"));
    let tokenizer = Tokenizer::from_file(&path, 214, Some(1)).unwrap_or_else(|e| panic!("{e}"));
    let batches = Arc::new(AtomicUsize::new(0));
    let engine = FakeEngine {
        delay,
        batches: batches.clone(),
    };
    let server = start(engine, PromptEncoder::new(tokenizer, 214, 768), config)
        .unwrap_or_else(|e| panic!("{e}"));
    (server, batches)
}

#[test]
fn a_panicking_model_answers_500_and_serving_goes_on() {
    let (server, _) = fake_server(Duration::ZERO, config());
    let agent = client();
    let url = format!("{}/completions", server.base_url());
    let (status, text) = post(&agent, &url, r#"{"prompt": [1, 7, 9]}"#);
    assert_eq!(status, 500, "{text}");
    assert!(
        text.contains("the model panicked: token 7 breaks the fake model"),
        "{text}"
    );
    assert_eq!(post(&agent, &url, r#"{"prompt": [1, 8, 9]}"#).0, 200);
    assert_eq!(
        get(&agent, &format!("http://{}/health", server.addr())).0,
        200
    );
    assert_eq!(server.stats().failed, 1);
}

#[test]
fn a_full_queue_answers_429_at_once_and_waiting_requests_are_batched() {
    let slow = Duration::from_millis(1000);
    let (server, batches) = fake_server(
        slow,
        ServeConfig {
            max_batch: 4,
            queue: 4,
            ..config()
        },
    );
    let url = format!("{}/completions", server.base_url());
    // 1 runs, 4 wait (and then run as one batch), the rest are refused at once.
    let answers: Vec<(u16, Duration)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..12)
            .map(|i| {
                let url = url.clone();
                scope.spawn(move || {
                    std::thread::sleep(Duration::from_millis(if i == 0 { 0 } else { 200 }));
                    let start = Instant::now();
                    let (status, _) =
                        post(&client(), &url, r#"{"prompt": [1, 2], "max_tokens": 4}"#);
                    (status, start.elapsed())
                })
            })
            .collect();
        threads.into_iter().filter_map(|t| t.join().ok()).collect()
    });
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<Duration> = answers
        .iter()
        .filter(|(s, _)| *s == 429)
        .map(|(_, d)| *d)
        .collect();
    assert_eq!(ok + refused.len(), 12, "{answers:?}");
    assert_eq!(ok, 5, "{answers:?}");
    assert!(
        refused.iter().all(|&d| d < slow / 2),
        "429 must not wait for the model: {refused:?}"
    );
    assert_eq!(
        batches.load(Ordering::SeqCst),
        2,
        "the 4 waiting requests run as one batch"
    );
}

#[test]
fn a_shutdown_answers_the_requests_in_flight_then_ends() {
    let (server, batches) = fake_server(Duration::from_millis(500), config());
    let url = format!("{}/completions", server.base_url());
    let handle = server.shutdown_handle();
    let in_flight = std::thread::spawn({
        let url = url.clone();
        move || post(&client(), &url, r#"{"prompt": [1, 2]}"#).0
    });
    // Shut down once the request is in the model.
    let waiting = Instant::now();
    while batches.load(Ordering::SeqCst) == 0 && waiting.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    handle.shutdown();
    let start = Instant::now();
    let late = client().post(&url).send(r#"{"prompt": [1, 2]}"#);
    let late = late.map(|r| r.status().as_u16());
    assert!(
        matches!(late, Ok(503) | Err(_)),
        "a request after the shutdown: {late:?}"
    );
    assert_eq!(
        in_flight.join().ok(),
        Some(200),
        "the request in flight is answered"
    );
    server.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}
