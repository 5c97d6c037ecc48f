//! Resumable sampling into JSONL against a mock server: a stage stopped after k prompts loses
//! nothing and duplicates nothing on a rerun, which sends only the unanswered prompts; a torn
//! last line and a prompt cut short are repaired; files of another stage are refused.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{completion, Mock, Reply};
use serde_json::{json, Value};
use w2s_data::jsonl::{read_jsonl, BadLines, Object};
use w2s_openai::{
    sample_to_jsonl, Answer, OpenAiError, OpenAiSampler, Prompt, SamplerConfig, SamplingOptions,
    StagePrompt,
};

const N: usize = 3;

/// A server that answers prompt P with the completions "P#0", "P#1", ...
fn echo_server() -> Mock {
    Mock::start(|seen| {
        let body: Value = serde_json::from_str(&seen.body).unwrap_or_default();
        let prompt = body["prompt"].as_str().unwrap_or("?").to_string();
        let n = body["n"].as_u64().unwrap_or(1) as usize;
        let texts: Vec<String> = (0..n).map(|k| format!("{prompt}#{k}")).collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        Reply::json(200, completion(&texts))
    })
}

fn sampler(mock: &Mock, concurrency: usize) -> OpenAiSampler {
    let mut config = SamplerConfig::new(&mock.url, "m");
    config.concurrency = concurrency;
    OpenAiSampler::new(config).unwrap_or_else(|e| panic!("{e}"))
}

fn stage(count: usize) -> Vec<StagePrompt> {
    (0..count)
        .map(|i| StagePrompt {
            id: json!(format!("q{i}")),
            prompt: Prompt::Text(format!("prompt {i}")),
        })
        .collect()
}

fn options() -> SamplingOptions {
    SamplingOptions {
        n: N,
        seed: Some(0),
        ..SamplingOptions::default()
    }
}

/// The lines of prompt `i`: id, sample index, response.
fn lines(prompts: &[StagePrompt], i: usize, answer: &Answer) -> Vec<Object> {
    answer
        .completions
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let line = json!({"id": prompts[i].id, "sample_index": k, "response": c.text});
            line.as_object().cloned().unwrap_or_default()
        })
        .collect()
}

fn read(path: &Path) -> Vec<Object> {
    read_jsonl(path, BadLines::Fail)
        .unwrap_or_else(|e| panic!("{e}"))
        .records
}

/// The prompts a server was sent, by text.
fn sent(mock: &Mock) -> Vec<String> {
    mock.seen()
        .iter()
        .map(|s| {
            let body: Value = serde_json::from_str(&s.body).unwrap_or_default();
            body["prompt"].as_str().unwrap_or("").to_string()
        })
        .collect()
}

