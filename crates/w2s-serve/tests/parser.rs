//! Property tests: whatever bytes come as a request body, the request parser and the prompt
//! encoder answer Ok or a 4xx error, never a panic or a 5xx.

use proptest::prelude::*;
use serde_json::{Map, Value};
use w2s_llama::Tokenizer;
use w2s_serve::request::{parse, Route};
use w2s_serve::PromptEncoder;

/// The built-in arithmetic tokenizer, read once.
fn encoder() -> &'static PromptEncoder {
    static ENCODER: std::sync::OnceLock<PromptEncoder> = std::sync::OnceLock::new();
    ENCODER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("w2s-serve-parser-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("tokenizer.json");
        w2s_arith::tokenizer::write(&path).unwrap_or_else(|e| panic!("{e}"));
        let tokenizer = Tokenizer::from_file(&path, 214, Some(1)).unwrap_or_else(|e| panic!("{e}"));
        std::fs::remove_dir_all(&dir).ok();
        PromptEncoder::new(tokenizer, 214, 64)
    })
}

/// Parses and encodes `body` as the server does; returns the status it would answer
/// (200 when the request is accepted).
fn status(route: Route, body: &[u8]) -> u16 {
    let request = match parse(route, body, "m", 32) {
        Ok(request) => request,
        Err(error) => return error.status,
    };
    match encoder().prepare(&request, 32) {
        Ok(_) => 200,
        Err(error) => error.status,
    }
}

/// Any JSON value, nested a little: the values a field may be given.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (0u32..300).prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{1,6}", inner), 0..4)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// A request object: some of the fields the routes know, with values of any type.
fn request_object() -> impl Strategy<Value = Vec<u8>> {
    const FIELDS: [&str; 14] = [
        "prompt",
        "messages",
        "model",
        "n",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "seed",
        "stop",
        "stream",
        "return_token_ids",
        "logprobs",
    ];
    prop::collection::vec((0..FIELDS.len(), json_value()), 0..8).prop_map(|fields| {
        let object: Map<String, Value> = fields
            .into_iter()
            .map(|(i, value)| (FIELDS[i].to_string(), value))
            .collect();
        serde_json::to_vec(&Value::Object(object)).unwrap_or_default()
    })
}

fn accepted_or_4xx(status: u16) -> bool {
    status == 200 || (400..500).contains(&status)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_crash_the_parser(body in prop::collection::vec(any::<u8>(), 0..256)) {
        for route in [Route::Completions, Route::ChatCompletions] {
            let status = status(route, &body);
            prop_assert!(accepted_or_4xx(status), "{status}");
        }
    }

    #[test]
    fn arbitrary_values_in_known_fields_are_accepted_or_4xx(body in request_object()) {
        for route in [Route::Completions, Route::ChatCompletions] {
            let status = status(route, &body);
            prop_assert!(accepted_or_4xx(status), "{status} for {}", String::from_utf8_lossy(&body));
        }
    }
}

#[test]
fn the_generator_reaches_accepted_requests_too() {
    // The properties above would hold trivially if every body were refused.
    assert_eq!(
        status(
            Route::Completions,
            br#"{"prompt": [1, 20], "max_tokens": 4}"#
        ),
        200
    );
    assert_eq!(
        status(Route::Completions, br#"{"prompt": "3 + 4", "n": 2}"#),
        200
    );
    assert_eq!(status(Route::Completions, br#"{"prompt": [1, 999]}"#), 400);
    assert_eq!(
        status(
            Route::Completions,
            br#"{"prompt": [1, 20], "max_tokens": 64}"#
        ),
        400
    );
}
