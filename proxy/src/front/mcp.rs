//! `/mcp`: the streamable-HTTP transport, as the MCP specification has it.
//!
//! POST carries one JSON-RPC message. `initialize` creates a session and
//! returns its `Mcp-Session-Id`; every later message must name it (400 when
//! missing, 404 when unknown). Notifications and responses get 202; a
//! response answers a request a backend asked the client through the proxy
//! (`session/asks.rs`). A request is answered with JSON, or with an event
//! stream when the client accepts `text/event-stream` and either asked for
//! progress or a backend asks the client something before the answer is
//! in, so that progress and those requests reach it before the result. GET
//! opens the session's stream of server notifications; DELETE ends the
//! session.
//!
//! A forwarded call runs in its request's task, tracked so that shutdown
//! can wait for it; a client that drops its HTTP connection does not cancel
//! the call (the spec says only `notifications/cancelled` does): it goes
//! on as a task of its own ([`Detachable`]).
//!
//! With `auth:`, every request first proves its caller ([`identity`]: 401
//! otherwise); a session is found only by the caller (subject and roles) that
//! initialized it;
//! a caller beyond `auth.rate_limit` is answered `-32014`; an item the
//! caller may not use, 403.
//!
//! The bounds the session store keeps are answered here: an `initialize`
//! beyond `max_sessions` gets HTTP 503, and a request beyond
//! `max_in_flight_per_session` or `max_in_flight` is answered `-32014`
//! without running; both bodies name the key and its value.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use futures_util::future::abortable;
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::task::task_tracker::TrackedFuture;
use tracing::Instrument;

use super::{App, ClientAddr, auditing, identity, origin};
use crate::auth::Caller;
use crate::jsonrpc::{self, ErrorObject, Kind};
use crate::session::{Refusal, Session, SessionError};
use crate::trace;
use crate::upstream::SUPPORTED_PROTOCOL_VERSIONS;
use crate::upstream::client;

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";

/// An HTTP-level refusal of a `/mcp` request, with a JSON-RPC error body.
struct Rejection {
    status: StatusCode,
    id: Value,
    code: i64,
    message: String,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let error = ErrorObject::new(self.code, self.message);
        (self.status, Json(jsonrpc::error_response(self.id, &error))).into_response()
    }
}

fn reject(status: StatusCode, id: Value, code: i64, message: impl Into<String>) -> Rejection {
    Rejection {
        status,
        id,
        code,
        message: message.into(),
    }
}

/// Checks every `/mcp` request shares: Origin, and for non-initialize
/// requests the session and protocol version.
fn check_origin(app: &App, headers: &HeaderMap) -> Result<(), Rejection> {
    match headers.get(header::ORIGIN) {
        None => Ok(()),
        Some(value) => match value.to_str() {
            Ok(origin) if origin::is_allowed(origin, &app.allowed_origins) => Ok(()),
            _ => Err(reject(
                StatusCode::FORBIDDEN,
                Value::Null,
                jsonrpc::INVALID_REQUEST,
                "origin not allowed",
            )),
        },
    }
}

fn session_of(
    app: &App,
    headers: &HeaderMap,
    caller: Option<Arc<Caller>>,
) -> Result<Arc<Session>, Rejection> {
    let id = headers
        .get(SESSION_HEADER)
        .and_then(|value| value.to_str().ok());
    let session = app.sessions.get(id, caller).map_err(|error| match error {
        SessionError::Missing => reject(
            StatusCode::BAD_REQUEST,
            Value::Null,
            jsonrpc::INVALID_REQUEST,
            "missing Mcp-Session-Id header; send initialize first",
        ),
        SessionError::Unknown => reject(
            StatusCode::NOT_FOUND,
            Value::Null,
            jsonrpc::INVALID_REQUEST,
            "unknown or expired session",
        ),
    })?;
    if let Some(version) = headers.get(VERSION_HEADER) {
        let supported = version
            .to_str()
            .is_ok_and(|version| SUPPORTED_PROTOCOL_VERSIONS.contains(&version));
        if !supported {
            let message = format!(
                "unsupported MCP-Protocol-Version {version:?}; supported: {SUPPORTED_PROTOCOL_VERSIONS:?}"
            );
            return Err(reject(
                StatusCode::BAD_REQUEST,
                Value::Null,
                jsonrpc::INVALID_REQUEST,
                message,
            ));
        }
    }
    Ok(session)
}

fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("text/event-stream"))
}

/// POST /mcp
pub(super) async fn post(
    State(app): State<Arc<App>>,
    ConnectInfo(client): ConnectInfo<ClientAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(response) = check_origin(&app, &headers) {
        return response.into_response();
    }
    let caller = match identity::caller_of(&app, &headers, client, "POST /mcp").await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let message = format!("request body larger than {} bytes", app.max_body_size);
            return reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                Value::Null,
                jsonrpc::INVALID_REQUEST,
                message,
            )
            .into_response();
        }
        Err(rejection) => {
            return reject(
                rejection.status(),
                Value::Null,
                jsonrpc::INVALID_REQUEST,
                rejection.body_text(),
            )
            .into_response();
        }
    };
    if app.draining.is_cancelled() {
        return reject(
            StatusCode::SERVICE_UNAVAILABLE,
            Value::Null,
            jsonrpc::SHUTTING_DOWN,
            "the proxy is shutting down",
        )
        .into_response();
    }
    let message: Value = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(error) => {
            return reject(
                StatusCode::BAD_REQUEST,
                Value::Null,
                jsonrpc::PARSE_ERROR,
                format!("parse error: {error}"),
            )
            .into_response();
        }
    };
    if message.is_array() {
        return reject(
            StatusCode::BAD_REQUEST,
            Value::Null,
            jsonrpc::INVALID_REQUEST,
            "JSON-RPC batches are not supported",
        )
        .into_response();
    }
    let kind = jsonrpc::kind(&message);
    if kind == Kind::Invalid {
        let id = message
            .get("id")
            .filter(|id| jsonrpc::is_valid_id(id))
            .cloned()
            .unwrap_or(Value::Null);
        return reject(
            StatusCode::BAD_REQUEST,
            id,
            jsonrpc::INVALID_REQUEST,
            "not a valid JSON-RPC 2.0 message",
        )
        .into_response();
    }
    if kind == Kind::Request && message["method"] == "initialize" {
        return initialize(&app, client, message, caller);
    }
    let session = match session_of(&app, &headers, caller) {
        Ok(session) => session,
        Err(response) => return response.into_response(),
    };
    if app.forwards_credentials {
        session.set_credential(headers.get(header::AUTHORIZATION).cloned());
    }
    match kind {
        Kind::Notification => {
            client_notification(&session, &message);
            StatusCode::ACCEPTED.into_response()
        }
        Kind::Request => {
            if let Some(refusal) = over_caller_limit(&app, client, &session, &message) {
                return refusal;
            }
            let accepts_stream = accepts_event_stream(&headers);
            request(app, client, session, message, accepts_stream, &headers).await
        }
        Kind::Response => {
            // The answer to a request a backend asked the client; one
            // nobody waits for any more (timed out, cancelled) is dropped.
            if !session.answer(message) {
                tracing::debug!(session = %session.id(), "a response nobody waits for; dropped");
            }
            StatusCode::ACCEPTED.into_response()
        }
        Kind::Invalid => StatusCode::ACCEPTED.into_response(),
    }
}

/// `auth.rate_limit`: the answer to a request beyond its caller's share,
/// if it is one; nothing was sent to any backend.
fn over_caller_limit(
    app: &App,
    client: ClientAddr,
    session: &Session,
    message: &Value,
) -> Option<Response> {
    let (limits, limit) = app.caller_limits.as_ref()?;
    let caller = session.caller()?;
    if limits.try_acquire(&caller.subject) {
        return None;
    }
    let message_text = format!(
        "{:?} sent more than {} requests per {:?} (auth.rate_limit); request not sent",
        caller.subject, limit.requests, limit.per
    );
    let requests = usize::try_from(limit.requests).unwrap_or(usize::MAX);
    let answer = refusal(
        message["id"].clone(),
        "auth.rate_limit",
        requests,
        message_text,
    );
    let method = message["method"].as_str().unwrap_or_default();
    if let Some(entry) = auditing::begin(app, client, Some(session), method, message.get("params"))
    {
        entry.finish(app, &answer);
    }
    Some(Json(answer).into_response())
}

