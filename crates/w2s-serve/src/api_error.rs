//! An answer that refuses a request: an HTTP status and OpenAI's error body.

use w2s_openai::wire::ErrorBody;

/// A refused request: status 4xx or 5xx and the body `{"error": {"message", "type", "code"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: ErrorBody,
}

impl ApiError {
    /// 400: the request is malformed or out of range.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "invalid_request_error", message, None)
    }

    /// 404: a model this server does not serve.
    pub fn unknown_model(name: &str, served: &str) -> ApiError {
        let message = format!("The model `{name}` does not exist; this server serves `{served}`.");
        ApiError::new(
            404,
            "invalid_request_error",
            message,
            Some("model_not_found"),
        )
    }

    /// 404: no such route.
    pub fn not_found(route: &str) -> ApiError {
        let message = format!("no route {route}: POST /v1/completions, POST /v1/chat/completions, GET /v1/models and GET /health are served");
        ApiError::new(404, "invalid_request_error", message, Some("unknown_url"))
    }

    /// 405: a known route with another method.
    pub fn wrong_method(route: &str, method: &str) -> ApiError {
        let message = format!("{route} takes {method}");
        ApiError::new(
            405,
            "invalid_request_error",
            message,
            Some("method_not_allowed"),
        )
    }

    /// 413: a body over the limit.
    pub fn too_large(limit: usize) -> ApiError {
        let message = format!("the request body is larger than {limit} bytes (--max-body-bytes)");
        ApiError::new(
            413,
            "invalid_request_error",
            message,
            Some("request_too_large"),
        )
    }

    /// 411: a chunked body (OpenAI clients send a `Content-Length`).
    pub fn length_required() -> ApiError {
        let message = "send the body with a Content-Length (chunked bodies are not read)";
        ApiError::new(
            411,
            "invalid_request_error",
            message,
            Some("length_required"),
        )
    }

    /// 429: the queue is full; the client should come back later.
    pub fn queue_full(queue: usize) -> ApiError {
        let message = format!("the server's queue of {queue} requests is full; retry later");
        ApiError::new(429, "rate_limit_error", message, Some("queue_full"))
    }

    /// 500: the model failed on this request's batch.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "server_error", message, None)
    }

    /// 503: the model thread is gone, or too many connections are waiting.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, "server_error", message, None)
    }

    fn new(status: u16, kind: &str, message: impl Into<String>, code: Option<&str>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody::new(kind, message, code),
        }
    }
}
