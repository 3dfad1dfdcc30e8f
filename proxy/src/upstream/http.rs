//! A backend reached over streamable HTTP (MCP 2025-03-26 .. 2025-11-25).
//!
//! Every message is its own POST. A request's answer comes back as a JSON
//! body or as a Server-Sent-Events stream (`sse.rs`) that may carry
//! progress and server requests before the response itself; everything on
//! it is routed like stdout of a stdio child (`inbound.rs`). After
//! `initialize`, a background task keeps the optional GET event stream open
//! for notifications that belong to no request (`list_changed`).
//!
//! This is our own client rather than tower-mcp's: that one relays every
//! backend error as a generic one (the proxy must keep code, message and
//! data) and, once a POST fails, stays broken without saying so. Here the
//! failure modes are told apart, because the caller decides differently:
//!
//! - an HTTP error status, a wrong content type or a malformed body is a
//!   [`UpstreamError::Protocol`] error for that request only; the
//!   connection stays usable;
//! - a transport failure on one message (a reset, a body cut off, a
//!   redirect loop: [`UpstreamError::Lost`]; a connect timeout or a failed
//!   TLS handshake: [`UpstreamError::Connect`], provably never sent) is that
//!   request's alone: the session and every other call in flight stay,
//!   because real servers and load balancers reset keep-alive connections
//!   routinely. A message whose pooled connection turned out closed before
//!   anything was written is re-sent on a fresh one by the pooled client
//!   itself;
//! - only evidence that the *server* is gone closes the connection —
//!   [`HttpConnection::closed`] resolves and the backend supervisor
//!   connects anew: the connection refused or the host unreachable,
//!   `LOST_IN_A_ROW_BEFORE_GONE` requests in a row lost with no answer
//!   between, a 404 while we hold a session id ("session expired"), or the
//!   GET event stream lost and not re-openable (see [`listen`]).
//!
//! Messages travel on hyper-util's pooled client (idle connections are
//! reused), whose connections come from the platform's dialer
//! (`connector.rs`), so the same code runs on TCP and on a simulated
//! network. No system proxy is consulted. Credentials in the URL are sent
//! as HTTP Basic authentication (a configured `Authorization` header
//! wins), and redirects are followed, up to [`MAX_REDIRECTS`] per message:
//! 301/302 turn a POST into a GET and 303 turns anything but HEAD into a
//! GET, both without the body; 307/308 repeat the message as it was. A hop
//! to another origin than the configured URL's drops the credentials.
//!
//! There is no overall request timeout here; callers bound their calls, and
//! dropping a call cancels it upstream without waiting for the POST.

use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{
    ACCEPT, AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HeaderMap,
    HeaderName, HeaderValue, LOCATION, PROXY_AUTHORIZATION, REFERER, TRANSFER_ENCODING,
    WWW_AUTHENTICATE,
};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::connector::{self, HttpClient};
use super::pending::Pending;
use super::sse::{SseEvent, SseParser};
use super::{ConnectSettings, EventSink, ProgressSink, UpstreamError, handshake, inbound};
use crate::backoff::{Backoff, HEALTHY_AFTER};
use crate::config::TransportConfig;
use crate::jsonrpc::{self, ErrorObject};

/// A response whose body is still on the wire.
type Response = http::Response<Incoming>;

/// The session header the server issues on the `initialize` response.
const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
/// The negotiated protocol revision, sent on every request after `initialize`.
const PROTOCOL_VERSION_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");
/// Resuming the GET stream where it broke off.
const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// The largest JSON response body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// How much of an error response's body is read to quote from it.
const ERROR_BODY_BYTES: usize = 16 * 1024;
/// How many characters of a bad body go into an error message.
const QUOTE_CHARS: usize = 200;

/// Redirects followed for one message; one more is a transport failure.
pub const MAX_REDIRECTS: usize = 10;
/// How often a message the server refused unprocessed at the HTTP/2 level
/// (GOAWAY without error, REFUSED_STREAM) is sent again.
const NACK_RETRIES: usize = 2;

/// Bound on the POSTs nobody waits for: cancellations, replies to server
/// requests.
const SIDE_MESSAGE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on the DELETE that ends the session.
const DELETE_TIMEOUT: Duration = Duration::from_secs(2);

/// Consecutive refused reconnects of a GET stream that mean the server is gone.
const REFUSALS_BEFORE_GONE: u32 = 2;
/// Requests lost in a row (reset, cut off) with no answer between them that
/// mean the server is gone.
const LOST_IN_A_ROW_BEFORE_GONE: u32 = 5;

/// Backoff between attempts to reopen the GET event stream.
const STREAM_BACKOFF_INITIAL: Duration = Duration::from_millis(500);
const STREAM_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A live MCP session with a streamable-HTTP server. Cheap to clone.
#[derive(Clone)]
pub struct HttpConnection {
    inner: Arc<Inner>,
}

struct Inner {
    link: Link,
    /// Stops the GET stream task.
    stop: CancellationToken,
    shut_down: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Why a message got no response: a transport failure.
#[derive(Debug)]
struct TransportError {
    /// No connection could be made: the message provably never left.
    never_sent: bool,
    /// The server refused the connection or cannot be reached at all: it
    /// is gone (a connect timeout or a failed TLS handshake is not proof).
    server_gone: bool,
    /// What happened, with its causes (never the URL, which may carry
    /// credentials).
    description: String,
}

impl TransportError {
    /// The client could not deliver the message or read the response head.
    fn sending(error: &hyper_util::client::legacy::Error) -> Self {
        Self {
            never_sent: error.is_connect(),
            server_gone: error.is_connect() && is_refused_or_unreachable(error),
            description: chain(error),
        }
    }

    /// The response body broke off.
    fn reading(error: &hyper::Error) -> Self {
        Self {
            never_sent: false,
            server_gone: false,
            description: chain(error),
        }
    }

    /// A redirect that is not followed.
    fn redirect(why: String) -> Self {
        Self {
            never_sent: false,
            server_gone: false,
            description: format!("following a redirect failed: {why}"),
        }
    }
}

/// The fixed parts of every HTTP message to one session.
struct Poster {
    backend: String,
    client: HttpClient,
    /// The configured URL, without credentials or fragment.
    url: Url,
    /// The same, as hyper takes it.
    uri: Uri,
    /// Configured headers, content type, accept, and (after initialize)
    /// session id and protocol version.
    post_headers: HeaderMap,
    /// The same for the GET stream and DELETE.
    get_headers: HeaderMap,
    /// Whether the server issued a session id.
    has_session: bool,
}

impl Poster {
    fn new(backend: &str, client: HttpClient, url: Url, uri: Uri, configured: HeaderMap) -> Self {
        let mut post_headers = configured.clone();
        post_headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        post_headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        let mut get_headers = configured;
        get_headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        Self {
            backend: backend.to_owned(),
            client,
            url,
            uri,
            post_headers,
            get_headers,
            has_session: false,
        }
    }

    /// The same, for the session `initialize` set up.
    fn for_session(&self, session: Option<HeaderValue>, version: &str) -> Self {
        let mut post_headers = self.post_headers.clone();
        let mut get_headers = self.get_headers.clone();
        if let Ok(version) = HeaderValue::from_str(version) {
            post_headers.insert(PROTOCOL_VERSION_HEADER, version.clone());
            get_headers.insert(PROTOCOL_VERSION_HEADER, version);
        }
        let has_session = session.is_some();
        if let Some(session) = session {
            post_headers.insert(SESSION_ID, session.clone());
            get_headers.insert(SESSION_ID, session);
        }
        Self {
            backend: self.backend.clone(),
            client: self.client.clone(),
            url: self.url.clone(),
            uri: self.uri.clone(),
            post_headers,
            get_headers,
            has_session,
        }
    }

    async fn post(&self, message: &Value) -> Result<Response, TransportError> {
        let body = serde_json::to_vec(message).unwrap_or_default();
        self.exchange(Method::POST, self.post_headers.clone(), Bytes::from(body))
            .await
    }

    /// Open the GET event stream, resuming after `last_event_id`.
    async fn get(&self, last_event_id: Option<&HeaderValue>) -> Result<Response, TransportError> {
        let mut headers = self.get_headers.clone();
        if let Some(id) = last_event_id {
            headers.insert(LAST_EVENT_ID, id.clone());
        }
        self.exchange(Method::GET, headers, Bytes::new()).await
    }

