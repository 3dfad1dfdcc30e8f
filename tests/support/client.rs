//! A raw streamable-HTTP MCP client for the tests: JSON-RPC by hand over
//! reqwest, so a test sees exactly what went over the wire.
//!
//! It owns the client half of the transport rules: one POST per message with
//! `Accept: application/json, text/event-stream`; the `Mcp-Session-Id` from the
//! initialize answer and the negotiated `MCP-Protocol-Version` on every later
//! message; request ids that count up per client (clones share the counter and
//! the session, so concurrent tests can use one session from many tasks). An
//! answer may be plain JSON or an SSE stream; messages that arrive on the
//! stream before the response (progress, logging, server requests) are kept
//! and can be read with [`RawClient::notifications`].
//!
//! [`RawClient::post_raw`] sends exactly the body and headers it is given, for
//! protocol-edge tests (bad JSON, missing session, foreign `Origin`).
//!
//! Every call has a timeout (60 s by default), so a test that waits on a
//! silent server fails instead of hanging.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

/// The protocol revision [`RawClient::initialize`] asks for.
pub const LATEST_PROTOCOL_VERSION: &str = "2025-11-25";

/// What `Accept` a streamable-HTTP client sends on a POST.
pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a [`RawClient::try_request`] got no JSON-RPC response.
#[derive(Debug)]
pub enum ClientError {
    /// The HTTP exchange failed (refused, reset, timed out).
    Http(reqwest::Error),
    /// The server answered, but not with a JSON-RPC response to this request.
    NoResponse {
        /// HTTP status of the answer.
        status: StatusCode,
        /// `Content-Type` of the answer, if any.
        content_type: Option<String>,
        /// The body, or as much as was read.
        body: String,
    },
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Http(error) => write!(f, "HTTP exchange failed: {error}"),
            Self::NoResponse {
                status,
                content_type,
                body,
            } => write!(
                f,
                "no JSON-RPC response (HTTP {status}, content-type {content_type:?}): {body}"
            ),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<reqwest::Error> for ClientError {
    fn from(error: reqwest::Error) -> Self {
        Self::Http(error)
    }
}

/// An HTTP answer as it came: for [`RawClient::post_raw`].
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl RawResponse {
    /// A header's value as text, if present and printable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as one JSON value.
    ///
    /// # Panics
    ///
    /// When the body is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {}", self.text()))
    }

    /// The JSON-RPC messages in the body: the one JSON value, or every
    /// `data:` of an SSE body.
    pub fn messages(&self) -> Vec<Value> {
        if is_event_stream(&self.headers) {
            let mut parser = SseParser::default();
            let mut messages = parser.push(&self.body);
            messages.extend(parser.finish());
            messages
        } else if self.body.is_empty() {
            Vec::new()
        } else {
            vec![self.json()]
        }
    }
}

/// A raw MCP client bound to one endpoint; see the module doc.
#[derive(Debug, Clone)]
pub struct RawClient {
    http: reqwest::Client,
    url: String,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    next_id: AtomicI64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    session_id: Option<String>,
    bearer: Option<String>,
    protocol_version: Option<String>,
    notifications: Vec<Value>,
}

