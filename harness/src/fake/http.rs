//! The HTTP face: Streamable HTTP at `http://127.0.0.1:PORT/mcp`.
//!
//! Each accepted connection is served here with hyper's HTTP/1 connection
//! driver rather than a framework, because the faults need the socket
//! itself: a `reset` outcome aborts its connection with an RST (zero
//! linger), and an outage stops listening (so connecting is refused) and
//! resets every open connection, SSE streams included. During the outage
//! the port stays bound to a socket that does not listen, so no other
//! socket (an outgoing connection given it as its ephemeral port, say) can
//! take it; when the outage ends that socket listens again, with every
//! session forgotten, as a restarted server would, so old session ids get
//! 404.
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
//! Outages are scheduled on the scenario clock with `sleep_until`, so they
//! follow a paused tokio clock too.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, LengthLimitError, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::FakeConfig;
use super::protocol::{Face, MALFORMED, Message, Reply, Server, UNPARSEABLE};
use crate::clock::ScenarioClock;
use crate::scenario::FakeTransport;

/// Largest POST body read; a fake has no use for more.
const MAX_BODY: usize = 4 * 1024 * 1024;
/// How long to wait before retrying a failed bind (the port lost in an
/// outage and taken meanwhile) or accept (out of descriptors).
const RETRY_PAUSE: Duration = Duration::from_millis(50);
const BACKLOG: u32 = 1024;
const SESSION_HEADER: &str = "mcp-session-id";

type Body = BoxBody<Bytes, Infallible>;

/// A running HTTP fake. Stops on [`HttpFake::shutdown`] or when dropped.
pub struct HttpFake {
    addr: SocketAddr,
    stop: CancellationToken,
    supervisor: JoinHandle<()>,
}

