//! A tiny streamable-HTTP MCP server for the load generator's tests, on
//! hyper directly (the real fake backend is another module's). It keeps
//! sessions (404 for an unknown one, 400 without the protocol version
//! header), and its tools each answer one way:
//!
//! - `ok`: a result; `slow`: a result after `arguments.ms` milliseconds;
//!   `hang`: never answers
//! - `tool_error`: a result with `isError` and two text items
//! - `rpc_error`: a JSON-RPC error (HTTP 200); `http_rpc_error`: a JSON-RPC
//!   error with a null id under HTTP 400; `http_500`: HTTP 500, plain text
//! - `sse_progress`: an event stream with a priming event and a progress
//!   notification before the result; `sse_duplicate`: two results for the
//!   request; `sse_no_answer`: a stream that ends without one
//! - `bad_json`, `wrong_id`: answers that are not the response
//!
//! It counts what the load tests assert: calls in flight (and the most at
//! once), every call's arguments, request ids, DELETEs.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

type Body = BoxBody<Bytes, Infallible>;

/// What the server saw.
#[derive(Debug, Default)]
pub(crate) struct State {
    next_session: AtomicU64,
    sessions: Mutex<HashSet<String>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Each tools/call: the tool and its arguments, in arrival order.
    calls: Mutex<Vec<(String, Value)>>,
    /// The id of every request after initialize, in arrival order.
    ids: Mutex<Vec<Value>>,
    deleted: AtomicUsize,
    /// The `Authorization` header of every request, in arrival order.
    authorizations: Mutex<Vec<Option<String>>>,
}

impl State {
    /// The `Authorization` header of every request received.
    pub(crate) fn authorizations(&self) -> Vec<Option<String>> {
        self.authorizations.lock().unwrap().clone()
    }

    /// The most tools/call requests that were in flight at once.
    pub(crate) fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// The tools/call requests received: tool and arguments.
    pub(crate) fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().unwrap().clone()
    }

    /// The ids of the requests received after initialize.
    pub(crate) fn ids(&self) -> Vec<Value> {
        self.ids.lock().unwrap().clone()
    }

    /// Sessions ended by DELETE.
    pub(crate) fn deleted(&self) -> usize {
        self.deleted.load(Ordering::SeqCst)
    }
}

/// Counts a tools/call as in flight while it lives (a dropped handler
/// future, when the client gave up, ends it too).
struct InFlight<'a>(&'a State);

impl<'a> InFlight<'a> {
    fn enter(state: &'a State) -> Self {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running server; dropping it stops it and its connections.
pub(crate) struct TestServer {
    /// The MCP endpoint.
    pub(crate) url: String,
    /// What it saw.
    pub(crate) state: Arc<State>,
    stop: CancellationToken,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestServer {
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let state = Arc::new(State::default());
        let stop = CancellationToken::new();
        let (state2, stop2) = (Arc::clone(&state), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop2.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((stream, _)) = accepted else { continue };
                let (state, stop) = (Arc::clone(&state2), stop2.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(handle(&state, request).await) }
                    });
                    let connection =
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = connection => {}
                    }
                });
            }
        });
        Self { url, state, stop }
    }

    /// Stops accepting and drops every open connection.
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }
}

fn header(request: &Request<Incoming>, name: &str) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn status(status: u16) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()).boxed());
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response
}

fn with_body(status_code: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = status(status_code);
    *response.body_mut() = Full::new(body.into()).boxed();
    response
        .headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    response
}

fn json_answer(status_code: u16, message: Value) -> Response<Body> {
    with_body(status_code, "application/json", message.to_string())
}

fn sse_answer(events: &[String]) -> Response<Body> {
    with_body(200, "text/event-stream", events.concat())
}

fn event(message: &Value) -> String {
    format!("event: message\ndata: {message}\n\n")
}

fn text_result(id: &Value, text: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": text}]}})
}