impl RawClient {
    /// A client for `url` (e.g. `http://127.0.0.1:PORT/mcp`), not yet
    /// initialized. Ignores any HTTP proxy in the environment.
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_timeout(url, DEFAULT_TIMEOUT)
    }

    /// Like [`new`](Self::new), with a per-call timeout.
    pub fn with_timeout(url: impl Into<String>, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .build()
            .expect("reqwest client builds");
        Self {
            http,
            url: url.into(),
            shared: Arc::new(Shared {
                next_id: AtomicI64::new(1),
                state: Mutex::default(),
            }),
        }
    }

    /// The endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The session id the server issued, if any.
    pub fn session_id(&self) -> Option<String> {
        self.state().session_id.clone()
    }

    /// Replace the session id sent (e.g. with a forged or stale one).
    pub fn set_session_id(&self, session_id: Option<String>) {
        self.state().session_id = session_id;
    }

    /// Send `Authorization: Bearer <token>` on every request from now on
    /// (`None`: no Authorization header).
    pub fn set_bearer(&self, token: Option<&str>) {
        self.state().bearer = token.map(str::to_owned);
    }

    /// The protocol version the server chose at initialize.
    pub fn protocol_version(&self) -> Option<String> {
        self.state().protocol_version.clone()
    }

    /// Initialize with [`LATEST_PROTOCOL_VERSION`]; see
    /// [`initialize_with_version`](Self::initialize_with_version).
    pub async fn initialize(&self) -> Value {
        self.initialize_with_version(LATEST_PROTOCOL_VERSION).await
    }

    /// Send `initialize` asking for `version`, keep the session id and the
    /// negotiated version, send `notifications/initialized`, and return the
    /// initialize result.
    ///
    /// # Panics
    ///
    /// When the server does not answer with a result.
    pub async fn initialize_with_version(&self, version: &str) -> Value {
        self.initialize_with(version, json!({})).await
    }

    /// Initialize with [`LATEST_PROTOCOL_VERSION`], declaring the client
    /// `capabilities` (`{"sampling": {}}`, ...); see
    /// [`initialize_with_version`](Self::initialize_with_version).
    pub async fn initialize_declaring(&self, capabilities: Value) -> Value {
        self.initialize_with(LATEST_PROTOCOL_VERSION, capabilities)
            .await
    }

    async fn initialize_with(&self, version: &str, capabilities: Value) -> Value {
        let params = json!({
            "protocolVersion": version,
            "capabilities": capabilities,
            "clientInfo": { "name": "raw-test-client", "version": "0.1.0" },
        });
        let id = self.next_id();
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": "initialize", "params": params });
        let response = self
            .http_post(&body)
            .await
            .expect("initialize: HTTP exchange");
        let session_id = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let message = self
            .read_response(response, &json!(id), None)
            .await
            .expect("initialize: response");
        let result = message
            .get("result")
            .unwrap_or_else(|| panic!("initialize failed: {message}"))
            .clone();
        {
            let mut state = self.state();
            state.session_id = session_id;
            state.protocol_version = result["protocolVersion"].as_str().map(str::to_string);
        }
        let status = self.notify("notifications/initialized", Value::Null).await;
        assert!(
            status.is_success(),
            "notifications/initialized answered HTTP {status}"
        );
        result
    }

    /// Send a request and return the whole JSON-RPC response message (with
    /// `result` or `error`).
    ///
    /// # Panics
    ///
    /// When no JSON-RPC response comes back; see [`try_request`](Self::try_request).
    pub async fn request(&self, method: &str, params: Value) -> Value {
        self.try_request(method, params)
            .await
            .unwrap_or_else(|error| panic!("{method}: {error}"))
    }

    /// Send a request; `params` of `Value::Null` are left out. A JSON-RPC
    /// error is an `Ok` message with `error`; an HTTP failure or an answer
    /// without a response to this request is an `Err`.
    pub async fn try_request(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.next_id();
        let mut body = json!({ "jsonrpc": "2.0", "id": id, "method": method });
        if !params.is_null() {
            body["params"] = params;
        }
        let response = self.http_post(&body).await?;
        self.read_response(response, &json!(id), None).await
    }

    /// Send a request and answer the server's requests that arrive on its
    /// answer stream (sampling, elicitation, roots) with `answer`, which
    /// gets each request and returns the whole JSON-RPC response to POST
    /// back. The requests are kept with the
    /// [`notifications`](Self::notifications). Returns the response.
    ///
    /// # Panics
    ///
    /// When no JSON-RPC response comes back.
    pub async fn request_answering(
        &self,
        method: &str,
        params: Value,
        answer: &(dyn Fn(&Value) -> Value + Sync),
    ) -> Value {
        let id = self.next_id();
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let response = self
            .http_post(&body)
            .await
            .unwrap_or_else(|error| panic!("{method}: {error}"));
        self.read_response(response, &json!(id), Some(answer))
            .await
            .unwrap_or_else(|error| panic!("{method}: {error}"))
    }

    /// POST a JSON-RPC response (to a server's request); returns the HTTP
    /// status (202 expected).
    ///
    /// # Panics
    ///
    /// When the HTTP exchange fails.
    pub async fn respond(&self, response: &Value) -> StatusCode {
        let answered = self
            .http_post(response)
            .await
            .unwrap_or_else(|error| panic!("posting a response: {error}"));
        let status = answered.status();
        let _ = answered.bytes().await;
        status
    }

    /// `tools/call` of `name` with `arguments`; the whole response message.
    pub async fn call_tool(&self, name: &str, arguments: Value) -> Value {
        self.request(
            "tools/call",
            json!({ "name": name, "arguments": arguments }),
        )
        .await
    }

    /// `tools/call` carrying `_meta.progressToken`; the whole response
    /// message. Progress notifications that arrived on the POST stream are
    /// then in [`notifications`](Self::notifications).
    pub async fn call_tool_with_progress(
        &self,
        name: &str,
        arguments: Value,
        token: &str,
    ) -> Value {
        self.request(
            "tools/call",
            json!({ "name": name, "arguments": arguments, "_meta": { "progressToken": token } }),
        )
        .await
    }

    /// Send a notification; returns the HTTP status (202 expected).
    ///
    /// # Panics
    ///
    /// When the HTTP exchange fails.
    pub async fn notify(&self, method: &str, params: Value) -> StatusCode {
        let mut body = json!({ "jsonrpc": "2.0", "method": method });
        if !params.is_null() {
            body["params"] = params;
        }
        let response = self
            .http_post(&body)
            .await
            .unwrap_or_else(|error| panic!("{method}: {error}"));
        let status = response.status();
        // Read the (normally empty) body so the connection can be reused.
        let _ = response.bytes().await;
        status
    }

    /// Every message seen on a response stream before its response, oldest
    /// first, across all requests of this client and its clones.
    pub fn notifications(&self) -> Vec<Value> {
        self.state().notifications.clone()
    }

    /// Like [`notifications`](Self::notifications), and forget them.
    pub fn take_notifications(&self) -> Vec<Value> {
        std::mem::take(&mut self.state().notifications)
    }

    /// The headers a well-behaved client sends on a POST: content type,
    /// `Accept`, and the session id and protocol version once known. Start
    /// from these and change one to probe an edge.
    pub fn standard_headers(&self) -> Vec<(String, String)> {
        let state = self.state();
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("accept".to_string(), ACCEPT_BOTH.to_string()),
        ];
        if let Some(session_id) = &state.session_id {
            headers.push(("mcp-session-id".to_string(), session_id.clone()));
        }
        if let Some(version) = &state.protocol_version {
            headers.push(("mcp-protocol-version".to_string(), version.clone()));
        }
        if let Some(token) = &state.bearer {
            headers.push(("authorization".to_string(), format!("Bearer {token}")));
        }
        headers
    }

    /// POST `body` with exactly `headers` (nothing is added but what HTTP
    /// itself needs) and return the whole answer.
    ///
    /// # Panics
    ///
    /// When the HTTP exchange fails.
    pub async fn post_raw<K, V>(&self, body: impl Into<Bytes>, headers: &[(K, V)]) -> RawResponse
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let request = self
            .http
            .post(&self.url)
            .headers(header_map(headers))
            .body(body.into());
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("POST {}: {error}", self.url));
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .unwrap_or_else(|error| panic!("POST {}: reading the body: {error}", self.url));
        RawResponse {
            status,
            headers,
            body,
        }
    }

    /// Open the session's GET stream (server-initiated messages).
    ///
    /// # Panics
    ///
    /// When the exchange fails or the server does not answer 200 with SSE.
    pub async fn open_get_stream(&self) -> GetStream {
        let mut headers = vec![("accept".to_string(), "text/event-stream".to_string())];
        headers.extend(
            self.standard_headers()
                .into_iter()
                .filter(|(name, _)| name.starts_with("mcp-") || name == "authorization"),
        );
        // No overall timeout: the stream is meant to stay open; reads are
        // bounded by `GetStream::next`.
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("reqwest client builds");
        let response = http
            .get(&self.url)
            .headers(header_map(&headers))
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {}: {error}", self.url));
        let status = response.status();
        assert!(
            status == StatusCode::OK && is_event_stream(response.headers()),
            "GET {} answered HTTP {status} with {:?}",
            self.url,
            response.headers().get("content-type")
        );
        GetStream {
            body: Box::pin(response.bytes_stream()),
            parser: SseParser::default(),
            ready: Vec::new(),
        }
    }

    /// DELETE the session; returns the HTTP status.
    ///
    /// # Panics
    ///
    /// When the HTTP exchange fails.
    pub async fn delete_session(&self) -> StatusCode {
        let headers: Vec<_> = self
            .standard_headers()
            .into_iter()
            .filter(|(name, _)| name.starts_with("mcp-") || name == "authorization")
            .collect();
        let response = self
            .http
            .delete(&self.url)
            .headers(header_map(&headers))
            .send()
            .await
            .unwrap_or_else(|error| panic!("DELETE {}: {error}", self.url));
        response.status()
    }

    fn next_id(&self) -> i64 {
        self.shared.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn http_post(&self, body: &Value) -> Result<reqwest::Response, reqwest::Error> {
        let body = serde_json::to_vec(body).expect("a JSON value serializes");
        self.http
            .post(&self.url)
            .headers(header_map(&self.standard_headers()))
            .body(body)
            .send()
            .await
    }

    /// Read an answer until the response to `id`: a JSON body, or an SSE
    /// stream whose earlier messages are kept as notifications.
    async fn read_response(
        &self,
        response: reqwest::Response,
        id: &Value,
        answer: Option<&(dyn Fn(&Value) -> Value + Sync)>,
    ) -> Result<Value, ClientError> {
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if is_event_stream(response.headers()) {
            let mut parser = SseParser::default();
            let mut body = response.bytes_stream();
            let mut seen = String::new();
            loop {
                let chunk = body.next().await.transpose()?;
                let messages = match &chunk {
                    Some(chunk) => {
                        seen.push_str(&String::from_utf8_lossy(chunk));
                        parser.push(chunk)
                    }
                    None => parser.finish(),
                };
                for message in messages {
                    if is_response_to(&message, id) {
                        return Ok(message);
                    }
                    if let Some(answer) = answer
                        && message.get("method").is_some()
                        && message.get("id").is_some()
                    {
                        let status = self.respond(&answer(&message)).await;
                        assert_eq!(status, StatusCode::ACCEPTED, "a response is accepted");
                    }
                    self.state().notifications.push(message);
                }
                if chunk.is_none() {
                    return Err(ClientError::NoResponse {
                        status,
                        content_type,
                        body: seen,
                    });
                }
            }
        }
        let body = response.bytes().await?;
        match serde_json::from_slice::<Value>(&body) {
            // A JSON-RPC error may come with a 4xx status (e.g. an unknown
            // session); it is still the answer to this request.
            Ok(message) if is_response_to(&message, id) || is_error_with_null_id(&message) => {
                Ok(message)
            }
            _ => Err(ClientError::NoResponse {
                status,
                content_type,
                body: String::from_utf8_lossy(&body).into_owned(),
            }),
        }
    }
}