fn initialize(
    app: &App,
    client: ClientAddr,
    message: Value,
    caller: Option<Arc<Caller>>,
) -> Response {
    let result = app.live.current().initialize(message.get("params"));
    let Some(session) = app.sessions.create(caller) else {
        // 503, not 429: the proxy is full, whoever asks; the client did
        // nothing wrong and may try again once sessions end or expire.
        let max = app.sessions.limits().max_sessions;
        let message_text =
            format!("mcp-proxy has {max} sessions open (proxy.max_sessions); try again later");
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            message["id"].clone(),
            "max_sessions",
            max,
            message_text,
        );
    };
    session.set_client_capabilities(message.pointer("/params/capabilities"));
    let body = jsonrpc::response(message["id"].clone(), result);
    if let Some(entry) = auditing::begin(app, client, Some(&session), "initialize", None) {
        entry.finish(app, &body);
    }
    let mut response = Json(body).into_response();
    if let Ok(value) = HeaderValue::from_str(session.id()) {
        response.headers_mut().insert(SESSION_HEADER, value);
    }
    response
}

fn client_notification(session: &Session, message: &Value) {
    if message["method"] == "notifications/cancelled"
        && let Some(request_id) = message.pointer("/params/requestId")
        && session.cancel(request_id)
    {
        tracing::debug!(session = %session.id(), %request_id, "client cancelled a request");
    }
}

