//! A real streamable-HTTP MCP backend for the tests, built on tower-mcp's
//! `HttpTransport` and served on its own 127.0.0.1 socket.
//!
//! It owns three things tower-mcp does not give a test out of the box:
//!
//! - **A stop that really stops.** `axum::serve` (and tower-mcp's own `serve`)
//!   detach each connection on its own task, so ending the server leaves open
//!   SSE streams and keep-alive connections running. Here the accept loop owns
//!   every connection in a `JoinSet`: [`TestBackend::stop`] closes the listener
//!   and every open connection before it returns, and the listener is bound
//!   with `SO_REUSEADDR` so [`TestBackend::restart`] gets the same port back.
//!   A restart builds a new transport, so old sessions are gone (404), as they
//!   would be after a real crash.
//! - **JSON-RPC errors for bad arguments.** tower-mcp 0.25 answers arguments
//!   that do not deserialize with an `isError: true` result ("Invalid input:
//!   ..."), not an error. The [`StrictArgs`] router layer checks the arguments
//!   of the typed tools first and answers `-32602` itself. An unknown tool is
//!   already `-32602` ("Unknown tool: NAME") in tower-mcp.
//! - **Progress on the request's own stream.** In session mode tower-mcp 0.25
//!   sends `notifications/progress` only on the session's GET stream, and drops
//!   them when no GET stream is open. The streamable-HTTP spec puts messages
//!   about a request on that request's POST stream, and that is what a proxy
//!   should be tested against, so by default ([`ProgressDelivery::PostStream`])
//!   a thin axum middleware turns a tools/call that carries a `progressToken`
//!   into an SSE answer: progress events first, then the response.
//!   [`ProgressDelivery::GetStream`] keeps tower-mcp's own behaviour.
//!
//! Tools (all annotated read-only, idempotent, non-destructive):
//! `echo {message}` → text `message`; `add {a, b}` → text of `a + b`;
//! `fail {message}` → `isError: true` with text `message`; `slow {ms, steps}` →
//! `steps` progress notifications spread over `ms`, then text `done`;
//! `whoami` → text of the backend's name. Also a resource `test://info`, a
//! resource template `test://items/{id}` and a prompt `greet {who}`, each
//! naming the backend, so aggregation of all four kinds can be tested.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tower_mcp::extract::{Context, Json};
use tower_mcp::{
    CallToolResult, GetPromptResult, HttpTransport, JsonRpcError, McpRequest, McpRouter,
    ProgressToken, PromptBuilder, ReadResourceResult, ResourceBuilder, ResourceTemplateBuilder,
    RouterRequest, RouterResponse, ToolBuilder,
};

/// Path the MCP endpoint is mounted at.
pub const MCP_PATH: &str = "/mcp";

/// Largest request body the progress middleware reads.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Where the `slow` tool sends its progress notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressDelivery {
    /// On the tools/call's own POST response, which becomes an SSE stream
    /// (what the streamable-HTTP spec asks for).
    #[default]
    PostStream,
    /// tower-mcp 0.25's own behaviour: on the session's GET stream only, and
    /// lost when none is open.
    GetStream,
}

/// Configures and starts a [`TestBackend`].
#[derive(Debug, Clone, Default)]
pub struct TestBackendBuilder {
    name: Option<String>,
    progress: ProgressDelivery,
}

impl TestBackendBuilder {
    /// The name `whoami` answers (default: `backend-N`, unique in the process).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Where `slow` sends progress (default: [`ProgressDelivery::PostStream`]).
    pub fn progress_delivery(mut self, delivery: ProgressDelivery) -> Self {
        self.progress = delivery;
        self
    }

    /// Start on a free port of 127.0.0.1.
    pub async fn start(self) -> TestBackend {
        self.start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
    }

    /// Start on `addr`.
    ///
    /// # Panics
    ///
    /// When the address cannot be bound.
    pub async fn start_on(self, addr: SocketAddr) -> TestBackend {
        self.try_start_on(addr)
            .await
            .unwrap_or_else(|error| panic!("test backend cannot listen on {addr}: {error}"))
    }

