//! A mock OpenAI server on 127.0.0.1 (port 0) for the client's tests: each request is answered by
//! a handler on a thread of its own, and the server counts what it got.

#![allow(dead_code)] // each test binary uses part of this module

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tiny_http::{Header, Response, Server};

/// What the handler sees of a request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// 0-based number of the request, in arrival order.
    pub number: usize,
    /// `POST /v1/completions`, ...
    pub route: String,
    /// The body as text.
    pub body: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

/// What the handler answers: status, body, extra headers; `delay` first (a hanging server).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            body: body.into(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }
}

/// A running mock; stops accepting when dropped.
pub struct Mock {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Mock {
    pub fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Mock {
        let server = Server::http("127.0.0.1:0").unwrap_or_else(|e| panic!("mock: {e}"));
        let port = server.server_addr().to_ip().map(|a| a.port()).unwrap_or(0);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let count = Arc::new(AtomicUsize::new(0));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Ok(Some(mut request)) = server.recv_timeout(Duration::from_millis(20)) else {
                    continue;
                };
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                let authorization = request
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Authorization"))
                    .map(|h| h.value.to_string());
                let seen = Seen {
                    number: count.fetch_add(1, Ordering::SeqCst),
                    route: format!("{} {}", request.method(), request.url()),
                    body,
                    authorization,
                };
                seen2
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(seen.clone());
                let handler = handler.clone();
                std::thread::spawn(move || {
                    let reply = handler(&seen);
                    std::thread::sleep(reply.delay);
                    let mut response =
                        Response::from_string(reply.body).with_status_code(reply.status);
                    for (name, value) in reply.headers {
                        if let Ok(header) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
                            response.add_header(header);
                        }
                    }
                    let _ = request.respond(response);
                });
            }
        });
        Mock {
            url: format!("http://127.0.0.1:{port}/v1"),
            seen,
            stop,
        }
    }

    /// The requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A `/v1/completions` answer with one choice per text, indexed in order.
pub fn completion(texts: &[&str]) -> String {
    let choices: Vec<serde_json::Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"index": i, "text": t, "finish_reason": "stop"}))
        .collect();
    serde_json::json!({"id": "cmpl-1", "object": "text_completion", "created": 0,
                       "model": "m", "choices": choices})
    .to_string()
}