/// Answer a request: run it as its own task, then reply as JSON or as an
/// event stream carrying its progress first.
async fn request(
    app: Arc<App>,
    client: ClientAddr,
    session: Arc<Session>,
    message: Value,
    accepts_stream: bool,
    headers: &HeaderMap,
) -> Response {
    let Value::Object(mut message) = message else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let id = message.remove("id").unwrap_or(Value::Null);
    let method = match message.remove("method") {
        Some(Value::String(method)) => method,
        _ => String::new(),
    };
    let mut params = message.remove("params");
    // The client's trace context leaves `_meta` here; each attempt sends
    // its own (see `trace`).
    let client_trace = trace::from_client(headers, params.as_mut());
    let call_span = app.tracer.call(client_trace, &method);
    let audit = auditing::begin(&app, client, Some(&session), &method, params.as_ref());
    // The gateway in force now serves this request to its end, whatever
    // reloads happen meanwhile (and records it if it is cancelled).
    let gateway = app.live.current();
    let recorder = Arc::clone(&gateway);
    let wants_progress = params
        .as_ref()
        .and_then(|p| p.pointer("/_meta/progressToken"))
        .is_some();
    if wants_progress
        && accepts_stream
        && let Some(error) = gateway.refused_access(&session, &method, params.as_ref())
    {
        // Refused before its stream opens, so it is answered 403 too.
        call_span.set_outcome("error");
        let answer = jsonrpc::error_response(id, &error);
        if let Some(audit) = audit {
            audit.finish(&app, &answer);
        }
        return identity::answer_response(&app, answer);
    }
    // The call's own stream to the client, when it accepts one: progress,
    // and what a backend asks the client while serving the call.
    let (stream, stream_rx) = if accepts_stream {
        let (sender, receiver) = app.sessions.call_stream();
        (Some(sender), Some(receiver))
    } else {
        (None, None)
    };
    let progress = stream
        .clone()
        .filter(|_| wants_progress)
        .map(|stream| app.sessions.progress_sink(stream));
    let link = app.sessions.client_link(&session, stream);

    let call_session = Arc::clone(&session);
    let call_method = method.clone();
    let call_trace = call_span.trace();
    // Boxed: the gateway's future is large, and the task would otherwise
    // copy all of it on every move into the runtime (perf showed it).
    let (call, abort) = abortable(Box::pin(client::with_client(
        link,
        async move {
            gateway
                .handle(&call_session, &call_method, params, progress, call_trace)
                .await
        }
        .instrument(call_span.span()),
    )));
    let refusal = match app.sessions.admit(&session, &id, abort) {
        Ok(in_flight) => Ok(in_flight),
        Err(Refusal::SessionEnded) => Err((
            StatusCode::NOT_FOUND,
            jsonrpc::error_response(
                id.clone(),
                &ErrorObject::new(jsonrpc::INVALID_REQUEST, "unknown or expired session"),
            ),
        )),
        Err(Refusal::DuplicateId) => {
            let message = format!("request id {id} is already in flight in this session");
            let error = ErrorObject::new(jsonrpc::INVALID_REQUEST, message);
            Err((
                StatusCode::BAD_REQUEST,
                jsonrpc::error_response(id.clone(), &error),
            ))
        }
        Err(Refusal::SessionInFlight(limit)) => {
            let message = format!(
                "this session has {limit} requests in flight (proxy.max_in_flight_per_session); request not sent"
            );
            Err((
                StatusCode::OK,
                refusal(id.clone(), "max_in_flight_per_session", limit, message),
            ))
        }
        Err(Refusal::ProxyInFlight(limit)) => {
            let message = format!(
                "mcp-proxy has {limit} requests in flight (proxy.max_in_flight); request not sent"
            );
            Err((
                StatusCode::OK,
                refusal(id.clone(), "max_in_flight", limit, message),
            ))
        }
    };
    let in_flight = match refusal {
        Ok(in_flight) => in_flight,
        Err((status, answer)) => {
            call_span.set_outcome("refused");
            if let Some(audit) = audit {
                audit.finish(&app, &answer);
            }
            return (status, Json(answer)).into_response();
        }
    };
    let cancel_calls = app.cancel_calls.clone();
    let gateway = recorder;
    let audit_app = Arc::clone(&app);
    let task_id = id.clone();
    let panicked_id = id.clone();
    let call = async move {
        let outcome = tokio::select! {
            biased;
            outcome = call => outcome,
            () = cancel_calls.cancelled() => {
                Ok(Err(ErrorObject::new(jsonrpc::SHUTTING_DOWN, "the proxy is shutting down; request cancelled")))
            }
        };
        drop(in_flight);
        call_span.set_outcome(match &outcome {
            Ok(Ok(result)) if result.get("isError") == Some(&Value::Bool(true)) => "tool_error",
            Ok(Ok(_)) => "ok",
            Ok(Err(_)) => "error",
            Err(_aborted) => "cancelled",
        });
        let answer = match outcome {
            Ok(Ok(result)) => jsonrpc::response(task_id, result),
            Ok(Err(error)) => jsonrpc::error_response(task_id, &error),
            Err(_aborted) => {
                gateway.record_cancelled(&method);
                let message = if session.has_ended() {
                    "the session ended (deleted, or expired as idle); request cancelled"
                } else {
                    "request cancelled by the client"
                };
                let error = ErrorObject::new(jsonrpc::REQUEST_CANCELLED, message);
                jsonrpc::error_response(task_id, &error)
            }
        };
        if let Some(audit) = audit {
            audit.finish(&audit_app, &answer);
        }
        answer
    };
    // A bug that panics in a call answers that call with an internal error
    // (as a task of its own would have) rather than resetting the client's
    // connection, and leaves nothing half-run to detach.
    let answer = AssertUnwindSafe(call).catch_unwind().map(|outcome| {
        outcome.unwrap_or_else(|_| {
            tracing::error!("a call panicked; answered with an internal error");
            let error = ErrorObject::new(jsonrpc::INTERNAL_ERROR, "internal error");
            jsonrpc::error_response(panicked_id, &error)
        })
    });
    let answer = app
        .calls
        .track_future(Box::pin(answer) as Pin<Box<dyn Future<Output = Value> + Send>>);

    match stream_rx {
        None => identity::answer_response(&app, Detachable::new(answer).await),
        Some(stream_rx) if wants_progress => {
            let task = tokio::spawn(answer);
            event_stream(None, stream_rx, task).into_response()
        }
        Some(mut stream_rx) => {
            // JSON, unless a backend asks the client something first: then
            // the answer becomes an event stream that carries the request.
            let mut answer = Detachable::new(answer);
            tokio::select! {
                biased;
                answer = &mut answer => identity::answer_response(&app, answer),
                Some(first) = stream_rx.recv() => {
                    event_stream(Some(first), stream_rx, answer.spawn()).into_response()
                }
            }
        }
    }
}

/// A call tracked for shutdown (see [`super::App::calls`]).
type TrackedCall = TrackedFuture<Pin<Box<dyn Future<Output = Value> + Send>>>;

/// A call run inside the request's own task, which saves a task and a
/// hand-over between threads per call. Should the request be dropped
/// before the answer (the client closed its connection), the call goes on
/// as a task of its own: only `notifications/cancelled` cancels a call.
struct Detachable {
    call: Option<TrackedCall>,
}

impl Detachable {
    fn new(call: TrackedCall) -> Self {
        Self { call: Some(call) }
    }

