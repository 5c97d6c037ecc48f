//! Sampling through `serve` against the in-process generator, on the built-in strong arithmetic
//! model (d = 128, 4 layers), and the request rate `serve` sustains before it answers 429.
//!
//! `cargo bench --bench serving` (release). Not criterion: each figure is one timed pass over a
//! fixed workload, printed as a table; docs/performance.md records them.
//!
//! - Throughput: 64 questions, 4 samples each at temperature 1, up to 48 new tokens. In process:
//!   `w2s_llama::generate` over batches of 8 questions (`generate`'s default `--batch-size`)
//!   and of 16. Through `serve` (defaults: `--max-batch 16 --queue 64`, on this process's
//!   threads): w2s-openai's sampler with 1, 8 and 32 requests in flight, one question a request.
//!   The figure is generated tokens per second.
//! - Capacity: C clients each send the same request (one question, 4 samples) back to back for
//!   5 s; requests per second answered 200, and the share answered 429. Once with clients that
//!   send the next request at once after a 429, once with w2s-openai's sampler, which backs off
//!   (full jitter from 0.5 s, capped here at 2 s).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use w2s::backend::{device, Inference};
use w2s::llama::{generate, GenerationConfig, ModelDir, Sampling};
use w2s::openai::{OpenAiSampler, Prompt, RetryPolicy, SamplerConfig, SamplingOptions};
use w2s::serve::{serve_model, RunningServer, ServeConfig};

const QUESTIONS: usize = 64;
const SAMPLES: usize = 4;
const MAX_TOKENS: usize = 48;

fn question(i: usize) -> String {
    format!(
        "Question: Mia has {} shells. Mia gives away {}. Mia buys {} more. How many shells does \
         Mia have now?\nAnswer:",
        20 + i % 50,
        1 + i % 9,
        2 + i % 7
    )
}

fn model(dir: &std::path::Path) -> Result<ModelDir<Inference>> {
    let tokenizer = dir.join("tokenizer.json");
    w2s::arith::tokenizer::write(&tokenizer)?;
    let model = dir.join("strong");
    w2s::arith::BaseModel::ArithmeticStrong.write(&tokenizer, &model)?;
    Ok(ModelDir::load(&model, &device())?)
}

/// Generated tokens per second of the in-process generator over batches of `batch` questions.
fn in_process(dir: &ModelDir<Inference>, batch: usize) -> Result<f64> {
    let tokenizer = dir.tokenizer()?;
    let prompts: Vec<Vec<u32>> = (0..QUESTIONS)
        .map(|i| tokenizer.encode_with_special_tokens(&question(i)))
        .collect::<Result<_, _>>()?;
    let config = GenerationConfig {
        max_new_tokens: MAX_TOKENS,
        sampling: Sampling {
            temperature: 1.0,
            top_k: None,
            top_p: None,
        },
        num_samples: SAMPLES,
        eos_token_ids: dir.config.eos_token_ids(),
        ..GenerationConfig::default()
    };
    let start = Instant::now();
    let mut tokens = 0;
    for chunk in prompts.chunks(batch) {
        let generations = generate(&dir.model, chunk, &config, Some(tokenizer), &device())?;
        tokens += generations.iter().map(|g| g.token_ids.len()).sum::<usize>();
    }
    Ok(tokens as f64 / start.elapsed().as_secs_f64())
}

fn options() -> SamplingOptions {
    SamplingOptions {
        n: SAMPLES,
        max_tokens: MAX_TOKENS,
        temperature: 1.0,
        seed: Some(0),
        return_token_ids: true,
        ..SamplingOptions::default()
    }
}

/// Generated tokens per second through the server at `url` with `concurrency` requests in flight.
fn through_serve(url: &str, concurrency: usize) -> Result<f64> {
    let mut config = SamplerConfig::new(url, "bench");
    config.concurrency = concurrency;
    let sampler = OpenAiSampler::new(config)?;
    let prompts: Vec<Prompt> = (0..QUESTIONS).map(|i| Prompt::Text(question(i))).collect();
    let start = Instant::now();
    let answers = sampler.sample_all(&prompts, &options())?;
    let elapsed = start.elapsed().as_secs_f64();
    let tokens: usize = answers
        .iter()
        .flat_map(|a| &a.completions)
        .map(|c| c.token_ids.as_ref().map_or(0, Vec::len))
        .sum();
    Ok(tokens as f64 / elapsed)
}