/// Every prompt's N lines, once each, in prompt order, with the echo server's responses.
fn assert_complete(path: &Path, count: usize) {
    let records = read(path);
    let expected: Vec<(String, u64, String)> = (0..count)
        .flat_map(|i| (0..N).map(move |k| (format!("q{i}"), k as u64, format!("prompt {i}#{k}"))))
        .collect();
    let got: Vec<(String, u64, String)> = records
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or("").to_string(),
                r["sample_index"].as_u64().unwrap_or(99),
                r["response"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn a_stage_stopped_after_k_prompts_resumes_without_loss_duplicates_or_resending() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let output = tmp.path().join("samples.jsonl");
    let prompts = stage(10);
    let k = 4;

    // The first run "dies" once k prompts are written: lines_of fails on the next answer.
    let first = echo_server();
    let mut written = 0;
    let result = sample_to_jsonl(
        &sampler(&first, 1),
        &prompts,
        &options(),
        &output,
        |i, answer| {
            if written == k {
                return Err(OpenAiError::Config("killed".into()));
            }
            written += 1;
            Ok(lines(&prompts, i, answer))
        },
    );
    assert!(
        matches!(result, Err(OpenAiError::Config(ref m)) if m == "killed"),
        "{result:?}"
    );
    let after_kill = read(&output);
    assert_eq!(after_kill.len(), k * N);
    let answered: BTreeSet<String> = after_kill
        .iter()
        .map(|r| r["id"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(answered.len(), k);

    let second = echo_server();
    let summary = sample_to_jsonl(
        &sampler(&second, 3),
        &prompts,
        &options(),
        &output,
        |i, a| Ok::<_, OpenAiError>(lines(&prompts, i, a)),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (summary.prompts, summary.already_done, summary.answered),
        (10, k, 10 - k)
    );
    let resent: BTreeSet<String> = sent(&second).into_iter().collect();
    assert_eq!(resent.len(), 10 - k, "{resent:?}");
    assert_eq!(sent(&second).len(), 10 - k);
    for id in &answered {
        let text = format!("prompt {}", id.trim_start_matches('q'));
        assert!(
            !resent.contains(&text),
            "{text} was answered but sent again"
        );
    }
    assert_complete(&output, 10);
    // The lines written before the kill are unchanged.
    let now = read(&output);
    for line in &after_kill {
        assert!(now.contains(line), "{line:?} lost");
    }

    // A third run has nothing to send and leaves the file as it is.
    let before = std::fs::read(&output).unwrap_or_default();
    let third = echo_server();
    let summary = sample_to_jsonl(
        &sampler(&third, 3),
        &prompts,
        &options(),
        &output,
        |i, a| Ok::<_, OpenAiError>(lines(&prompts, i, a)),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((summary.already_done, summary.answered), (10, 0));
    assert!(third.seen().is_empty());
    assert_eq!(std::fs::read(&output).unwrap_or_default(), before);
}

#[test]
fn a_torn_last_line_and_a_prompt_cut_short_are_repaired_and_resampled() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let output = tmp.path().join("samples.jsonl");
    let prompts = stage(3);
    // q0 complete, q1 with two of its three lines, then a line torn by a kill.
    let mut text = String::new();
    for (id, k) in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)] {
        let line = json!({"id": format!("q{id}"), "sample_index": k,
                          "response": format!("prompt {id}#{k}")});
        text.push_str(&format!("{line}\n"));
    }
    text.push_str(r#"{"id": "q1", "sample_index": 2, "resp"#);
    std::fs::write(&output, text).unwrap_or_else(|e| panic!("{e}"));

    let mock = echo_server();
    let summary = sample_to_jsonl(&sampler(&mock, 2), &prompts, &options(), &output, |i, a| {
        Ok::<_, OpenAiError>(lines(&prompts, i, a))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((summary.already_done, summary.answered), (1, 2));
    let resent: BTreeSet<String> = sent(&mock).into_iter().collect();
    assert_eq!(
        resent,
        BTreeSet::from(["prompt 1".to_string(), "prompt 2".to_string()])
    );
    assert_complete(&output, 3);
}

#[test]
fn files_of_another_stage_and_duplicate_ids_are_refused() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let output = tmp.path().join("samples.jsonl");
    let prompts = stage(2);
    let mock = echo_server();
    let run = |prompts: &[StagePrompt]| {
        sample_to_jsonl(&sampler(&mock, 1), prompts, &options(), &output, |i, a| {
            Ok::<_, OpenAiError>(lines(prompts, i, a))
        })
    };

    std::fs::write(&output, "{\"id\": \"q0\"}\n{\"id\": \"other\"}\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let message = run(&prompts)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        message.starts_with(&format!("{}:2:", output.display())),
        "{message}"
    );
    assert!(message.contains("not a prompt of this stage"), "{message}");

    let four = "{\"id\": \"q0\"}\n".repeat(N + 1);
    std::fs::write(&output, four).unwrap_or_else(|e| panic!("{e}"));
    let message = run(&prompts)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        message.contains(&format!("more than n = {N} lines")),
        "{message}"
    );

    std::fs::write(&output, "{\"id\": \"q0\"}\nnot json\n").unwrap_or_else(|e| panic!("{e}"));
    let message = run(&prompts)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        message.starts_with(&format!("{}:2:", output.display())),
        "{message}"
    );

    let twins = [prompts[0].clone(), prompts[0].clone()];
    let message = run(&twins).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("same id"), "{message}");
    assert!(
        mock.seen().is_empty(),
        "nothing is sent for a stage that cannot resume"
    );
}

#[test]
fn a_refused_prompt_stops_the_stage_but_keeps_what_was_answered() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let output = tmp.path().join("samples.jsonl");
    let prompts = stage(6);
    let mock = Mock::start(|seen| {
        if seen.body.contains("prompt 3") {
            return Reply::json(
                400,
                r#"{"error": {"message": "no", "type": "invalid_request_error"}}"#,
            );
        }
        let body: Value = serde_json::from_str(&seen.body).unwrap_or_default();
        let prompt = body["prompt"].as_str().unwrap_or("?");
        let texts: Vec<String> = (0..N).map(|k| format!("{prompt}#{k}")).collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        Reply::json(200, completion(&texts))
    });
    let result = sample_to_jsonl(&sampler(&mock, 1), &prompts, &options(), &output, |i, a| {
        Ok::<_, OpenAiError>(lines(&prompts, i, a))
    });
    assert!(
        matches!(result, Err(OpenAiError::Refused { status: 400, .. })),
        "{result:?}"
    );
    // Prompts 0-2 were answered before the refusal and are kept; nothing after it was sent.
    assert_complete(&output, 3);
    assert_eq!(sent(&mock).len(), 4);
}