    async fn delete(&self) -> Result<Response, TransportError> {
        self.exchange(Method::DELETE, self.get_headers.clone(), Bytes::new())
            .await
    }

    /// Send one message to the configured URL and return the response
    /// head, following redirects (see the module docs).
    async fn exchange(
        &self,
        mut method: Method,
        mut headers: HeaderMap,
        mut body: Bytes,
    ) -> Result<Response, TransportError> {
        let mut url = self.url.clone();
        let mut uri = self.uri.clone();
        let mut hop_headers = headers.clone();
        let mut redirects = 0;
        loop {
            let response = self.send(&method, &uri, &hop_headers, &body).await?;
            match response.status() {
                StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND => {
                    // User agents may turn a POST into a GET (RFC 9110 15.4.2, 15.4.3).
                    if method == Method::POST {
                        method = Method::GET;
                        body = Bytes::new();
                        drop_payload_headers(&mut headers);
                    }
                }
                StatusCode::SEE_OTHER => {
                    if method != Method::HEAD {
                        method = Method::GET;
                    }
                    body = Bytes::new();
                    drop_payload_headers(&mut headers);
                }
                StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => {}
                _ => return Ok(response),
            }
            // A redirect without a usable location is the answer.
            let Some((next_url, next_uri)) = response
                .headers()
                .get(LOCATION)
                .and_then(|location| std::str::from_utf8(location.as_bytes()).ok())
                .and_then(|location| url.join(location).ok())
                .and_then(|next| {
                    let uri = next.as_str().parse::<Uri>().ok()?;
                    Some((next, uri))
                })
            else {
                return Ok(response);
            };
            redirects += 1;
            if redirects > MAX_REDIRECTS {
                return Err(TransportError::redirect(format!(
                    "more than {MAX_REDIRECTS} redirects"
                )));
            }
            if !matches!(next_url.scheme(), "http" | "https") {
                return Err(TransportError::redirect(format!(
                    "redirected to an unsupported URL scheme `{}`",
                    next_url.scheme()
                )));
            }
            hop_headers = headers.clone();
            if !same_origin(&next_url, &self.url) {
                for name in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, WWW_AUTHENTICATE] {
                    hop_headers.remove(name);
                }
                hop_headers.remove("cookie2");
            }
            if let Some(referer) = referer(&next_url, &url) {
                hop_headers.insert(REFERER, referer);
            }
            url = next_url;
            uri = next_uri;
        }
    }

    /// One request to `uri`; a message the server refused unprocessed at
    /// the HTTP/2 level is sent again, up to [`NACK_RETRIES`] times.
    async fn send(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Response, TransportError> {
        let mut retries = 0;
        loop {
            let mut request = Request::new(Full::new(body.clone()));
            *request.method_mut() = method.clone();
            *request.uri_mut() = uri.clone();
            *request.headers_mut() = headers.clone();
            match self.client.request(request).await {
                Ok(response) => return Ok(response),
                Err(error) if retries < NACK_RETRIES && is_protocol_nack(&error) => retries += 1,
                Err(error) => return Err(TransportError::sending(&error)),
            }
        }
    }

    /// POST a message nobody waits for, with a short bound; failures are
    /// only logged.
    async fn post_quietly(&self, message: Value) {
        match tokio::time::timeout(SIDE_MESSAGE_TIMEOUT, self.post(&message)).await {
            Ok(Ok(response)) if response.status().is_success() => {}
            Ok(Ok(response)) => {
                let status = response.status();
                tracing::debug!(backend = %self.backend, %status, "side message refused")
            }
            Ok(Err(error)) => {
                let error = error.description;
                tracing::debug!(backend = %self.backend, error, "side message not delivered")
            }
            Err(_) => tracing::debug!(backend = %self.backend, "side message timed out"),
        }
    }
}

/// A poster with the request table and event sink of one connection: what
/// sending a message and reading its answer takes.
#[derive(Clone)]
struct Link {
    poster: Arc<Poster>,
    pending: Arc<Pending>,
    events: EventSink,
    /// Requests lost in a row (see [`Link::count_outcome`]).
    lost_in_a_row: Arc<AtomicU32>,
}

impl HttpConnection {
    /// Reach the server and run the `initialize` handshake within
    /// `settings.init_timeout`; returns the connection and the server's
    /// `initialize` result.
    pub async fn connect(
        transport: &TransportConfig,
        settings: &ConnectSettings,
        events: EventSink,
    ) -> Result<(Self, Value), UpstreamError> {
        let TransportConfig::Http { url, headers } = transport else {
            return Err(UpstreamError::Connect(format!(
                "`{}` is not an http transport",
                transport.kind()
            )));
        };
        let mut url = Url::parse(url)
            .map_err(|error| UpstreamError::Connect(format!("invalid url `{url}`: {error}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UpstreamError::Connect(format!(
                "unsupported URL scheme `{}`",
                url.scheme()
            )));
        }
        let credentials = take_credentials(&mut url);
        url.set_fragment(None);
        let uri = url
            .as_str()
            .parse::<Uri>()
            .map_err(|error| UpstreamError::Connect(format!("invalid url `{url}`: {error}")))?;
        let configured = header_map(credentials, headers)?;
        let client =
            connector::client(Arc::clone(&settings.platform.dialer), settings.init_timeout);
        let (cancels, cancelled) = mpsc::unbounded_channel();
        let pending = Pending::new(&settings.backend, cancels);
        let link = Link {
            poster: Arc::new(Poster::new(&settings.backend, client, url, uri, configured)),
            pending,
            events,
            lost_in_a_row: Arc::default(),
        };
        let handshake = initialize(link, settings);
        let (link, result) = match tokio::time::timeout(settings.init_timeout, handshake).await {
            Ok(Ok(established)) => established,
            Ok(Err(error)) => return Err(handshake::as_connect_failure(error)),
            Err(_) => return Err(UpstreamError::InitTimeout(settings.init_timeout)),
        };
        let stop = CancellationToken::new();
        tokio::spawn(deliver_cancellations(Arc::clone(&link.poster), cancelled));
        tokio::spawn(listen(link.clone(), stop.clone()));
        let inner = Arc::new(Inner {
            link,
            stop,
            shut_down: AtomicBool::new(false),
        });
        Ok((Self { inner }, result))
    }

    /// Send a request and wait for its answer. See [`super::Connection::request`].
    pub async fn request(
        &self,
        method: &str,
        params: Option<Value>,
        progress: Option<ProgressSink>,
    ) -> Result<Value, UpstreamError> {
        let link = &self.inner.link;
        let (message, in_flight) = link.pending.start(method, params, progress)?;
        let id = in_flight.id();
        let exchange = async {
            let response = link.send(&message).await?;
            link.read_answer(response, id).await
        };
        let answered = tokio::select! {
            biased;
            answered = exchange => answered,
            // Closed under us (the server found gone, an expired session,
            // shutdown): the table has already failed this request; stop
            // reading its answer.
            _ = link.pending.closed() => Ok(()),
        };
        let outcome = match answered {
            Ok(()) => in_flight.wait().await,
            // The server may have the request and still be working on it:
            // dropping it tells the server it is cancelled.
            Err(error @ UpstreamError::Lost(_)) => {
                drop(in_flight);
                Err(error)
            }
            Err(error) => {
                in_flight.abandon();
                Err(error)
            }
        };
        link.count_outcome(&outcome);
        outcome
    }

    /// POST a notification; the server must accept it (202, or 200).
    pub async fn notify(&self, method: &str, params: Option<Value>) -> Result<(), UpstreamError> {
        self.inner.link.notify(method, params).await
    }

    /// Resolves once the connection is dead: a transport failure, an expired
    /// session, or shutdown.
    pub async fn closed(&self) {
        self.inner.link.pending.closed().await;
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.link.pending.is_closed()
    }

    /// Why the connection ended, once it has.
    pub fn close_reason(&self) -> Option<String> {
        self.inner.link.pending.close_reason()
    }

    /// Stop the GET stream, fail requests in flight with
    /// [`UpstreamError::Lost`], and DELETE the session (briefly, ignoring
    /// failures). Calling it again does nothing.
    pub async fn shutdown(&self) {
        if self.inner.shut_down.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner.stop.cancel();
        let link = &self.inner.link;
        link.pending.close("connection shut down");
        let poster = &link.poster;
        if !poster.has_session {
            return;
        }
        match tokio::time::timeout(DELETE_TIMEOUT, poster.delete()).await {
            Ok(Ok(response)) => {
                let status = response.status();
                tracing::debug!(backend = %poster.backend, %status, "session deleted")
            }
            Ok(Err(error)) => {
                let error = error.description;
                tracing::debug!(backend = %poster.backend, error, "deleting the session failed")
            }
            Err(_) => tracing::debug!(backend = %poster.backend, "deleting the session timed out"),
        }
    }
}

