//! A lean MCP client over streamable HTTP: just what load through a proxy
//! needs (initialize, tools/list, tools/call, close), on one shared HTTP/1
//! client (hyper-util's pooled one) so that connections are pooled across
//! sessions. Its connections come from the [`LoadTarget`]'s dialer
//! (`connector.rs`), so the same client runs on real or simulated sockets.
//!
//! It is deliberately separate from the proxy's own client code: the harness
//! judges the proxy, so it speaks the protocol from the spec, and it turns
//! everything a server may send — including nonsense — into a
//! [`CallOutcome`] instead of failing.
//!
//! A session may carry an identity ([`Caller`]): its bearer token goes in
//! the `Authorization` header of every HTTP request of the session
//! (initialize, calls, lists, DELETE), read anew for each so a renewed JWT
//! takes effect at once; and every request answered with a non-2xx status
//! is written to the run's [`StatusLog`], whatever the body said.
//!
//! An answer that arrives as an event stream is recorded as soon as the
//! response to our request is seen; the rest of the stream is read in the
//! background so that a second response for the same request (a proxy bug)
//! can be counted, see [`McpSession::duplicate_answers`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use mcp_proxy::platform::Dialer;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::LoadTarget;
use super::connector::DialConnector;
use super::error::LoadError;
use super::record::{CallOutcome, StatusLog};
use super::sse::{MAX_EVENT_BYTES, SseParser};
use crate::identity::Credentials;

/// The protocol version the harness asks for.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// Versions the harness accepts from a server's `initialize` answer.
const KNOWN_VERSIONS: [&str; 3] = [PROTOCOL_VERSION, "2025-06-18", "2025-03-26"];

/// W3C trace context, sent with each call.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
const VERSION_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");

/// Closing a session is a courtesy to the server; it must not hold up the end of a run.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// A server that never stops paginating `tools/list` is broken, not patient.
pub(super) const MAX_TOOL_PAGES: usize = 1000;

/// The HTTP client of a load; its clones share one connection pool.
pub(crate) type HttpClient = Client<DialConnector, Full<Bytes>>;

/// An HTTP client for MCP traffic whose connections `dialer` opens: pooled
/// (idle connections expire on tokio's clock), HTTP/1, and no system proxy
/// (an `HTTP_PROXY` setting must not divert the load).
pub(crate) fn http_client(dialer: Arc<dyn Dialer>) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .build(DialConnector::new(dialer))
}

/// One MCP session through the proxy.
#[derive(Debug)]
pub struct McpSession {
    http: HttpClient,
    url: Uri,
    /// `Mcp-Session-Id` from the `initialize` answer (a stateless server sends none).
    session_id: Option<String>,
    /// The negotiated version; `None` only while initializing.
    protocol_version: Option<String>,
    next_id: AtomicU64,
    duplicates: Arc<AtomicU64>,
    /// Background readers of event streams whose answer was already taken.
    drains: TaskTracker,
    closing: CancellationToken,
    caller: Caller,
}

/// Who a session is: its client number, the credentials it sends (none:
/// anonymous), and where its non-2xx statuses are written (none: nowhere).
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The client number, for the status log.
    pub client: usize,
    /// The bearer token source.
    pub credentials: Option<Credentials>,
    /// The run's status log.
    pub statuses: Option<StatusLog>,
}

/// What came back for a `tools/call`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolAnswer {
    /// How the call ended.
    pub outcome: CallOutcome,
    /// The `result` of a success, for the caller to read what it needs;
    /// `None` for every other outcome.
    pub result: Option<Value>,
}

/// What came back for one request, before it is read as MCP.
enum Answer {
    /// The JSON-RPC response (a `result` or an `error`).
    Response(Value),
    /// A non-2xx status without a JSON-RPC error in the body.
    HttpStatus(u16),
    /// No usable answer.
    Transport(String),
}

impl McpSession {
    /// Opens a session at the target: `initialize`, then
    /// `notifications/initialized`.
    pub async fn open(target: &LoadTarget) -> Result<McpSession, LoadError> {
        Self::open_as(target, Caller::default()).await
    }

