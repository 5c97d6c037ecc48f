//! Special tokens and chat templates against transformers, on the fixtures of
//! `tests/fixtures/tokenization` (made by its `make_fixtures.py`; versions in `expected.json`).
//!
//! Every value recorded there is compared; a value missing from `expected.json` fails to parse.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use serde::Deserialize;
use w2s_llama::{
    ChatMessage, ChatOptions, LlamaConfig, LlamaError, ModelDir, SaveOptions, Tokenizer,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenization")
}

#[derive(Deserialize)]
struct Expected {
    versions: Versions,
    dirs: Dirs,
}

#[derive(Deserialize)]
struct Versions {
    transformers: String,
    tokenizers: String,
    jinja2: String,
}

#[derive(Deserialize)]
struct Dirs {
    bos: DirCases,
    no_bos: DirCases,
    flags: DirCases,
}

impl Dirs {
    fn all(&self) -> [(&'static str, &DirCases); 3] {
        [
            ("bos", &self.bos),
            ("no_bos", &self.no_bos),
            ("flags", &self.flags),
        ]
    }
}

#[derive(Deserialize)]
struct DirCases {
    texts: Vec<TextCase>,
    prompt_completions: Vec<PromptCompletionCase>,
    chats: Vec<ChatCase>,
}

#[derive(Deserialize)]
struct TextCase {
    text: String,
    with_special_tokens: Vec<u32>,
    without_special_tokens: Vec<u32>,
}

#[derive(Deserialize)]
struct PromptCompletionCase {
    prompt: String,
    completion: String,
    prompt_ids: Vec<u32>,
    completion_ids: Vec<u32>,
}

#[derive(Deserialize)]
struct ChatCase {
    messages: Vec<ChatMessage>,
    add_generation_prompt: bool,
    kwargs: serde_json::Map<String, serde_json::Value>,
    #[serde(flatten)]
    outcome: ChatOutcome,
}

/// What transformers did with a conversation: rendered it, or raised the template's exception.
#[derive(Deserialize)]
#[serde(untagged)]
enum ChatOutcome {
    Rendered { text: String, ids: Vec<u32> },
    Refused { error: String },
}

impl ChatCase {
    fn options(&self) -> ChatOptions {
        ChatOptions {
            add_generation_prompt: self.add_generation_prompt,
            variables: self.kwargs.clone(),
        }
    }
}

fn expected() -> Expected {
    let path = fixtures().join("expected.json");
    let text = std::fs::read_to_string(&path).expect("tokenization/expected.json is readable");
    serde_json::from_str(&text).expect("tokenization/expected.json has every recorded value")
}

fn tokenizer(name: &str) -> Tokenizer {
    Tokenizer::from_file(fixtures().join(name).join("tokenizer.json"), 320, None)
        .expect("fixture tokenizer loads")
}

#[test]
fn the_fixtures_record_their_versions() {
    let versions = expected().versions;
    for (what, version) in [
        ("transformers", &versions.transformers),
        ("tokenizers", &versions.tokenizers),
        ("jinja2", &versions.jinja2),
    ] {
        assert!(
            version.split('.').count() >= 2,
            "{what} version {version:?}"
        );
    }
}

#[test]
fn special_tokens_are_added_as_transformers_adds_them() {
    let expected = expected();
    for (name, cases) in expected.dirs.all() {
        let tok = tokenizer(name);
        assert!(!cases.texts.is_empty(), "{name}: no texts recorded");
        for case in &cases.texts {
            assert_eq!(
                tok.encode_with_special_tokens(&case.text).unwrap(),
                case.with_special_tokens,
                "{name}: {:?} with special tokens",
                case.text
            );
            assert_eq!(
                tok.encode(&case.text, false).unwrap(),
                case.without_special_tokens,
                "{name}: {:?} without special tokens",
                case.text
            );
        }
    }
}

#[test]
fn the_post_processor_decides_and_add_bos_token_changes_nothing() {
    let bos = tokenizer("bos");
    let begin = bos.token_id("<|begin_of_text|>").unwrap();
    assert_eq!(bos.encode_with_special_tokens("Hello").unwrap()[0], begin);
    assert_eq!(bos.encode_with_special_tokens("").unwrap(), [begin]);
    // SmolLM2's layout (a ByteLevel post-processor) and a file whose tokenizer_config.json asks for
    // BOS and EOS but whose tokenizer.json has no post-processor: nothing is added.
    for name in ["no_bos", "flags"] {
        let tok = tokenizer(name);
        assert_eq!(
            tok.encode_with_special_tokens("Hello world").unwrap(),
            tok.encode("Hello world", false).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn prompt_and_completion_split_as_trl_splits_them() {
    let expected = expected();
    for (name, cases) in expected.dirs.all() {
        let tok = tokenizer(name);
        assert!(
            !cases.prompt_completions.is_empty(),
            "{name}: none recorded"
        );
        for case in &cases.prompt_completions {
            let (prompt, completion) = tok
                .encode_prompt_completion(&case.prompt, &case.completion)
                .unwrap();
            assert_eq!(prompt, case.prompt_ids, "{name}: {:?}", case.prompt);
            assert_eq!(
                completion, case.completion_ids,
                "{name}: {:?}",
                case.completion
            );
        }
    }
}

#[test]
fn special_tokens_after_a_text_end_the_completion() {
    // A post-processor that puts BOS before and EOS after every text (a Llama tokenizer with
    // add_eos_token, as transformers 4 built it).
    let mut inner = tokenizer("no_bos").inner().clone();
    let template = tokenizers::processors::template::TemplateProcessing::builder()
        .try_single("<s> $A </s>")
        .unwrap()
        .special_tokens(vec![("<s>", 1), ("</s>", 2)])
        .build()
        .unwrap();
    inner.with_post_processor(Some(template));
    let tok = Tokenizer::from_inner(inner, PathBuf::from("memory"), None);
    let (prompt, completion) = tok.encode_prompt_completion("Hello", " world").unwrap();
    assert_eq!(
        prompt,
        [&[1], tok.encode("Hello", false).unwrap().as_slice()].concat()
    );
    assert_eq!(
        completion,
        [tok.encode(" world", false).unwrap().as_slice(), &[2]].concat()
    );
    // An empty prompt keeps all of its special tokens in front.
    let (prompt, _) = tok.encode_prompt_completion("", " world").unwrap();
    assert_eq!(prompt, [1, 2]);
}

#[test]
fn chat_templates_render_as_apply_chat_template() {
    let expected = expected();
    for (name, cases) in expected.dirs.all() {
        let tok = tokenizer(name);
        let mut rendered = 0;
        for case in &cases.chats {
            let ChatOutcome::Rendered { text, ids } = &case.outcome else {
                continue;
            };
            rendered += 1;
            let options = case.options();
            assert_eq!(
                &tok.apply_chat_template(&case.messages, &options).unwrap(),
                text,
                "{name}: {:?}, add_generation_prompt {}",
                case.messages,
                case.add_generation_prompt
            );
            assert_eq!(
                &tok.encode_chat(&case.messages, &options).unwrap(),
                ids,
                "{name}: ids of {text:?}"
            );
        }
        assert!(rendered >= 2, "{name}: {rendered} rendered chats recorded");
    }
}

#[test]
fn raise_exception_refuses_the_conversation_with_the_templates_message() {
    let expected = expected();
    let tok = tokenizer("bos");
    let refused: Vec<_> = expected
        .dirs
        .bos
        .chats
        .iter()
        .filter_map(|case| match &case.outcome {
            ChatOutcome::Refused { error } => Some((case, error)),
            ChatOutcome::Rendered { .. } => None,
        })
        .collect();
    assert_eq!(refused.len(), 1, "one refused chat recorded");
    for (case, error) in refused {
        let err = tok
            .apply_chat_template(&case.messages, &case.options())
            .unwrap_err();
        match &err {
            LlamaError::ChatTemplateRaised { path, message } => {
                assert_eq!(message, error);
                assert!(path.ends_with("bos/tokenizer_config.json"), "{err}");
            }
            other => panic!("expected the template's exception, got {other}"),
        }
    }
}

#[test]
fn the_template_comes_from_where_transformers_takes_it() {
    // chat_template.jinja wins over tokenizer_config.json's decoy.
    let no_bos = tokenizer("no_bos");
    let template = no_bos.chat_template().unwrap();
    assert!(template.path().ends_with("no_bos/chat_template.jinja"));
    assert_eq!(
        template.source(),
        std::fs::read_to_string(fixtures().join("no_bos/chat_template.jinja")).unwrap()
    );
    // The list form: the template named "default".
    let flags = tokenizer("flags");
    assert!(flags
        .chat_template()
        .unwrap()
        .source()
        .contains("namespace(turns=0)"));
    // Named tokens: AddedToken objects of tokenizer_config.json, and special_tokens_map.json's.
    let specials = &flags.config().special_tokens;
    assert_eq!(specials.get("bos_token").map(String::as_str), Some("<s>"));
    assert_eq!(specials.get("eos_token").map(String::as_str), Some("</s>"));
    assert_eq!(specials.get("pad_token").map(String::as_str), Some("<pad>"));
    assert_eq!(specials.len(), 3, "{specials:?}");
}

#[test]
fn a_tokenizer_without_template_says_where_it_looked() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gqa_sharded/tokenizer.json");
    let tok = Tokenizer::from_file(path, 1000, Some(1)).unwrap();
    let err = tok
        .apply_chat_template(
            &[ChatMessage::new("user", "hi")],
            &ChatOptions::generation(),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            LlamaError::MissingFile {
                what: "chat template",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("chat_template.jinja"), "{err}");
}

#[test]
fn a_malformed_tokenizer_config_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("bos/tokenizer.json"),
        tmp.path().join("tokenizer.json"),
    )
    .unwrap();
    let config = tmp.path().join("tokenizer_config.json");
    for (text, what) in [
        ("{\"chat_template\": 3}", "chat_template"),
        (
            "{\"chat_template\": [{\"name\": \"default\"}]}",
            "chat_template",
        ),
        ("{not json", "invalid JSON"),
    ] {
        std::fs::write(&config, text).unwrap();
        let err = Tokenizer::from_file(tmp.path().join("tokenizer.json"), 320, None).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with(&config.display().to_string()),
            "{message}"
        );
        assert!(message.contains(what), "{message}");
    }
}

#[test]
fn saving_a_model_keeps_every_tokenizer_file_of_its_source() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source");
    std::fs::create_dir(&source).unwrap();
    // The Llama 3 layout, plus the chat_template.jinja of the SmolLM2 one.
    let companions = [
        ("bos", "tokenizer_config.json"),
        ("bos", "special_tokens_map.json"),
        ("bos", "generation_config.json"),
        ("no_bos", "chat_template.jinja"),
    ];
    for (dir, file) in [("bos", "tokenizer.json")].into_iter().chain(companions) {
        std::fs::copy(fixtures().join(dir).join(file), source.join(file)).unwrap();
    }
    let config = LlamaConfig::from_json(
        r#"{"vocab_size": 320, "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
            "max_position_embeddings": 64, "bos_token_id": 4, "eos_token_id": 5}"#,
    )
    .unwrap();
    let device = Default::default();
    let tokenizer = Tokenizer::from_file(source.join("tokenizer.json"), 320, Some(4)).unwrap();
    let model_dir = ModelDir {
        path: source.clone(),
        model: config.init::<Flex>(&device).unwrap(),
        config,
        tokenizer: Some(tokenizer),
    };
    let saved = tmp.path().join("saved");
    model_dir.save(&saved, SaveOptions::default()).unwrap();
    for (_, file) in companions {
        assert_eq!(
            std::fs::read(saved.join(file)).unwrap(),
            std::fs::read(source.join(file)).unwrap(),
            "{file}"
        );
    }
    let reloaded = ModelDir::<Flex>::load(&saved, &device).unwrap();
    let messages = [ChatMessage::new("user", "Hello world")];
    let options = ChatOptions::generation();
    let original = model_dir.tokenizer().unwrap();
    let tok = reloaded.tokenizer().unwrap();
    assert_eq!(
        tok.apply_chat_template(&messages, &options).unwrap(),
        original.apply_chat_template(&messages, &options).unwrap()
    );
    assert_eq!(
        tok.encode_with_special_tokens("Hello").unwrap(),
        original.encode_with_special_tokens("Hello").unwrap()
    );
}