/// `initialize`, then `notifications/initialized`; returns the link for the
/// new session and the server's `initialize` result.
async fn initialize(
    link: Link,
    settings: &ConnectSettings,
) -> Result<(Link, Value), UpstreamError> {
    let params = handshake::initialize_params(settings);
    let (message, in_flight) = link.pending.start("initialize", Some(params), None)?;
    let in_flight = in_flight.without_cancel();
    let response = link.send(&message).await?;
    let session = response.headers().get(SESSION_ID).cloned();
    link.read_answer(response, in_flight.id()).await?;
    let result = in_flight.wait().await?;
    let version = handshake::negotiated_version(&result)?;
    let link = Link {
        poster: Arc::new(link.poster.for_session(session, &version)),
        pending: link.pending,
        events: link.events,
        lost_in_a_row: link.lost_in_a_row,
    };
    link.notify("notifications/initialized", None).await?;
    Ok((link, result))
}

impl Link {
    fn backend(&self) -> &str {
        &self.poster.backend
    }

    /// POST one message. Failing to connect at all closes the connection.
    async fn send(&self, message: &Value) -> Result<Response, UpstreamError> {
        self.poster
            .post(message)
            .await
            .map_err(|error| self.transport_failure("sending to the backend failed", error))
    }

    async fn notify(&self, method: &str, params: Option<Value>) -> Result<(), UpstreamError> {
        if self.pending.is_closed() {
            return Err(self.pending.not_sent());
        }
        let response = self.send(&jsonrpc::notification(method, params)).await?;
        self.check_status(response, None).await.map(drop)
    }

    /// A message failed in transit: this message's failure alone (a reset,
    /// a body cut off, a connect timeout). Only a server that refuses the
    /// connection or cannot be reached is gone: then the connection closes.
    fn transport_failure(&self, context: &str, error: TransportError) -> UpstreamError {
        let reason = format!("{context}: {}", error.description);
        if error.server_gone {
            self.pending.close(format!("server gone: {reason}"));
        }
        if error.never_sent {
            UpstreamError::Connect(reason)
        } else {
            UpstreamError::Lost(reason)
        }
    }

    /// Counts requests lost in a row: a server that resets every request
    /// is gone too, though it still accepts connections. Any answer —
    /// an HTTP error status included — starts the count over.
    fn count_outcome(&self, outcome: &Result<Value, UpstreamError>) {
        let Err(UpstreamError::Lost(reason)) = outcome else {
            self.lost_in_a_row.store(0, Ordering::Relaxed);
            return;
        };
        let lost = self.lost_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        if lost >= LOST_IN_A_ROW_BEFORE_GONE {
            tracing::warn!(backend = self.backend(), lost, "every request is lost");
            self.pending.close(format!(
                "server gone: {lost} requests in a row lost, the last: {reason}"
            ));
        }
    }

    /// Turn HTTP-level failures into errors; pass a 2xx response on. When
    /// the failure answers request `answering` with a JSON-RPC error body
    /// (some servers pair 4xx/5xx with one), that error is the answer and is
    /// relayed unchanged.
    async fn check_status(
        &self,
        response: Response,
        answering: Option<u64>,
    ) -> Result<Response, UpstreamError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == StatusCode::NOT_FOUND && self.poster.has_session {
            let reason = "session expired";
            tracing::warn!(
                backend = self.backend(),
                "server no longer knows our session"
            );
            self.pending.close(reason);
            return Err(UpstreamError::Lost(reason.into()));
        }
        let body = read_capped(response, ERROR_BODY_BYTES)
            .await
            .unwrap_or_default();
        if let Some(id) = answering
            && let Ok(message) = serde_json::from_slice::<Value>(&body)
            && message.get("id").and_then(Value::as_u64) == Some(id)
            && let Some(error) = message.get("error")
        {
            return Err(UpstreamError::JsonRpc(ErrorObject::from_value(error)));
        }
        let body = quote(&String::from_utf8_lossy(&body));
        Err(UpstreamError::Protocol(format!("HTTP {status}: {body}")))
    }

    /// Read the answer to request `id` from its POST response, routing
    /// everything else on it. On `Ok` the request has been resolved (or the
    /// connection closed, which also resolves it).
    async fn read_answer(&self, response: Response, id: u64) -> Result<(), UpstreamError> {
        let response = self.check_status(response, Some(id)).await?;
        if response.status() == StatusCode::ACCEPTED {
            return Err(UpstreamError::Protocol(
                "HTTP 202 Accepted in answer to a request".into(),
            ));
        }
        match media_type(&response).as_str() {
            "application/json" => {
                let body = match read_capped(response, MAX_BODY_BYTES).await {
                    Ok(body) => body,
                    Err(ReadError::Transport(error)) => {
                        return Err(self.transport_failure("reading the response failed", error));
                    }
                    Err(ReadError::TooLarge) => {
                        return Err(UpstreamError::Protocol(format!(
                            "response body larger than {MAX_BODY_BYTES} bytes"
                        )));
                    }
                };
                let message: Value = serde_json::from_slice(&body).map_err(|error| {
                    let body = quote(&String::from_utf8_lossy(&body));
                    UpstreamError::Protocol(format!("response body is not JSON ({error}): {body}"))
                })?;
                let quoted = quote(&message.to_string());
                self.route(message);
                if self.pending.contains(id) {
                    return Err(UpstreamError::Protocol(format!(
                        "response body does not answer request {id}: {quoted}"
                    )));
                }
                Ok(())
            }
            "text/event-stream" => {
                let mut body = response.into_body();
                let mut parser = SseParser::new();
                loop {
                    let chunk = match next_chunk(&mut body).await {
                        Ok(Some(chunk)) => chunk,
                        Ok(None) => break,
                        Err(error) => {
                            return Err(
                                self.transport_failure("reading the event stream failed", error)
                            );
                        }
                    };
                    for event in parser.feed(&chunk) {
                        self.route_event(event);
                    }
                    if !self.pending.contains(id) {
                        return Ok(());
                    }
                }
                Err(UpstreamError::Lost(
                    "event stream ended before the response".into(),
                ))
            }
            "" => Err(UpstreamError::Protocol(
                "response has no content type".into(),
            )),
            other => Err(UpstreamError::Protocol(format!(
                "unexpected content type `{other}`"
            ))),
        }
    }

    fn route_event(&self, event: SseEvent) {
        if !event.is_message() {
            tracing::debug!(
                backend = self.backend(),
                event = ?event.event,
                "ignored an event that is not a message"
            );
            return;
        }
        if event.data.trim().is_empty() {
            return;
        }
        match serde_json::from_str(&event.data) {
            Ok(message) => self.route(message),
            Err(error) => tracing::warn!(
                backend = self.backend(),
                %error,
                data = %inbound::preview(&event.data),
                "event stream carried something that is not JSON; skipped"
            ),
        }
    }

    /// Route a message; replies to server requests are POSTed in the
    /// background.
    fn route(&self, message: Value) {
        for reply in inbound::route(message, &self.pending, &self.events) {
            let poster = Arc::clone(&self.poster);
            tokio::spawn(async move { poster.post_quietly(reply).await });
        }
    }
}

/// POST the cancellations of abandoned requests, each in its own task so a
/// slow server delays no one.
async fn deliver_cancellations(poster: Arc<Poster>, mut cancelled: mpsc::UnboundedReceiver<Value>) {
    while let Some(message) = cancelled.recv().await {
        let poster = Arc::clone(&poster);
        tokio::spawn(async move { poster.post_quietly(message).await });
    }
}

