//! w2s-openai's sampler against `serve` on 127.0.0.1, over the built-in arithmetic model: n
//! samples per prompt, stop strings, seeds, batching, token ids, chat, and a stage stopped midway
//! and resumed.

mod common;

use std::collections::BTreeSet;

use common::{arithmetic_model, config, question, serve, NAME};
use serde_json::json;
use w2s_data::jsonl::{read_jsonl, BadLines, Object};
use w2s_openai::wire::ChatMessage;
use w2s_openai::{
    sample_to_jsonl, FinishReason, OpenAiError, OpenAiSampler, Prompt, SamplerConfig,
    SamplingOptions, StagePrompt,
};

fn sampler(url: &str, concurrency: usize) -> OpenAiSampler {
    let mut config = SamplerConfig::new(url, NAME);
    config.concurrency = concurrency;
    config.api_key_env = "W2S_TEST_KEY_THAT_IS_NEVER_SET".into();
    // No retries: the server's counts of answered requests must match what the client sent.
    config.timeout = std::time::Duration::from_secs(60);
    config.retry.max_retries = 0;
    OpenAiSampler::new(config).unwrap_or_else(|e| panic!("{e}"))
}

fn options(seed: u64) -> SamplingOptions {
    SamplingOptions {
        n: 4,
        max_tokens: 24,
        temperature: 1.0,
        seed: Some(seed),
        ..SamplingOptions::default()
    }
}

fn prompts(count: usize) -> Vec<Prompt> {
    (0..count).map(|i| Prompt::Text(question(i))).collect()
}

fn texts(answers: &[w2s_openai::Answer]) -> Vec<Vec<String>> {
    answers
        .iter()
        .map(|a| a.completions.iter().map(|c| c.text.clone()).collect())
        .collect()
}

#[test]
fn n_samples_per_prompt_with_seeds_that_reproduce_whatever_the_batching() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = serve(&arithmetic_model(tmp.path()), config());
    let url = server.base_url();
    let prompts = prompts(6);

    // One request at a time: each runs alone.
    let alone = sampler(&url, 1)
        .sample_all(&prompts, &options(5))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(alone.len(), 6);
    for answer in &alone {
        assert_eq!(answer.completions.len(), 4);
        let distinct: BTreeSet<&str> = answer.completions.iter().map(|c| c.text.as_str()).collect();
        assert!(
            distinct.len() > 1,
            "4 samples at temperature 1 are not all equal: {answer:?}"
        );
    }
    // Six at once: they are batched together, and each still gets its own samples.
    let batched = sampler(&url, 6)
        .sample_all(&prompts, &options(5))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(texts(&batched), texts(&alone));
    let other_seed = sampler(&url, 6)
        .sample_all(&prompts, &options(6))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(texts(&other_seed), texts(&alone));
    assert_eq!(server.stats().completed, 18);
}

#[test]
fn stop_strings_cut_the_text_and_token_ids_come_back_when_asked() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = serve(&arithmetic_model(tmp.path()), config());
    let sampler = sampler(&server.base_url(), 4);
    let free = SamplingOptions {
        n: 8,
        max_tokens: 40,
        ..options(1)
    };
    let unstopped = sampler
        .sample_all(&prompts(4), &free)
        .unwrap_or_else(|e| panic!("{e}"));
    // The model writes one equation per line: a newline is the stop string to try.
    assert!(
        unstopped
            .iter()
            .flat_map(|a| &a.completions)
            .any(|c| c.text.trim_start().contains('\n')),
        "{unstopped:?}"
    );
    let stopped_options = SamplingOptions {
        stop: vec!["\n".into()],
        return_token_ids: true,
        ..free
    };
    let stopped = sampler
        .sample_all(&prompts(4), &stopped_options)
        .unwrap_or_else(|e| panic!("{e}"));
    let completions: Vec<_> = stopped.iter().flat_map(|a| &a.completions).collect();
    assert!(
        completions.iter().all(|c| !c.text.contains('\n')),
        "{completions:?}"
    );
    assert!(
        completions
            .iter()
            .any(|c| c.finish_reason == FinishReason::Stop),
        "{completions:?}"
    );
    assert!(completions
        .iter()
        .all(|c| c.token_ids.as_ref().is_some_and(|t| !t.is_empty())));
    let tokenizer =
        w2s_llama::Tokenizer::from_file(tmp.path().join("tokenizer.json"), 214, Some(1))
            .unwrap_or_else(|e| panic!("{e}"));
    let expected = tokenizer
        .encode_with_special_tokens(&question(0))
        .unwrap_or_default();
    assert_eq!(stopped[0].prompt_token_ids.as_ref(), Some(&expected));
    // Without return_token_ids the server sends none.
    assert!(unstopped.iter().all(|a| a.prompt_token_ids.is_none()));
}