/// The session's GET stream, from [`RawClient::open_get_stream`].
pub struct GetStream {
    body: std::pin::Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    parser: SseParser,
    ready: Vec<Value>,
}

impl std::fmt::Debug for GetStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetStream")
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

/// What [`GetStream::next`] saw.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// A JSON-RPC message.
    Message(Value),
    /// The server closed the stream (or the connection broke).
    Closed,
    /// Nothing arrived in time.
    TimedOut,
}

impl GetStream {
    /// The next message, waiting at most `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> StreamEvent {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if !self.ready.is_empty() {
                return StreamEvent::Message(self.ready.remove(0));
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return StreamEvent::TimedOut,
                Ok(Some(Ok(chunk))) => self.ready.extend(self.parser.push(&chunk)),
                Ok(Some(Err(_)) | None) => {
                    self.ready.extend(self.parser.finish());
                    if self.ready.is_empty() {
                        return StreamEvent::Closed;
                    }
                }
            }
        }
    }
}

fn header_map<K: AsRef<str>, V: AsRef<str>>(headers: &[(K, V)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_ref().as_bytes())
            .unwrap_or_else(|error| panic!("bad header name {:?}: {error}", name.as_ref()));
        let value = HeaderValue::from_str(value.as_ref())
            .unwrap_or_else(|error| panic!("bad header value {:?}: {error}", value.as_ref()));
        map.append(name, value);
    }
    map
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"))
}

