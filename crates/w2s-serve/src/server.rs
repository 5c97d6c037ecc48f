//! The HTTP side: a listener, a fixed pool of HTTP threads, the routes, and a graceful shutdown.
//!
//! An accept thread takes connections and hands them to the HTTP threads. Each HTTP thread reads
//! one request ([`crate::http`]), parses, checks and tokenizes it, puts it on the model thread's
//! queue ([`crate::batcher`]) and waits for its answer. There are `queue + max_batch + 4` HTTP
//! threads: enough for every job the queue and the model hold, with a few to spare that answer
//! 429, errors, `/health` and `/v1/models` at once while the rest wait on the model.
//!
//! Shutdown ([`ShutdownHandle::shutdown`], Ctrl-C through
//! [`RunningServer::shutdown_on_ctrl_c`]): the listener closes, so new connections are refused;
//! the connections already taken are answered; then the model thread ends after the jobs it
//! holds.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use w2s_openai::prompt_seed;
use w2s_openai::wire::{ModelCard, ModelList};

use crate::api_error::ApiError;
use crate::batcher::{spawn_model_thread, Queue};
use crate::config::ServeConfig;
use crate::engine::Engine;
use crate::error::{Result, ServeError};
use crate::http::{self, Incoming, IO_TIMEOUT};
use crate::prompts::PromptEncoder;
use crate::request::{parse, Route};
use crate::response::{self, Stamp};

/// Connections accepted but not yet taken by an HTTP thread; one more is answered 503 by the
/// accept thread.
const BACKLOG: usize = 1024;

/// Asks a running server to stop; cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    flag: Arc<AtomicBool>,
    /// Where to connect to wake the accept thread.
    wake: SocketAddr,
}

impl ShutdownHandle {
    /// Stop taking connections, answer those taken, then end.
    pub fn shutdown(&self) {
        self.flag.store(true, Ordering::SeqCst);
        // The accept thread blocks in `accept`: a connection wakes it to see the flag.
        let _ = TcpStream::connect_timeout(&self.wake, Duration::from_secs(1));
    }

    /// Whether a shutdown was asked for.
    pub fn is_shutting_down(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// What a server has answered so far, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Completions answered 200.
    pub completed: u64,
    /// Requests answered 429 because the queue was full.
    pub queue_full: u64,
    /// Requests refused with another 4xx.
    pub refused: u64,
    /// Requests answered 5xx.
    pub failed: u64,
}

/// The counters behind [`ServerStats`].
#[derive(Debug, Default)]
struct Counters([AtomicU64; 4]);

impl Counters {
    fn count(&self, status: u16, completion: bool) {
        let slot = match status {
            200..=299 if completion => 0,
            429 => 1,
            400..=499 => 2,
            500..=599 => 3,
            _ => return,
        };
        self.0[slot].fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> ServerStats {
        let [completed, queue_full, refused, failed] =
            self.0.each_ref().map(|c| c.load(Ordering::Relaxed));
        ServerStats {
            completed,
            queue_full,
            refused,
            failed,
        }
    }
}

/// What the HTTP threads share.
struct Shared {
    encoder: PromptEncoder,
    config: ServeConfig,
    queue: Queue,
    model_alive: Arc<AtomicBool>,
    counters: Arc<Counters>,
    next_id: AtomicU64,
    started: u64,
}

/// A server answering on its own threads; [`RunningServer::wait`] blocks until it has stopped.
/// Dropping it shuts it down and waits.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    shutdown: ShutdownHandle,
    counters: Arc<Counters>,
    accept: Option<JoinHandle<()>>,
    http: Vec<JoinHandle<()>>,
    model: Option<JoinHandle<()>>,
}

/// Starts serving `engine` (with `encoder` for its prompts) as `config` says.
///
/// # Errors
/// [`ServeError::Config`] for a config that does not validate, [`ServeError::Bind`] when the
/// address cannot be bound, [`ServeError::Thread`] when a thread cannot be started.
pub fn start<E: Engine + Send + 'static>(
    engine: E,
    encoder: PromptEncoder,
    config: ServeConfig,
) -> Result<RunningServer> {
    config.validate()?;
    let bind_error = |e: std::io::Error| ServeError::Bind {
        addr: config.addr.clone(),
        reason: e.to_string(),
    };
    let listener = TcpListener::bind(&config.addr).map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let model_alive = Arc::new(AtomicBool::new(false));
    let (queue, model) =
        spawn_model_thread(engine, config.queue, config.max_batch, model_alive.clone())?;
    let shutdown = ShutdownHandle {
        flag: Arc::new(AtomicBool::new(false)),
        wake: wake_address(addr),
    };
    let counters = Arc::new(Counters::default());
    let threads = config.queue + config.max_batch + 4;
    let shared = Arc::new(Shared {
        encoder,
        config,
        queue,
        model_alive,
        counters: counters.clone(),
        next_id: AtomicU64::new(0),
        started: unix_now(),
    });
    let mut running = RunningServer {
        addr,
        shutdown: shutdown.clone(),
        counters,
        accept: None,
        http: Vec::with_capacity(threads),
        model: Some(model),
    };
    let (connections, taken) = mpsc::sync_channel::<TcpStream>(BACKLOG);
    let taken = Arc::new(Mutex::new(taken));
    for i in 0..threads {
        let (shared, taken) = (shared.clone(), taken.clone());
        running
            .http
            .push(spawn(format!("w2s-serve-http-{i}"), move || {
                http_thread(&shared, &taken);
            })?);
    }
    running.accept = Some(spawn("w2s-serve-accept".into(), move || {
        for stream in listener.incoming() {
            if shutdown.is_shutting_down() {
                break;
            }
            let Ok(stream) = stream else { continue };
            if let Err(TrySendError::Full(mut stream)) = connections.try_send(stream) {
                let error = ApiError::unavailable("the server has too many connections waiting");
                let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                respond(&mut stream, error.status, &error.body, &[]);
            }
        }
        // The listener and the sender drop here: no new connection is taken, and the HTTP
        // threads end once they have answered the ones already taken.
    })?);
    Ok(running)
}