async fn handle(state: &State, request: Request<Incoming>) -> Response<Body> {
    if request.uri().path() != "/mcp" {
        return status(404);
    }
    state
        .authorizations
        .lock()
        .unwrap()
        .push(header(&request, "authorization"));
    let session = header(&request, "mcp-session-id");
    let known = |session: &Option<String>| {
        session
            .as_ref()
            .is_some_and(|s| state.sessions.lock().unwrap().contains(s))
    };
    if request.method() == Method::DELETE {
        if !known(&session) {
            return status(404);
        }
        state
            .sessions
            .lock()
            .unwrap()
            .remove(session.as_deref().unwrap());
        state.deleted.fetch_add(1, Ordering::SeqCst);
        return status(200);
    }
    if request.method() != Method::POST {
        return status(405);
    }
    let accept = header(&request, "accept").unwrap_or_default();
    if !(accept.contains("application/json") && accept.contains("text/event-stream")) {
        return status(406);
    }
    let version = header(&request, "mcp-protocol-version");
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let message: Value = serde_json::from_slice(&body).unwrap();
    let method = message["method"].as_str().unwrap_or_default();
    let id = message.get("id").cloned();

    if method == "initialize" {
        let number = state.next_session.fetch_add(1, Ordering::SeqCst);
        let session = format!("session-{number}");
        state.sessions.lock().unwrap().insert(session.clone());
        let result = json!({
            "protocolVersion": message["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "test", "version": "0"},
        });
        let mut response = json_answer(200, json!({"jsonrpc": "2.0", "id": id, "result": result}));
        response
            .headers_mut()
            .insert("mcp-session-id", session.parse().unwrap());
        return response;
    }
    if !known(&session) {
        return status(404);
    }
    if version.as_deref() != Some("2025-11-25") {
        return status(400);
    }
    let Some(id) = id else {
        return status(202);
    };
    state.ids.lock().unwrap().push(id.clone());
    match method {
        "tools/list" => {
            let page = match message["params"]["cursor"].as_str() {
                None => json!({"tools": [{"name": "ok"}, {"name": "slow"}], "nextCursor": "2"}),
                Some(_) => json!({"tools": [{"name": "hang"}]}),
            };
            json_answer(200, json!({"jsonrpc": "2.0", "id": id, "result": page}))
        }
        "tools/call" => call_tool(state, id, &message["params"]).await,
        _ => json_answer(
            200,
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no such method"}}),
        ),
    }
}

async fn call_tool(state: &State, id: Value, params: &Value) -> Response<Body> {
    let name = params["name"].as_str().unwrap_or_default().to_string();
    let arguments = params["arguments"].clone();
    state
        .calls
        .lock()
        .unwrap()
        .push((name.clone(), arguments.clone()));
    let _in_flight = InFlight::enter(state);
    let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
        "params": {"progressToken": 1, "progress": 1}});
    match name.as_str() {
        "ok" => json_answer(200, text_result(&id, "ok")),
        "slow" => {
            let ms = arguments["ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            json_answer(200, text_result(&id, "slow"))
        }
        "hang" => std::future::pending().await,
        "tool_error" => json_answer(
            200,
            json!({"jsonrpc": "2.0", "id": id, "result": {"isError": true, "content": [
                {"type": "text", "text": "first"},
                {"type": "image", "data": "", "mimeType": "image/png"},
                {"type": "text", "text": "second"},
            ]}}),
        ),
        "rpc_error" => json_answer(
            200,
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": "boom"}}),
        ),
        "http_rpc_error" => json_answer(
            400,
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": "bad request"}}),
        ),
        "http_500" => with_body(500, "text/plain", "internal"),
        "sse_progress" => sse_answer(&[
            "id: prime\ndata:\n\n".to_string(),
            event(&progress),
            event(&text_result(&id, "streamed")),
        ]),
        "sse_duplicate" => sse_answer(&[
            event(&text_result(&id, "first")),
            event(&progress),
            event(&text_result(&id, "again")),
        ]),
        "sse_no_answer" => sse_answer(&[event(&progress)]),
        "bad_json" => with_body(200, "application/json", "{not json"),
        "wrong_id" => json_answer(200, text_result(&json!("someone else"), "ok")),
        _ => json_answer(
            200,
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": "unknown tool"}}),
        ),
    }
}
