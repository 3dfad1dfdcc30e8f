//! Upstream transports: how the proxy talks to one MCP server.
//!
//! A [`Connection`] is one live, initialized MCP session with a backend, over
//! a stdio child ([`stdio`]) or streamable HTTP ([`http`]). It multiplexes
//! concurrent requests, assigns its own request ids (so ids from different
//! clients never collide upstream) and remaps progress tokens ([`pending`]).
//! It does not reconnect: when it dies, [`Connection::closed`] resolves and
//! the backend supervisor makes a new one.

mod child;
pub(crate) mod client;
pub(crate) mod connector;
mod handshake;
pub(crate) mod http;
pub(crate) mod inbound;
pub(crate) mod pending;
mod sse;
pub(crate) mod stdio;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::config::TransportConfig;
use crate::jsonrpc::ErrorObject;
use crate::platform::Platform;

pub(crate) use child::ProcessSpawner;

/// Why an upstream request failed, by whose fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// The backend answered with a JSON-RPC error; relayed to the client unchanged.
    #[error("backend returned error {}: {}", .0.code, .0.message)]
    JsonRpc(ErrorObject),
    /// No connection could be made: the request never reached the backend.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The connection failed while the request was in flight (reset, child
    /// exited, stream closed): the request may have reached the backend.
    #[error("connection lost: {0}")]
    Lost(String),
    /// The backend answered with something that is not a valid MCP answer
    /// (HTTP error status, wrong content type, malformed body).
    #[error("invalid answer from backend: {0}")]
    Protocol(String),
    /// The `initialize` handshake did not finish within `init_timeout`.
    #[error("initialize timed out after {0:?}")]
    InitTimeout(Duration),
    /// A list method (`tools/list`, ...) was not answered within `init_timeout`.
    #[error("{0} not answered within {1:?}")]
    ListTimeout(&'static str, Duration),
}

/// Receives the progress notifications of one request, as complete JSON-RPC
/// notification messages whose `progressToken` is already the caller's own.
///
/// The queue is bounded: while it is full (the client does not read its
/// event stream), newer notifications are dropped and counted. Progress is
/// advisory and the next one supersedes it; holding the backend's reader
/// until the client reads would stall every other call on the connection.
#[derive(Debug, Clone)]
pub(crate) struct ProgressSink {
    sender: mpsc::Sender<Value>,
    dropped: Arc<AtomicU64>,
}

impl ProgressSink {
    /// A sink queueing at most `capacity` notifications, counting the ones
    /// it drops in `dropped`, and the receiver of the queue.
    #[cfg(test)]
    pub(crate) fn bounded(
        capacity: usize,
        dropped: Arc<AtomicU64>,
    ) -> (Self, mpsc::Receiver<Value>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        (Self { sender, dropped }, receiver)
    }

    /// A sink onto an existing queue (one the call's other messages to
    /// the client share), counting its drops in `dropped`.
    pub(crate) fn on(sender: mpsc::Sender<Value>, dropped: Arc<AtomicU64>) -> Self {
        Self { sender, dropped }
    }