fn spawn(name: String, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(body)
        .map_err(|e| ServeError::Thread(format!("starting thread {name}: {e}")))
}

/// The address a shutdown connects to: the listening one, or loopback when it listens on every
/// interface.
fn wake_address(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

impl RunningServer {
    /// The address it listens on (the real port when the config asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL of its API, `http://ADDR/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// What it has answered so far.
    pub fn stats(&self) -> ServerStats {
        self.counters.snapshot()
    }

    /// A handle that stops it.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Makes Ctrl-C (SIGINT, and SIGTERM) shut the server down gracefully; a second Ctrl-C
    /// exits the process at once with status 130.
    ///
    /// # Errors
    /// [`ServeError::Config`] when the process already has a Ctrl-C handler.
    pub fn shutdown_on_ctrl_c(&self) -> Result<()> {
        let handle = self.shutdown.clone();
        ctrlc::set_handler(move || {
            if handle.is_shutting_down() {
                eprintln!("w2s-serve: second interrupt, exiting now");
                std::process::exit(130);
            }
            eprintln!(
                "w2s-serve: shutting down: answering the requests taken (Ctrl-C again to exit now)"
            );
            handle.shutdown();
        })
        .map_err(|e| ServeError::Config(format!("setting the Ctrl-C handler: {e}")))
    }

    /// Blocks until the server has shut down and every request it took is answered; returns
    /// what it answered.
    ///
    /// # Errors
    /// [`ServeError::Thread`] when a thread of the server ended in a panic.
    pub fn wait(mut self) -> Result<ServerStats> {
        self.join()?;
        Ok(self.stats())
    }

    fn join(&mut self) -> Result<()> {
        let mut panicked = Vec::new();
        // The accept thread ends at the shutdown, then the HTTP threads once the connections
        // taken are answered, then (the queue's senders gone) the model thread once it has
        // answered what it holds.
        let threads = self.accept.take().into_iter().chain(self.http.drain(..));
        for thread in threads.chain(self.model.take()) {
            let name = thread.thread().name().unwrap_or("?").to_string();
            if thread.join().is_err() {
                panicked.push(name);
            }
        }
        match panicked.is_empty() {
            true => Ok(()),
            false => Err(ServeError::Thread(format!(
                "threads ended in a panic: {}",
                panicked.join(", ")
            ))),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.shutdown.shutdown();
        }
        let _ = self.join();
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn http_thread(shared: &Shared, taken: &Mutex<Receiver<TcpStream>>) {
    loop {
        let next = taken.lock().map(|receiver| receiver.recv());
        let Ok(Ok(mut stream)) = next else { return };
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_nodelay(true);
        match http::read_request(&mut stream, shared.config.max_body_bytes) {
            Incoming::Request(request) => {
                // A panic here is a bug of the server: the request is answered 500 and the
                // thread goes on.
                let answer = catch_unwind(AssertUnwindSafe(|| route(shared, &request)))
                    .unwrap_or_else(|_| Err(ApiError::internal("the request handler panicked")));
                let completion = request.path.ends_with("completions");
                match answer {
                    Ok((status, body)) => {
                        shared.counters.count(status, completion);
                        http::respond(&mut stream, status, &body, &[]);
                    }
                    Err(error) => {
                        shared.counters.count(error.status, completion);
                        let retry_after = [("Retry-After", "1")];
                        let headers: &[(&str, &str)] = if error.status == 429 {
                            &retry_after
                        } else {
                            &[]
                        };
                        respond(&mut stream, error.status, &error.body, headers);
                    }
                }
            }
            Incoming::Refused(error) => {
                shared.counters.count(error.status, false);
                respond(&mut stream, error.status, &error.body, &[]);
                http::discard(&mut stream);
            }
            Incoming::Gone => {}
        }
    }
}

fn route(shared: &Shared, request: &http::Request) -> Answer {
    let (method, path) = (request.method.as_str(), request.path.as_str());
    match (method, path) {
        ("GET", "/health") => health(shared),
        ("GET", "/v1/models") => Ok(json(200, &models(shared))),
        ("POST", "/v1/completions") => complete(shared, &request.body, Route::Completions),
        ("POST", "/v1/chat/completions") => complete(shared, &request.body, Route::ChatCompletions),
        (_, "/health" | "/v1/models") => Err(ApiError::wrong_method(path, "GET")),
        (_, "/v1/completions" | "/v1/chat/completions") => {
            Err(ApiError::wrong_method(path, "POST"))
        }
        _ => Err(ApiError::not_found(&format!("{method} {path}"))),
    }
}

/// An answer: status and JSON body.
type Answer = std::result::Result<(u16, Vec<u8>), ApiError>;

fn json(status: u16, body: &impl Serialize) -> (u16, Vec<u8>) {
    // The response types hold strings, numbers and lists only: serializing cannot fail.
    (status, serde_json::to_vec(body).unwrap_or_default())
}

fn respond(stream: &mut TcpStream, status: u16, body: &impl Serialize, headers: &[(&str, &str)]) {
    let (_, bytes) = json(status, body);
    http::respond(stream, status, &bytes, headers);
}

fn health(shared: &Shared) -> Answer {
    if shared.model_alive.load(Ordering::SeqCst) {
        Ok(json(200, &serde_json::json!({"status": "ok"})))
    } else {
        Err(ApiError::unavailable("the model thread has stopped"))
    }
}

fn models(shared: &Shared) -> ModelList {
    ModelList {
        object: "list".into(),
        data: vec![ModelCard {
            id: shared.config.served_model_name.clone(),
            object: "model".into(),
            created: shared.started,
            owned_by: "w2s".into(),
        }],
    }
}

fn complete(shared: &Shared, body: &[u8], route: Route) -> Answer {
    let config = &shared.config;
    let parsed = parse(
        route,
        body,
        &config.served_model_name,
        config.max_tokens_limit,
    )?;
    let prepared = shared.encoder.prepare(&parsed, config.max_tokens_limit)?;
    // Without a seed the request draws one: its samples are then not reproducible.
    let seed = parsed
        .seed
        .unwrap_or_else(|| RandomState::new().hash_one(shared.next_id.load(Ordering::Relaxed)));
    let seeds = (0..prepared.prompts.len())
        .map(|i| prompt_seed(seed, i))
        .collect();
    let reply = shared
        .queue
        .submit(prepared.prompts.clone(), seeds, prepared.options)?;
    let generations = reply
        .recv()
        .map_err(|_| ApiError::internal("the model thread ended before answering"))??;
    let number = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let prefix = match route {
        Route::Completions => "cmpl",
        Route::ChatCompletions => "chatcmpl",
    };
    let id = format!("{prefix}-{}-{number}", shared.started);
    let stamp = Stamp {
        id: &id,
        created: unix_now(),
        model: &config.served_model_name,
    };
    let prompts = &prepared.prompts;
    Ok(match route {
        Route::Completions => json(
            200,
            &response::completion(stamp, prompts, &generations, parsed.return_token_ids),
        ),
        Route::ChatCompletions => json(
            200,
            &response::chat(stamp, prompts, &generations, parsed.return_token_ids),
        ),
    })
}