/// A response (not a request or notification) with this id.
fn is_response_to(message: &Value, id: &Value) -> bool {
    message.get("method").is_none()
        && message.get("id") == Some(id)
        && (message.get("result").is_some() || message.get("error").is_some())
}

/// An error the server could not tie to a request (`"id": null`), such as a
/// parse error.
fn is_error_with_null_id(message: &Value) -> bool {
    message.get("error").is_some() && message.get("id").is_some_and(Value::is_null)
}

/// Incremental parser of an SSE body into the JSON values of its events'
/// `data` (events whose data is not JSON, such as keep-alive pings, are
/// skipped).
#[derive(Debug, Default)]
struct SseParser {
    buffer: Vec<u8>,
    data: Vec<String>,
}

impl SseParser {
    /// Feed bytes; returns the messages of every event completed.
    fn push(&mut self, bytes: &[u8]) -> Vec<Value> {
        self.buffer.extend_from_slice(bytes);
        let mut messages = Vec::new();
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            self.line(line, &mut messages);
        }
        messages
    }

    /// The end of the body: an event not closed by a blank line still counts.
    fn finish(&mut self) -> Vec<Value> {
        let mut messages = Vec::new();
        if !self.buffer.is_empty() {
            let rest = String::from_utf8_lossy(&std::mem::take(&mut self.buffer)).into_owned();
            self.line(rest.trim_end_matches('\r'), &mut messages);
        }
        self.line("", &mut messages);
        messages
    }

    fn line(&mut self, line: &str, messages: &mut Vec<Value>) {
        if line.is_empty() {
            if !self.data.is_empty() {
                let data = self.data.join("\n");
                self.data.clear();
                if let Ok(message) = serde_json::from_str(&data) {
                    messages.push(message);
                }
            }
        } else if let Some(data) = line.strip_prefix("data:") {
            self.data
                .push(data.strip_prefix(' ').unwrap_or(data).to_string());
        }
        // `event:`, `id:`, `retry:` and `:` comments carry nothing we need.
    }
}
