//! HTTP/1.1 as `serve` speaks it: one request per connection, read whole (head parsed by
//! `httparse`, body by its `Content-Length`), answered with `Connection: close`.
//!
//! That is all the OpenAI API needs of HTTP, and it keeps every connection's cost bounded: a
//! head over 64 KiB is refused, a body over `--max-body-bytes` is refused before a byte of it is
//! read, a client that stalls for 30 s is dropped, and no connection holds a thread once its
//! answer is written. `tiny_http` 0.12, the small threaded server crate, does not fit: it gives
//! each connection a thread of a pool whose check for an idle thread races with the threads
//! taking work, so a burst of new connections waits behind the requests in flight (twelve
//! requests sent at once are answered one model batch at a time instead of filling the queue),
//! and it discards the rest of a refused body into one buffer of the declared size, which aborts
//! the process for a declared terabyte. Chunked bodies are refused (411): OpenAI clients send a
//! length.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use crate::api_error::ApiError;

/// Longest request head (request line and headers).
const MAX_HEAD: usize = 64 << 10;
/// Most headers in a head.
const MAX_HEADERS: usize = 64;
/// How long a client may stall while sending its request or taking its answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// After refusing a body unread, how much of it to read and drop (so that closing the
/// connection does not reset it before the client reads the answer), and for how long.
const DISCARD_BYTES: usize = 16 << 20;
const DISCARD_TIME: Duration = Duration::from_secs(1);

/// A request read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without a query string.
    pub path: String,
    /// The body.
    pub body: Vec<u8>,
}

/// What came over a connection.
#[derive(Debug)]
pub enum Incoming {
    /// A whole request.
    Request(Request),
    /// A request refused before its body was read (malformed head, body too large, chunked).
    Refused(ApiError),
    /// The client went away (or stalled) before sending a whole request: nothing to answer.
    Gone,
}

/// Reads one request from `stream`, its body at most `max_body` bytes.
pub fn read_request(stream: &mut TcpStream, max_body: usize) -> Incoming {
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buffer.len() > MAX_HEAD {
            return Incoming::Refused(ApiError::bad_request("the request head is over 64 KiB"));
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Incoming::Gone,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    if !matches!(
        head.parse(&buffer[..head_end]),
        Ok(httparse::Status::Complete(_))
    ) {
        return Incoming::Refused(ApiError::bad_request("malformed HTTP request head"));
    }
    let header = |name: &str| {
        head.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
    };
    if header("transfer-encoding").is_some() {
        return Incoming::Refused(ApiError::length_required());
    }
    let length = match header("content-length").map(|v| v.parse::<usize>()) {
        None => 0,
        Some(Ok(length)) => length,
        Some(Err(_)) => {
            return Incoming::Refused(ApiError::bad_request("Content-Length is not a number"))
        }
    };
    if length > max_body {
        return Incoming::Refused(ApiError::too_large(max_body));
    }
    if header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        && stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
    {
        return Incoming::Gone;
    }
    let request = Request {
        method: head.method.unwrap_or("").to_string(),
        path: head
            .path
            .unwrap_or("")
            .split('?')
            .next()
            .unwrap_or("")
            .to_string(),
        body: Vec::new(),
    };
    let mut body = buffer[head_end..].to_vec();
    body.truncate(length);
    while body.len() < length {
        let want = (length - body.len()).min(chunk.len());
        match stream.read(&mut chunk[..want]) {
            Ok(0) | Err(_) => return Incoming::Gone,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Incoming::Request(Request { body, ..request })
}

/// Writes an answer: `status`, a JSON `body` and `headers`, with `Connection: close`, then
/// closes the sending side. A client that went away gets nothing; there is nothing else to do.
pub fn respond(stream: &mut TcpStream, status: u16, body: &[u8], headers: &[(&str, &str)]) {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        reason(status),
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .and_then(|()| stream.flush());
    let _ = stream.shutdown(Shutdown::Write);
}

/// Reads and drops what a client still sends of a refused body, for a bounded time.
pub fn discard(stream: &mut TcpStream) {
    let _ = stream.set_read_timeout(Some(DISCARD_TIME));
    let mut sink = [0u8; 16 << 10];
    let mut left = DISCARD_BYTES;
    while left > 0 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}