/// Keep the GET event stream open while the connection lives. A server that
/// offers none (405, or any status but 200 at the first try) is left alone;
/// a stream that breaks is reopened with capped backoff.
///
/// The stream is also how a restarted or vanished server is noticed without
/// waiting for a client's call to fail: when reopening it is refused at the
/// TCP level, or answered 404/400 for the session it carried, the connection
/// is closed so the supervisor reconnects with a new session.
async fn listen(link: Link, stop: CancellationToken) {
    let backend = link.backend().to_owned();
    let mut backoff = Backoff::new(STREAM_BACKOFF_INITIAL, STREAM_BACKOFF_MAX);
    let mut last_event_id: Option<HeaderValue> = None;
    let mut was_open = false;
    let mut refused = 0;
    loop {
        let poster = &link.poster;
        let opened = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = link.pending.closed() => return,
            opened = poster.get(last_event_id.as_ref()) => opened,
        };
        match opened {
            Err(error) if was_open && error.never_sent => {
                refused += 1;
                let reason = format!("server gone: {}", error.description);
                // Twice in a row, so one transient failure while a server
                // recycles its streams does not end a healthy session.
                if refused >= REFUSALS_BEFORE_GONE {
                    tracing::warn!(backend, %reason, "reopening the event stream was refused");
                    link.pending.close(reason);
                    return;
                }
                tracing::debug!(backend, %reason, "reopening the event stream was refused; retrying");
            }
            Err(error) => {
                tracing::debug!(backend, error = %error.description, "opening the event stream failed")
            }
            Ok(response)
                if was_open
                    && poster.has_session
                    && matches!(
                        response.status(),
                        StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST
                    ) =>
            {
                let reason = format!("session no longer valid (HTTP {})", response.status());
                tracing::warn!(backend, %reason, "server no longer knows our session");
                link.pending.close(reason);
                return;
            }
            Ok(response) if response.status() != StatusCode::OK && was_open => {
                // The server had a stream for us: a 409, 429 or 5xx now is
                // passing trouble, not a refusal; try again after the backoff.
                let status = response.status();
                tracing::debug!(backend, %status, "reopening the event stream failed; retrying");
            }
            Ok(response) if response.status() != StatusCode::OK => {
                let status = response.status();
                tracing::debug!(backend, %status, "server offers no event stream");
                return;
            }
            Ok(response) if media_type(&response) != "text/event-stream" => {
                tracing::debug!(
                    backend,
                    content_type = media_type(&response),
                    "GET did not answer an event stream"
                );
                return;
            }
            Ok(response) => {
                was_open = true;
                refused = 0;
                tracing::debug!(backend, "event stream open");
                let since = tokio::time::Instant::now();
                let mut parser = SseParser::new();
                let ended = tokio::select! {
                    biased;
                    _ = stop.cancelled() => return,
                    _ = link.pending.closed() => return,
                    ended = read_stream(&link, response, &mut parser) => ended,
                };
                if let Some(id) = parser
                    .last_event_id()
                    .and_then(|id| HeaderValue::from_str(id).ok())
                {
                    last_event_id = Some(id);
                }
                if since.elapsed() >= HEALTHY_AFTER {
                    backoff.reset();
                }
                tracing::debug!(backend, how = %ended, "event stream ended; reopening");
            }
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = link.pending.closed() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// Route every event of the GET stream until it ends; says how it ended.
async fn read_stream(link: &Link, response: Response, parser: &mut SseParser) -> String {
    let mut body = response.into_body();
    loop {
        match next_chunk(&mut body).await {
            Ok(Some(chunk)) => {
                for event in parser.feed(&chunk) {
                    link.route_event(event);
                }
            }
            Ok(None) => return "closed by the server".into(),
            Err(error) => return error.description,
        }
    }
}

/// The next piece of a body as it arrives (trailers are skipped); `None`
/// at its end.
async fn next_chunk(body: &mut Incoming) -> Result<Option<Bytes>, TransportError> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| TransportError::reading(&error))?;
        if let Ok(data) = frame.into_data() {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

/// Why a body could not be read.
enum ReadError {
    Transport(TransportError),
    TooLarge,
}

/// Read a body of at most `limit` bytes.
async fn read_capped(response: Response, limit: usize) -> Result<Vec<u8>, ReadError> {
    let mut body = response.into_body();
    let mut read = Vec::new();
    while let Some(chunk) = next_chunk(&mut body).await.map_err(ReadError::Transport)? {
        if read.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge);
        }
        read.extend_from_slice(&chunk);
    }
    Ok(read)
}