    /// Queue a notification; false when it was dropped (queue full, counted)
    /// or nobody listens any more.
    pub(crate) fn send(&self, notification: Value) -> bool {
        match self.sender.try_send(notification) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Receives the backend's notifications that belong to no request of ours
/// (`notifications/tools/list_changed`, `notifications/resources/updated`,
/// `notifications/message`, ...), as complete JSON-RPC messages.
pub(crate) type EventSink = mpsc::UnboundedSender<Value>;

/// What a connection needs besides the transport's own config.
#[derive(Debug, Clone)]
pub(crate) struct ConnectSettings {
    /// Where connections come from: the dialer for HTTP, the spawner for stdio.
    pub platform: Platform,
    /// Backend name, for logs and error messages.
    pub backend: String,
    /// `clientInfo.name` sent in `initialize`.
    pub client_name: String,
    /// `clientInfo.version` sent in `initialize`.
    pub client_version: String,
    /// Deadline for connecting plus the `initialize` handshake.
    pub init_timeout: Duration,
}

/// The protocol revision the proxy asks backends for.
pub(crate) const PROTOCOL_VERSION: &str = "2025-11-25";

/// Protocol revisions the proxy understands, oldest first.
pub(crate) const SUPPORTED_PROTOCOL_VERSIONS: &[&str] =
    &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// What travels with one request besides its method and params.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Outbound<'a> {
    /// The client's own `Authorization` header (`forward_auth`), for an
    /// HTTP backend; a stdio child has no use for it.
    pub(crate) credential: Option<&'a ::http::HeaderValue>,
    /// The attempt's trace context: headers on an HTTP backend's POST, the
    /// request's `params._meta` for a stdio child (see [`crate::trace`]).
    pub(crate) trace: Option<&'a crate::trace::TraceContext>,
}

/// A live, initialized session with one backend. Cheap to clone.
#[derive(Clone)]
pub(crate) enum Connection {
    /// A stdio child process.
    Stdio(stdio::StdioConnection),
    /// A streamable-HTTP server.
    Http(http::HttpConnection),
}

impl Connection {
    /// Start or reach the backend and run the `initialize` handshake
    /// (request, then `notifications/initialized`). Returns the connection and
    /// the backend's `initialize` result.
    pub(crate) async fn connect(
        transport: &TransportConfig,
        settings: &ConnectSettings,
        events: EventSink,
    ) -> Result<(Connection, Value), UpstreamError> {
        match transport {
            TransportConfig::Stdio { .. } => {
                let (connection, init) =
                    stdio::StdioConnection::connect(transport, settings, events).await?;
                Ok((Connection::Stdio(connection), init))
            }
            TransportConfig::Http { .. } => {
                let (connection, init) =
                    http::HttpConnection::connect(transport, settings, events).await?;
                Ok((Connection::Http(connection), init))
            }
        }
    }

    /// Send a request and wait for its answer: the `result` member, or the
    /// error. Dropping the future before it resolves sends
    /// `notifications/cancelled` for it to the backend (without delaying the
    /// caller). If `params._meta.progressToken` is set, progress for this
    /// request is delivered to `progress` with the caller's token restored.
    /// `outbound` says what else goes with it, as each transport carries it.
    pub(crate) async fn request(
        &self,
        method: &str,
        params: Option<Value>,
        progress: Option<ProgressSink>,
        outbound: Outbound<'_>,
    ) -> Result<Value, UpstreamError> {
        match self {
            Connection::Stdio(connection) => {
                let params = match outbound.trace {
                    Some(context) => crate::trace::into_meta(params, context),
                    None => params,
                };
                connection.request(method, params, progress).await
            }
            Connection::Http(connection) => {
                connection.request(method, params, progress, outbound).await
            }
        }
    }

    /// Resolves once the connection is dead and will not carry more requests
    /// (child exited or its stdout closed; an HTTP request failed at the
    /// transport level or the server forgot our session).
    pub(crate) async fn closed(&self) {
        match self {
            Connection::Stdio(connection) => connection.closed().await,
            Connection::Http(connection) => connection.closed().await,
        }
    }

    /// Whether the connection is dead (see [`Connection::closed`]).
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Connection::Stdio(connection) => connection.is_closed(),
            Connection::Http(connection) => connection.is_closed(),
        }
    }

    /// Why the connection died, once it has.
    pub(crate) fn close_reason(&self) -> Option<String> {
        match self {
            Connection::Stdio(connection) => connection.close_reason(),
            Connection::Http(connection) => connection.close_reason(),
        }
    }

    /// The process id of a stdio child; `None` for HTTP.
    pub(crate) fn pid(&self) -> Option<u32> {
        match self {
            Connection::Stdio(connection) => connection.pid(),
            Connection::Http(_) => None,
        }
    }

    /// End the session politely. stdio: close stdin, wait, SIGTERM the
    /// child's process group, wait, SIGKILL. HTTP: DELETE the session.
    /// Requests still in flight fail with [`UpstreamError::Lost`].
    pub(crate) async fn shutdown(&self) {
        match self {
            Connection::Stdio(connection) => connection.shutdown().await,
            Connection::Http(connection) => connection.shutdown().await,
        }
    }
}