/// `clients` threads sending requests back to back for `seconds`: (requests/s answered 200,
/// share answered 429).
fn capacity(url: &str, clients: usize, seconds: u64) -> (f64, f64) {
    let body = serde_json::json!({"model": "bench", "prompt": question(7), "n": SAMPLES,
                                  "max_tokens": MAX_TOKENS, "temperature": 1.0})
    .to_string();
    let url = format!("{url}/completions");
    let (ok, full) = (AtomicU64::new(0), AtomicU64::new(0));
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(60)))
                    .build()
                    .into();
                while !stop.load(Ordering::Relaxed) {
                    let sent = agent
                        .post(&url)
                        .content_type("application/json")
                        .send(body.as_bytes());
                    match sent.map(|mut r| (r.status().as_u16(), r.body_mut().read_to_vec())) {
                        Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                        Ok((429, _)) => full.fetch_add(1, Ordering::Relaxed),
                        other => panic!("unexpected answer: {other:?}"),
                    };
                }
            });
        }
        std::thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = start.elapsed().as_secs_f64();
    let (ok, full) = (ok.into_inner() as f64, full.into_inner() as f64);
    (ok / elapsed, full / (ok + full).max(1.0))
}

/// `clients` threads sampling one question after another through w2s-openai's sampler (which
/// retries a 429 after a jittered backoff) for `seconds`: (requests/s answered 200, share of the
/// answers that were 429), counted by the server.
fn capacity_with_backoff(
    server: &RunningServer,
    clients: usize,
    seconds: u64,
) -> Result<(f64, f64)> {
    let mut config = SamplerConfig::new(server.base_url(), "bench");
    config.retry = RetryPolicy {
        max_retries: 100,
        max_delay: Duration::from_secs(2),
        ..RetryPolicy::default()
    };
    let sampler = OpenAiSampler::new(config)?;
    let prompt = Prompt::Text(question(7));
    let stop = AtomicBool::new(false);
    let before = server.stats();
    let start = Instant::now();
    let mut after = before;
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    if let Err(e) = sampler.sample(&prompt, &options()) {
                        panic!("{e}");
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_secs(seconds));
        after = server.stats();
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = start.elapsed().as_secs_f64().min(seconds as f64);
    let ok = (after.completed - before.completed) as f64;
    let full = (after.queue_full - before.queue_full) as f64;
    Ok((ok / elapsed, full / (ok + full).max(1.0)))
}

fn main() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = model(tmp.path())?;
    println!("workload: {QUESTIONS} questions x {SAMPLES} samples, <= {MAX_TOKENS} new tokens, temperature 1; strong arithmetic model; backend {}", w2s::backend::name());
    let base = in_process(&dir, 8)?;
    println!("in process, batches of 8 questions:  {base:8.0} tokens/s");
    println!(
        "in process, batches of 16 questions: {:8.0} tokens/s",
        in_process(&dir, 16)?
    );

    let served = ModelDir::<Inference>::load(&dir.path, &device())?;
    let server = serve_model(served, device(), ServeConfig::new("127.0.0.1:0", "bench"))?;
    let url = server.base_url();
    through_serve(&url, 8)?; // warm-up
    for concurrency in [1, 8, 32] {
        let rate = through_serve(&url, concurrency)?;
        println!(
            "serve, {concurrency:2} requests in flight:    {rate:8.0} tokens/s  ({:.2}x in process)",
            rate / base
        );
    }
    println!("capacity (--max-batch 16 --queue 64), 5 s per row; clients that resend at once:");
    for clients in [16, 32, 64, 96, 128] {
        let (rate, refused) = capacity(&url, clients, 5);
        println!(
            "  {clients:3} clients: {rate:6.1} requests/s answered 200, {:5.1}% answered 429",
            refused * 100.0
        );
    }
    println!("clients that back off (w2s-openai's sampler):");
    for clients in [96, 128] {
        let (rate, refused) = capacity_with_backoff(&server, clients, 5)?;
        println!(
            "  {clients:3} clients: {rate:6.1} requests/s answered 200, {:5.1}% answered 429",
            refused * 100.0
        );
    }
    Ok(())
}