    /// [`Self::open`] as `caller`: with its credentials on every request.
    pub async fn open_as(target: &LoadTarget, caller: Caller) -> Result<McpSession, LoadError> {
        let mut session = McpSession {
            http: target.http.clone(),
            url: target.url.clone(),
            session_id: None,
            protocol_version: None,
            next_id: AtomicU64::new(1),
            duplicates: Arc::new(AtomicU64::new(0)),
            drains: TaskTracker::new(),
            closing: CancellationToken::new(),
            caller,
        };
        let id = session.next_id();
        let params = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "mcp-harness", "version": env!("CARGO_PKG_VERSION")},
        });
        let response = session
            .post(&request_body(id, "initialize", params))
            .await
            .map_err(|message| LoadError::Transport {
                step: "initialize",
                message,
            })?;
        let session_id = response
            .headers()
            .get(SESSION_HEADER)
            .map(|v| {
                v.to_str()
                    .map(str::to_string)
                    .map_err(|_| LoadError::SessionIdNotAscii)
            })
            .transpose()?;
        let result = result_of(session.read_answer(response, id).await, "initialize")?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .ok_or(LoadError::NoProtocolVersion)?;
        if !KNOWN_VERSIONS.contains(&version) {
            return Err(LoadError::UnknownProtocolVersion(version.to_string()));
        }
        session.session_id = session_id;
        session.protocol_version = Some(version.to_string());

        let notification = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let response =
            session
                .post(&notification)
                .await
                .map_err(|message| LoadError::Transport {
                    step: "notifications/initialized",
                    message,
                })?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(LoadError::InitializedNotAccepted(
                response.status().as_u16(),
            ));
        }
        Ok(session)
    }

    /// The session id the server gave, if any.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// The negotiated protocol version.
    pub fn protocol_version(&self) -> &str {
        self.protocol_version.as_deref().unwrap_or(PROTOCOL_VERSION)
    }

    /// Calls a tool. Every way the call can end is a [`CallOutcome`]; a call
    /// that never ends is the caller's to give up (see
    /// [`Self::call_tool_until`]).
    pub async fn call_tool(&self, name: &str, arguments: Value) -> ToolAnswer {
        let params = json!({"name": name, "arguments": arguments});
        let outcome = match self.request("tools/call", params).await {
            Answer::Response(mut message) => {
                let outcome = call_outcome(&message);
                if outcome == CallOutcome::Success {
                    return ToolAnswer {
                        outcome,
                        result: Some(message["result"].take()),
                    };
                }
                outcome
            }
            Answer::HttpStatus(status) => CallOutcome::HttpStatus { status },
            Answer::Transport(message) => CallOutcome::Transport { message },
        };
        ToolAnswer {
            outcome,
            result: None,
        }
    }

    /// [`Self::call_tool`], given up as [`CallOutcome::Hung`] if it has not
    /// ended by `give_up`.
    pub async fn call_tool_until(
        &self,
        name: &str,
        arguments: Value,
        give_up: Instant,
    ) -> ToolAnswer {
        tokio::time::timeout_at(give_up, self.call_tool(name, arguments))
            .await
            .unwrap_or(ToolAnswer {
                outcome: CallOutcome::Hung,
                result: None,
            })
    }

    /// The names of all tools the server lists, following `nextCursor`.
    pub async fn list_tools(&self) -> Result<Vec<String>, LoadError> {
        let mut names = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_TOOL_PAGES {
            let params = match &cursor {
                Some(cursor) => json!({"cursor": cursor}),
                None => json!({}),
            };
            let result = result_of(self.request("tools/list", params).await, "tools/list")?;
            let tools = result
                .get("tools")
                .and_then(Value::as_array)
                .ok_or(LoadError::NoToolsArray)?;
            for tool in tools {
                let name = tool
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or(LoadError::ToolWithoutName)?;
                names.push(name.to_string());
            }
            match result.get("nextCursor") {
                None | Some(Value::Null) => return Ok(names),
                Some(Value::String(next)) if cursor.as_ref() == Some(next) => {
                    return Err(LoadError::RepeatedCursor(next.clone()));
                }
                Some(Value::String(next)) => cursor = Some(next.clone()),
                Some(_) => return Err(LoadError::CursorNotAString),
            }
        }
        Err(LoadError::TooManyPages)
    }

    /// Answers that arrived for a request this session had already seen
    /// answered. Streams still being read may add to it; see [`Self::settle`].
    pub fn duplicate_answers(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// Waits until every event stream still being read has ended, or until
    /// `deadline`, so that [`Self::duplicate_answers`] is final.
    pub async fn settle(&self, deadline: Instant) {
        self.drains.close();
        let _ = tokio::time::timeout_at(deadline, self.drains.wait()).await;
    }

    /// Ends the session: stops reading leftover streams and sends DELETE.
    /// Errors are ignored, and it takes at most about a second.
    pub async fn close(&self) {
        self.closing.cancel();
        self.drains.close();
        let request = self.http_request(Method::DELETE, Bytes::new());
        if let Ok(Ok(response)) =
            tokio::time::timeout(CLOSE_TIMEOUT, self.http.request(request)).await
        {
            self.note_status("DELETE", response.status());
        }
    }

    /// Writes a non-2xx answer to `request` to the status log, if any.
    fn note_status(&self, request: &str, status: StatusCode) {
        if let Some(log) = &self.caller.statuses
            && !status.is_success()
        {
            log.record(self.caller.client, request, status.as_u16());
        }
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The headers that tie a request to this session.
    fn session_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        // Both values came from the server or from us as valid header text;
        // a value that is not is simply left out.
        if let Some(id) = self.session_id.as_deref().and_then(|v| v.parse().ok()) {
            headers.insert(SESSION_HEADER, id);
        }
        if let Some(version) = self
            .protocol_version
            .as_deref()
            .and_then(|v| v.parse().ok())
        {
            headers.insert(VERSION_HEADER, version);
        }
        // A token that cannot be had (a key the crypto library refused) is
        // left out: the server's 401 then shows it.
        if let Some(Ok(bearer)) = self.caller.credentials.as_ref().map(Credentials::header) {
            headers.insert(AUTHORIZATION, bearer);
        }
        headers
    }

    /// An HTTP request to the endpoint, tied to this session.
    fn http_request(&self, method: Method, body: Bytes) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = self.url.clone();
        *request.headers_mut() = self.session_headers();
        request
    }

    async fn post(&self, message: &Value) -> Result<Response<Incoming>, String> {
        let body = serde_json::to_vec(message).map_err(|e| e.to_string())?;
        let mut request = self.http_request(Method::POST, body.into());
        let headers = request.headers_mut();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // A call's trace context names it, so the fakes' journals show
        // which attempts belong to which call.
        if let Some(call) = message
            .pointer("/params/arguments/harness_call")
            .and_then(Value::as_u64)
            && let Ok(value) = HeaderValue::from_str(&super::trace::traceparent(call))
        {
            headers.insert(TRACEPARENT, value);
        }
        let response = self.http.request(request).await.map_err(|e| describe(&e))?;
        let kind = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("(response)");
        self.note_status(kind, response.status());
        Ok(response)
    }

    async fn request(&self, method: &str, params: Value) -> Answer {
        let id = self.next_id();
        match self.post(&request_body(id, method, params)).await {
            Ok(response) => self.read_answer(response, id).await,
            Err(message) => Answer::Transport(message),
        }
    }

    /// Reads the answer to request `id` from an HTTP response.
    async fn read_answer(&self, response: Response<Incoming>, id: u64) -> Answer {
        let (head, mut incoming) = response.into_parts();
        let status = head.status;
        if !status.is_success() {
            // A JSON-RPC error in the body says more than the status does.
            return match read_body(&mut incoming).await {
                Ok(body) => match serde_json::from_slice::<Value>(&body) {
                    Ok(message) if message.get("error").is_some() && is_response(&message) => {
                        Answer::Response(message)
                    }
                    _ => Answer::HttpStatus(status.as_u16()),
                },
                Err(_) => Answer::HttpStatus(status.as_u16()),
            };
        }
        let is_stream = head
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("text/event-stream")
            });
        if is_stream {
            return self.read_stream(incoming, id).await;
        }
        let body = match read_body(&mut incoming).await {
            Ok(body) => body,
            Err(message) => return Answer::Transport(message),
        };
        let message: Value = match serde_json::from_slice(&body) {
            Ok(message) => message,
            Err(e) => {
                return Answer::Transport(format!(
                    "HTTP {} answer is not JSON: {e}",
                    status.as_u16()
                ));
            }
        };
        let mut answers = answers_to(message, id);
        match answers.len() {
            0 => Answer::Transport(format!(
                "HTTP {} answer holds no response to request {id}",
                status.as_u16()
            )),
            1 => Answer::Response(answers.remove(0)),
            n => {
                self.duplicates.fetch_add(n as u64 - 1, Ordering::Relaxed);
                Answer::Response(answers.remove(0))
            }
        }
    }

    /// Reads an event stream up to the response to `id`; what follows it is
    /// read in the background, counting further responses to `id`.
    async fn read_stream(&self, mut body: Incoming, id: u64) -> Answer {
        let mut parser = SseParser::default();
        loop {
            let chunk = match next_chunk(&mut body).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    return Answer::Transport(format!(
                        "event stream ended without a response to request {id}"
                    ));
                }
                Err(message) => return Answer::Transport(message),
            };
            let events = match parser.feed(&chunk) {
                Ok(events) => events,
                Err(message) => return Answer::Transport(message),
            };
            let mut answers = Vec::new();
            for event in events {
                match serde_json::from_str::<Value>(&event) {
                    Ok(message) => answers.extend(answers_to(message, id)),
                    Err(e) if answers.is_empty() => {
                        return Answer::Transport(format!("event stream data is not JSON: {e}"));
                    }
                    // After the answer, garbage is the drain's concern, not the call's.
                    Err(_) => {}
                }
            }
            if answers.is_empty() {
                continue;
            }
            let first = answers.remove(0);
            if !answers.is_empty() {
                self.duplicates
                    .fetch_add(answers.len() as u64, Ordering::Relaxed);
            }
            self.drain(body, parser, id);
            return Answer::Response(first);
        }
    }

    /// Reads the rest of a stream whose answer was taken, until it ends or
    /// the session closes, counting further responses to `id`.
    fn drain(&self, mut body: Incoming, mut parser: SseParser, id: u64) {
        let duplicates = Arc::clone(&self.duplicates);
        let closing = self.closing.clone();
        self.drains.spawn(async move {
            loop {
                // A closed session stops reading, even with data waiting.
                let chunk = tokio::select! {
                    biased;
                    () = closing.cancelled() => return,
                    chunk = next_chunk(&mut body) => chunk,
                };
                let Ok(Some(chunk)) = chunk else { return };
                let Ok(events) = parser.feed(&chunk) else {
                    return;
                };
                for event in events {
                    if let Ok(message) = serde_json::from_str::<Value>(&event) {
                        let extra = answers_to(message, id).len() as u64;
                        duplicates.fetch_add(extra, Ordering::Relaxed);
                    }
                }
            }
        });
    }
}