    /// Start on `addr`, or say why the address cannot be bound.
    pub async fn try_start_on(self, addr: SocketAddr) -> io::Result<TestBackend> {
        let name = self.name.unwrap_or_else(|| {
            static NEXT: AtomicUsize = AtomicUsize::new(1);
            format!("backend-{}", NEXT.fetch_add(1, Ordering::Relaxed))
        });
        let mut backend = TestBackend {
            name,
            addr,
            progress: self.progress,
            calls: Calls::default(),
            running: None,
            held: None,
        };
        backend.listen(addr)?;
        Ok(backend)
    }
}

/// A running (or stopped) tower-mcp HTTP backend; see the module doc.
///
/// Dropping it stops the server too, without waiting.
#[derive(Debug)]
pub struct TestBackend {
    name: String,
    addr: SocketAddr,
    progress: ProgressDelivery,
    calls: Calls,
    running: Option<Running>,
    /// While stopped, the port stays bound (not listening), so a parallel
    /// test's `bind(0)` is never given it and a connection is refused.
    held: Option<TcpSocket>,
}

/// The serve task and the way to end it.
#[derive(Debug)]
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl TestBackend {
    /// A builder for a backend with a chosen name or progress delivery.
    pub fn builder() -> TestBackendBuilder {
        TestBackendBuilder::default()
    }

    /// Start a backend with a generated name on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// Start a backend that calls itself `name` on a free port of 127.0.0.1.
    pub async fn start_named(name: impl Into<String>) -> Self {
        Self::builder().name(name).start().await
    }

    /// Start a backend with a generated name on `addr` (e.g. the address of
    /// one that was stopped).
    pub async fn start_on(addr: SocketAddr) -> Self {
        Self::builder().start_on(addr).await
    }

    /// The MCP endpoint, `http://127.0.0.1:PORT/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}{MCP_PATH}", self.addr)
    }

    /// The address it listens on (kept after [`stop`](Self::stop)).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `Authorization` headers of the requests it received, in order
    /// (requests without one are not listed).
    pub fn authorizations(&self) -> Vec<String> {
        lock(&self.calls.authorizations).clone()
    }

    /// The `traceparent` headers of the requests it received, in order
    /// (only requests that carried one).
    pub fn traceparents(&self) -> Vec<String> {
        lock(&self.calls.traceparents).clone()
    }

    /// The name `whoami` answers.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it is serving.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// How many `tools/call` requests for `tool` reached this backend (valid
    /// or not), counted across restarts.
    pub fn calls(&self, tool: &str) -> u64 {
        self.calls.get(tool)
    }

    /// Stop serving: closes the listener and every open connection (SSE
    /// streams included) before returning. Stopping twice is harmless.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            // The serve task may already be gone (a panic): nothing to signal.
            let _ = running.stop.send(());
            if let Err(error) = running.task.await
                && error.is_panic()
            {
                std::panic::resume_unwind(error.into_panic());
            }
            self.held = reusable_socket(self.addr).ok();
        }
    }

    /// Stop, then serve again on the same address with the same name. The new
    /// server has no sessions: clients must initialize again.
    ///
    /// # Panics
    ///
    /// When the address cannot be bound again.
    pub async fn restart(&mut self) {
        self.stop().await;
        let addr = self.addr;
        self.listen(addr)
            .unwrap_or_else(|error| panic!("test backend cannot listen again on {addr}: {error}"));
    }

    /// Bind `addr` and spawn the serve task.
    fn listen(&mut self, addr: SocketAddr) -> io::Result<()> {
        self.held = None;
        let listener = reusable_socket(addr)?.listen(1024)?;
        self.addr = listener.local_addr()?;
        let app = mcp_app(&self.name, self.progress, self.calls.clone());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(listener, app, stopped));
        self.running = Some(Running { stop, task });
        Ok(())
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            // Aborting drops the JoinSet, which aborts every connection task.
            running.task.abort();
        }
    }
}

