//! The server on 127.0.0.1 (port 0) over the built-in weak arithmetic model, and a plain HTTP
//! client that sees every status.

#![allow(dead_code)] // each test binary uses part of this module

use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::backend::Flex;
use w2s_llama::ModelDir;
use w2s_serve::{serve_model, RunningServer, ServeConfig};

/// The served name the tests use.
pub const NAME: &str = "arith";

/// The built-in weak arithmetic model written as an HF directory under `dir`.
pub fn arithmetic_model(dir: &Path) -> PathBuf {
    let tokenizer = dir.join("tokenizer.json");
    w2s_arith::tokenizer::write(&tokenizer).unwrap_or_else(|e| panic!("{e}"));
    let model = dir.join("weak");
    w2s_arith::BaseModel::ArithmeticWeak
        .write(&tokenizer, &model)
        .unwrap_or_else(|e| panic!("{e}"));
    model
}

/// The server's config for tests: port 0, `NAME`, otherwise the defaults.
pub fn config() -> ServeConfig {
    ServeConfig::new("127.0.0.1:0", NAME)
}

/// Serves the model in `dir` as `config` says.
pub fn serve(dir: &Path, config: ServeConfig) -> RunningServer {
    let device = Default::default();
    let model = ModelDir::<Flex>::load(dir, &device).unwrap_or_else(|e| panic!("{e}"));
    serve_model(model, device, config).unwrap_or_else(|e| panic!("{e}"))
}

/// A question prompt in the task's format.
pub fn question(i: usize) -> String {
    format!(
        "Question: Mia has {} shells. Mia gives away {}. How many shells does Mia have now?\nAnswer:",
        10 + i,
        i % 7 + 1
    )
}

/// A plain HTTP client: every status comes back as it is, none is an error.
pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// POSTs `body` to `url`; returns status and body.
pub fn post(agent: &ureq::Agent, url: &str, body: impl AsRef<[u8]>) -> (u16, String) {
    let mut response = agent
        .post(url)
        .content_type("application/json")
        .send(body.as_ref())
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, text)
}

/// GETs `url`; returns status and body.
pub fn get(agent: &ureq::Agent, url: &str) -> (u16, String) {
    let mut response = agent
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, text)
}