    /// Go on as a task of its own, now.
    fn spawn(mut self) -> tokio::task::JoinHandle<Value> {
        let call = self
            .call
            .take()
            .expect("a Detachable is spawned before its answer");
        tokio::spawn(call)
    }
}

impl Future for Detachable {
    type Output = Value;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Value> {
        let call = self
            .call
            .as_mut()
            .expect("a Detachable is not polled after its answer");
        let answer = ready!(Pin::new(call).poll(cx));
        self.call = None;
        Poll::Ready(answer)
    }
}

impl Drop for Detachable {
    fn drop(&mut self) {
        if let Some(call) = self.call.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(call);
        }
    }
}

/// The answer to a request a bound refused: `-32014`, as for the proxy's
/// other refusals, with the bound's key and value in `data`; nothing was
/// sent to any backend.
fn refused(status: StatusCode, id: Value, key: &str, limit: usize, message: String) -> Response {
    (status, Json(refusal(id, key, limit, message))).into_response()
}

/// The JSON-RPC answer of [`refused`].
fn refusal(id: Value, key: &str, limit: usize, message: String) -> Value {
    let error = ErrorObject::new(jsonrpc::BACKEND_LIMITED, message)
        .with_data(json!({ "reason": key, "limit": limit }));
    jsonrpc::error_response(id, &error)
}

/// `first`, then the call's messages to the client (progress, backends'
/// requests) as they come, then the response, then the end.
fn event_stream(
    first: Option<Value>,
    progress: mpsc::Receiver<Value>,
    task: tokio::task::JoinHandle<Value>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    enum Step {
        Progress(mpsc::Receiver<Value>, tokio::task::JoinHandle<Value>),
        Done,
    }
    let events = stream::unfold(Step::Progress(progress, task), |step| async move {
        let Step::Progress(mut progress, mut task) = step else {
            return None;
        };
        let outcome = tokio::select! {
            biased;
            Some(notification) = progress.recv() => {
                return Some((vec![sse_event(&notification)], Step::Progress(progress, task)));
            }
            outcome = &mut task => outcome,
        };
        // The answer is in; flush progress that raced it, in order, first.
        let mut batch = Vec::new();
        while let Ok(notification) = progress.try_recv() {
            batch.push(sse_event(&notification));
        }
        let response = outcome.unwrap_or_else(|_| {
            jsonrpc::error_response(
                Value::Null,
                &ErrorObject::new(jsonrpc::INTERNAL_ERROR, "internal error"),
            )
        });
        batch.push(sse_event(&response));
        Some((batch, Step::Done))
    });
    let first = stream::iter(first.as_ref().map(sse_event));
    Sse::new(first.chain(events.map(stream::iter).flatten()))
}

fn sse_event(message: &Value) -> Result<Event, Infallible> {
    Ok(Event::default().data(message.to_string()))
}

/// GET /mcp: the session's stream of server notifications.
pub(super) async fn get_stream(
    State(app): State<Arc<App>>,
    ConnectInfo(client): ConnectInfo<ClientAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = check_origin(&app, &headers) {
        return response.into_response();
    }
    let caller = match identity::caller_of(&app, &headers, client, "GET /mcp").await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let session = match session_of(&app, &headers, caller) {
        Ok(session) => session,
        Err(response) => return response.into_response(),
    };
    if !accepts_event_stream(&headers) {
        return reject(
            StatusCode::NOT_ACCEPTABLE,
            Value::Null,
            jsonrpc::INVALID_REQUEST,
            "GET /mcp needs Accept: text/event-stream",
        )
        .into_response();
    }
    let receiver = session.open_stream();
    let events = stream::unfold(receiver, |mut receiver| async move {
        let message = receiver.recv().await?;
        Some((sse_event(&message), receiver))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// DELETE /mcp: end the session.
pub(super) async fn delete(
    State(app): State<Arc<App>>,
    ConnectInfo(client): ConnectInfo<ClientAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = check_origin(&app, &headers) {
        return response.into_response();
    }
    let caller = match identity::caller_of(&app, &headers, client, "DELETE /mcp").await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    match session_of(&app, &headers, caller) {
        Ok(session) => {
            app.sessions.remove(session.id());
            StatusCode::NO_CONTENT.into_response()
        }
        Err(response) => response.into_response(),
    }
}