/// A socket bound with `SO_REUSEADDR`, so a restarted backend can take back
/// its port while the connections it closed sit in TIME_WAIT.
fn reusable_socket(addr: SocketAddr) -> io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// The accept loop. It owns every connection, so that returning (on `stop`)
/// or being aborted (on drop) closes them all.
async fn serve(listener: TcpListener, app: Router, mut stop: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let service = TowerToHyperService::new(app.clone());
                    connections.spawn(async move {
                        // A connection error (reset, bad request line) only ends that
                        // connection.
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                // Out of file descriptors or similar: back off a little rather
                // than spin, and keep serving.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// The axum app: tower-mcp's transport at [`MCP_PATH`], plus the progress
/// middleware when progress goes on the POST stream.
fn mcp_app(name: &str, progress: ProgressDelivery, calls: Calls) -> Router {
    let seen = calls.clone();
    let transport = HttpTransport::new(mcp_router(name))
        // Lets the `slow` tool find the POST stream the middleware opened.
        .bridge_extension::<PostStreamSink>()
        // Bad arguments become JSON-RPC errors instead of isError results.
        .layer(StrictArgsLayer { calls });
    let app = transport
        .into_router_at(MCP_PATH)
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                if let Some(value) = request
                    .headers()
                    .get("authorization")
                    .and_then(|value| value.to_str().ok())
                {
                    seen.record_authorization(value);
                }
                if let Some(value) = request
                    .headers()
                    .get("traceparent")
                    .and_then(|value| value.to_str().ok())
                {
                    seen.record_traceparent(value);
                }
                next.run(request)
            },
        ));
    match progress {
        ProgressDelivery::PostStream => {
            app.layer(axum::middleware::from_fn(progress_on_post_stream))
        }
        ProgressDelivery::GetStream => app,
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
struct EchoInput {
    /// Text to send back.
    message: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct AddInput {
    /// First addend.
    a: f64,
    /// Second addend.
    b: f64,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct FailInput {
    /// Text of the tool error.
    message: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct SlowInput {
    /// Total time to take, in milliseconds.
    ms: u64,
    /// Number of progress notifications to send.
    steps: u32,
}

/// The tools, resource, template and prompt described in the module doc.
fn mcp_router(name: &str) -> McpRouter {
    let echo = ToolBuilder::new("echo")
        .description("Answers with the message it was given")
        .read_only_safe()
        .handler(|input: EchoInput| async move { Ok(CallToolResult::text(input.message)) })
        .build();
    let add = ToolBuilder::new("add")
        .description("Adds two numbers")
        .read_only_safe()
        .handler(|input: AddInput| async move {
            Ok(CallToolResult::text((input.a + input.b).to_string()))
        })
        .build();
    let fail = ToolBuilder::new("fail")
        .description("Always fails, as a tool error (isError: true) carrying the message")
        .read_only_safe()
        .handler(|input: FailInput| async move { Ok(CallToolResult::error(input.message)) })
        .build();
    let slow = ToolBuilder::new("slow")
        .description(
            "Sends `steps` progress notifications over `ms` milliseconds, then answers done",
        )
        .read_only_safe()
        .extractor_handler(
            (),
            |ctx: Context, Json(input): Json<SlowInput>| async move {
                run_slow(ctx, input).await;
                Ok(CallToolResult::text("done"))
            },
        )
        .build();
    let whoami_name = name.to_string();
    let whoami = ToolBuilder::new("whoami")
        .description("Answers the backend's name")
        .read_only_safe()
        .no_params_handler(move || {
            let name = whoami_name.clone();
            async move { Ok(CallToolResult::text(name)) }
        })
        .build();

    let info = ResourceBuilder::new("test://info")
        .name("info")
        .description("Names the backend")
        .mime_type("text/plain")
        .text(format!("test backend {name}"));
    let item_name = name.to_string();
    let items = ResourceTemplateBuilder::new("test://items/{id}")
        .name("item")
        .description("One item per id")
        .mime_type("text/plain")
        .handler(move |uri: String, vars: HashMap<String, String>| {
            let text = format!("item {} from {item_name}", vars["id"]);
            async move { Ok(ReadResourceResult::text(uri, text)) }
        });
    let prompt_name = name.to_string();
    let greet = PromptBuilder::new("greet")
        .description("A greeting from the backend")
        .required_arg("who", "Whom to greet")
        .handler(move |args: HashMap<String, String>| {
            let who = args.get("who").cloned().unwrap_or_else(|| "world".into());
            let text = format!("Hello, {who}! (from {prompt_name})");
            async move { Ok(GetPromptResult::user_message(text)) }
        })
        .build();

    McpRouter::new()
        .server_info(name, "0.1.0")
        .tool(echo)
        .tool(add)
        .tool(fail)
        .tool(slow)
        .tool(whoami)
        .resource(info)
        .resource_template(items)
        .prompt(greet)
}

/// The body of `slow`: `steps` progress notifications spread over `ms`.
async fn run_slow(ctx: Context, input: SlowInput) {
    let pause = Duration::from_millis(input.ms) / input.steps.max(1);
    if input.steps == 0 {
        tokio::time::sleep(pause).await;
    }
    let token = ctx.progress_token().cloned();
    let sink = ctx.extension::<PostStreamSink>().cloned();
    for step in 1..=input.steps {
        tokio::time::sleep(pause).await;
        let Some(token) = &token else { continue };
        match &sink {
            // Awaited, so every notification is queued before the response.
            Some(sink) => sink.send(progress_message(token, step, input.steps)).await,
            None => {
                ctx.report_progress(f64::from(step), Some(f64::from(input.steps)), None)
                    .await;
            }
        }
    }
}

/// A `notifications/progress` message.
fn progress_message(token: &ProgressToken, progress: u32, total: u32) -> Value {
    json!({
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": { "progressToken": token, "progress": progress, "total": total },
    })
}

/// Per-tool counts of `tools/call` requests, and the `Authorization`
/// and `traceparent` headers POSTs carried.
#[derive(Debug, Clone, Default)]
struct Calls {
    by_tool: Arc<Mutex<HashMap<String, u64>>>,
    authorizations: Arc<Mutex<Vec<String>>>,
    traceparents: Arc<Mutex<Vec<String>>>,
}

impl Calls {
    fn record(&self, tool: &str) {
        *lock(&self.by_tool).entry(tool.to_string()).or_default() += 1;
    }

    fn get(&self, tool: &str) -> u64 {
        lock(&self.by_tool).get(tool).copied().unwrap_or(0)
    }

    fn record_authorization(&self, value: &str) {
        lock(&self.authorizations).push(value.to_owned());
    }

    fn record_traceparent(&self, value: &str) {
        lock(&self.traceparents).push(value.to_owned());
    }
}

/// A panicking test thread cannot leave the maps half-written.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Checks the typed tools' arguments ahead of tower-mcp; see [`StrictArgs`].
#[derive(Debug, Clone)]
struct StrictArgsLayer {
    calls: Calls,
}

impl<S> tower::Layer<S> for StrictArgsLayer {
    type Service = StrictArgs<S>;

    fn layer(&self, inner: S) -> StrictArgs<S> {
        StrictArgs {
            inner,
            calls: self.calls.clone(),
        }
    }
}

/// Counts tools/call requests and answers `-32602` for arguments a typed
/// tool cannot take (tower-mcp would answer an `isError` result instead).
#[derive(Debug, Clone)]
struct StrictArgs<S> {
    inner: S,
    calls: Calls,
}

impl<S> tower::Service<RouterRequest> for StrictArgs<S>
where
    S: tower::Service<RouterRequest, Response = RouterResponse, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = RouterResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<RouterResponse, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: RouterRequest) -> Self::Future {
        if let McpRequest::CallTool(params) = &request.inner {
            self.calls.record(&params.name);
            if let Err(message) = check_arguments(&params.name, &params.arguments) {
                let response = RouterResponse {
                    id: request.id,
                    inner: Err(JsonRpcError::invalid_params(message)),
                };
                return Box::pin(std::future::ready(Ok(response)));
            }
        }
        Box::pin(self.inner.call(request))
    }
}

/// Whether `arguments` deserialize into `tool`'s input type.
fn check_arguments(tool: &str, arguments: &Value) -> Result<(), String> {
    fn parse<T: DeserializeOwned>(tool: &str, arguments: &Value) -> Result<(), String> {
        T::deserialize(arguments)
            .map(drop)
            .map_err(|error| format!("Invalid arguments for tool {tool}: {error}"))
    }
    match tool {
        "echo" => parse::<EchoInput>(tool, arguments),
        "add" => parse::<AddInput>(tool, arguments),
        "fail" => parse::<FailInput>(tool, arguments),
        "slow" => parse::<SlowInput>(tool, arguments),
        _ => Ok(()),
    }
}

/// Where a tool sends messages that belong on its request's POST stream.
/// Bridged from the HTTP request into the tool's context.
#[derive(Debug, Clone)]
struct PostStreamSink(mpsc::Sender<Value>);

impl PostStreamSink {
    async fn send(&self, message: Value) {
        // The receiver is gone only when the client went away; the tool has
        // nobody left to tell.
        let _ = self.0.send(message).await;
    }
}

/// The answer to a request, still being computed.
type PendingResponse = Pin<Box<dyn Future<Output = Response> + Send>>;

/// axum middleware: a POST request that carries a `progressToken` and
/// accepts SSE gets a [`PostStreamSink`]. If the tool sends anything, the
/// answer becomes an SSE stream (those messages, then the response);
/// otherwise it is tower-mcp's answer untouched.
async fn progress_on_post_stream(request: Request, next: Next) -> Response {
    let accepts_sse = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/event-stream"));
    if request.method() != Method::POST || !accepts_sse {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let wants_progress = serde_json::from_slice::<Value>(&bytes).is_ok_and(|message| {
        message.get("id").is_some() && message.pointer("/params/_meta/progressToken").is_some()
    });
    if !wants_progress {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    }

    let (sink, mut messages) = mpsc::channel(64);
    parts.extensions.insert(PostStreamSink(sink));
    let protocol_version = parts.headers.get("mcp-protocol-version").cloned();
    let mut pending: PendingResponse =
        Box::pin(next.run(Request::from_parts(parts, Body::from(bytes))));
    let first = tokio::select! {
        response = &mut pending => {
            // Whatever the tool queued before answering is still in the channel.
            let queued = drain(&mut messages);
            if queued.is_empty() {
                return response;
            }
            return sse_answer(queued, Box::pin(std::future::ready(response)), messages, protocol_version);
        }
        Some(message) = messages.recv() => message,
    };
    sse_answer(vec![first], pending, messages, protocol_version)
}

/// Messages already waiting in the channel.
fn drain(messages: &mut mpsc::Receiver<Value>) -> Vec<Value> {
    std::iter::from_fn(|| messages.try_recv().ok()).collect()
}

/// An SSE answer: `first`, then whatever else the tool sends, then the
/// response once `pending` resolves.
fn sse_answer(
    first: Vec<Value>,
    mut pending: PendingResponse,
    mut messages: mpsc::Receiver<Value>,
    protocol_version: Option<HeaderValue>,
) -> Response {
    let (events, events_rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        for message in first {
            if events.send(sse_event(&message)).await.is_err() {
                return;
            }
        }
        loop {
            tokio::select! {
                // The client hung up: drop the call, as a dropped connection would.
                () = events.closed() => return,
                response = &mut pending => {
                    for message in drain(&mut messages) {
                        let _ = events.send(sse_event(&message)).await;
                    }
                    let body = axum::body::to_bytes(response.into_body(), MAX_BODY_BYTES).await;
                    if let Some(message) = body.ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok()) {
                        let _ = events.send(sse_event(&message)).await;
                    }
                    return;
                }
                Some(message) = messages.recv() => {
                    if events.send(sse_event(&message)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(events_rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), rx))
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(version) = protocol_version {
        headers.insert("mcp-protocol-version", version);
    }
    response
}

/// One SSE `message` event carrying a JSON-RPC message.
fn sse_event(message: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}