impl HttpFake {
    /// Binds 127.0.0.1 on the spec's port (0, or a stdio spec: an ephemeral
    /// one, kept across outages) and starts serving. A fake started inside
    /// an outage holds the port without listening until the outage ends.
    pub async fn start(cfg: FakeConfig) -> io::Result<HttpFake> {
        let port = match cfg.spec.transport {
            FakeTransport::Http { port } => port,
            FakeTransport::Stdio => 0,
        };
        let socket = reusable_socket()?;
        socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
        let addr = socket.local_addr()?;
        let shared = Arc::new(Shared {
            server: Server::new(&cfg, Face::Http),
            endpoint: endpoint_url(addr),
            sessions: Mutex::default(),
            next_session: AtomicU64::new(1),
        });
        // Listening before returning, so the caller can connect at once.
        let port = if shared.server.outage_at(cfg.clock.elapsed()).is_some() {
            Port::Reserved(socket)
        } else {
            Port::Open(socket.listen(BACKLOG)?)
        };
        let stop = CancellationToken::new();
        let supervisor = tokio::spawn(supervise(shared, port, addr, stop.clone()));
        Ok(HttpFake {
            addr,
            stop,
            supervisor,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The MCP endpoint, `http://127.0.0.1:PORT/mcp`.
    pub fn url(&self) -> String {
        endpoint_url(self.addr)
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

fn endpoint_url(addr: SocketAddr) -> String {
    format!("http://{addr}/mcp")
}

/// A socket that can bind the fake's port while connections of an earlier
/// listener on it linger.
fn reusable_socket() -> io::Result<TcpSocket> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    Ok(socket)
}

/// A listener on `addr`.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = reusable_socket()?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// What holds the fake's port.
enum Port {
    /// Listening, not yet accepting (just started).
    Open(TcpListener),
    /// Accepting: the token ends this run of the server, and the accept
    /// loop hands the listener back when it does.
    Serving(CancellationToken, JoinHandle<TcpListener>),
    /// Down: bound without listening, so connecting is refused but the
    /// port stays ours.
    Reserved(TcpSocket),
    /// Down, and the port could not be held: bound anew when the outage
    /// ends, once it is free.
    Lost,
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

    fn forget_sessions(&self) {
        for (_, streams) in self.sessions().drain() {
            streams.cancel();
        }
    }
}

/// Runs the fake: serves while up, goes down and comes back as the outage
/// timeline says, until `stop`.
async fn supervise(shared: Arc<Shared>, mut port: Port, addr: SocketAddr, stop: CancellationToken) {
    let clock = shared.server.clock();
    let connections = TaskTracker::new();
    let mut now = clock.elapsed();
    loop {
        let down = shared.server.outage_at(now).is_some();
        port = match (down, port) {
            (true, Port::Serving(up, accepting)) => {
                up.cancel();
                let listener = accepting.await.ok();
                let port = reserve(listener, addr);
                shared.forget_sessions();
                port
            }
            (true, Port::Open(listener)) => reserve(Some(listener), addr),
            (false, Port::Open(listener)) => serve(listener, &shared, &stop, &connections),
            (false, Port::Reserved(socket)) => {
                let listener = match socket.listen(BACKLOG) {
                    Ok(listener) => Some(listener),
                    Err(e) => {
                        eprintln!("fake at {addr}: cannot listen after an outage ({e})");
                        rebind(addr, &stop).await
                    }
                };
                // None: stopped meanwhile, which the select below sees.
                listener.map_or(Port::Lost, |l| serve(l, &shared, &stop, &connections))
            }
            (false, Port::Lost) => rebind(addr, &stop)
                .await
                .map_or(Port::Lost, |l| serve(l, &shared, &stop, &connections)),
            (_, unchanged) => unchanged,
        };
        let next = shared.server.next_outage_change(now);
        tokio::select! {
            () = stop.cancelled() => break,
            () = sleep_until(clock, next) => {}
        }
        now = clock.elapsed().max(next.unwrap_or_default());
    }
    // `stop` is cancelled, and with it every child token: connections reset.
    if let Port::Serving(_, accepting) = port {
        let _ = accepting.await;
    }
    connections.close();
    connections.wait().await;
}

/// Starts accepting on `listener`.
fn serve(
    listener: TcpListener,
    shared: &Arc<Shared>,
    stop: &CancellationToken,
    connections: &TaskTracker,
) -> Port {
    let up = stop.child_token();
    let accepting = tokio::spawn(accept(
        listener,
        Arc::clone(shared),
        up.clone(),
        connections.clone(),
    ));
    Port::Serving(up, accepting)
}

/// Stops listening on `addr` but keeps it bound. A listening socket cannot
/// stop listening, so it is closed and the port bound again at once: the
/// new socket is made first, leaving the port free only between two calls.
fn reserve(listener: Option<TcpListener>, addr: SocketAddr) -> Port {
    let socket = reusable_socket();
    drop(listener);
    match socket.and_then(|socket| socket.bind(addr).map(|()| socket)) {
        Ok(socket) => Port::Reserved(socket),
        Err(e) => {
            eprintln!("fake at {addr}: cannot hold the port during an outage ({e})");
            Port::Lost
        }
    }
}

async fn sleep_until(clock: ScenarioClock, at: Option<Duration>) {
    match at {
        Some(at) => tokio::time::sleep_until(clock.at(at)).await,
        None => std::future::pending().await,
    }
}

/// Binds `addr` again after an outage that lost it, retrying while the
/// port is taken (`None` if stopped meanwhile).
async fn rebind(addr: SocketAddr, stop: &CancellationToken) -> Option<TcpListener> {
    let mut reported = false;
    loop {
        match bind(addr) {
            Ok(listener) => return Some(listener),
            Err(e) if !reported => {
                eprintln!("fake at {addr}: cannot bind again after an outage ({e}); retrying");
                reported = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(RETRY_PAUSE) => {}
        }
    }
}

/// Accepts connections until `up` is cancelled, then returns the listener.
async fn accept(
    listener: TcpListener,
    shared: Arc<Shared>,
    up: CancellationToken,
    connections: TaskTracker,
) -> TcpListener {
    loop {
        let accepted = tokio::select! {
            () = up.cancelled() => return listener,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                connections.spawn(serve_connection(
                    stream,
                    Arc::clone(&shared),
                    up.child_token(),
                ));
            }
            // Out of descriptors and the like: pause rather than spin.
            Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
        }
    }
}

/// Serves one connection until it closes or `reset` is cancelled (a
/// scripted reset, an outage, shutdown), which aborts it with an RST.
async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, reset: CancellationToken) {
    let service = {
        let reset = reset.clone();
        service_fn(move |request| respond(request, Arc::clone(&shared), reset.clone()))
    };
    let mut connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = &mut connection => {}
        () = reset.cancelled() => {
            let stream = connection.into_parts().io.into_inner();
            // Zero linger turns the close into an RST.
            let _ = stream.set_zero_linger();
        }
    }
}

async fn respond(
    request: Request<Incoming>,
    shared: Arc<Shared>,
    reset: CancellationToken,
) -> Result<Response<Body>, Infallible> {
    if request.uri().path() != "/mcp" {
        shared.record_http(request.method(), "not_found");
        return Ok(empty(StatusCode::NOT_FOUND));
    }
    let session = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = match request.method().clone() {
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
    };
    Ok(response)
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
    match shared.server.handle(&shared.endpoint, message).await {
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