impl Drop for McpSession {
    /// Background stream readers stop with the session, closed or not.
    fn drop(&mut self) {
        self.closing.cancel();
    }
}

fn request_body(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// Reads a whole (non-stream) body, refusing one larger than any sane message.
async fn read_body(incoming: &mut Incoming) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = next_chunk(incoming).await? {
        if body.len() + chunk.len() > MAX_EVENT_BYTES {
            return Err(format!("answer larger than {MAX_EVENT_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The next piece of a body as it arrives (trailers are skipped), or `None`
/// at its end.
async fn next_chunk(body: &mut Incoming) -> Result<Option<Bytes>, String> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| describe(&e))?;
        if let Ok(data) = frame.into_data() {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

/// Whether a message is a JSON-RPC response (not a request or notification).
fn is_response(message: &Value) -> bool {
    message.get("method").is_none()
        && (message.get("result").is_some() || message.get("error").is_some())
}

/// The responses to request `id` in a message (or a batch of them). An error
/// with a null id counts: the server could not tell which request failed,
/// and ours is the only one on this exchange.
fn answers_to(message: Value, id: u64) -> Vec<Value> {
    let ours = |m: &Value| {
        is_response(m)
            && match m.get("id") {
                Some(Value::Null) => m.get("error").is_some(),
                Some(v) => v.as_u64() == Some(id),
                None => false,
            }
    };
    match message {
        Value::Array(batch) => batch.into_iter().filter(|m| ours(m)).collect(),
        message if ours(&message) => vec![message],
        _ => Vec::new(),
    }
}

/// How a `tools/call` response ended the call.
fn call_outcome(message: &Value) -> CallOutcome {
    if let Some(error) = message.get("error") {
        let code = error.get("code").and_then(Value::as_i64);
        let text = error.get("message").and_then(Value::as_str);
        return match (code, text) {
            (Some(code), Some(text)) => CallOutcome::RpcError {
                code,
                message: text.to_string(),
            },
            _ => CallOutcome::Transport {
                message: format!("malformed JSON-RPC error: {error}"),
            },
        };
    }
    let Some(result) = message.get("result").and_then(Value::as_object) else {
        return CallOutcome::Transport {
            message: "tools/call result is not an object".into(),
        };
    };
    match result.get("isError") {
        None | Some(Value::Bool(false)) | Some(Value::Null) => CallOutcome::Success,
        Some(Value::Bool(true)) => CallOutcome::ToolError {
            message: text_content(result.get("content")),
        },
        Some(other) => CallOutcome::Transport {
            message: format!("tools/call isError is not a boolean: {other}"),
        },
    }
}

/// The text items of a result's content, one per line.
fn text_content(content: Option<&Value>) -> String {
    let Some(items) = content.and_then(Value::as_array) else {
        return String::new();
    };
    items
        .iter()
        .filter(|item| item.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|item| item.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The result of a response to a harness request (not a tool call), or why
/// there is none.
fn result_of(answer: Answer, step: &'static str) -> Result<Value, LoadError> {
    match answer {
        Answer::Response(mut message) => {
            if let Some(error) = message.get_mut("error") {
                return Err(LoadError::Rpc {
                    step,
                    error: error.take(),
                });
            }
            match message.get_mut("result").map(Value::take) {
                Some(result @ Value::Object(_)) => Ok(result),
                _ => Err(LoadError::ResultNotAnObject { step }),
            }
        }
        Answer::HttpStatus(status) => Err(LoadError::HttpStatus { step, status }),
        Answer::Transport(message) => Err(LoadError::Transport { step, message }),
    }
}

/// An error with its causes: hyper's own message rarely says what failed
/// (`client error (Connect)`).
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::test_server::TestServer;

    async fn session(server: &TestServer) -> McpSession {
        McpSession::open(&LoadTarget::new(&server.url).unwrap())
            .await
            .expect("session opens")
    }

    async fn outcome(session: &McpSession, tool: &str) -> CallOutcome {
        session.call_tool(tool, json!({})).await.outcome
    }

    #[tokio::test]
    async fn a_caller_sends_its_token_on_every_request_and_logs_failed_statuses() {
        let server = TestServer::start().await;
        let identity = crate::scenario::Identity {
            name: "ci".into(),
            clients: 3..4,
            auth: crate::scenario::ClientAuth::Bearer("t0ken".into()),
        };
        let clock = crate::clock::ScenarioClock::start_now();
        let wall: Arc<dyn mcp_proxy::platform::WallClock> =
            Arc::new(mcp_proxy::platform::SystemClock);
        let log = StatusLog::new(clock);
        let caller = Caller {
            client: 3,
            credentials: Some(Credentials::of(&identity, None, clock, wall).unwrap()),
            statuses: Some(log.clone()),
        };
        let session = McpSession::open_as(&LoadTarget::new(&server.url).unwrap(), caller)
            .await
            .unwrap();
        assert_eq!(outcome(&session, "ok").await, CallOutcome::Success);
        assert_eq!(
            outcome(&session, "http_500").await,
            CallOutcome::HttpStatus { status: 500 }
        );
        // A JSON-RPC error in a 400's body is the outcome; the status is logged.
        assert!(matches!(
            outcome(&session, "http_rpc_error").await,
            CallOutcome::RpcError { code: -32600, .. }
        ));
        session.close().await;
        // initialize, initialized, three calls, DELETE: all with the token.
        let sent = server.state.authorizations();
        assert_eq!(sent, vec![Some("Bearer t0ken".to_string()); 6]);
        let logged: Vec<(usize, String, u16)> = log
            .snapshot()
            .into_iter()
            .map(|s| (s.client, s.request, s.status))
            .collect();
        assert_eq!(
            logged,
            [(3, "tools/call".into(), 500), (3, "tools/call".into(), 400)]
        );
        // An anonymous session sends no Authorization header.
        let anonymous = session_of(&server).await;
        anonymous.close().await;
        assert_eq!(server.state.authorizations()[6..], [None, None, None]);
    }

    async fn session_of(server: &TestServer) -> McpSession {
        session(server).await
    }

    #[tokio::test]
    async fn open_negotiates_a_session() {
        let server = TestServer::start().await;
        let session = session(&server).await;
        assert_eq!(session.session_id(), Some("session-0"));
        assert_eq!(session.protocol_version(), PROTOCOL_VERSION);
    }

    /// Dials TCP, counting the connections it opens.
    #[derive(Default)]
    struct CountingDialer(AtomicU64);

    impl Dialer for CountingDialer {
        fn dial(
            &self,
            host: &str,
            port: u16,
        ) -> mcp_proxy::platform::BoxFuture<'static, std::io::Result<mcp_proxy::platform::BoxStream>>
        {
            self.0.fetch_add(1, Ordering::Relaxed);
            mcp_proxy::platform::TcpDialer.dial(host, port)
        }
    }

    #[tokio::test]
    async fn sessions_share_the_pooled_connections_of_the_targets_dialer() {
        let server = TestServer::start().await;
        let dialer = Arc::new(CountingDialer::default());
        let target = LoadTarget::with_dialer(&server.url, dialer.clone()).unwrap();
        for _ in 0..3 {
            let session = McpSession::open(&target).await.unwrap();
            assert_eq!(outcome(&session, "ok").await, CallOutcome::Success);
            session.close().await;
        }
        // One after the other, every request went over the first connection.
        assert_eq!(dialer.0.load(Ordering::Relaxed), 1);
        assert_eq!(server.state.deleted(), 3);
    }

    #[test]
    fn a_target_is_a_plain_http_url() {
        assert!(LoadTarget::new("http://127.0.0.1:1/mcp").is_ok());
        for url in [
            "https://127.0.0.1:1/mcp",
            "127.0.0.1:1/mcp",
            "/mcp",
            "http://",
        ] {
            assert!(LoadTarget::new(url).is_err(), "{url}");
        }
    }

    #[tokio::test]
    async fn a_refused_connection_says_where_it_went() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let target = LoadTarget::new(&format!("http://{addr}/mcp")).unwrap();
        let error = McpSession::open(&target).await.unwrap_err();
        assert!(
            error.to_string().starts_with(&format!(
                "initialize: client error (Connect): cannot connect to {addr}: "
            )),
            "{error}"
        );
    }

    #[tokio::test]
    async fn open_fails_when_the_server_refuses_initialize() {
        let server = TestServer::start().await;
        let url = server.url.replace("/mcp", "/elsewhere");
        let error = McpSession::open(&LoadTarget::new(&url).unwrap())
            .await
            .unwrap_err();
        assert_eq!(error.to_string(), "initialize: HTTP 404");
    }

    #[tokio::test]
    async fn each_kind_of_answer_maps_to_its_outcome() {
        let server = TestServer::start().await;
        let session = session(&server).await;
        let transport = |outcome: CallOutcome| match outcome {
            CallOutcome::Transport { message } => message,
            other => panic!("expected a transport failure, got {other:?}"),
        };
        let call = |tool: &'static str| outcome(&session, tool);
        let ok = session.call_tool("ok", json!({})).await;
        assert_eq!(ok.outcome, CallOutcome::Success);
        assert_eq!(
            ok.result,
            Some(json!({"content": [{"type": "text", "text": "ok"}]}))
        );
        assert_eq!(
            call("tool_error").await,
            CallOutcome::ToolError {
                message: "first\nsecond".into()
            }
        );
        assert_eq!(
            call("rpc_error").await,
            CallOutcome::RpcError {
                code: -32000,
                message: "boom".into()
            }
        );
        assert_eq!(
            call("http_rpc_error").await,
            CallOutcome::RpcError {
                code: -32600,
                message: "bad request".into()
            }
        );
        assert_eq!(
            call("http_500").await,
            CallOutcome::HttpStatus { status: 500 }
        );
        assert_eq!(call("sse_progress").await, CallOutcome::Success);
        let no_answer = transport(call("sse_no_answer").await);
        assert!(
            no_answer.contains("ended without a response"),
            "{no_answer}"
        );
        let bad = transport(call("bad_json").await);
        assert!(bad.contains("not JSON"), "{bad}");
        let wrong = transport(call("wrong_id").await);
        assert!(wrong.contains("no response to request"), "{wrong}");
        assert_eq!(session.duplicate_answers(), 0);
    }

    #[tokio::test]
    async fn a_second_response_in_the_stream_is_counted_as_a_duplicate() {
        let server = TestServer::start().await;
        let session = session(&server).await;
        assert_eq!(
            outcome(&session, "sse_duplicate").await,
            CallOutcome::Success
        );
        session
            .settle(Instant::now() + Duration::from_secs(5))
            .await;
        assert_eq!(session.duplicate_answers(), 1);
    }

    #[tokio::test]
    async fn a_lost_connection_is_a_transport_failure() {
        let server = TestServer::start().await;
        let session = session(&server).await;
        server.stop();
        let outcome = outcome(&session, "ok").await;
        assert!(
            matches!(outcome, CallOutcome::Transport { .. }),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn list_tools_follows_pagination() {
        let server = TestServer::start().await;
        let session = session(&server).await;
        assert_eq!(session.list_tools().await.unwrap(), ["ok", "slow", "hang"]);
    }

    #[tokio::test]
    async fn request_ids_are_unique_within_a_session() {
        let server = TestServer::start().await;
        let session = session(&server).await;
        for _ in 0..5 {
            session.call_tool("ok", json!({})).await;
        }
        session.list_tools().await.unwrap();
        let ids = server.state.ids();
        let unique: std::collections::HashSet<_> = ids.iter().map(Value::to_string).collect();
        assert_eq!(ids.len(), 7);
        assert_eq!(unique.len(), 7);
    }

    #[tokio::test]
    async fn close_ends_the_session_on_the_server() {
        let server = TestServer::start().await;
        let session = session(&server).await;
        session.close().await;
        assert_eq!(server.state.deleted(), 1);
        assert_eq!(
            outcome(&session, "ok").await,
            CallOutcome::HttpStatus { status: 404 }
        );
    }

    #[test]
    fn a_malformed_error_or_result_is_a_transport_failure() {
        let outcome = call_outcome(&json!({"id": 1, "error": {"code": "x"}}));
        assert!(matches!(outcome, CallOutcome::Transport { .. }));
        let outcome = call_outcome(&json!({"id": 1, "result": 3}));
        assert!(matches!(outcome, CallOutcome::Transport { .. }));
        let outcome = call_outcome(&json!({"id": 1, "result": {"isError": "yes"}}));
        assert!(matches!(outcome, CallOutcome::Transport { .. }));
    }

    #[test]
    fn only_responses_to_our_id_are_answers() {
        let notification = json!({"jsonrpc": "2.0", "method": "notifications/progress"});
        let request = json!({"jsonrpc": "2.0", "id": 3, "method": "sampling/createMessage"});
        let other = json!({"jsonrpc": "2.0", "id": 4, "result": {}});
        let ours = json!({"jsonrpc": "2.0", "id": 3, "result": {}});
        let anonymous_error = json!({"jsonrpc": "2.0", "id": null, "error": {}});
        assert!(answers_to(notification, 3).is_empty());
        assert!(answers_to(request, 3).is_empty());
        assert!(answers_to(other.clone(), 3).is_empty());
        assert_eq!(answers_to(ours.clone(), 3).len(), 1);
        assert_eq!(answers_to(anonymous_error, 3).len(), 1);
        assert_eq!(answers_to(json!([other, ours]), 3).len(), 1);
    }
}