#[test]
fn a_conversation_needs_the_models_chat_template() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = arithmetic_model(tmp.path());
    let chat = Prompt::Chat(vec![ChatMessage::new("user", "Mia has 12 shells.")]);
    {
        let server = serve(&dir, config());
        let result = sampler(&server.base_url(), 1).sample(&chat, &options(0));
        let Err(err @ OpenAiError::Refused { status: 400, .. }) = result else {
            panic!("expected a 400, got {result:?}");
        };
        assert!(err.to_string().contains("chat template"), "{err}");
    }
    let template = "{% for m in messages %}Question: {{ m.content }}\n{% endfor %}\
                    {% if add_generation_prompt %}Answer:{% endif %}";
    std::fs::write(dir.join("chat_template.jinja"), template).unwrap_or_else(|e| panic!("{e}"));
    let server = serve(&dir, config());
    let options = SamplingOptions {
        return_token_ids: true,
        ..options(0)
    };
    let answer = sampler(&server.base_url(), 1)
        .sample(&chat, &options)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer.completions.len(), 4);
    let tokenizer = w2s_llama::Tokenizer::from_file(dir.join("tokenizer.json"), 214, Some(1))
        .unwrap_or_else(|e| panic!("{e}"));
    let rendered = tokenizer
        .encode("Question: Mia has 12 shells.\nAnswer:", false)
        .unwrap_or_default();
    assert_eq!(answer.prompt_token_ids, Some(rendered));
}

#[test]
fn a_stage_stopped_midway_resumes_without_loss_duplicates_or_resending() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = serve(&arithmetic_model(tmp.path()), config());
    let output = tmp.path().join("samples.jsonl");
    let stage: Vec<StagePrompt> = prompts(8)
        .into_iter()
        .enumerate()
        .map(|(i, prompt)| StagePrompt {
            id: json!(i),
            prompt,
        })
        .collect();
    let lines = |i: usize, answer: &w2s_openai::Answer| -> Vec<Object> {
        answer
            .completions
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let line = json!({"id": i, "sample_index": k, "response": c.text});
                line.as_object().cloned().unwrap_or_default()
            })
            .collect()
    };
    let k = 3;
    let mut written = 0;
    let stopped = sample_to_jsonl(
        &sampler(&server.base_url(), 1),
        &stage,
        &options(9),
        &output,
        |i, a| {
            if written == k {
                return Err(OpenAiError::Config("stopped".into()));
            }
            written += 1;
            Ok(lines(i, a))
        },
    );
    assert!(stopped.is_err());
    let sent_before = server.stats().completed;
    // The worker may have sent a request or two more before the stop reached it: answered,
    // never written, so sent again below.
    assert!(sent_before > k as u64, "{sent_before}");

    let summary = sample_to_jsonl(
        &sampler(&server.base_url(), 4),
        &stage,
        &options(9),
        &output,
        |i, a| Ok::<_, OpenAiError>(lines(i, a)),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((summary.already_done, summary.answered), (k, 8 - k));
    assert_eq!(
        server.stats().completed - sent_before,
        (8 - k) as u64,
        "only unanswered prompts are sent"
    );
    let records: Vec<Object> = read_jsonl(&output, BadLines::Fail)
        .unwrap_or_else(|e| panic!("{e}"))
        .records;
    let keys: Vec<(u64, u64)> = records
        .iter()
        .map(|r| {
            (
                r["id"].as_u64().unwrap_or(99),
                r["sample_index"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    let expected: Vec<(u64, u64)> = (0..8).flat_map(|i| (0..4).map(move |k| (i, k))).collect();
    assert_eq!(keys, expected);

    // The resumed file holds what one uninterrupted run writes: per-prompt seeds.
    let whole = tmp.path().join("whole.jsonl");
    sample_to_jsonl(
        &sampler(&server.base_url(), 8),
        &stage,
        &options(9),
        &whole,
        |i, a| Ok::<_, OpenAiError>(lines(i, a)),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(std::fs::read(&whole).ok(), std::fs::read(&output).ok());
}