/// The media type of a response, lowercase, without parameters.
fn media_type<B>(response: &http::Response<B>) -> String {
    let value = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Remove the credentials from `url`; returns them as an HTTP Basic
/// `Authorization` value, if it had any.
fn take_credentials(url: &mut Url) -> Option<HeaderValue> {
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8_lossy()
            .into_owned()
    };
    let username = decode(url.username());
    let password = url.password().map(decode);
    if username.is_empty() && password.is_none() {
        return None;
    }
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let token = base64::engine::general_purpose::STANDARD
        .encode(format!("{username}:{}", password.unwrap_or_default()));
    let mut value = HeaderValue::from_str(&format!("Basic {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The configured headers, checked, over the URL's credentials (a
/// configured `Authorization` wins).
fn header_map(
    credentials: Option<HeaderValue>,
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<HeaderMap, UpstreamError> {
    let mut map = HeaderMap::new();
    if let Some(credentials) = credentials {
        map.insert(AUTHORIZATION, credentials);
    }
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| UpstreamError::Connect(format!("invalid header name `{name}`")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| UpstreamError::Connect(format!("invalid value for header `{name}`")))?;
        map.insert(name, value);
    }
    Ok(map)
}

/// A message turned into a bodiless GET loses what described its body.
fn drop_payload_headers(headers: &mut HeaderMap) {
    for name in [
        CONTENT_TYPE,
        CONTENT_LENGTH,
        CONTENT_ENCODING,
        TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
}

/// Same scheme, host and port.
fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The `Referer` of a hop to `next` from `previous`: the previous URL
/// without credentials or fragment, never from `https` to `http`.
fn referer(next: &Url, previous: &Url) -> Option<HeaderValue> {
    if next.scheme() == "http" && previous.scheme() == "https" {
        return None;
    }
    let mut referer = previous.clone();
    let _ = referer.set_username("");
    let _ = referer.set_password(None);
    referer.set_fragment(None);
    HeaderValue::from_str(referer.as_str()).ok()
}

/// Whether a failure to connect says the server is not there: refused, or
/// no route to it.
fn is_refused_or_unreachable(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
            )
        {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Whether the server refused a message at the HTTP/2 level without
/// processing it (a graceful GOAWAY, or REFUSED_STREAM): safe to send again.
fn is_protocol_nack(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(error) = cause.downcast_ref::<h2::Error>() {
            let go_away = error.is_go_away() && error.reason() == Some(h2::Reason::NO_ERROR);
            let refused = error.is_reset() && error.reason() == Some(h2::Reason::REFUSED_STREAM);
            return error.is_remote() && (go_away || refused);
        }
        source = cause.source();
    }
    false
}

/// The first [`QUOTE_CHARS`] characters of a body, for error messages.
fn quote(text: &str) -> String {
    text.chars().take(QUOTE_CHARS).collect()
}

/// An error with all its causes: the outer message rarely says what
/// actually happened ("connection refused" is a few sources down). Neither
/// hyper's errors nor the dialer's carry the URL, so no credentials leak.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc::UnboundedReceiver;
    use tower_mcp::extract::{Context, RawArgs};
    use tower_mcp::{CallToolResult, HttpTransport, McpRouter, ToolBuilder};
    use wiremock::matchers::{any, body_partial_json, header, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    use super::*;
    use crate::platform::{BoxFuture, BoxStream, Dialer, Platform, TcpDialer};
    use crate::upstream::{Connection, PROTOCOL_VERSION};

    /// Generous bound on anything a test waits for: tests assert outcomes,
    /// not speed.
    const PATIENCE: Duration = Duration::from_secs(30);

    async fn within<T>(future: impl Future<Output = T>) -> T {
        tokio::time::timeout(PATIENCE, future)
            .await
            .expect("test timed out")
    }

    fn transport(url: &str) -> TransportConfig {
        let headers = BTreeMap::from([("x-api-key".to_owned(), "secret".to_owned())]);
        TransportConfig::Http {
            url: url.to_owned(),
            headers,
        }
    }

    fn settings() -> ConnectSettings {
        ConnectSettings {
            platform: crate::platform::Platform::os(),
            backend: "remote".into(),
            client_name: "mcp-proxy-test".into(),
            client_version: "9.9.9".into(),
            init_timeout: Duration::from_secs(20),
        }
    }

    async fn connect(url: &str) -> (HttpConnection, Value, UnboundedReceiver<Value>) {
        let (events, received) = mpsc::unbounded_channel();
        let (connection, init) = within(HttpConnection::connect(
            &transport(url),
            &settings(),
            events,
        ))
        .await
        .unwrap();
        (connection, init, received)
    }

    fn text_of(result: &Value) -> &str {
        result["content"][0]["text"].as_str().unwrap_or_default()
    }

    // ---- a real MCP server: tower-mcp over axum on 127.0.0.1 ----

    async fn tower_server(sse_responses: bool) -> String {
        let echo = ToolBuilder::new("echo")
            .description("Echo the arguments")
            .extractor_handler((), |RawArgs(args): RawArgs| async move {
                Ok(CallToolResult::text(args.to_string()))
            })
            .build();
        let slow = ToolBuilder::new("slow")
            .description("Report progress, announce a list change, then answer")
            .extractor_handler((), |ctx: Context, RawArgs(_args): RawArgs| async move {
                tokio::time::sleep(Duration::from_millis(700)).await;
                ctx.report_progress(0.5, Some(1.0), Some("half")).await;
                ctx.notify_tools_list_changed();
                tokio::time::sleep(Duration::from_millis(700)).await;
                Ok(CallToolResult::text("done"))
            })
            .build();
        let router = McpRouter::new()
            .server_info("tower-backend", "0.0.1")
            .tool(echo)
            .tool(slow);
        let app = HttpTransport::new(router)
            .sse_responses(sse_responses)
            .into_router();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}/")
    }

    #[tokio::test]
    async fn initializes_and_calls_tools_on_a_real_server() {
        let url = tower_server(false).await;
        let (connection, init, _events) = connect(&url).await;
        assert_eq!(init["serverInfo"]["name"], json!("tower-backend"));
        assert_eq!(init["protocolVersion"], json!(PROTOCOL_VERSION));
        assert!(connection.inner.link.poster.has_session);

        let result = within(connection.request(
            "tools/call",
            Some(json!({"name": "echo", "arguments": {"x": 1}})),
            None,
        ))
        .await
        .unwrap();
        assert_eq!(text_of(&result), r#"{"x":1}"#);
        let tools = within(connection.request("tools/list", None, None))
            .await
            .unwrap();
        assert_eq!(tools["tools"].as_array().map(Vec::len), Some(2));
        within(connection.request("ping", None, None))
            .await
            .unwrap();
        within(connection.notify("notifications/roots/list_changed", None))
            .await
            .unwrap();

        within(connection.shutdown()).await;
        assert_eq!(
            connection.close_reason().as_deref(),
            Some("connection shut down")
        );
        assert_eq!(
            within(connection.request("ping", None, None)).await,
            Err(UpstreamError::Connect("connection shut down".into()))
        );
        within(connection.shutdown()).await;
    }

    #[tokio::test]
    async fn relays_json_rpc_errors_from_a_real_server() {
        let url = tower_server(false).await;
        let (connection, _, _events) = connect(&url).await;
        let params = json!({"name": "no-such-tool", "arguments": {}});
        let error = within(connection.request("tools/call", Some(params), None))
            .await
            .unwrap_err();
        let UpstreamError::JsonRpc(error) = error else {
            panic!("expected a JSON-RPC error, got {error:?}")
        };
        assert_eq!(error.code, jsonrpc::INVALID_PARAMS);
        assert!(error.message.contains("no-such-tool"), "{}", error.message);
        let error = within(connection.request("no/such/method", None, None))
            .await
            .unwrap_err();
        assert!(
            matches!(error, UpstreamError::JsonRpc(ref error) if error.code == jsonrpc::METHOD_NOT_FOUND),
            "{error:?}"
        );
        // Still usable.
        within(connection.request("ping", None, None))
            .await
            .unwrap();
        assert_eq!(connection.close_reason(), None);
    }

    #[tokio::test]
    async fn reads_answers_sent_as_event_streams() {
        let url = tower_server(true).await;
        let (connection, init, _events) = connect(&url).await;
        assert_eq!(init["serverInfo"]["name"], json!("tower-backend"));
        let call = |n: i64| {
            let connection = connection.clone();
            async move {
                connection
                    .request(
                        "tools/call",
                        Some(json!({"name": "echo", "arguments": {"n": n}})),
                        None,
                    )
                    .await
            }
        };
        let (a, b) = within(async { tokio::join!(call(1), call(2)) }).await;
        assert_eq!(text_of(&a.unwrap()), r#"{"n":1}"#);
        assert_eq!(text_of(&b.unwrap()), r#"{"n":2}"#);
        let error = within(connection.request("tools/call", Some(json!({"name": "nope"})), None))
            .await
            .unwrap_err();
        assert!(matches!(error, UpstreamError::JsonRpc(_)), "{error:?}");
    }

    #[tokio::test]
    async fn progress_and_notifications_arrive_on_the_get_stream() {
        let url = tower_server(false).await;
        let (connection, _, mut events) = connect(&url).await;
        let (sink, mut progress) = ProgressSink::bounded(16, Default::default());
        let params =
            json!({"name": "slow", "arguments": {}, "_meta": {"progressToken": "caller-token"}});
        let result = within(connection.request("tools/call", Some(params), Some(sink)))
            .await
            .unwrap();
        assert_eq!(text_of(&result), "done");
        let notification = progress
            .try_recv()
            .expect("progress arrived before the answer");
        assert_eq!(notification["method"], json!("notifications/progress"));
        assert_eq!(
            notification["params"]["progressToken"],
            json!("caller-token")
        );
        assert_eq!(notification["params"]["progress"], json!(0.5));
        let event = within(events.recv()).await.unwrap();
        assert_eq!(event["method"], json!("notifications/tools/list_changed"));
    }

    // ---- raw faults from a server that is not an MCP server: wiremock ----

    /// Answer with a JSON-RPC response carrying the request's own id.
    fn answer(result: Value) -> impl Fn(&Request) -> ResponseTemplate {
        move |request: &Request| {
            let id = serde_json::from_slice::<Value>(&request.body)
                .ok()
                .map(|body| body["id"].clone());
            ResponseTemplate::new(200)
                .set_body_json(json!({"jsonrpc": "2.0", "id": id, "result": result.clone()}))
        }
    }

    /// A wiremock server that completes the handshake with session `sess-1`
    /// and offers no GET stream.
    async fn mock_backend() -> MockServer {
        mock_backend_with_stream(ResponseTemplate::new(405)).await
    }

    /// The same, answering GET with `stream`.
    async fn mock_backend_with_stream(stream: ResponseTemplate) -> MockServer {
        let server = MockServer::start().await;
        let init = json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                          "serverInfo": {"name": "mock", "version": "1"}});
        let init_answer = answer(init);
        Mock::given(method("POST"))
            .and(body_partial_json(json!({"method": "initialize"})))
            .and(header("x-api-key", "secret"))
            .respond_with(move |request: &Request| {
                init_answer(request).insert_header("Mcp-Session-Id", "sess-1")
            })
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(body_partial_json(
                json!({"method": "notifications/initialized"}),
            ))
            .and(header("mcp-session-id", "sess-1"))
            .and(header("mcp-protocol-version", "2025-06-18"))
            .respond_with(ResponseTemplate::new(202))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(stream)
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        server
    }

    async fn on_tool(server: &MockServer, name: &str, response: impl wiremock::Respond + 'static) {
        Mock::given(method("POST"))
            .and(body_partial_json(
                json!({"method": "tools/call", "params": {"name": name}}),
            ))
            .and(header("mcp-session-id", "sess-1"))
            .respond_with(response)
            .mount(server)
            .await;
    }

    async fn call(connection: &HttpConnection, name: &str) -> Result<Value, UpstreamError> {
        within(connection.request("tools/call", Some(json!({"name": name})), None)).await
    }

    #[tokio::test]
    async fn sends_the_expected_headers_and_deletes_the_session() {
        let server = mock_backend().await;
        on_tool(&server, "ok", answer(json!({"content": []}))).await;
        let (connection, init, _events) = connect(&server.uri()).await;
        assert_eq!(init["protocolVersion"], json!("2025-06-18"));
        call(&connection, "ok").await.unwrap();
        within(connection.shutdown()).await;
        let requests = server.received_requests().await.unwrap();
        let posts: Vec<&Request> = requests
            .iter()
            .filter(|request| request.method == "POST")
            .collect();
        for post in &posts {
            assert_eq!(post.headers["content-type"], "application/json");
            assert_eq!(
                post.headers["accept"],
                "application/json, text/event-stream"
            );
            assert_eq!(post.headers["x-api-key"], "secret");
        }
        assert!(
            posts[0].headers.get("mcp-session-id").is_none(),
            "initialize has no session yet"
        );
        assert_eq!(posts.last().unwrap().headers["mcp-session-id"], "sess-1");
        let delete = requests
            .iter()
            .find(|request| request.method == "DELETE")
            .expect("session deleted");
        assert_eq!(delete.headers["mcp-session-id"], "sess-1");
    }

    #[tokio::test]
    async fn http_errors_are_protocol_errors_and_the_connection_survives() {
        let server = mock_backend().await;
        on_tool(
            &server,
            "boom",
            ResponseTemplate::new(500).set_body_string("kaput ".repeat(100)),
        )
        .await;
        on_tool(&server, "ok", answer(json!({"fine": true}))).await;
        let (connection, _, _events) = connect(&server.uri()).await;
        let error = call(&connection, "boom").await.unwrap_err();
        let UpstreamError::Protocol(message) = error else {
            panic!("expected Protocol, got {error:?}")
        };
        assert!(
            message.starts_with("HTTP 500 Internal Server Error: kaput kaput"),
            "{message}"
        );
        assert!(message.len() < 300, "body quoted briefly: {message}");
        assert_eq!(
            call(&connection, "ok").await.unwrap(),
            json!({"fine": true})
        );
        assert_eq!(connection.close_reason(), None);
    }

    #[tokio::test]
    async fn a_json_rpc_error_sent_with_an_error_status_is_relayed_unchanged() {
        let server = mock_backend().await;
        let refuse = |request: &Request| {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            let error = json!({"code": -32602, "message": "bad input", "data": {"field": "q"}});
            ResponseTemplate::new(400)
                .set_body_json(json!({"jsonrpc": "2.0", "id": body["id"], "error": error}))
        };
        on_tool(&server, "strict", refuse).await;
        let (connection, _, _events) = connect(&server.uri()).await;
        let error = call(&connection, "strict").await.unwrap_err();
        let UpstreamError::JsonRpc(error) = error else {
            panic!("expected the backend's JSON-RPC error, got {error:?}")
        };
        assert_eq!(error.code, -32602);
        assert_eq!(error.message, "bad input");
        assert_eq!(error.data, Some(json!({"field": "q"})));
        assert_eq!(connection.close_reason(), None);
    }

    #[tokio::test]
    async fn bad_bodies_are_protocol_errors_and_the_connection_survives() {
        let server = mock_backend().await;
        on_tool(
            &server,
            "html",
            ResponseTemplate::new(200).set_body_raw("<html>", "text/html; charset=utf-8"),
        )
        .await;
        on_tool(
            &server,
            "broken",
            ResponseTemplate::new(200).set_body_raw("{\"jsonrpc\": ", "application/json"),
        )
        .await;
        on_tool(
            &server,
            "other-id",
            ResponseTemplate::new(200)
                .set_body_json(json!({"jsonrpc": "2.0", "id": 999, "result": {}})),
        )
        .await;
        on_tool(&server, "accepted", ResponseTemplate::new(202)).await;
        on_tool(&server, "ok", answer(json!({"fine": true}))).await;
        let (connection, _, _events) = connect(&server.uri()).await;
        for (tool, expected) in [
            ("html", "unexpected content type `text/html`"),
            ("broken", "response body is not JSON"),
            ("other-id", "does not answer request"),
            ("accepted", "202"),
        ] {
            let error = call(&connection, tool).await.unwrap_err();
            assert!(
                matches!(&error, UpstreamError::Protocol(message) if message.contains(expected)),
                "{tool}: {error:?}"
            );
        }
        assert_eq!(
            call(&connection, "ok").await.unwrap(),
            json!({"fine": true})
        );
        assert_eq!(connection.close_reason(), None);
    }

    #[tokio::test]
    async fn event_stream_answers_carry_progress_and_server_requests() {
        let server = mock_backend().await;
        // The proxy's answer to the server's ping.
        Mock::given(method("POST"))
            .and(body_partial_json(json!({"id": "srv-1", "result": {}})))
            .respond_with(ResponseTemplate::new(202))
            .mount(&server)
            .await;
        let stream = |request: &Request| {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            let token = body["params"]["_meta"]["progressToken"].clone();
            let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                                  "params": {"progressToken": token, "progress": 1}});
            let ping = json!({"jsonrpc": "2.0", "id": "srv-1", "method": "ping"});
            let log = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": "hi"}});
            let done = json!({"jsonrpc": "2.0", "id": body["id"], "result": {"streamed": true}});
            let sse = format!(
                ": comment\r\nid: 1\r\ndata: {progress}\r\n\r\nevent: message\ndata: {ping}\n\ndata: {log}\n\ndata: {done}\n\n"
            );
            ResponseTemplate::new(200).set_body_raw(sse, "text/event-stream")
        };
        on_tool(&server, "stream", stream).await;
        let cut = ResponseTemplate::new(200).set_body_raw(
            "data: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\n",
            "text/event-stream",
        );
        on_tool(&server, "cut", cut).await;
        let (connection, _, mut events) = connect(&server.uri()).await;

        let (sink, mut progress) = ProgressSink::bounded(16, Default::default());
        let params = json!({"name": "stream", "_meta": {"progressToken": 77}});
        let result = within(connection.request("tools/call", Some(params), Some(sink)))
            .await
            .unwrap();
        assert_eq!(result, json!({"streamed": true}));
        assert_eq!(
            progress.try_recv().unwrap()["params"]["progressToken"],
            json!(77)
        );
        assert_eq!(
            events.try_recv().unwrap()["method"],
            json!("notifications/message")
        );
        within(async {
            loop {
                let requests = server.received_requests().await.unwrap();
                if requests.iter().any(|request| {
                    serde_json::from_slice::<Value>(&request.body)
                        .is_ok_and(|body| body["id"] == json!("srv-1"))
                }) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;

        // A stream that ends without our answer.
        let error = call(&connection, "cut").await.unwrap_err();
        assert_eq!(
            error,
            UpstreamError::Lost("event stream ended before the response".into())
        );
        assert_eq!(events.try_recv().unwrap()["method"], json!("x"));
        assert_eq!(connection.close_reason(), None);
    }

    #[tokio::test]
    async fn an_expired_session_closes_the_connection() {
        let server = mock_backend().await;
        on_tool(&server, "gone", ResponseTemplate::new(404)).await;
        let (connection, _, _events) = connect(&server.uri()).await;
        let error = call(&connection, "gone").await.unwrap_err();
        assert_eq!(error, UpstreamError::Lost("session expired".into()));
        within(connection.closed()).await;
        assert_eq!(
            connection.close_reason().as_deref(),
            Some("session expired")
        );
        // Later calls are never sent.
        assert_eq!(
            call(&connection, "gone").await,
            Err(UpstreamError::Connect("session expired".into()))
        );
    }

    #[tokio::test]
    async fn slow_headers_leave_the_request_pending_until_they_come() {
        let server = mock_backend().await;
        let late = answer(json!({"late": true}));
        let slow = move |request: &Request| late(request).set_delay(Duration::from_millis(1500));
        on_tool(&server, "slow", slow).await;
        let (connection, _, _events) = connect(&server.uri()).await;
        let in_flight = {
            let connection = connection.clone();
            tokio::spawn(async move { call(&connection, "slow").await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!in_flight.is_finished());
        assert_eq!(connection.inner.link.pending.len(), 1);
        assert_eq!(
            within(in_flight).await.unwrap().unwrap(),
            json!({"late": true})
        );
    }

    #[tokio::test]
    async fn a_dropped_request_posts_a_cancellation() {
        let server = mock_backend().await;
        on_tool(
            &server,
            "never",
            ResponseTemplate::new(200).set_delay(Duration::from_secs(60)),
        )
        .await;
        Mock::given(method("POST"))
            .and(body_partial_json(
                json!({"method": "notifications/cancelled"}),
            ))
            .respond_with(ResponseTemplate::new(202))
            .mount(&server)
            .await;
        let (connection, _, _events) = connect(&server.uri()).await;
        let dropped =
            tokio::time::timeout(Duration::from_millis(300), call(&connection, "never")).await;
        assert!(dropped.is_err());
        let cancellation = within(async {
            loop {
                let requests = server.received_requests().await.unwrap();
                let found = requests.iter().find_map(|request| {
                    let body: Value = serde_json::from_slice(&request.body).ok()?;
                    (body["method"] == json!("notifications/cancelled"))
                        .then_some((body, request.headers.clone()))
                });
                if let Some(found) = found {
                    break found;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        let (body, headers) = cancellation;
        assert_eq!(body["params"]["requestId"], json!(2));
        assert_eq!(headers["mcp-session-id"], "sess-1");
        assert!(connection.inner.link.pending.is_empty());
    }

    async fn gets(server: &MockServer) -> Vec<Request> {
        let requests = server.received_requests().await.unwrap();
        requests
            .into_iter()
            .filter(|request| request.method == "GET")
            .collect()
    }

    #[tokio::test]
    async fn a_server_without_an_event_stream_is_left_alone() {
        let server = mock_backend().await;
        let (connection, _, _events) = connect(&server.uri()).await;
        within(async {
            while gets(&server).await.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        // Well past the first reopen delay: a 405 is not retried.
        tokio::time::sleep(STREAM_BACKOFF_INITIAL * 3).await;
        let gets = gets(&server).await;
        assert_eq!(gets.len(), 1);
        assert_eq!(gets[0].headers["accept"], "text/event-stream");
        assert_eq!(gets[0].headers["mcp-session-id"], "sess-1");
        assert_eq!(connection.close_reason(), None);
    }

    #[tokio::test]
    async fn a_broken_event_stream_is_reopened_until_shutdown() {
        let event = "id: 5\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n";
        let server = mock_backend_with_stream(
            ResponseTemplate::new(200).set_body_raw(event, "text/event-stream"),
        )
        .await;
        let (connection, _, mut events) = connect(&server.uri()).await;
        for _ in 0..2 {
            let event = within(events.recv()).await.unwrap();
            assert_eq!(event["method"], json!("notifications/tools/list_changed"));
        }
        let gets_before = gets(&server).await;
        assert!(gets_before.len() >= 2);
        assert!(gets_before[0].headers.get("last-event-id").is_none());
        assert_eq!(gets_before[1].headers["last-event-id"], "5");
        within(connection.shutdown()).await;
        let count = gets(&server).await.len();
        tokio::time::sleep(STREAM_BACKOFF_INITIAL * 3).await;
        assert_eq!(
            gets(&server).await.len(),
            count,
            "no reopening after shutdown"
        );
    }

    #[tokio::test]
    async fn shutdown_fails_requests_in_flight() {
        let server = mock_backend().await;
        on_tool(
            &server,
            "never",
            ResponseTemplate::new(200).set_delay(Duration::from_secs(60)),
        )
        .await;
        let (connection, _, _events) = connect(&server.uri()).await;
        let in_flight = {
            let connection = connection.clone();
            tokio::spawn(async move { call(&connection, "never").await })
        };
        within(async {
            while connection.inner.link.pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        within(connection.shutdown()).await;
        assert_eq!(
            within(in_flight).await.unwrap(),
            Err(UpstreamError::Lost("connection shut down".into()))
        );
        within(connection.closed()).await;
    }

    #[tokio::test]
    async fn connection_refused_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let (events, _received) = mpsc::unbounded_channel();
        let url = format!("http://{address}/mcp");
        let error = within(HttpConnection::connect(
            &transport(&url),
            &settings(),
            events,
        ))
        .await
        .err()
        .unwrap();
        assert!(
            matches!(&error, UpstreamError::Connect(message) if message.contains("refused")),
            "{error:?}"
        );
        let (events, _received) = mpsc::unbounded_channel();
        let error = within(Connection::connect(
            &transport("not a url"),
            &settings(),
            events,
        ))
        .await
        .err()
        .unwrap();
        assert!(matches!(error, UpstreamError::Connect(_)));
    }

    #[tokio::test]
    async fn a_server_that_never_answers_initialize_times_out() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
            .mount(&server)
            .await;
        let settings = ConnectSettings {
            platform: crate::platform::Platform::os(),
            init_timeout: Duration::from_millis(500),
            ..settings()
        };
        let (events, _received) = mpsc::unbounded_channel();
        let error = within(HttpConnection::connect(
            &transport(&server.uri()),
            &settings,
            events,
        ))
        .await
        .err()
        .unwrap();
        assert_eq!(
            error,
            UpstreamError::InitTimeout(Duration::from_millis(500))
        );
    }

    // ---- transport faults: a hand-written HTTP/1.1 server ----

    /// Serves the handshake properly; answers the tool `whole`, resets the
    /// connection on the tool `reset` and cuts every other `tools/call`
    /// answer off in the middle of the body. Every response closes its
    /// connection.
    async fn cutting_server() -> (String, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Some((request_line, body)) = read_request(&mut socket).await else {
                        return;
                    };
                    let message: Value = serde_json::from_slice(&body).unwrap_or_default();
                    let response = if request_line.starts_with("GET") {
                        "HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
                    } else if message["method"] == json!("initialize") {
                        let body = json!({"jsonrpc": "2.0", "id": message["id"],
                                          "result": {"protocolVersion": "2025-03-26", "capabilities": {},
                                                     "serverInfo": {"name": "raw", "version": "1"}}})
                        .to_string();
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nmcp-session-id: raw-1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    } else if message.get("id").is_none() {
                        "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            .to_owned()
                    } else if message["params"]["name"] == json!("whole") {
                        let body = json!({"jsonrpc": "2.0", "id": message["id"],
                                          "result": {"content": []}})
                        .to_string();
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    } else if message["params"]["name"] == json!("reset") {
                        // Zero linger turns the close into an RST.
                        let _ = socket.set_zero_linger();
                        return;
                    } else {
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n{\"jsonrpc\":".to_owned()
                    };
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        (format!("http://{address}/"), server)
    }

    /// Read one request: its request line and its body.
    async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        let header_end = loop {
            let read = socket.read(&mut chunk).await.ok()?;
            if read == 0 {
                return None;
            }
            buffer.extend_from_slice(&chunk[..read]);
            if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
                break end + 4;
            }
        };
        let head = String::from_utf8_lossy(&buffer[..header_end]).to_string();
        let length: usize = head
            .lines()
            .find_map(|line| {
                line.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_owned())
            })
            .and_then(|value| value.parse().ok())
            .unwrap_or(0);
        while buffer.len() < header_end + length {
            let read = socket.read(&mut chunk).await.ok()?;
            if read == 0 {
                return None;
            }
            buffer.extend_from_slice(&chunk[..read]);
        }
        let request_line = head.lines().next().unwrap_or_default().to_owned();
        Some((
            request_line,
            buffer[header_end..header_end + length].to_vec(),
        ))
    }

    #[tokio::test]
    async fn a_reset_or_a_body_cut_off_fails_that_call_only() {
        let (url, _server) = cutting_server().await;
        let (connection, init, _events) = connect(&url).await;
        assert_eq!(init["serverInfo"]["name"], json!("raw"));
        for (tool, failure) in [
            ("reset", "sending to the backend failed"),
            ("cut", "reading the response failed"),
        ] {
            let error = within(call(&connection, tool)).await.unwrap_err();
            assert!(
                matches!(&error, UpstreamError::Lost(message) if message.starts_with(failure)),
                "{tool}: {error:?}"
            );
            assert_eq!(connection.close_reason(), None, "{tool}");
            assert_eq!(
                within(call(&connection, "whole")).await,
                Ok(json!({"content": []})),
                "after {tool}"
            );
        }
    }

    #[tokio::test]
    async fn a_server_that_loses_every_request_is_gone() {
        let (url, _server) = cutting_server().await;
        let (connection, _, _events) = connect(&url).await;
        // An answer between the losses starts the count over.
        for _ in 0..LOST_IN_A_ROW_BEFORE_GONE - 1 {
            let _ = within(call(&connection, "reset")).await;
        }
        assert!(within(call(&connection, "whole")).await.is_ok());
        for _ in 0..LOST_IN_A_ROW_BEFORE_GONE - 1 {
            let _ = within(call(&connection, "reset")).await;
        }
        assert_eq!(connection.close_reason(), None);
        let _ = within(call(&connection, "reset")).await;
        within(connection.closed()).await;
        let reason = connection.close_reason().unwrap();
        assert!(reason.contains("5 requests in a row lost"), "{reason}");
    }

    /// An error caused by an I/O error, as the pooled client reports one.
    #[derive(Debug)]
    struct CausedBy(std::io::Error);

    impl std::fmt::Display for CausedBy {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }

    impl std::error::Error for CausedBy {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn only_a_refused_or_unreachable_server_is_gone() {
        use std::io::ErrorKind;
        for (kind, gone) in [
            (ErrorKind::ConnectionRefused, true),
            (ErrorKind::HostUnreachable, true),
            (ErrorKind::NetworkUnreachable, true),
            (ErrorKind::TimedOut, false),
            (ErrorKind::ConnectionReset, false),
        ] {
            let error = CausedBy(std::io::Error::from(kind));
            assert_eq!(is_refused_or_unreachable(&error), gone, "{kind:?}");
        }
    }

    #[tokio::test]
    async fn a_refused_request_closes_the_connection_as_connect() {
        let (url, server) = cutting_server().await;
        let (connection, _, _events) = connect(&url).await;
        server.abort();
        let _ = server.await;
        let error = call(&connection, "anything").await.unwrap_err();
        assert!(
            matches!(&error, UpstreamError::Connect(message) if message.contains("refused")),
            "{error:?}"
        );
        within(connection.closed()).await;
        let reason = connection.close_reason().unwrap();
        assert!(reason.contains("refused"), "{reason}");
    }

    // ---- the platform's dialer, pooling, credentials, redirects ----

    /// Dials TCP and counts the connections it opened.
    #[derive(Default)]
    struct CountingDialer(std::sync::atomic::AtomicUsize);

    impl CountingDialer {
        fn count(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    impl Dialer for CountingDialer {
        fn dial(&self, host: &str, port: u16) -> BoxFuture<'static, std::io::Result<BoxStream>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            TcpDialer.dial(host, port)
        }
    }

    #[tokio::test]
    async fn connections_come_from_the_platform_dialer_and_are_reused() {
        let server = mock_backend().await;
        on_tool(&server, "ok", answer(json!({"fine": true}))).await;
        let dialer = Arc::new(CountingDialer::default());
        let settings = ConnectSettings {
            platform: Platform {
                dialer: dialer.clone(),
                ..Platform::os()
            },
            ..settings()
        };
        let (events, _received) = mpsc::unbounded_channel();
        let (connection, _) = within(HttpConnection::connect(
            &transport(&server.uri()),
            &settings,
            events,
        ))
        .await
        .unwrap();
        within(async {
            while gets(&server).await.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        let dialed = dialer.count();
        // initialize, initialized and the GET may overlap: at most one
        // connection each.
        assert!((1..=3).contains(&dialed), "{dialed} connections");
        for _ in 0..5 {
            // Time for a finished exchange to hand its connection back.
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(
                call(&connection, "ok").await.unwrap(),
                json!({"fine": true})
            );
        }
        assert_eq!(dialer.count(), dialed, "calls reuse pooled connections");
        assert_eq!(server.received_requests().await.unwrap().len(), 8);
    }

    #[tokio::test]
    async fn credentials_in_the_url_are_sent_as_basic_auth_unless_configured() {
        let server = mock_backend().await;
        let address = *server.address();
        let url = format!("http://us%65r:p%40ss@{address}/mcp#fragment");
        let (connection, _, _events) = connect(&url).await;
        within(connection.shutdown()).await;
        let requests = server.received_requests().await.unwrap();
        assert!(requests.len() >= 3);
        for request in &requests {
            assert_eq!(request.headers["authorization"], "Basic dXNlcjpwQHNz");
            assert_eq!(request.headers["host"], address.to_string().as_str());
            assert_eq!(request.url.path(), "/mcp");
        }

        let server = mock_backend().await;
        let mut transport = transport(&format!("http://user:pw@{}/", server.address()));
        if let TransportConfig::Http { headers, .. } = &mut transport {
            headers.insert("authorization".into(), "Bearer configured".into());
        }
        let (events, _received) = mpsc::unbounded_channel();
        within(HttpConnection::connect(&transport, &settings(), events))
            .await
            .unwrap();
        for request in server.received_requests().await.unwrap() {
            assert_eq!(request.headers["authorization"], "Bearer configured");
        }
    }

    #[tokio::test]
    async fn a_temporary_redirect_repeats_the_message_at_the_new_place() {
        let server = mock_backend().await;
        Mock::given(path("/old"))
            .respond_with(ResponseTemplate::new(307).insert_header("location", "/mcp"))
            .with_priority(1)
            .mount(&server)
            .await;
        on_tool(&server, "ok", answer(json!({"fine": true}))).await;
        let old = format!("{}/old", server.uri());
        let (connection, init, _events) = connect(&old).await;
        assert_eq!(init["serverInfo"]["name"], json!("mock"));
        // The GET stream's redirect too, before shutdown stops it.
        within(async {
            while !gets(&server)
                .await
                .iter()
                .any(|request| request.url.path() == "/mcp")
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert_eq!(
            call(&connection, "ok").await.unwrap(),
            json!({"fine": true})
        );
        within(connection.shutdown()).await;
        let requests = server.received_requests().await.unwrap();
        let at = |wanted: &str| {
            let mut found: Vec<(String, Vec<u8>)> = requests
                .iter()
                .filter(|request| request.url.path() == wanted)
                .map(|request| (request.method.to_string(), request.body.clone()))
                .collect();
            found.sort();
            found
        };
        // POSTs (with their bodies), the GET and the DELETE: each went to
        // /old first, then the same again to /mcp.
        assert_eq!(at("/old"), at("/mcp"));
        assert!(at("/mcp").iter().any(|(method, _)| method == "DELETE"));
        for request in requests.iter().filter(|r| r.url.path() == "/mcp") {
            assert_eq!(request.headers["x-api-key"], "secret");
            assert_eq!(request.headers["referer"], old.as_str());
        }
    }

    #[tokio::test]
    async fn see_other_turns_a_post_into_a_bodiless_get() {
        let server = mock_backend().await;
        on_tool(
            &server,
            "moved",
            ResponseTemplate::new(303).insert_header("location", "/elsewhere"),
        )
        .await;
        let (connection, _, _events) = connect(&server.uri()).await;
        let error = call(&connection, "moved").await.unwrap_err();
        // The GET is answered by the mock's 405 for GETs.
        assert_eq!(
            error,
            UpstreamError::Protocol("HTTP 405 Method Not Allowed: ".into())
        );
        let requests = server.received_requests().await.unwrap();
        let followed = requests
            .iter()
            .find(|request| request.url.path() == "/elsewhere")
            .expect("redirect followed");
        assert_eq!(followed.method.as_str(), "GET");
        assert!(followed.body.is_empty());
        assert!(followed.headers.get("content-type").is_none());
        assert_eq!(followed.headers["mcp-session-id"], "sess-1");
        assert_eq!(connection.close_reason(), None);
    }

    #[tokio::test]
    async fn a_redirect_to_another_origin_drops_the_credentials() {
        let target = mock_backend().await;
        let front = MockServer::start().await;
        let location = format!("{}/mcp", target.uri());
        Mock::given(any())
            .respond_with(ResponseTemplate::new(307).insert_header("location", location.as_str()))
            .mount(&front)
            .await;
        let url = format!("http://user:pw@{}/mcp", front.address());
        let (connection, _, _events) = connect(&url).await;
        within(connection.shutdown()).await;
        for request in front.received_requests().await.unwrap() {
            assert_eq!(request.headers["authorization"], "Basic dXNlcjpwdw==");
        }
        let requests = target.received_requests().await.unwrap();
        assert!(!requests.is_empty());
        for request in requests {
            assert!(request.headers.get("authorization").is_none());
            assert_eq!(request.headers["x-api-key"], "secret");
            let referer = format!("http://{}/mcp", front.address());
            assert_eq!(request.headers["referer"], referer.as_str());
        }
    }

    #[tokio::test]
    async fn endless_redirects_are_a_transport_failure() {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(308).insert_header("location", "/again"))
            .mount(&server)
            .await;
        let (events, _received) = mpsc::unbounded_channel();
        let error = within(HttpConnection::connect(
            &transport(&server.uri()),
            &settings(),
            events,
        ))
        .await
        .err()
        .unwrap();
        assert_eq!(
            error,
            UpstreamError::Connect(
                "connection lost during initialize: sending to the backend failed: \
                 following a redirect failed: more than 10 redirects"
                    .into()
            )
        );
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), MAX_REDIRECTS + 1);
    }
}
