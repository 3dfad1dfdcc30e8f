//! The HTTP face: Streamable HTTP at `http://HOST:PORT/mcp`, on the
//! [`FakeNetwork`] it is started on (the operating system's loopback,
//! `127.0.0.1`, by default; see `net.rs`).
//!
//! Each accepted connection is served here with hyper's HTTP/1 connection
//! driver rather than a framework, because the faults need the connection
//! itself: a `reset` outcome aborts its connection ([`FakeStream::abort`],
//! an RST on TCP), and an outage stops listening (so connecting is refused)
//! and aborts every open connection, SSE streams included. During the
//! outage the port stays the fake's ([`HeldPort`]); when the outage ends it
//! listens again, with every session forgotten, as a restarted server
//! would, so old session ids get 404.
//!
//! Sessions: `initialize` opens one and names it in `Mcp-Session-Id`;
//! later POSTs must carry it (missing → 400, unknown → 404). Requests are
//! answered with `application/json`, notifications and responses with 202.
//! GET opens an SSE stream that sends nothing and stays open until the
//! session is deleted, the connection goes, or the fake goes down. DELETE
//! ends the session.
//!
//! Every HTTP request that arrives is journalled, those refused here
//! before the server sees them included (see
//! [`JournalEntry::outcome`](crate::journal::JournalEntry::outcome)).
//!
//! Following the outage timeline (listening, refusing, resetting) is
//! `outages.rs`'s, shared with the issuer's JWKS server.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Empty, Full, LengthLimitError, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::FakeConfig;
use super::net::{FakeNetwork, LoopbackNetwork};
use super::outages::{Body, Port, Site, supervise};
use super::protocol::{Face, MALFORMED, Message, Reply, Server, UNPARSEABLE};
use crate::clock::ScenarioClock;
use crate::scenario::FakeTransport;

/// Largest POST body read; a fake has no use for more.
const MAX_BODY: usize = 4 * 1024 * 1024;
const SESSION_HEADER: &str = "mcp-session-id";

/// A running HTTP fake. Stops on [`HttpFake::shutdown`] or when dropped.
pub struct HttpFake {
    addr: SocketAddr,
    endpoint: String,
    stop: CancellationToken,
    supervisor: JoinHandle<()>,
}

impl HttpFake {
    /// Starts the fake on 127.0.0.1 ([`LoopbackNetwork`]); see
    /// [`HttpFake::start_on`].
    pub async fn start(cfg: FakeConfig) -> io::Result<HttpFake> {
        Self::start_on(cfg, &LoopbackNetwork).await
    }

