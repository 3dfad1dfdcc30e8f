//! The HTTP front door: the streamable-HTTP MCP endpoint at `/mcp` and the
//! operations endpoints, as one axum [`Router`].
//!
//! `router()` builds the whole app from shared state, so tests can drive it
//! without a socket and the server can serve it on one.

mod mcp;
mod ops;
pub(crate) mod origin;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::gateway::Gateway;
use crate::session::SessionStore;

/// What every handler shares.
pub(crate) struct App {
    /// Routes requests to backends.
    pub gateway: Arc<Gateway>,
    /// Client sessions.
    pub sessions: Arc<SessionStore>,
    /// Forwarded calls, so shutdown can wait for them to drain.
    pub calls: TaskTracker,
    /// Cancelled when shutdown begins: new requests are refused.
    pub draining: CancellationToken,
    /// Cancelled when the drain time is over: calls still running are cancelled.
    pub cancel_calls: CancellationToken,
    /// Origins allowed besides localhost ones.
    pub allowed_origins: Vec<String>,
    /// Largest accepted request body, in bytes.
    pub max_body_size: usize,
}

/// The whole HTTP app.
pub(crate) fn router(app: Arc<App>) -> Router {
    let body_limit = app.max_body_size;
    Router::new()
        .route(
            "/mcp",
            get(mcp::get_stream).post(mcp::post).delete(mcp::delete),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .route("/livez", get(ops::livez))
        .route("/readyz", get(ops::readyz))
        .route("/admin/backends", get(ops::backends))
        .route("/admin/metrics", get(ops::metrics))
        .with_state(app)
}
