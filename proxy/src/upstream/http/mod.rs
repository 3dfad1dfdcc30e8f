//! A backend reached over streamable HTTP (MCP 2025-03-26 .. 2025-11-25).
//!
//! Every message is its own POST. A request's answer comes back as a JSON
//! body or as a Server-Sent-Events stream (`../sse.rs`) that may carry
//! progress and server requests before the response itself; everything on
//! it is routed like stdout of a stdio child (`../inbound.rs`). After
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
//! (`../connector.rs`), so the same code runs on TCP and on a simulated
//! network. No system proxy is consulted. Credentials in the URL are sent
//! as HTTP Basic authentication (a configured `Authorization` header
//! wins), and redirects are followed, up to [`MAX_REDIRECTS`] per message:
//! 301/302 turn a POST into a GET and 303 turns anything but HEAD into a
//! GET, both without the body; 307/308 repeat the message as it was. A hop
//! to another origin than the configured URL's drops the credentials.
//!
//! There is no overall request timeout here; callers bound their calls, and
//! dropping a call cancels it upstream without waiting for the POST.
//!
//! The parts, one job each: this file is the public face — the
//! [`HttpConnection`], connecting and the `initialize` handshake, and the
//! `Link` (poster, request table, event sink) the others share;
//! `posting.rs` puts one message on the wire (its headers, redirects,
//! HTTP/2 refusals re-sent) and says how a transport failure happened; `answers.rs` reads what comes back on a POST (an error status,
//! a JSON body or an event stream) and routes it; `event_stream.rs` keeps
//! the GET event stream open and notices a server gone through it.

mod answers;
mod event_stream;
mod posting;
// Also what the JWKS fetch (auth/jwks.rs) reports a failed request with.
pub(crate) use posting::chain as error_chain;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use base64::Engine as _;
use http::Uri;
use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use hyper::body::Incoming;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use url::Url;

use self::event_stream::listen;
use self::posting::{Poster, SESSION_ID, TransportError, deliver_cancellations};
use super::connector;
use super::pending::Pending;
use super::{ConnectSettings, EventSink, Outbound, ProgressSink, UpstreamError, handshake};
use crate::config::TransportConfig;
use crate::jsonrpc;

/// A response whose body is still on the wire.
type Response = http::Response<Incoming>;

/// The largest JSON response body accepted.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Redirects followed for one message; one more is a transport failure.
pub(crate) const MAX_REDIRECTS: usize = 10;

/// Bound on the DELETE that ends the session.
const DELETE_TIMEOUT: Duration = Duration::from_secs(2);

/// Requests lost in a row (reset, cut off) with no answer between them that
/// mean the server is gone.
const LOST_IN_A_ROW_BEFORE_GONE: u32 = 5;

/// A live MCP session with a streamable-HTTP server. Cheap to clone.
#[derive(Clone)]
pub(crate) struct HttpConnection {
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
    pub(crate) async fn connect(
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
    pub(crate) async fn request(
        &self,
        method: &str,
        params: Option<Value>,
        progress: Option<ProgressSink>,
        outbound: Outbound<'_>,
    ) -> Result<Value, UpstreamError> {
        let link = &self.inner.link;
        let (message, in_flight) = link.pending.start(method, params, progress)?;
        let id = in_flight.id();
        let exchange = async {
            let response = link.send_as(&message, outbound).await?;
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

    /// Resolves once the connection is dead: a transport failure, an expired
    /// session, or shutdown.
    pub(crate) async fn closed(&self) {
        self.inner.link.pending.closed().await;
    }

    /// Whether the connection has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.inner.link.pending.is_closed()
    }

    /// Why the connection ended, once it has.
    pub(crate) fn close_reason(&self) -> Option<String> {
        self.inner.link.pending.close_reason()
    }

    /// Stop the GET stream, fail requests in flight with
    /// [`UpstreamError::Lost`], and DELETE the session (briefly, ignoring
    /// failures). Calling it again does nothing.
    pub(crate) async fn shutdown(&self) {
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
        self.send_as(message, Outbound::default()).await
    }

    /// [`Self::send`], with a client's credential (`forward_auth`) and the
    /// attempt's trace context.
    async fn send_as(
        &self,
        message: &Value,
        outbound: Outbound<'_>,
    ) -> Result<Response, UpstreamError> {
        self.poster
            .post_as(message, outbound)
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