    /// Takes the spec's port on `network` (0, or a stdio spec: a free one,
    /// kept across outages) and starts serving. A fake started inside an
    /// outage holds the port without listening until the outage ends.
    pub async fn start_on(cfg: FakeConfig, network: &dyn FakeNetwork) -> io::Result<HttpFake> {
        let port = match cfg.spec.transport {
            FakeTransport::Http { port } => port,
            FakeTransport::Stdio => 0,
        };
        let held = network.bind(port).await?;
        let addr = held.local_addr();
        let endpoint = format!("http://{}:{}/mcp", network.host(), addr.port());
        let shared = Arc::new(Shared {
            server: Server::new(&cfg, Face::Http),
            endpoint: endpoint.clone(),
            sessions: Mutex::default(),
            next_session: AtomicU64::new(1),
        });
        // Listening before returning, so the caller can connect at once.
        let port = if shared.server.outage_at(cfg.clock.elapsed()).is_some() {
            Port::Down(held)
        } else {
            Port::Up(held.listen().await.map_err(|(e, _)| e)?)
        };
        let stop = CancellationToken::new();
        let supervisor = tokio::spawn(supervise(shared, port, stop.clone()));
        Ok(HttpFake {
            addr,
            endpoint,
            stop,
            supervisor,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The MCP endpoint, `http://HOST:PORT/mcp`.
    pub fn url(&self) -> String {
        self.endpoint.clone()
    }

    /// Stops accepting, resets every open connection (hung calls and SSE
    /// streams included) and waits until all of it has ended.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        let _ = (&mut self.supervisor).await;
    }
}

impl Drop for HttpFake {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Why a request naming a session is refused.
#[derive(Debug, Clone, Copy)]
enum Refused {
    MissingSession,
    UnknownSession,
}

impl Refused {
    fn status(self) -> StatusCode {
        match self {
            Refused::MissingSession => StatusCode::BAD_REQUEST,
            Refused::UnknownSession => StatusCode::NOT_FOUND,
        }
    }

    /// The journal's outcome label.
    fn label(self) -> &'static str {
        match self {
            Refused::MissingSession => "missing_session",
            Refused::UnknownSession => "unknown_session",
        }
    }
}

/// State shared by every connection of one fake.
struct Shared {
    server: Server,
    endpoint: String,
    /// Open sessions; each token ends the session's SSE streams.
    sessions: Mutex<HashMap<String, CancellationToken>>,
    /// Never reset, so ids of a forgotten session are never handed out again.
    next_session: AtomicU64,
}

impl Shared {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn open_session(&self) -> String {
        let id = format!(
            "session-{}",
            self.next_session.fetch_add(1, Ordering::Relaxed)
        );
        self.sessions().insert(id.clone(), CancellationToken::new());
        id
    }

    /// The session a request names, or why it is refused.
    fn session(&self, id: Option<&str>) -> Result<CancellationToken, Refused> {
        let Some(id) = id else {
            return Err(Refused::MissingSession);
        };
        self.sessions()
            .get(id)
            .cloned()
            .ok_or(Refused::UnknownSession)
    }

    /// Journals an HTTP request that carries no JSON-RPC message (GET,
    /// DELETE, a wrong path or method) under its HTTP method.
    fn record_http(&self, method: &Method, outcome: &str) {
        self.server
            .record(&self.endpoint, method.as_str(), None, &Value::Null, outcome);
    }

    /// Ends every session, in id order (not the map's random one, so a
    /// simulation replays from its seed).
    fn forget_sessions(&self) {
        let mut sessions: Vec<(String, CancellationToken)> = self.sessions().drain().collect();
        sessions.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (_, streams) in sessions {
            streams.cancel();
        }
    }
}

impl Site for Shared {
    fn clock(&self) -> ScenarioClock {
        self.server.clock()
    }

    fn down_at(&self, now: Duration) -> bool {
        self.server.outage_at(now).is_some()
    }

    fn next_change(&self, now: Duration) -> Option<Duration> {
        self.server.next_outage_change(now)
    }

    fn went_down(&self) {
        self.forget_sessions();
    }

    fn respond(
        self: Arc<Self>,
        request: Request<Incoming>,
        reset: CancellationToken,
    ) -> impl Future<Output = Response<Body>> + Send + 'static {
        respond(request, self, reset)
    }
}

async fn respond(
    request: Request<Incoming>,
    shared: Arc<Shared>,
    reset: CancellationToken,
) -> Response<Body> {
    if request.uri().path() != "/mcp" {
        shared.record_http(request.method(), "not_found");
        return empty(StatusCode::NOT_FOUND);
    }
    let session = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match request.method().clone() {
        Method::POST => post(request, session.as_deref(), &shared, &reset).await,
        Method::GET => open_stream(session.as_deref(), &shared),
        Method::DELETE => delete(session.as_deref(), &shared),
        other => {
            shared.record_http(&other, "method_not_allowed");
            let mut response = empty(StatusCode::METHOD_NOT_ALLOWED);
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
            response
        }
    }
}

async fn post(
    request: Request<Incoming>,
    session: Option<&str>,
    shared: &Shared,
    reset: &CancellationToken,
) -> Response<Body> {
    let record = |method, id, params, outcome| {
        shared
            .server
            .record(&shared.endpoint, method, id, params, outcome);
    };
    let traceparent = request
        .headers()
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            record(UNPARSEABLE, None, &Value::Null, "too_large");
            return empty(StatusCode::PAYLOAD_TOO_LARGE);
        }
        // A body that broke off holds no message: a parse error.
        Err(_) => Bytes::new(),
    };
    let message = match Message::parse(&body) {
        Ok(message) => message,
        Err(invalid) => {
            record(
                UNPARSEABLE,
                invalid.id.as_ref(),
                &Value::Null,
                invalid.outcome,
            );
            return json(StatusCode::BAD_REQUEST, invalid.answer.to_string());
        }
    };
    let initialize = message.is_initialize();
    if !initialize && let Err(refused) = shared.session(session) {
        let (method, id, params) = message.parts();
        record(method, id, params, refused.label());
        return empty(refused.status());
    }
    match shared
        .server
        .handle(&shared.endpoint, message, traceparent.as_deref())
        .await
    {
        Reply::Json(answer) => {
            let opened = initialize && answer.get("result").is_some();
            let mut response = json(StatusCode::OK, answer.to_string());
            if opened && let Ok(id) = HeaderValue::from_str(&shared.open_session()) {
                response.headers_mut().insert(SESSION_HEADER, id);
            }
            response
        }
        Reply::Nothing => empty(StatusCode::ACCEPTED),
        Reply::Hang => std::future::pending().await,
        // An exit is what a crashed server looks like to its client: the
        // connection goes.
        Reply::Reset | Reply::Exit(_) => {
            reset.cancel();
            std::future::pending().await
        }
        Reply::Malformed => json(StatusCode::OK, MALFORMED.to_vec()),
        Reply::HttpStatus {
            status,
            retry_after,
        } => {
            let mut response =
                empty(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
            if let Some(after) = retry_after {
                let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
    }
}

/// GET: an SSE stream that sends nothing and ends with the session.
fn open_stream(session: Option<&str>, shared: &Shared) -> Response<Body> {
    let ended = match shared.session(session) {
        Ok(ended) => ended,
        Err(refused) => {
            shared.record_http(&Method::GET, refused.label());
            return empty(refused.status());
        }
    };
    shared.record_http(&Method::GET, "ok");
    let events = futures_util::stream::once(ended.cancelled_owned())
        .filter_map(|()| futures_util::future::ready(None::<Result<Frame<Bytes>, Infallible>>));
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(events)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// DELETE: ends the session and its streams.
fn delete(session: Option<&str>, shared: &Shared) -> Response<Body> {
    let ended = match session {
        Some(id) => shared.sessions().remove(id).ok_or(Refused::UnknownSession),
        None => Err(Refused::MissingSession),
    };
    match ended {
        Ok(streams) => {
            shared.record_http(&Method::DELETE, "ok");
            streams.cancel();
            empty(StatusCode::OK)
        }
        Err(refused) => {
            shared.record_http(&Method::DELETE, refused.label());
            empty(refused.status())
        }
    }
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Empty::new().boxed());
    *response.status_mut() = status;
    response
}

fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
